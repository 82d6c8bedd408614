"""The ``facefinder`` proposal source: the project's own face finder (:mod:`maskdetect.face.facefinder`), trained
on labelled street photos with masked faces."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from maskdetect.face.boxes import Face, faces_from_rows, nms
from maskdetect.face.proposals import register_proposal_source

if TYPE_CHECKING:
    from maskdetect.face.settings import DetectorSettings

# Boxes under this score are not proposed.
_MIN_SCORE = 0.05
# Its boxes are thinned by non-maximum suppression at this IoU.
_NMS_IOU = 0.30
# Its boxes of this score or more refine kept MTCNN boxes (see ProposalSource.refine_min_score).
_REFINE_MIN_SCORE = 0.5


@register_proposal_source
class FaceFinderSource:
    """Our own face finder (``maskdetect.face.facefinder``), trained on labelled street photos with masked faces:
    the shipped ``maskdetect/face/weights/facefinder.keras`` or the file ``DetectorSettings.face_model`` names."""

    name = "facefinder"
    gate = 0.30
    # Its confident boxes refine the kept MTCNN boxes that lie mostly inside them (maskdetect.face.groups.refined):
    # MTCNN boxes the eyes and forehead of many masked faces, which the face finder boxes whole.
    refine_min_score = _REFINE_MIN_SCORE

    def __init__(self, settings: DetectorSettings) -> None:
        from maskdetect.face import facefinder

        self._finder = facefinder.FaceFinder.load(settings.face_model or facefinder.SHIPPED_MODEL)

    def propose(self, image: np.ndarray, mtcnn_faces: Sequence[Face]) -> list[list[Face]]:
        """One pass: its faces of score 0.05 or more, thinned by non-maximum suppression."""
        return [faces_from_rows(nms(self._finder(image, _MIN_SCORE), _NMS_IOU), self.name)]
