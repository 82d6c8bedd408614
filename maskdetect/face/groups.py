"""The second stage's proposals, from the proposal sources to the groups the fusion weighs.

1. every source proposes boxes (:func:`proposal_rows`);
2. a kept MTCNN box that lies mostly inside a confident box of a refining source moves halfway to it
   (:func:`refined`);
3. proposals that overlap a kept face are dropped, the rest are grouped by overlap (:func:`proposal_pool`,
   :func:`group_proposals`);
4. each group that some source is sure enough of (its ``gate``) is looked at again, zoomed in, by BlazeFace
   full-range and short-range on a square crop around it, and gets its fusion features (:func:`gated_groups`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from maskdetect import images
from maskdetect.face.blazeface import BlazeFaceModel
from maskdetect.face.boxes import SAME_FACE_IOU, Face, box_of, inside_share, iou
from maskdetect.face.proposals import PASSES_SUFFIX, ZOOMED_FULL_RANGE, ZOOMED_SHORT_RANGE, ProposalSource

logger = logging.getLogger(__name__)

# A kept MTCNN box with this share of its area inside a refining source's confident box, and at least this IoU
# with it, is moved halfway to that box.
_REFINE_INSIDE_SHARE = 0.5
_REFINE_MIN_IOU = 0.1
# The zoomed-in look uses a square crop whose side is this multiple of the proposal's long side.
_ZOOM_FULL_RANGE_CONTEXT = 3.0
_ZOOM_SHORT_RANGE_CONTEXT = 2.0
# A box found in the zoomed-in crop speaks for the proposal when it overlaps it at this IoU.
_ZOOM_MATCH_IOU = 0.30
# Boxes under this score are ignored in the zoomed-in crop.
_ZOOM_MIN_SCORE = 0.05

# A proposal group as the fusion sees it: its box (not clipped) and its fusion features.
Group = tuple[np.ndarray, dict[str, float]]


@dataclass
class ProposalGroup:
    """Proposals of one face: those overlapping the group's founding (highest-scoring) proposal."""

    founder: int
    # Per source: its best score in the group, its first (highest-scoring) box, the passes it proposed in.
    best_score: dict[str, float]
    first_box: dict[str, np.ndarray] = field(default_factory=dict)
    passes: dict[str, set[int]] = field(default_factory=dict)


def proposal_rows(sources: Sequence[ProposalSource], rgb: np.ndarray, mtcnn_faces: Sequence[Face],
                  only: Sequence[int] | None = None) -> np.ndarray:
    """Every source's proposals in an RGB image, in the sources' order, then the passes' order.

    Args:
        sources: the proposal sources.
        rgb: the photo.
        mtcnn_faces: all of MTCNN's faces, for the sources that use them.
        only: the indices (in ``sources``) of the sources to run; None: all.

    Returns:
        Rows x1, y1, x2, y2, score, source index (in ``sources``), pass index; (0, 7) for none.
    """
    parts = []
    for source_index, source in enumerate(sources):
        if only is not None and source_index not in only:
            continue
        for pass_index, proposals in enumerate(source.propose(rgb, mtcnn_faces)):
            rows = np.array([box_of(face) + [face.confidence] for face in proposals], dtype=np.float64)
            parts.append(np.column_stack([rows.reshape(-1, 5), np.full(len(proposals), source_index),
                                          np.full(len(proposals), pass_index)]))
    return np.concatenate(parts) if parts else np.empty((0, 7))


def refined(kept: list[Face], proposals: np.ndarray, sources: Sequence[ProposalSource]) -> list[Face]:
    """The kept MTCNN faces, each box that lies mostly inside a confident box of a refining source (its
    ``refine_min_score``) moved halfway to that box.

    On a masked face MTCNN often keeps a box of the eyes and forehead only; the face finder, which was
    trained on masked faces, boxes the whole face.
    """
    refining = [(index, source.refine_min_score) for index, source in enumerate(sources)
                if getattr(source, "refine_min_score", None) is not None]
    if not kept or not refining:
        return kept
    confident = np.concatenate([proposals[(proposals[:, 5] == index) & (proposals[:, 4] >= min_score)]
                                for index, min_score in refining])
    if not len(confident):
        return kept
    result = []
    for face in kept:
        box = np.array(box_of(face))
        overlapping = (inside_share(box, confident[:, :4]) >= _REFINE_INSIDE_SHARE) \
            & (iou(box[None], confident)[0] >= _REFINE_MIN_IOU)
        if overlapping.any():
            best = confident[overlapping][np.argmax(confident[overlapping, 4]), :4]
            x1, y1, x2, y2 = ((box + best) / 2).tolist()
            face = dataclasses.replace(face, x1=x1, y1=y1, x2=x2, y2=y2)
        result.append(face)
    return result


