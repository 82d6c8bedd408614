"""What the benchmarks and the experiments share: where the repository and the shared data set are; the labelled
detection set (``boxes.csv`` + ``images/``): its boxes, its photos decoded as the pipeline decodes them, the faces
counted and matched, the faces the face stage finds in it; how a detector's kept boxes are scored against its
labels (``Detections``, ``score``: bench_face_stage's recall per class and size, and boxes kept); the one
end-to-end scorer (``EndToEnd``: each found face decided by the model's decision weights, faces found and called
right per class); and where a benchmark writes its results (``--out``: ``results.json`` and ``results.csv``).

The benchmarks are a package: run each from the repository root as ``python -m benchmarks.bench_NAME``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from maskdetect import classes, decisions, images
from maskdetect.face.boxes import iou as box_iou

REPO = Path(__file__).resolve().parents[1]
# The optional shared real-photo data set, where the tests look for it too (tests/helpers.py).
SHARED_DATA = Path(os.environ.get("MASKDETECT_SHARED_DATA", REPO.parent / "shared" / "data"))
DEFAULT_DETECTION = SHARED_DATA / "detection"  # labelled street and crowd photos: boxes.csv + images/
DEFAULT_WILD = SHARED_DATA / "wild"  # labelled street photos, VOC
DEFAULT_FACES = SHARED_DATA / "faces_dataset"  # close-up crops, <class>/<images>

# The labels of the detection set.
CLASSES = ("mask", "without_mask", "incorrect_mask")
# A labelled face is counted when its short side is at least MIN_FACE px; a box finds it at IoU >= MATCH_IOU.
MIN_FACE = 32
MATCH_IOU = 0.4
# Face-size buckets (short side, px) that recall is given for.
BUCKETS = ((0, 20, "<20"), (20, 32, "20-32"), (32, 64, "32-64"), (64, 128, "64-128"), (128, 10**9, ">=128"))
# The detection photos are split into folds by a hash of their names (experiments.domain_gap trains on one, tests
# on the other).
FOLDS = 2


def has_detection_set(folder: Path) -> bool:
    return (folder / "boxes.csv").is_file() and (folder / "images").is_dir()


def require_detection_set(parser: argparse.ArgumentParser, folder: Path, flag: str = "--detection") -> None:
    """A usage error (exit 2) when ``folder`` is not a detection set."""
    if not has_detection_set(folder):
        parser.error(f"{folder} has no boxes.csv and images/ (see {flag})")


def load_truth(data: Path) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Photo name -> its labelled faces, (label, box x1 y1 x2 y2), from ``data/boxes.csv``."""
    truth: dict[str, list[tuple[str, np.ndarray]]] = defaultdict(list)
    with open(data / "boxes.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            box = np.array([float(row[k]) for k in ("xmin", "ymin", "xmax", "ymax")])
            truth[row["image"]].append((row["label"], box))
    return dict(truth)


def photo_sizes(data: Path) -> dict[str, tuple[int, int]]:
    """Photo name -> (width, height) as ``data/boxes.csv`` gives them."""
    with open(data / "boxes.csv", newline="") as handle:
        return {row["image"]: (int(row["width"]), int(row["height"])) for row in csv.DictReader(handle)}


def load_photo(path: Path, width: int, height: int) -> np.ndarray:
    """RGB uint8 as the pipeline decodes it; the raw pixel grid if EXIF would turn it off the labels."""
    from PIL import Image

    rgb = images.load_rgb(path)
    if rgb.shape[:2] != (height, width):
        with Image.open(path) as image:
            rgb = np.asarray(images.to_rgb8(image))
    return rgb


def matches(labels: list, boxes, min_size: int = MIN_FACE, iou: float = MATCH_IOU):
    """(label, box, index of the best-overlapping box or None) for each labelled face counted: short side at
    least ``min_size`` px; a box matches at IoU >= ``iou``."""
    overlap = box_iou(np.array([box for _, box in labels]).reshape(-1, 4), np.asarray(boxes).reshape(-1, 4))
    for row, (label, box) in enumerate(labels):
        if min(box[2] - box[0], box[3] - box[1]) < min_size:
            continue
        best = int(overlap[row].argmax()) if overlap.shape[1] and overlap[row].max() >= iou else None
        yield label, box, best


def fold_of(photo: str) -> int:
    return zlib.crc32(photo.encode()) % FOLDS


def collect(detection: Path, class_names: list[str], limit: int = 0, min_size: int = MIN_FACE,
            iou: float = MATCH_IOU) -> dict:
    """The face stage over the detection set's photos (the first ``limit``, sorted by name; 0: all):
    ``found``, its crops of the labelled faces it finds, and ``labelled``, crops cut from the labelled boxes
    of every counted face, each with ``labels`` and ``folds`` (:func:`fold_of` its photo); ``counted``, the
    labelled faces counted per (label, fold). Labels that are not in ``class_names`` are left out."""
    from maskdetect import facecrops
    from maskdetect.inference import MaskDetector

    truth, sizes = load_truth(detection), photo_sizes(detection)
    photos = sorted(truth)[: limit or None]
    finder = MaskDetector(None)  # the face stage's detector and crops, no classifier
    found = {"crops": [], "labels": [], "folds": []}
    labelled = {"crops": [], "labels": [], "folds": []}
    counted = Counter()
    start = time.perf_counter()
    for index, photo in enumerate(photos):
        rgb = load_photo(detection / "images" / photo, *sizes[photo])
        kept = finder.faces(rgb)
        fold = fold_of(photo)
        for label, box, best in matches(truth[photo], [(f.x1, f.y1, f.x2, f.y2) for f in kept], min_size, iou):
            if label not in class_names:
                continue
            counted[label, fold] += 1
            try:
                crop = facecrops.crop_face(rgb, tuple(box), finder.settings.margin, finder.settings.size)
            except ValueError:
                continue
            labelled["crops"].append(crop), labelled["labels"].append(label), labelled["folds"].append(fold)
            crops, _ = finder.crops(rgb, [kept[best]] if best is not None else [])
            if crops:
                found["crops"].append(crops[0]), found["labels"].append(label), found["folds"].append(fold)
        if (index + 1) % 100 == 0:
            print(f"  {index + 1}/{len(photos)} photos", flush=True)
    print(f"face stage on {len(photos)} photos in {time.perf_counter() - start:.0f} s: "
          f"{len(found['labels'])} labelled faces found of {sum(counted.values())} counted")
    return {"found": {key: np.asarray(value) for key, value in found.items()},
            "labelled": {key: np.asarray(value) for key, value in labelled.items()}, "counted": counted}


def found_faces(detection: Path, work: Path, limit: int = 0, min_size: int = MIN_FACE, iou: float = MATCH_IOU) -> dict:
    """The face stage's crops of the labelled faces it finds in the detection set (all three labels), their
    labels, and the labelled faces counted per label; cached in ``work`` (the face stage takes ~4 minutes)."""
    import json

    cache = work / f"found_{limit}_{min_size}_{iou}.npz"
    if cache.is_file():
        stored = np.load(cache, allow_pickle=False)
        return {"crops": stored["crops"], "labels": stored["labels"], "counted": json.loads(str(stored["counted"]))}
    collected = collect(detection, list(CLASSES), limit, min_size, iou)
    counted: dict[str, int] = {}
    for (label, _), count in collected["counted"].items():
        counted[label] = counted.get(label, 0) + count
    found = collected["found"]
    work.mkdir(parents=True, exist_ok=True)
    np.savez(cache, crops=found["crops"], labels=found["labels"], counted=json.dumps(counted))
    return {"crops": found["crops"], "labels": found["labels"], "counted": counted}


def set_threads(threads: int) -> None:
    """One core for timing: must run before TensorFlow is imported."""
    for name in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ[name] = str(threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import cv2
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already ran in this process (main called from a test): timings are not one core
        print(f"TensorFlow already runs in this process: its threads are not set to {threads}", flush=True)
    cv2.setNumThreads(threads)


class Detections:
    """Boxes (x1, y1, x2, y2), confidences and detector names per photo, with timings."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.boxes: dict[str, np.ndarray] = {}
        self.conf: dict[str, np.ndarray] = {}
        self.source: dict[str, list[str]] = {}
        self.seconds: list[float] = []

    def add(self, photo: str, rows: list[tuple[float, float, float, float, float, str]], seconds: float) -> None:
        self.boxes[photo] = np.array([r[:4] for r in rows], dtype=np.float64).reshape(-1, 4)
        self.conf[photo] = np.array([r[4] for r in rows], dtype=np.float64)
        self.source[photo] = [r[5] for r in rows]
        self.seconds.append(seconds)

    def filtered(self, name: str, min_conf: float, detector: str | None = None) -> Detections:
        """The boxes of at least ``min_conf``; with ``detector``, only that detector's boxes are filtered."""
        out = Detections(name)
        for photo, boxes in self.boxes.items():
            keep = self.conf[photo] >= min_conf
            if detector is not None:
                keep |= np.array([source != detector for source in self.source[photo]], bool)
            out.boxes[photo] = boxes[keep]
            out.conf[photo] = self.conf[photo][keep]
            out.source[photo] = [s for s, k in zip(self.source[photo], keep, strict=True) if k]
        out.seconds = list(self.seconds)
        return out


def score(det: Detections, truth: dict[str, list[tuple[str, np.ndarray]]], min_size: int,
          iou: float) -> dict:
    """Recall per class (labelled faces of ``min_size`` px or more) and per size bucket, boxes kept and matched
    (at ``iou``), speed, and the unmatched boxes and missed faces (keys ``_unmatched``, ``_missed``)."""
    found = defaultdict(int)
    total = defaultdict(int)
    kept = matched = 0
    by_source: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    unmatched = []
    missed = []
    empty = 0
    for photo, boxes in det.boxes.items():
        labels = truth[photo]
        gt = np.array([b for _, b in labels])
        m = box_iou(gt, boxes)
        for j, (label, box) in enumerate(labels):
            side = min(box[2] - box[0], box[3] - box[1])
            hit = bool(m.shape[1] and m[j].max() >= iou)
            bucket = next(name for lo, hi, name in BUCKETS if lo <= side < hi)
            total[(label, bucket)] += 1
            found[(label, bucket)] += hit
            if side >= min_size:
                total[label] += 1
                found[label] += hit
                if not hit:
                    missed.append((photo, box, label))
        kept += len(boxes)
        empty += not len(boxes)
        if len(boxes):
            ok = m.max(axis=0) >= iou if len(gt) else np.zeros(len(boxes), bool)
            matched += int(ok.sum())
            for k, good in enumerate(ok):
                src = det.source[photo][k]
                by_source[src][0] += 1
                by_source[src][1] += int(good)
                if not good:
                    unmatched.append((photo, boxes[k], float(det.conf[photo][k]), src))
    seconds = np.array(det.seconds)
    recall = {c: (found[c] / total[c] if total[c] else float("nan")) for c in CLASSES}
    buckets = {c: {name: [found[(c, name)], total[(c, name)]] for _, _, name in BUCKETS} for c in CLASSES}
    return {
        "name": det.name, "photos": len(det.boxes), "recall": recall,
        "counted": {c: total[c] for c in CLASSES}, "found": {c: found[c] for c in CLASSES}, "buckets": buckets,
        "kept": kept, "matched": matched,
        "unmatched": kept - matched, "precision": matched / kept if kept else float("nan"),
        "by_detector": {k: {"kept": v[0], "matched": v[1]} for k, v in by_source.items()},
        "photos_without_boxes": empty,
        "s_per_photo": float(seconds.mean()) if len(seconds) else float("nan"),
        "s_per_photo_p90": float(np.percentile(seconds, 90)) if len(seconds) else float("nan"),
        "photos_per_s": float(1 / seconds.mean()) if len(seconds) and seconds.mean() > 0 else float("nan"),
        "_unmatched": unmatched,
        "_missed": missed,
    }


# ---------------------------------------------------------------------------------------------
# End to end: found faces decided as the model decides, counted per labelled class


def benchmark_label(class_name: str) -> str:
    """A model's class in the labels' words (``mask``, ``without_mask``, ``incorrect_mask``), so a model trained
    on ``with_mask`` or ``mask_weared_incorrect`` folders is scored against the labels it means."""
    if classes.wears_mask(class_name):
        return "mask"
    if classes.no_mask(class_name):
        return "without_mask"
    if classes.mask_worn_wrong(class_name):
        return "incorrect_mask"
    return class_name


class EndToEnd:
    """What a user gets, per labelled class: the labelled faces counted, those the face stage found, and those
    found AND called right, each found face's class decided by the model's decision weights
    (``maskdetect.decisions.decide``, as ``Classifier.decide`` and detection decide; None: plain argmax).

    Faces come in photo by photo (:meth:`add_photo`: the labels, the boxes kept and the classifier's probabilities
    of each box, matched by :func:`matches`) or already matched (:meth:`add_found`: the labels and probabilities
    of the found faces, and the faces counted). Tallies of several models (one per fold, say) add up with
    :meth:`merge`. Predictions are in the labels' words (:func:`benchmark_label`).

    Attributes:
        counted, found, correct: Counters per label.
        confusion: label -> Counter of the predicted labels of its found faces.
        scored: (label, predicted label, the predicted class's probability) of each found face.
    """

    def __init__(self, class_names: Sequence[str], weights: Sequence[float] | None = None) -> None:
        self.class_names = [str(name) for name in class_names]
        self.labels = np.asarray([benchmark_label(name) for name in self.class_names])
        self.weights = None if weights is None else [float(weight) for weight in weights]
        self.counted: Counter = Counter()
        self.found: Counter = Counter()
        self.correct: Counter = Counter()
        self.confusion: dict[str, Counter] = defaultdict(Counter)
        self.scored: list[tuple[str, str, float]] = []

    @classmethod
    def of(cls, classifier) -> EndToEnd:
        """A tally for a ``maskdetect.artifact.Classifier``: its class names and decision weights."""
        return cls(classifier.class_names, classifier.decision_weights)

    def decide(self, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The label (in the labels' words) each row of ``probabilities`` (n, classes) is called, by the decision
        weights, and the probability of the class chosen."""
        probabilities = np.asarray(probabilities, dtype=np.float64).reshape(-1, len(self.class_names))
        chosen = decisions.decide(probabilities, self.weights)
        return self.labels[chosen], probabilities[np.arange(len(chosen)), chosen]

    def add_photo(self, labels: list[tuple[str, np.ndarray]], boxes, probabilities: np.ndarray,
                  min_size: int = MIN_FACE, iou: float = MATCH_IOU) -> None:
        """One photo: its labelled faces (label, box), the boxes kept in it and the classifier's probabilities of
        each box (n, classes). A labelled face of ``min_size`` px or more is counted, found when a box overlaps it
        at ``iou`` or more, and called what its best-overlapping box is called."""
        predicted, chosen = self.decide(probabilities)
        for label, _, best in matches(labels, boxes, min_size, iou):
            self.counted[label] += 1
            if best is not None:
                self._found(label, str(predicted[best]), float(chosen[best]))

    def add_found(self, labels: Sequence[str], probabilities: np.ndarray,
                  counted: Mapping[str, int] | None = None) -> None:
        """Faces already matched to a label: their labels and the classifier's probabilities (n, classes); and the
        labelled faces counted, found or not, per label (their sum may come from :attr:`counted` elsewhere)."""
        labels = np.asarray(labels, dtype=str)
        predicted, chosen = self.decide(probabilities)
        if len(labels) != len(predicted):
            raise ValueError(f"{len(labels)} labels for {len(predicted)} rows of probabilities")
        self.counted.update(counted or {})
        for label, called, probability in zip(labels.tolist(), predicted.tolist(), chosen.tolist(), strict=True):
            self._found(label, called, probability)

    def _found(self, label: str, predicted: str, probability: float) -> None:
        self.found[label] += 1
        self.correct[label] += predicted == label
        self.confusion[label][predicted] += 1
        self.scored.append((label, predicted, probability))

    def merge(self, other: EndToEnd) -> EndToEnd:
        """This tally with ``other``'s faces added (another model's decisions count as they were made)."""
        self.counted.update(other.counted)
        self.found.update(other.found)
        self.correct.update(other.correct)
        for label, called in other.confusion.items():
            self.confusion[label].update(called)
        self.scored += other.scored
        return self

    def rates(self, label: str) -> dict:
        """For ``label``: faces counted, found and called right; the face stage's recall (found / counted), end to
        end (right / counted), the gap between them in points, and the classifier on found faces (right / found);
        NaN where nothing was counted or found."""
        counted, found, correct = self.counted[label], self.found[label], self.correct[label]
        recall = found / counted if counted else math.nan
        end_to_end = correct / counted if counted else math.nan
        return {"label": label, "counted": counted, "found": found, "correct": correct, "recall": recall,
                "end_to_end": end_to_end, "gap_points": (recall - end_to_end) * 100,
                "on_found": correct / found if found else math.nan}

    def as_dict(self) -> dict:
        """The tally as a plain dict: ``counted``, ``found``, ``correct``, ``confusion``, ``scored``."""
        return {"counted": self.counted, "found": self.found, "correct": self.correct, "confusion": self.confusion,
                "scored": self.scored}


# ---------------------------------------------------------------------------------------------
# Results: what a benchmark prints, also written as results.json and results.csv


def default_out(name: str) -> Path:
    """Where benchmark ``name`` writes its results unless told otherwise (``logs/`` is git-ignored)."""
    return REPO / "logs" / "benchmarks" / name


def add_out_argument(parser: argparse.ArgumentParser, name: str, what: str = "") -> None:
    """``--out FOLDER``: where the benchmark writes results.json and results.csv (and ``what`` else)."""
    parser.add_argument("--out", type=Path, default=default_out(name),
                        help=f"folder for results.json and results.csv{what} (default %(default)s)")


def _plain(value):
    """``value`` with numpy scalars and arrays as Python's, NaN and infinities as None, keys as strings."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def _flat(row: Mapping, prefix: str = "") -> dict:
    """A row's nested dicts as dotted columns; lists as JSON text."""
    flat = {}
    for key, value in row.items():
        if isinstance(value, Mapping):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = json.dumps(value) if isinstance(value, list) else value
    return flat


def write_results(out: Path, rows: Sequence[Mapping]) -> tuple[Path, Path]:
    """The result lines of a run into ``out`` (created): ``results.json``, the rows as a JSON list (NaN as null),
    and ``results.csv``, a line per row, nested values as dotted columns (``recall.mask``). Returns both paths."""
    out.mkdir(parents=True, exist_ok=True)
    plain = [_plain(row) for row in rows]
    json_path, csv_path = out / "results.json", out / "results.csv"
    json_path.write_text(json.dumps(plain, indent=2) + "\n")
    flat = [_flat(row) for row in plain]
    columns = list(dict.fromkeys(column for row in flat for column in row))
    with open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(flat)
    return json_path, csv_path
