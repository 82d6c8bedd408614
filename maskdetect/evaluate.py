"""Score a trained classifier on labelled photos: the faces your cameras see, not the training collection's.

Validation crops come from the same collection as the training crops, so they cannot tell which model does
well on other photos (models of nearly equal validation accuracy differ widely on street faces; see
docs/benchmarks.md). ``auto_train.py --rank-on DIR`` therefore ranks models by :func:`score` on a
labelled photo folder (any format :func:`maskdetect.annotations.read` takes: VOC, CSV, YOLO).

Every labelled face whose short side is at least ``min_face`` pixels is cut with the face stage's geometry
(:func:`maskdetect.facecrops.crop_face`, with the margin and crop size the model was trained with when its
metadata says so) and classified as ``detect_mask.py`` would classify it. The score is the balanced
accuracy: the mean over the model's classes present in the folder of the share of their faces called
right, so that the 4:1 masked majority of street photos does not hide the unmasked faces. Faces whose label
is no class of the model (e.g. ``incorrect_mask`` for a two-class model) are counted and left out.

TensorFlow is imported only when a model is loaded (:func:`score_model`); reading and cutting the faces
needs none.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maskdetect import annotations, artifact, classes, decisions, facecrops, images
from maskdetect.runlog import folder_key

log = logging.getLogger(__name__)

# The benchmarks (bench_detect.py, the README's figures) count faces of 32 px or more; faces below that are
# mostly blur at 256 px and would make the ranking reward guessing on noise.
RANK_MIN_FACE = 32
# Faces classified at once: a few hundred 256 px crops fit easily; the model's own batch is its business.
BATCH = 64
# The columns a scored run adds to training_log.csv (runlog.LOG_FIELDS ends with them).
FIELDS = ("rank_on", "rank_on_accuracy", "rank_on_per_class")


@dataclass
class LabelledFaces:
    """The labelled faces of a folder, cut: uint8 crops (n, size, size, 3) and their labels."""

    crops: np.ndarray
    labels: list[str]
    skipped: Counter = field(default_factory=Counter)


@dataclass
class Score:
    """How a model did on a folder's labelled faces."""

    folder: str
    accuracy: float  # balanced accuracy: the mean of ``recall`` over the classes with faces
    recall: dict[str, float]
    faces: dict[str, int]  # faces per class of the model that were scored
    other: int = 0  # faces whose label is no class of the model, left out

    def row_fields(self) -> dict:
        """The log row's columns for this score (runlog.LOG_FIELDS)."""
        per_class = {name: {"recall": round(self.recall[name], 4), "faces": self.faces[name]} for name in self.recall}
        if self.other:
            per_class["not a class of the model"] = {"faces": self.other}
        return {"rank_on": self.folder, "rank_on_accuracy": round(self.accuracy, 4),
                "rank_on_per_class": json.dumps(per_class)}

    def describe(self) -> str:
        listed = ", ".join(f"{name} {self.recall[name]:.3f} of {self.faces[name]}" for name in self.recall)
        return (f"balanced accuracy {self.accuracy:.4f} on {self.folder} ({listed}; {self.other} faces of other "
                "labels left out)")


def _usable(face: annotations.LabelledFace, min_face: int) -> bool:
    x1, y1, x2, y2 = face.box
    return bool(face.label) and x2 > x1 and y2 > y1 and min(x2 - x1, y2 - y1) >= min_face


def check_folder(folder: str | Path, min_face: int = RANK_MIN_FACE) -> dict[str, int]:
    """Labelled faces of ``min_face`` px or more per label, read from the label files alone (no photo is
    decoded, no TensorFlow): a quick check before a sweep trains for hours. ValueError when there are none."""
    if min_face < 1:
        raise ValueError(f"the smallest face to score must be at least 1 pixel, not {min_face}")
    path = Path(folder)
    if not path.exists():
        raise ValueError(f"--rank-on {folder} does not exist")
    try:
        labels = annotations.read(path)
    except ValueError as error:
        raise ValueError(f"--rank-on: {error}") from None
    counts = Counter(face.label for photo in labels.photos for face in photo.faces if _usable(face, min_face))
    if not counts:
        raise ValueError(f"--rank-on {folder}: no labelled face of {min_face} px or more in it "
                         f"({len(labels.photos)} labelled photos, {len(labels.problems)} unusable files or lines)")
    return dict(counts)


# Cut faces per (folder, margin, size, smallest face), kept for the life of the process: the report scores
# every earlier model on the same faces, and reading the photos is the slow part.
_CACHE: dict[tuple[str, float, int, int], LabelledFaces] = {}