def proposal_pool(proposals: np.ndarray, kept_boxes: np.ndarray) -> np.ndarray:
    """The proposals that overlap no kept face, highest score first (equal scores keep the sources'
    order, then the passes' order)."""
    pool = proposals[np.argsort(-proposals[:, 4], kind="stable")]
    if len(kept_boxes) and len(pool):
        pool = pool[iou(pool, kept_boxes).max(axis=1) < SAME_FACE_IOU]
    return pool


def group_proposals(pool: np.ndarray, sources: Sequence[ProposalSource]) -> list[ProposalGroup]:
    """Each proposal of ``pool``, highest score first, joins the first group whose founder it overlaps."""
    same_face = iou(pool, pool) >= SAME_FACE_IOU
    groups: list[ProposalGroup] = []
    for proposal_index, row in enumerate(pool):
        group = next((group for group in groups if same_face[proposal_index, group.founder]), None)
        if group is None:
            group = ProposalGroup(proposal_index, {source.name: 0.0 for source in sources})
            groups.append(group)
        name = sources[int(row[5])].name
        group.best_score[name] = max(group.best_score[name], float(row[4]))
        group.first_box.setdefault(name, row[:4])
        group.passes.setdefault(name, set()).add(int(row[6]))
    return groups


def features(group: ProposalGroup, sources: Sequence[ProposalSource], zoomed_full_range: float,
             zoomed_short_range: float) -> dict[str, float]:
    """A group's fusion features (see :func:`maskdetect.face.fusion.fusion_features`), for the sources that run."""
    result = {ZOOMED_FULL_RANGE: zoomed_full_range, ZOOMED_SHORT_RANGE: zoomed_short_range}
    for source in sources:
        result[source.name] = group.best_score[source.name]
        result[source.name + PASSES_SUFFIX] = float(len(group.passes.get(source.name, ())))
    return result


def zoom(rgb: np.ndarray, box: np.ndarray, model: BlazeFaceModel | None,
         context: float) -> tuple[float, np.ndarray | None]:
    """Best score (and its box) of ``model`` on a square crop of ``context`` times ``box``'s long side, among
    the boxes that match ``box``; (0, None) when none does, or when there is no model."""
    if model is None:
        return 0.0, None
    crop, left, top = images.square_crop(rgb, box, context)
    found = model(crop, _ZOOM_MIN_SCORE)
    if not len(found):
        return 0.0, None
    found[:, [0, 2]] += left
    found[:, [1, 3]] += top
    matches = iou(box[None], found)[0] >= _ZOOM_MATCH_IOU
    if not matches.any():
        return 0.0, None
    best = int(np.argmax(np.where(matches, found[:, 4], -1.0)))
    return float(found[best, 4]), found[best, :4]


def gated_groups(rgb: np.ndarray, kept_boxes: np.ndarray, proposals: np.ndarray, sources: Sequence[ProposalSource],
                 zoom_full_range: BlazeFaceModel | None, zoom_short_range: BlazeFaceModel | None) -> list[Group]:
    """Box (not clipped) and features of each proposal group that some source's gate lets through.

    The box is the mean of the group's box (that of its first source in the sources' order) and the zoomed-in
    boxes that match it; with no zoom models (None), the group's box, and zoomed-in scores of 0.
    """
    pool = proposal_pool(proposals, kept_boxes)
    if not len(pool):
        return []
    groups = group_proposals(pool, sources)
    gated = []
    for group in groups:
        if not any(group.best_score[source.name] >= source.gate for source in sources):
            continue
        box = next(group.first_box[source.name] for source in sources if source.name in group.first_box)
        zoomed_full_range, zoomed_full_range_box = zoom(rgb, box, zoom_full_range, _ZOOM_FULL_RANGE_CONTEXT)
        zoomed_short_range, zoomed_short_range_box = zoom(rgb, box, zoom_short_range, _ZOOM_SHORT_RANGE_CONTEXT)
        boxes = [box] + [found for found in (zoomed_full_range_box, zoomed_short_range_box) if found is not None]
        gated.append((np.mean(boxes, axis=0), features(group, sources, zoomed_full_range, zoomed_short_range)))
    logger.debug("second stage: %d proposals, %d groups, %d past the gates", len(pool), len(groups), len(gated))
    return gated
