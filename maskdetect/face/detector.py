"""The face detector: MTCNN first, then a second stage that adds the faces MTCNN misses (many masked ones).

1. MTCNN (:mod:`maskdetect.face.mtcnn`) finds faces; those at ``threshold`` or more are kept;
2. the proposal sources (:mod:`maskdetect.face.sources`) propose boxes, a kept MTCNN box that lies mostly inside
   a confident face-finder box is refined, and the proposals on no kept face are grouped, gated and looked at
   again zoomed in (:mod:`maskdetect.face.groups`);
3. the fusion (:mod:`maskdetect.face.fusion`) turns each group's evidence into a probability of a face;
4. the face verifier (:mod:`maskdetect.face.verifier`) looks at each group on a crop of its own, and the keep
   rule (:mod:`maskdetect.face.decision`) decides which groups become faces.

Heavy imports (TensorFlow, mtcnn, cv2) happen in the constructor, not when this module is imported. A
:class:`FaceDetector` holds TFLite interpreters and an OpenCV network: use one instance per thread.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from maskdetect.face import fusion, groups, verifier
from maskdetect.face.blazeface import FULL_RANGE, SHORT_RANGE, BlazeFaceModel
from maskdetect.face.boxes import SAME_FACE_IOU, Face, FaceKind, box_of, boxes_of, check_image, face_in_image, iou
from maskdetect.face.decision import KeepRule
from maskdetect.face.proposals import PROPOSAL_SOURCES, ProposalSource
from maskdetect.face.settings import DetectorSettings

logger = logging.getLogger(__name__)


class FaceDetector:
    """MTCNN face detector with a second stage for the faces MTCNN misses.

    ``FaceDetector()`` uses the tuned defaults; ``FaceDetector(second_stage=False)`` or
    ``FaceDetector(DetectorSettings(...))`` changes them. Models load in the constructor.

    Raises:
        ValueError: unknown settings, an unregistered proposal source, or fusion weights that do not fit the
            sources (one line).
        ImportError: a package whose model files the stage needs is missing (one line, with the pip command).
    """

    def __init__(self, settings: DetectorSettings | None = None, **overrides: Any) -> None:
        if settings is None:
            settings = DetectorSettings()
        elif not isinstance(settings, DetectorSettings):
            raise ValueError(f"settings must be a DetectorSettings, got {type(settings).__name__}")
        if overrides:
            names = {setting.name for setting in dataclasses.fields(DetectorSettings)}
            unknown = sorted(set(overrides) - names)
            if unknown:
                raise ValueError(f"unknown detector setting(s) {unknown}; known: {sorted(names)}")
            settings = dataclasses.replace(settings, **overrides)
        self.settings = settings
        self.rule = KeepRule.from_settings(settings)
        source_names = settings.source_names()
        # The registry may have changed since the settings were made: check it and the weights
        # before any model loads.
        missing = [name for name in source_names if name not in PROPOSAL_SOURCES]
        if missing:
            raise ValueError(f"unknown proposal source(s) {missing}; registered: {list(PROPOSAL_SOURCES)}")
        fusion_path = fusion.SHIPPED_FUSION if settings.fusion is None else Path(settings.fusion)
        self.fusion = fusion.load_fusion(fusion_path)
        weights = self.fusion["weights"]
        unweighted = [name for name in source_names if name not in weights]
        if unweighted:
            raise ValueError(f"proposal source(s) {unweighted} have no weight in the fusion weights {fusion_path}: "
                             f"refit the fusion (python -m maskdetect.face.fusion_fit)")
        unknown_weights = sorted(set(weights) - set(fusion.fusion_features(list(PROPOSAL_SOURCES))))
        if unknown_weights:
            raise ValueError(f"fusion weights {fusion_path} have weights for no known feature: {unknown_weights}")
        import cv2

        from maskdetect.face.mtcnn import Mtcnn

        self._cv2 = cv2
        self._mtcnn = Mtcnn() if settings.first_stage else None
        self._sources: list[ProposalSource] = [PROPOSAL_SOURCES[name](settings) for name in source_names]
        # with ``concurrent``: the sources that do not use MTCNN's faces, run on a second thread while MTCNN runs,
        # and those that do, after it
        self._alongside = [index for index, source in enumerate(self._sources)
                           if not getattr(source, "uses_mtcnn_faces", False)]
        self._after = [index for index in range(len(self._sources)) if index not in self._alongside]
        self._pool = None
        if settings.concurrent and self._mtcnn is not None and self._alongside:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="face-sources")
        self._zoom_full_range = self._zoom_short_range = self._verifier = None
        if self._sources:
            if settings.zoom:
                self._zoom_full_range = BlazeFaceModel(FULL_RANGE, settings.num_threads)
                self._zoom_short_range = BlazeFaceModel(SHORT_RANGE, settings.num_threads)
            if settings.verifier_threshold is not None:
                self._verifier = verifier.load_verifier(settings.verifier_model)

    def detect(self, image: np.ndarray, review_threshold: float | None = None) -> list[Face]:
        """Faces in a photo.

        Args:
            image: RGB uint8, shape (H, W, 3).
            review_threshold: with it, MTCNN faces from there up to ``threshold`` that no returned face overlaps
                are returned too, last, as ``FaceKind.MTCNN_LOW_CONFIDENCE`` (``face.low_confidence``), for a
                person to review; they do not change which faces are kept.

        Returns:
            The MTCNN faces, then the second stage's, highest confidence first per kind, boxes clipped to the
            image.

        Raises:
            ValueError: ``image`` is not an RGB uint8 array, or ``review_threshold`` is outside 0..threshold.
        """
        if review_threshold is not None and not 0.0 <= review_threshold <= self.settings.threshold:
            raise ValueError(f"review_threshold must be between 0 and threshold, got {review_threshold!r}")
        rgb = check_image(image)
        height, width = rgb.shape[:2]
        mtcnn_faces, kept, proposals = self._mtcnn_and_proposals(rgb)
        faces = [face_in_image(box_of(face), face.confidence, width, height, face.landmarks, FaceKind.MTCNN)
                 for face in kept]
        if self._sources:
            for box, probability in self._second_stage(rgb, boxes_of(kept), proposals):
                faces.append(face_in_image(box, probability, width, height, None, FaceKind.SECOND_STAGE))
        if review_threshold is not None:
            taken = np.array([box_of(face) for face in faces]).reshape(-1, 4)
            for face in mtcnn_faces:
                if not review_threshold <= face.confidence < self.settings.threshold:
                    continue
                box = np.array(box_of(face))
                if not len(taken) or iou(box[None], taken).max() < SAME_FACE_IOU:
                    faces.append(face_in_image(box, face.confidence, width, height, face.landmarks,
                                               FaceKind.MTCNN_LOW_CONFIDENCE))
                    taken = np.vstack([taken, box[None]])
        logger.debug("detect %dx%d: %d faces (%d from MTCNN)", width, height, len(faces), len(kept))
        return faces

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """:meth:`detect` for each image (the models run one image at a time).

        Raises:
            ValueError: ``images`` is not a list of RGB uint8 arrays.
        """
        if isinstance(images, np.ndarray) or not isinstance(images, Sequence):
            raise ValueError("images must be a list of RGB uint8 arrays; use detect() for one image")
        for index, image in enumerate(images):
            check_image(image, f"images[{index}]")
        return [self.detect(image) for image in images]

    def proposal_groups(self, image: np.ndarray) -> list[groups.Group]:
        """Every second-stage proposal group in an RGB uint8 image that passed a source's gate, before the
        fusion threshold: its box (the mean of the proposal's and the matching zoomed-in boxes, not clipped) and
        its fusion features (see :func:`maskdetect.face.fusion.fusion_features`; those of sources that did not
        run are absent, which the fusion counts as 0).

        MTCNN runs first, so groups on faces it keeps are not among them. This is what the fusion is fitted on
        (:mod:`maskdetect.face.fusion_fit`); empty when the second stage is off.
        """
        if not self._sources:
            check_image(image)
            return []
        return self.stages(image)[1]

    def stages(self, image: np.ndarray) -> tuple[list[Face], list[groups.Group]]:
        """What the second stage decides on in an RGB uint8 image: the kept MTCNN faces (boxes refined, not
        clipped) and the proposal groups (see :meth:`proposal_groups`)."""
        rgb = check_image(image)
        _, kept, proposals = self._mtcnn_and_proposals(rgb)
        return kept, (self._gated_groups(rgb, boxes_of(kept), proposals) if self._sources else [])

    def fused_probability(self, features: Mapping[str, float]) -> float:
        """The probability that a proposal group is a face, from its features (as :meth:`proposal_groups` gives
        them), with this detector's fusion weights."""
        return fusion.fused_probability(self.fusion, features)

    def verify(self, image: np.ndarray, boxes: np.ndarray,
               probabilities: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:func:`maskdetect.face.verifier.verify` with this detector's verifier and keep rule: each box at the
        verifier's best placement, and the lowest and highest of its views there (NaN with no verifier)."""
        if self._verifier is not None:
            image = check_image(image)
        return verifier.verify(self._verifier, self.rule, image, boxes, probabilities,
                               every_view=self.settings.verifier_views > 1)

    def _mtcnn_and_proposals(self, rgb: np.ndarray) -> tuple[list[Face], list[Face], np.ndarray]:
        """Every MTCNN face (any confidence, highest first), the kept ones with their boxes refined by the
        proposals, and the proposal sources' proposals (rows, see :func:`maskdetect.face.groups.proposal_rows`);
        the sources see MTCNN's faces, so they run after it (those that do not use them alongside it, with
        ``concurrent``: the same rows in the same order)."""
        if self._pool is None:
            mtcnn_faces = [] if self._mtcnn is None else self._mtcnn.detect(rgb, self.settings, self._cv2)
            proposals = groups.proposal_rows(self._sources, rgb, mtcnn_faces)
        else:
            alongside = self._pool.submit(groups.proposal_rows, self._sources, rgb, [], self._alongside)
            mtcnn_faces = self._mtcnn.detect(rgb, self.settings, self._cv2)
            rows = np.concatenate([alongside.result(),
                                   groups.proposal_rows(self._sources, rgb, mtcnn_faces, self._after)])
            # the sources' order, then each source's own, as when they run one after another
            proposals = rows[np.argsort(rows[:, 5], kind="stable")]
        kept = [face for face in mtcnn_faces if face.confidence >= self.settings.threshold]
        return mtcnn_faces, groups.refined(kept, proposals, self._sources), proposals

    def _gated_groups(self, rgb: np.ndarray, kept_boxes: np.ndarray, proposals: np.ndarray) -> list[groups.Group]:
        return groups.gated_groups(rgb, kept_boxes, proposals, self._sources, self._zoom_full_range,
                                   self._zoom_short_range)

    def _second_stage(self, rgb: np.ndarray, kept_boxes: np.ndarray,
                      proposals: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """Boxes (not clipped) and confidences of the faces the second stage adds (see :meth:`KeepRule.keep`)."""
        gated = self._gated_groups(rgb, kept_boxes, proposals)
        boxes = np.array([box for box, _ in gated]).reshape(-1, 4)
        probabilities = [self.fused_probability(features) for _, features in gated]
        verifier_boxes, scores, highest = self.verify(rgb, boxes, probabilities)
        added = self.rule.keep(kept_boxes, boxes, probabilities, scores, verifier_boxes, highest)
        logger.debug("second stage: %d groups, %d added", len(gated), len(added))
        return added
