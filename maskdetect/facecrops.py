"""Face crops and their manifest: the layout of ``processed_data/``, the crop geometry, and safe writing.

Output layout (``<output>`` is ``processed_data/`` by default)::

    <output>/<class>/<source stem>_face<k>.jpg       faces at or above --threshold: the training set
    <output>/_low_confidence/<class>/...             faces between --review-threshold and --threshold
    <output>/_no_face/<class>/<source name>          copies of photos with no face, for manual cropping
    <output>/_rejected/<class>/...                   crops a review rejected, listed in _rejected/rejected.csv
    <output>/faces.csv                               one row per crop (see FACE_FIELDS)
    <output>/sources.csv                             one row per photo read: how many faces, or why none

The face stage (:mod:`maskdetect.faces`), labelled photos (:mod:`maskdetect.annotations`), the review
(:mod:`maskdetect.review`), the training data (:mod:`maskdetect.data`), inference and the report all cut or
read crops this one way, so they import this layer and not the stage. A source is done once its row is in
``sources.csv`` (:func:`done_sources`). Crops are written to a temporary name and renamed, and manifest rows
are appended whole, so neither can be half-written. No detector, no TensorFlow: OpenCV is imported only to
resize a crop.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from maskdetect import images, records

log = logging.getLogger(__name__)

MANIFEST = "faces.csv"
SOURCES = "sources.csv"
SUSPECTS = "suspects.csv"  # process_faces.py --suspects: crops whose label the out-of-fold models dispute
NO_FACE_DIR = "_no_face"
LOW_CONFIDENCE_DIR = "_low_confidence"
CROP_EXTENSION = ".jpg"
_LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
FACE_FIELDS = [
    "crop", "source", "source_sha256", "class", "face_index", "kind", "x1", "y1", "x2", "y2", "confidence",
    "detector", *(f"{name}_{axis}" for name in _LANDMARKS for axis in "xy"), "settings", "time",
]
SOURCE_FIELDS = ["source", "source_sha256", "class", "status", "faces", "low_confidence", "seconds", "detail", "time"]

# The kinds of crop, faces.csv's ``kind``: found by the detector, found below --threshold (for review), drawn
# by a reviewer, or cut from a labelled photo's box (a street face: it sets the decision weights).
AUTO = "auto"
LOW_CONFIDENCE = "low_confidence"
MANUAL = "manual"
ANNOTATED = "annotated"
# Where a review puts the crops it rejects, and the record of them (faces.csv rows with a ``detail``).
REJECTED_DIR = "_rejected"
REJECTED_RECORD = "rejected.csv"


FACE_DETECTOR_FILES = ("facefinder.keras", "fusion.json")  # what train_face_detector.py writes
FACE_VERIFIER_FILE = "faceverifier.keras"  # and, unless told not to, this
# The face stage's presets (maskdetect.face.settings.PRESETS; this layer loads no detector, so names only).
FACE_STAGES = ("accurate", "fast")


@dataclass(frozen=True)
class CropSettings:
    """How faces are found and cut. Validated on construction."""

    size: int = 256
    margin: float = 0.2
    threshold: float = 0.9
    review_threshold: float = 0.7
    # The long side photos are shrunk to for MTCNN; None: the face-stage preset's (640 accurate, 480 fast).
    detect_size: int | None = None
    second_stage: bool = True
    pad_retry: bool = True
    # A folder of train_face_detector.py (facefinder.keras + fusion.json); None: the shipped face finder.
    face_detector: str | None = None
    # The fused probability a face the second stage adds needs; None: the face stage's default
    # (DetectorSettings.second_stage_threshold).
    second_stage_threshold: float | None = None
    # The face verifier's score that keeps a group the fusion rejects; None: the face stage's default
    # (DetectorSettings.verifier_threshold).
    verifier_threshold: float | None = None
    # False: no face verifier (--no-verifier).
    verifier: bool = True
    # The face stage's preset (maskdetect.face.settings.PRESETS): "accurate" or "fast".
    face_stage: str = "accurate"
    # Photos with more pixels are refused from their header, never decoded (--max-pixels).
    max_pixels: int = images.DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        if not 16 <= self.size <= 4096:
            raise ValueError(f"--size must be between 16 and 4096 pixels, not {self.size}")
        if not 0 <= self.margin <= 2:
            raise ValueError(f"--margin must be between 0 and 2 (a share of the face box), not {self.margin}")
        if not 0 < self.threshold <= 1:
            raise ValueError(f"--threshold must be in (0, 1], not {self.threshold}")
        if not 0 < self.review_threshold <= self.threshold:
            raise ValueError(
                f"--review-threshold must be in (0, --threshold], not {self.review_threshold}"
            )
        if self.second_stage_threshold is not None and not 0 < self.second_stage_threshold <= 1:
            raise ValueError(f"--second-stage-threshold must be in (0, 1], not {self.second_stage_threshold}")
        if self.verifier_threshold is not None and not 0 < self.verifier_threshold <= 1:
            raise ValueError(f"--verifier-threshold must be in (0, 1], not {self.verifier_threshold}")
        if self.verifier_threshold is not None and not self.verifier:
            raise ValueError("--verifier-threshold and --no-verifier do not go together")
        if self.face_stage not in FACE_STAGES:
            raise ValueError(f"--face-stage must be one of {', '.join(FACE_STAGES)}, not {self.face_stage!r}")
        if self.max_pixels < 1:
            raise ValueError(f"--max-pixels must be at least 1, not {self.max_pixels}")
        if self.detect_size is not None and self.detect_size < 64:
            raise ValueError(f"--detect-size must be at least 64 pixels, not {self.detect_size}")
        if self.face_detector is not None:
            folder = Path(self.face_detector)
            missing = [name for name in FACE_DETECTOR_FILES if not (folder / name).is_file()]
            if missing:
                raise ValueError(f"--face-detector {folder} has no {' or '.join(missing)}: give a folder that "
                                 f"train_face_detector.py finished")


# ---------------------------------------------------------------------------------------------
# Geometry


def square_region(box: Sequence[float], margin: float, width: int, height: int) -> tuple[int, int, int, int]:
    """The square around ``box`` (x1, y1, x2, y2) grown by ``margin`` of its long side on each side.

    The square is shifted to lie inside the image, and one larger than the image's short side is
    shrunk to it: a crop holds only real pixels. Padding a tight face photo with a border instead
    taught the classifier that a border means a class (faces_dataset's unmasked photos are tight
    crops), and it then failed on faces in whole photos. Returns integer x1, y1, x2, y2 inside the
    image.
    """
    x1, y1, x2, y2 = (float(value) for value in box)
    if not all(math.isfinite(value) for value in (x1, y1, x2, y2)):
        raise ValueError(f"face box {tuple(box)} is not finite")
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"face box {tuple(box)} is empty")
    if width < 1 or height < 1:
        raise ValueError(f"image size {width}x{height} is empty")
    if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
        raise ValueError(f"face box {tuple(box)} lies outside the {width}x{height} image")
    side = min(max(1, round(max(x2 - x1, y2 - y1) * (1 + 2 * margin))), width, height)
    left = min(max(round((x1 + x2) / 2 - side / 2), 0), width - side)
    top = min(max(round((y1 + y2) / 2 - side / 2), 0), height - side)
    return left, top, left + side, top + side


def crop_face(rgb: np.ndarray, box: Sequence[float], margin: float, size: int) -> np.ndarray:
    """A ``size`` x ``size`` RGB crop of the square around ``box`` (see :func:`square_region`)."""
    import cv2

    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 image, got {rgb.shape} {rgb.dtype}")
    height, width = rgb.shape[:2]
    left, top, right, bottom = square_region(box, margin, width, height)
    square = rgb[top:bottom, left:right]
    side = square.shape[0]
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return cv2.resize(square, (size, size), interpolation=interpolation)


# ---------------------------------------------------------------------------------------------
# Writing


def now() -> str:
    """The time a manifest row records, to the second."""
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def atomic_write_image(array: np.ndarray, path: Path, quality: int = 95) -> None:
    """Save an RGB array as JPEG; a temporary name and a rename mean a kill never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # ".tmp": what a resumed run clears as its own half-written files
    with records.replacing(path, ".tmp") as temporary:
        Image.fromarray(array).save(temporary, "JPEG", quality=quality)


