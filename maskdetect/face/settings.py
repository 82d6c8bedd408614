"""The face stage's settings (:class:`DetectorSettings`), how the cropping stage's settings map onto them
(:func:`from_crop_settings`), and the help of the flags that set them on the command lines."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from maskdetect.face.proposals import PROPOSAL_SOURCES

if TYPE_CHECKING:
    from maskdetect.facecrops import CropSettings

# The blazeface source's passes, in the order it can run them: the photo, its mirror image, 2 x 2 overlapping tiles.
BLAZEFACE_PASSES = ("photo", "mirror", "tiles")
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class DetectorSettings:
    """Settings of a :class:`~maskdetect.face.detector.FaceDetector`; the defaults are the tuned ones
    (measured in ``docs/benchmarks.md``).

    threshold: MTCNN confidence (its last stage, ONet) needed to keep a face.
    stage_thresholds: MTCNN's own PNet, RNet, ONet thresholds. The ONet one only decides which
        weaker MTCNN boxes reach the second stage as evidence; faces are kept at ``threshold``.
    min_face_size: smallest face looked for, in pixels of the image MTCNN sees (after ``detect_size``);
        the second stage drops its faces under it too.
    scale_factor: MTCNN image-pyramid step.
    detect_size: long side, in pixels, that the photo is shrunk to before MTCNN runs (never
        enlarged); None runs MTCNN at full resolution. Boxes are always returned in the input
        image's coordinates.
    first_stage: run MTCNN first and keep its faces of ``threshold`` or more; False leaves every face to the second
        stage (its sources, fusion and verifier), which is much faster and finds fewer faces.
    second_stage: add faces that MTCNN misses (the proposal sources, fusion and verifier).
    second_stage_threshold: fused probability needed to keep a second-stage face. Lower finds more
        faces and keeps more boxes that are not faces.
    ssd_size: long side the photo is resized to for the SSD proposal source.
    num_threads: threads for the TFLite interpreters (None: TFLite's default).
    proposal_sources: names of the registered proposal sources the second stage runs, in order;
        None runs every registered one in registration order. The order breaks ties between equal
        scores, and a group is zoomed in on around the box of its first source in this order. The
        fusion weights were fitted with the sources their file's ``sources`` names: a source left
        out counts as having proposed nothing.
    fusion: path of a fusion weights file (see :func:`maskdetect.face.fusion.load_fusion`); None uses the
        shipped one, ``maskdetect/face/weights/fusion.json``.
    face_model: the ``facefinder`` source's model file (``train_face_detector.py``); None: the shipped one,
        ``maskdetect/face/weights/facefinder.keras``.
    verifier_threshold: a proposal group under ``second_stage_threshold`` is kept when the face verifier
        gives it this much or more, at its best placement; None runs no verifier.
    verifier_model: the face verifier's model file; None: the shipped one,
        ``maskdetect/face/weights/faceverifier.keras``.
    verifier_veto: a group the fusion keeps with a probability under 0.5 is dropped when none of the verifier's
        views (at its best placement) gives it this much; None vetoes nothing. With no verifier, nothing is vetoed.
    verifier_views: how many of the verifier's views a box is scored on: 3 (the crop, its mirror image and a
        wider crop; a box's score is the lowest, its veto the highest) or 1 (the crop alone).
    zoom: look again at each gated proposal group, zoomed in, with BlazeFace full-range and short-range (two fusion
        features); False leaves those features 0, for fusion weights fitted without them.
    blazeface_passes: the ``blazeface`` source's passes over the photo, any of ``BLAZEFACE_PASSES`` (the photo, its
        mirror image, 2 x 2 overlapping tiles); the number that propose a group is a fusion feature, so fusion
        weights are fitted for one choice.
    concurrent: run the proposal sources that do not build on MTCNN's faces on a second thread while MTCNN runs:
        the same faces in less time where a core is free (``detect_mask.py``, one process). Off by default:
        ``process_faces.py --jobs`` fills the cores with processes, and the face-stage benchmark times one thread.

    Raises:
        ValueError: a setting out of its range, or an unregistered proposal source (one line).
    """

    threshold: float = 0.9
    stage_thresholds: tuple[float, float, float] = (0.6, 0.7, 0.3)
    min_face_size: int = 20
    scale_factor: float = 0.709
    detect_size: int | None = 640
    first_stage: bool = True
    second_stage: bool = True
    second_stage_threshold: float = 0.4
    ssd_size: int = 300
    num_threads: int | None = None
    proposal_sources: tuple[str, ...] | None = None
    fusion: str | None = None
    face_model: str | None = None
    verifier_threshold: float | None = 0.98
    verifier_model: str | None = None
    verifier_veto: float | None = 0.001
    verifier_views: int = 3
    zoom: bool = True
    blazeface_passes: tuple[str, ...] = ("photo", "mirror")
    concurrent: bool = False

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
        if not isinstance(self.first_stage, bool):
            raise ValueError(f"first_stage must be True or False, got {self.first_stage!r}")
        if not self.first_stage and not self.second_stage:
            raise ValueError("first_stage and second_stage are both off: the face stage would find nothing")
        if self.num_threads is not None and (not _is_int(self.num_threads) or self.num_threads < 1):
            raise ValueError(f"num_threads must be None or a positive integer, got {self.num_threads!r}")
        if self.face_model is not None and not isinstance(self.face_model, (str, os.PathLike)):
            raise ValueError(f"face_model must be None or a file path, got {self.face_model!r}")
        if self.verifier_threshold is not None:
            require_probability("verifier_threshold", self.verifier_threshold)
        if self.verifier_veto is not None:
            require_probability("verifier_veto", self.verifier_veto)
        if self.verifier_views not in (1, 3) or isinstance(self.verifier_views, bool):
            raise ValueError(f"verifier_views must be 1 or 3, got {self.verifier_views!r}")
        for name in ("zoom", "concurrent"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        passes = self.blazeface_passes
        if isinstance(passes, str) or not isinstance(passes, (tuple, list)) or not passes \
                or not set(passes) <= set(BLAZEFACE_PASSES) or len(set(passes)) != len(passes):
            raise ValueError(f"blazeface_passes must name one or more of {list(BLAZEFACE_PASSES)} once each, "
                             f"got {passes!r}")
        object.__setattr__(self, "blazeface_passes", tuple(passes))
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



# The face stage's presets: the settings each changes from the defaults, and the name of its fusion weights file
# (in the shipped weights folder, and in a face-detector folder that train_face_detector.py wrote).
# accurate: MTCNN first, then every proposal source, the zoomed-in looks and the verifier: the defaults.
# fast: MTCNN on the photo shrunk to 480 px, then the face finder alone as the second stage, its boxes turned into
# probabilities by the fusion: no other source, no zoomed-in looks, no verifier.
PRESETS: dict[str, dict[str, Any]] = {
    "accurate": {},
    "fast": {"detect_size": 480, "proposal_sources": ("facefinder",), "zoom": False, "verifier_threshold": None},
}
PRESET_FUSION = {"accurate": "fusion.json", "fast": "fusion_fast.json"}


def preset_fields(name: str) -> dict[str, Any]:
    """The DetectorSettings fields the face stage's preset ``name`` (see ``PRESETS``) sets, its shipped fusion
    weights included.

    Raises:
        ValueError: an unknown preset (one line).
    """
    if name not in PRESETS:
        raise ValueError(f"unknown face-stage preset {name!r}; known: {', '.join(PRESETS)}")
    return {**PRESETS[name], "fusion": str(WEIGHTS_DIR / PRESET_FUSION[name])}


def preset_settings(name: str, **overrides: Any) -> DetectorSettings:
    """The settings of the face stage's preset ``name`` (see ``PRESETS``), with its shipped fusion weights, and
    ``overrides`` (DetectorSettings fields) on top.

    Raises:
        ValueError: an unknown preset or setting (one line).
    """
    return DetectorSettings(**{**preset_fields(name), **overrides})


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def from_crop_settings(crop: CropSettings, threads: int | None = None) -> DetectorSettings:
    """The detector settings the cropping stage (``process_faces.py``) uses for ``crop``, which inference
    (``detect_mask.py``) uses too, so both find the same faces.

    Args:
        crop: the cropping stage's settings; its ``face_detector`` folder (``train_face_detector.py``'s output)
            brings its face finder, fusion weights and, when it has one, its verifier.
        threads: threads for the TFLite interpreters (None: TFLite's default).

    Returns:
        The settings, defaults where ``crop`` leaves a choice open.
    """
    from maskdetect import facecrops

    trained: dict[str, Any] = {}
    if crop.face_detector is not None:  # a user's own face finder, with the fusion weights fitted for it
        folder = Path(crop.face_detector)
        fusion = folder / PRESET_FUSION[crop.face_stage]
        if not fusion.is_file():
            raise ValueError(f"--face-detector {folder} has no {fusion.name} for the {crop.face_stage} face stage: "
                             f"retrain it with train_face_detector.py, or use --face-stage accurate")
        trained = {"face_model": str(folder / facecrops.FACE_DETECTOR_FILES[0]), "fusion": str(fusion)}
        # its own verifier when it has one (--verifier-epochs 0 trains none: then the shipped one, if asked for)
        verifier = folder / facecrops.FACE_VERIFIER_FILE
        if verifier.is_file():
            trained["verifier_model"] = str(verifier)
    if crop.second_stage_threshold is not None:
        trained["second_stage_threshold"] = crop.second_stage_threshold
    if not crop.verifier:
        trained["verifier_threshold"] = None
    elif crop.verifier_threshold is not None:
        trained["verifier_threshold"] = crop.verifier_threshold
    if crop.detect_size is not None:
        trained["detect_size"] = crop.detect_size
    return preset_settings(crop.face_stage, threshold=crop.threshold, second_stage=crop.second_stage,
                           num_threads=threads, **trained)


def second_stage_threshold_help() -> str:
    """The --second-stage-threshold flag's help, for process_faces.py and detect_mask.py."""
    return ("the fused probability a face that the second stage adds (one MTCNN missed) needs: lower finds more "
            "masked faces and keeps more boxes that are not faces (default "
            f"{DetectorSettings().second_stage_threshold:g}; for a detector you trained, train_face_detector.py's "
            "thresholds.csv shows the trade-off)")


def verifier_threshold_help() -> str:
    """The --verifier-threshold flag's help, for process_faces.py and detect_mask.py."""
    return ("keep a face the second stage's fusion rejects when the face verifier scores it P or more: lower "
            "finds more masked faces and keeps more boxes that are not faces (default "
            f"{DetectorSettings().verifier_threshold:g})")


FACE_STAGE_HELP = ("accurate: MTCNN, then the other detectors, the zoomed-in looks and the face verifier (the most "
                   "faces); fast: MTCNN on a smaller photo and the face finder alone, over 2x faster, fewer faces")

NO_VERIFIER_HELP = "keep only the faces the fusion keeps: no face verifier (fewer masked faces, fewer false boxes)"
