"""A found face and the box geometry the face stage shares: overlap (IoU, the share of a box inside
others), non-maximum suppression, clipping, and the checks on an input image.

Boxes are rows x1, y1, x2, y2 (x to the right, y down) in an image's pixels; many functions take rows
with more columns (a score after the box) and look at the first four.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# A proposal at or above this IoU with a kept face, or with another proposal, is the same face.
SAME_FACE_IOU = 0.30


class FaceKind(enum.StrEnum):
    """What produced a face that :meth:`FaceDetector.detect` returns.

    The value is what faces.csv's ``detector`` column (and inference's ``detector`` field) holds:
    never change a value, since existing manifests are read back.
    """

    # MTCNN at or above the keep threshold.
    MTCNN = "mtcnn"
    # The second stage: fused evidence from the proposal sources.
    SECOND_STAGE = "second_stage"
    # MTCNN between the review threshold and the keep threshold, returned only for a person to
    # review; not a kept face.
    MTCNN_LOW_CONFIDENCE = "mtcnn_low"


@dataclass(frozen=True)
class Face:
    """One detected face, in the input image's pixel coordinates (x to the right, y down).

    ``landmarks`` are five (x, y) points (left eye, right eye, nose, left and right mouth
    corner, as MTCNN names them) or None when the detector gives none. ``detector`` is a
    :class:`FaceKind` for the faces :meth:`FaceDetector.detect` returns, and the source's name for
    the proposals a :class:`ProposalSource` returns.
    """

    x1: float
    y1: float
    x2: float
    y2: float
    confidence: float
    landmarks: tuple[tuple[float, float], ...] | None = None
    detector: str = FaceKind.MTCNN

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def low_confidence(self) -> bool:
        """True for a face returned only for a person to review (below the keep threshold)."""
        return self.detector == FaceKind.MTCNN_LOW_CONFIDENCE

    def int_box(self) -> tuple[int, int, int, int]:
        """The box rounded to whole pixels, usable as ``image[y1:y2, x1:x2]``."""
        return (int(math.floor(self.x1)), int(math.floor(self.y1)),
                int(math.ceil(self.x2)), int(math.ceil(self.y2)))


def check_image(image: Any, what: str = "image") -> np.ndarray:
    """``image`` itself when it is an H x W x 3 uint8 array; a one-line ValueError otherwise."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{what} must be a numpy array (H x W x 3, uint8 RGB), got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"{what} must have dtype uint8 (RGB 0-255), got {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{what} must have shape (H, W, 3) (RGB), got {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{what} is empty: shape {image.shape}")
    return image


def iou(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """IoU matrix between boxes ``first`` (N, >=4) and ``second`` (M, >=4), columns x1, y1, x2, y2."""
    first = np.asarray(first, dtype=np.float64)
    second = np.asarray(second, dtype=np.float64)
    first = first.reshape(-1, first.shape[-1] if first.ndim else 4)[:, :4]
    second = second.reshape(-1, second.shape[-1] if second.ndim else 4)[:, :4]
    if not len(first) or not len(second):
        return np.zeros((len(first), len(second)))
    left = np.maximum(first[:, None, 0], second[None, :, 0])
    top = np.maximum(first[:, None, 1], second[None, :, 1])
    right = np.minimum(first[:, None, 2], second[None, :, 2])
    bottom = np.minimum(first[:, None, 3], second[None, :, 3])
    intersection = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    first_area = np.clip(first[:, 2] - first[:, 0], 0, None) * np.clip(first[:, 3] - first[:, 1], 0, None)
    second_area = np.clip(second[:, 2] - second[:, 0], 0, None) * np.clip(second[:, 3] - second[:, 1], 0, None)
    return intersection / np.maximum(first_area[:, None] + second_area[None, :] - intersection, 1e-9)


def inside_share(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Share of ``box``'s area that lies inside each of ``others``."""
    others = np.asarray(others, dtype=np.float64).reshape(-1, 4)
    overlap_width = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    overlap_height = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    return overlap_width * overlap_height / max(float((box[2] - box[0]) * (box[3] - box[1])), 1e-9)


def nms(boxes: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression on rows x1, y1, x2, y2, score; returns kept rows."""
    if not len(boxes):
        return boxes
    order = np.argsort(-boxes[:, 4], kind="stable")
    keep = []
    while order.size:
        best = order[0]
        keep.append(best)
        rest = order[1:]
        if not rest.size:
            break
        order = rest[iou(boxes[best:best + 1], boxes[rest])[0] <= iou_threshold]
    return boxes[np.array(keep, dtype=int)]


def resize(cv2: Any, image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` at ``width`` x ``height``: area averaging to shrink, bilinear to enlarge."""
    if (width, height) == (image.shape[1], image.shape[0]):
        return image
    shrink = width < image.shape[1] or height < image.shape[0]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def faces_from_rows(rows: np.ndarray, detector: str) -> list[Face]:
    """Faces from rows x1, y1, x2, y2, score (boxes as they are, not clipped)."""
    return [Face(float(row[0]), float(row[1]), float(row[2]), float(row[3]), float(row[4]), None, detector)
            for row in rows]


def face_in_image(box: Sequence[float], confidence: float, width: int, height: int,
                  landmarks: tuple[tuple[float, float], ...] | None, detector: str) -> Face:
    """A face whose box is clipped to a ``width`` x ``height`` image."""
    x1, x2 = (float(np.clip(value, 0, width)) for value in (box[0], box[2]))
    y1, y2 = (float(np.clip(value, 0, height)) for value in (box[1], box[3]))
    return Face(x1, y1, x2, y2, float(confidence), landmarks, detector)


def box_of(face: Face) -> list[float]:
    """``face``'s box as [x1, y1, x2, y2]."""
    return [face.x1, face.y1, face.x2, face.y2]


def boxes_of(faces: Sequence[Face]) -> np.ndarray:
    """The faces' boxes as an (N, 4) array, (0, 4) for none."""
    return np.array([box_of(face) for face in faces], dtype=np.float64).reshape(-1, 4)
