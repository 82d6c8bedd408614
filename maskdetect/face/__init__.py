"""The face stage: every face in a photo, masked or not.

MTCNN finds faces first; a second stage adds the ones it misses (many masked faces): proposal sources
(:mod:`maskdetect.face.sources`, one module each, registered with :func:`register_proposal_source`), a fusion of
their evidence (:mod:`maskdetect.face.fusion`), a face verifier (:mod:`maskdetect.face.verifier`) and a keep rule
(:mod:`maskdetect.face.decision`), orchestrated by :class:`FaceDetector`. The networks the project trains sit
beside what they train: :mod:`~maskdetect.face.facefinder` and :mod:`~maskdetect.face.facefinder_train`,
:mod:`~maskdetect.face.faceverifier` and :mod:`~maskdetect.face.faceverifier_train`, and the fusion's fitter
:mod:`~maskdetect.face.fusion_fit`.

    >>> from maskdetect.face import FaceDetector
    >>> faces = FaceDetector().detect(rgb)          # rgb: H x W x 3 uint8
    >>> [(face.x1, face.y1, face.x2, face.y2, face.confidence) for face in faces]

Nothing here imports TensorFlow, mtcnn or OpenCV until a detector or a model is built.
"""

from maskdetect.face import sources  # noqa: F401  (registers the built-in proposal sources)
from maskdetect.face.boxes import Face, FaceKind, iou
from maskdetect.face.decision import KeepRule
from maskdetect.face.detector import FaceDetector
from maskdetect.face.fusion import SHIPPED_FUSION, fusion_features, load_fusion
from maskdetect.face.proposals import PROPOSAL_SOURCES, ProposalSource, register_proposal_source
from maskdetect.face.retry import detect_faces
from maskdetect.face.settings import DetectorSettings, from_crop_settings
from maskdetect.face.verifier import Verifier

__all__ = [
    "PROPOSAL_SOURCES", "SHIPPED_FUSION", "DetectorSettings", "Face", "FaceDetector", "FaceKind", "KeepRule",
    "ProposalSource", "Verifier", "detect_faces", "from_crop_settings", "fusion_features", "iou", "load_fusion",
    "register_proposal_source",
]
