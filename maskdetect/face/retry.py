"""Faces in a photo as the cropping stage and inference look for them: the detector, and a padded retry for a
tight face crop."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from maskdetect.face.boxes import Face

if TYPE_CHECKING:
    from maskdetect.face.detector import FaceDetector
    from maskdetect.facecrops import CropSettings

# Photos up to this long side that show no face are retried inside a border: tight face crops.
PAD_RETRY_MAX_SIDE = 512


def detect_faces(detector: FaceDetector, rgb: np.ndarray, settings: CropSettings) -> tuple[list[Face], bool]:
    """Faces in a photo (at or above the review threshold), and whether the padded retry found them.

    A tight face crop gives a detector that needs context nothing to see: when a photo of at most
    ``PAD_RETRY_MAX_SIDE`` px shows no face, it is looked at again inside a black border of half its size on
    each side (unless ``settings.pad_retry`` is off).

    Args:
        detector: the face detector.
        rgb: the photo, RGB uint8.
        settings: the cropping stage's settings (its review threshold and ``pad_retry``).

    Returns:
        (faces, found by the padded retry); faces found in the border are clipped to the photo, those mostly
        outside it dropped.
    """
    faces = detector.detect(rgb, settings.review_threshold)
    small = max(rgb.shape[:2]) <= PAD_RETRY_MAX_SIDE
    if any(not face.low_confidence for face in faces) or not settings.pad_retry or not small:
        return faces, False
    height, width = rgb.shape[:2]
    pad_y, pad_x = height // 2, width // 2
    padded = np.pad(rgb, ((pad_y, pad_y), (pad_x, pad_x), (0, 0)), mode="constant", constant_values=0)
    found = []
    for face in detector.detect(padded, settings.review_threshold):
        x1, x2 = np.clip([face.x1 - pad_x, face.x2 - pad_x], 0, width)
        y1, y2 = np.clip([face.y1 - pad_y, face.y2 - pad_y], 0, height)
        # a face mostly inside the original picture; a box found in the black border is not one
        if (x2 - x1) * (y2 - y1) >= 0.5 * face.width * face.height:
            found.append(type(face)(float(x1), float(y1), float(x2), float(y2), face.confidence,
                                    _shift(face.landmarks, pad_x, pad_y), face.detector))
    if not any(not face.low_confidence for face in found):
        return faces, False  # nothing better inside the border: keep the first look's review faces
    return found, True


def _shift(landmarks: tuple[tuple[float, float], ...] | None, dx: float,
           dy: float) -> tuple[tuple[float, float], ...] | None:
    return None if landmarks is None else tuple((x - dx, y - dy) for x, y in landmarks)


