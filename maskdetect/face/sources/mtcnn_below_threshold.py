"""The ``mtcnn_below_threshold`` proposal source: MTCNN's own faces below the keep threshold, as evidence."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from maskdetect.face.boxes import Face
from maskdetect.face.proposals import register_proposal_source

if TYPE_CHECKING:
    from maskdetect.face.settings import DetectorSettings

# MTCNN faces under this confidence are not proposed.
_MIN_CONFIDENCE = 0.30


@register_proposal_source
class MtcnnBelowThresholdSource:
    """MTCNN's own faces below the keep threshold (confidence 0.30 or more), as evidence.

    A masked face often gets a middling MTCNN confidence: not enough alone, but it adds to the
    other sources' scores. These boxes are MTCNN's, so this source loads no model.
    """

    name = "mtcnn_below_threshold"
    gate = 0.50
    uses_mtcnn_faces = True

    def __init__(self, settings: DetectorSettings) -> None:
        self._keep_threshold = settings.threshold

    def propose(self, image: np.ndarray, mtcnn_faces: Sequence[Face]) -> list[list[Face]]:
        """One pass: the MTCNN faces from 0.30 up to (not including) the keep threshold."""
        return [[dataclasses.replace(face, landmarks=None, detector=self.name) for face in mtcnn_faces
                 if _MIN_CONFIDENCE <= face.confidence < self._keep_threshold]]

