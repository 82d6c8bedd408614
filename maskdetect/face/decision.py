"""The second stage's keep/veto decision, free of models: which proposal groups become faces, from their fused
probabilities and the face verifier's scores.

:class:`KeepRule` is built from the :class:`~maskdetect.face.settings.DetectorSettings` alone, so a benchmark can
replay the decision on cached groups at other settings without loading a network.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from maskdetect.face.boxes import SAME_FACE_IOU, inside_share, iou
from maskdetect.face.settings import DetectorSettings

# A second-stage box with this share of its area inside a face taken before it is part of that face (an eye,
# a mask) and is dropped.
_INSIDE_KEPT_FACE_SHARE = 0.50
# A face the fusion keeps under this probability (it thinks a face less likely than not) can be vetoed by the
# face verifier.
_VETO_BELOW_PROBABILITY = 0.5


@dataclass(frozen=True)
class KeepRule:
    """The thresholds the decision uses (see :class:`DetectorSettings` for each); ``verifier_threshold`` and
    ``verifier_veto`` are None for a stage without a verifier."""

    second_stage_threshold: float
    verifier_threshold: float | None
    verifier_veto: float | None
    min_face_size: int

    @classmethod
    def from_settings(cls, settings: DetectorSettings) -> KeepRule:
        """The rule a detector with ``settings`` applies."""
        return cls(settings.second_stage_threshold, settings.verifier_threshold, settings.verifier_veto,
                   settings.min_face_size)

    def vetoes(self, probability: float, verifier_highest: float) -> bool:
        """Whether the verifier vetoes a group of this fused ``probability`` whose views score at most
        ``verifier_highest``: under 0.5, and under ``verifier_veto`` (NaN never)."""
        veto = self.verifier_veto
        return veto is not None and probability < _VETO_BELOW_PROBABILITY and verifier_highest < veto

    def confidence(self, probability: float, verifier_score: float, verifier_highest: float = math.nan) -> float | None:
        """The confidence a proposal group is kept with, None when it is not kept.

        Args:
            probability: the group's fused probability.
            verifier_score: the lowest of the verifier's views (NaN: no verifier; never reaches a threshold).
            verifier_highest: the highest of the verifier's views (NaN vetoes nothing).

        Returns:
            The larger of ``probability`` and ``verifier_score`` when the score reaches the verifier's threshold;
            else ``probability`` when it reaches the second-stage threshold and is not vetoed; else None. So the
            faces kept at a lower second-stage threshold, filtered by confidence, are those kept at a higher one
            (up to the verifier's threshold), as a threshold curve needs.
        """
        threshold = self.verifier_threshold
        if threshold is not None and verifier_score >= threshold:
            return max(float(probability), float(verifier_score))
        if probability < self.second_stage_threshold or self.vetoes(probability, verifier_highest):
            return None
        return float(probability)

    def needs_other_views(self, first: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
        """Which groups the verifier's other views can change the decision on, from its ``first`` view's scores
        and the groups' fused ``probabilities``: a first view at the verifier's threshold or more (the lowest
        view may still reach it), or under the veto for a group the fusion keeps (the highest may stay under it).
        The first view bounds the lowest from above and the highest from below, so elsewhere the decision is the
        same with the first view alone."""
        vetoed = np.array([self.vetoes(probability, score) for probability, score in zip(probabilities, first,
                                                                                          strict=True)], bool)
        return (first >= self.verifier_threshold) | (vetoed & (probabilities >= self.second_stage_threshold))

    def keep(self, kept_boxes: np.ndarray, boxes: np.ndarray, probabilities: Sequence[float],
             verifier_scores: Sequence[float], verifier_boxes: np.ndarray | None = None,
             verifier_highest: Sequence[float] | None = None) -> list[tuple[np.ndarray, float]]:
        """The proposal groups the second stage keeps beside the kept MTCNN faces, with their confidences.

        Args:
            kept_boxes: the kept MTCNN faces' boxes.
            boxes: the groups' boxes.
            probabilities: their fused probabilities.
            verifier_scores: the lowest of the verifier's views of each (NaN: no verifier).
            verifier_boxes: the boxes the verifier scored (its best placements); default ``boxes``.
            verifier_highest: the highest of the verifier's views (default NaN: no veto).

        Returns:
            (box, confidence) of the groups that reach a threshold (see :meth:`confidence`): the fusion's first with
            their own boxes, then the verifier's with its boxes, each most confident first, less any that overlaps
            a face taken before it and any under ``min_face_size`` (which still takes its place).
        """
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        verifier_boxes = boxes if verifier_boxes is None else np.asarray(verifier_boxes, np.float64).reshape(-1, 4)
        if verifier_highest is None:
            verifier_highest = np.full(len(boxes), np.nan)
        candidates = []
        for box, verifier_box, probability, score, highest in zip(boxes, verifier_boxes, probabilities,
                                                                  verifier_scores, verifier_highest, strict=True):
            confidence = self.confidence(probability, score, highest)
            if confidence is not None:
                by_verifier = probability < self.second_stage_threshold
                candidates.append((verifier_box if by_verifier else box, confidence, by_verifier))
        candidates.sort(key=lambda candidate: (candidate[2], -candidate[1]))
        taken = list(np.asarray(kept_boxes).reshape(-1, 4))
        accepted = []
        for box, probability, _ in candidates:
            if taken and (iou(box[None], np.asarray(taken)).max() >= SAME_FACE_IOU
                          or inside_share(box, np.asarray(taken)).max() >= _INSIDE_KEPT_FACE_SHARE):
                continue
            taken.append(box)
            # MTCNN looks for nothing under min_face_size either; below it the second stage's
            # boxes were mostly eyes, buttons and textures.
            if min(box[2] - box[0], box[3] - box[1]) >= self.min_face_size:
                accepted.append((box, probability))
        return accepted