def atomic_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with records.replacing(target, ".tmp") as temporary:
        shutil.copy2(source, temporary)


def crop_stem(source: Path, sha256: str) -> str:
    """Crops are named after their source; the hash keeps two sources called ``a.jpg``/``a.png`` apart."""
    return source.stem if sha256[:12] in source.stem else f"{source.stem}_{sha256[:8]}"


def face_row(crop: Path, source: Path, sha256: str, class_name: str, index: int, kind: str, face,
             settings: CropSettings) -> dict:
    row = {
        "crop": str(crop), "source": str(source), "source_sha256": sha256, "class": class_name,
        "face_index": index, "kind": kind,
        "x1": round(face.x1, 1), "y1": round(face.y1, 1), "x2": round(face.x2, 1), "y2": round(face.y2, 1),
        "confidence": round(float(face.confidence), 4), "detector": face.detector,
        "settings": json.dumps(asdict(settings), sort_keys=True), "time": now(),
    }
    for name, point in zip(_LANDMARKS, face.landmarks or (), strict=False):
        row[f"{name}_x"], row[f"{name}_y"] = round(point[0], 1), round(point[1], 1)
    return row


def save_faces(rgb: np.ndarray, faces: Iterable, source: Path, sha256: str, class_name: str, output: Path,
               settings: CropSettings, kind_of) -> list[dict]:
    """Crop and save each face, into the class folder or the review folder as ``kind_of(face)`` says."""
    rows = []
    stem = crop_stem(source, sha256)
    for index, face in enumerate(faces):
        kind = kind_of(face)
        folder = output / LOW_CONFIDENCE_DIR / class_name if kind == LOW_CONFIDENCE else output / class_name
        suffix = "_manual" if kind == MANUAL else ""
        crop_path = (folder / f"{stem}{suffix}_face{index}{CROP_EXTENSION}").resolve()
        atomic_write_image(crop_face(rgb, (face.x1, face.y1, face.x2, face.y2), settings.margin, settings.size),
                           crop_path)
        rows.append(face_row(crop_path, source, sha256, class_name, index, kind, face, settings))
    return rows


# ---------------------------------------------------------------------------------------------
# Manifest


def done_sources(output: Path) -> set[str]:
    """sha256 of every source already finished, after dropping manifest rows of a source left half done."""
    finished = {row["source_sha256"] for row in records.read_rows(output / SOURCES)}
    manifest = output / MANIFEST
    rows = records.read_rows(manifest)
    torn = [row for row in rows if row["source_sha256"] not in finished and row["kind"] != MANUAL]
    if torn:
        # A kill between a photo's face rows and its sources.csv row: that photo is redone, and its
        # crops (same names) are rewritten, so its old rows go.
        redo = {row["source_sha256"] for row in torn}
        records.replace_rows(manifest, FACE_FIELDS,
                             [row for row in rows if row["source_sha256"] not in redo or row["kind"] == MANUAL])
        log.info("resuming: %d face rows of %d unfinished photos are redone", len(torn), len(redo))
    return finished


def atomic_no_face_copy(source: Path, class_name: str, output: Path) -> Path:
    target = output / NO_FACE_DIR / class_name / source.name
    atomic_copy(source, target)
    return target