def labelled_faces(folder: str | Path, margin: float, size: int, min_face: int = RANK_MIN_FACE) -> LabelledFaces:
    """Every labelled face of ``folder`` of ``min_face`` px or more, cut as the face stage cuts (cached)."""
    key = (folder_key(folder), float(margin), int(size), int(min_face))
    if key in _CACHE:
        return _CACHE[key]
    check_folder(folder, min_face)
    labels = annotations.read(folder)
    crops: list[np.ndarray] = []
    names: list[str] = []
    skipped: Counter = Counter(problems=len(labels.problems))
    for photo in labels.photos:
        wanted = [face for face in photo.faces if _usable(face, min_face)]
        skipped["too_small"] += len(photo.faces) - len(wanted)
        if not wanted:
            continue  # a photo with only small faces is not worth decoding
        try:
            rgb = images.load_rgb(photo.image)
        except images.DECODE_ERRORS as error:
            log.warning("%s: cannot be read (%s); its %d faces are not scored", photo.image, error, len(wanted))
            skipped["unreadable"] += len(wanted)
            continue
        for face in wanted:
            try:
                crops.append(facecrops.crop_face(rgb, face.box, margin, size))
                names.append(face.label)
            except ValueError:  # a box outside the photo: the label file is wrong, not the model
                skipped["bad_box"] += 1
    if not crops:
        raise ValueError(f"--rank-on {folder}: none of its labelled faces of {min_face} px or more could be cut "
                         f"({dict(skipped)})")
    result = LabelledFaces(np.stack(crops), names, skipped)
    _CACHE[key] = result
    return result


def class_for(label: str, class_names: Sequence[str]) -> str | None:
    """The model's class that a folder's label means: the same name (case, spaces and dashes aside), else the
    only class with the same meaning (``mask`` and ``with_mask``; ``without_mask`` and ``no_mask``), else None."""
    names = {classes.normal(name): name for name in class_names}
    if classes.normal(label) in names:
        return names[classes.normal(label)]
    for meaning in (classes.wears_mask, classes.no_mask):
        if meaning(label):
            matches = [name for name in class_names if meaning(name)]
            return matches[0] if len(matches) == 1 else None
    return None


def score(classifier, folder: str | Path, min_face: int = RANK_MIN_FACE) -> Score:
    """``classifier`` (anything with ``class_names``, ``meta`` and ``probabilities(crops)``, as
    :class:`maskdetect.artifact.Classifier`) on the labelled faces of ``folder``."""
    meta = getattr(classifier, "meta", {}) or {}
    margin, size = artifact.model_crop(meta)
    weights = decisions.decision_weights(meta)  # the model's own decision rule, as detect_mask.py applies it
    cut = labelled_faces(folder, margin, size, min_face)
    names = list(classifier.class_names)
    classes = [class_for(label, names) for label in cut.labels]
    kept = [index for index, name in enumerate(classes) if name is not None]
    if not kept:
        raise ValueError(f"--rank-on {folder}: none of its labels ({', '.join(sorted(set(cut.labels)))}) is a class "
                         f"of the model ({', '.join(names)})")
    predicted = np.concatenate([
        decisions.decide(classifier.probabilities(cut.crops[kept[start:start + BATCH]]), weights)
        for start in range(0, len(kept), BATCH)])
    truth = np.array([names.index(classes[index]) for index in kept])
    recall, counts = {}, {}
    for number, name in enumerate(names):
        members = truth == number
        if members.any():  # a class with no labelled face has no recall; it does not count
            counts[name] = int(members.sum())
            recall[name] = float((predicted[members] == number).mean())
    return Score(folder_key(folder), float(np.mean(list(recall.values()))), recall, counts,
                 other=len(cut.labels) - len(kept))


def score_model(model_path: str | Path, folder: str | Path, min_face: int = RANK_MIN_FACE) -> Score:
    """Load a model saved by train_a_model.py (TensorFlow is imported here) and :func:`score` it."""
    return score(artifact.load_classifier(model_path), folder, min_face)


def scored_fields(row: Mapping[str, str], folder: str | Path | None, min_face: int = RANK_MIN_FACE) -> dict:
    """The rank_on columns for a finished run's row, or none when there is nothing to score or scoring fails
    (a warning says why; the run itself stands, and a later ``--report --rank-on`` scores it again)."""
    if not folder or not row.get("model_path") or not Path(row["model_path"]).is_file():
        return {}
    try:
        result = score_model(row["model_path"], folder, min_face)
    except Exception as error:  # a model that cannot be scored must not lose the run's row
        log.warning("scoring %s on %s failed: %s", row["model_path"], folder, error)
        return {}
    print(f"rank-on: {result.describe()}", flush=True)
    return result.row_fields()
