"""Fit the second stage's fusion weights on labelled photos (the fusion itself is :mod:`maskdetect.face.fusion`).

The second stage of :class:`maskdetect.face.detector.FaceDetector` turns each proposal group's evidence
into a probability with a logistic model whose weights live in a JSON file (the shipped one is
``maskdetect/face/weights/fusion.json``; ``DetectorSettings.fusion`` names another). This module refits
that file from photos with labelled faces, in any format :mod:`maskdetect.annotations` reads:

    python -m maskdetect.face.fusion_fit --annotations shared/data/wild --output my_fusion.json

Beside the file, ``my_fusion_thresholds.csv`` says what each second-stage threshold would keep of the groups
(cross-validated precision, recall and F1; :func:`threshold_table`), for choosing ``--second-stage-threshold``.

For each photo the detector runs as it does when detecting (MTCNN, then the proposal sources, the
gates and the zoomed-in looks) and every group past the gates becomes one row of features; its
target is 1 when its box overlaps a labelled face (any label, any size) at IoU >= ``match_iou``.
Groups on faces MTCNN keeps never reach the fusion, so they are not rows either.

Photos should be ones the detector will be measured on only if the measurement is meant to be
in-sample: fit on one set, benchmark on another.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from maskdetect import annotations, images, runtime
from maskdetect.face.boxes import iou
from maskdetect.face.detector import FaceDetector
from maskdetect.face.fusion import check_fusion, fusion_features, load_fusion
from maskdetect.face.proposals import PASSES_SUFFIX, ZOOMED_FULL_RANGE, ZOOMED_SHORT_RANGE
from maskdetect.face.settings import PRESETS, DetectorSettings, preset_settings

log = logging.getLogger(__name__)

MATCH_IOU = 0.4  # as benchmarks/bench_face_stage.py counts a labelled face found
# Regularisation strengths tried by cross-validation (inverse, as scikit-learn's C). The features are
# scores in 0..1 and pass counts of a few, so no scaling is needed for the penalty to treat them alike.
C_GRID = tuple(float(c) for c in np.logspace(-3, 3, 13))
CV_FOLDS = 5
# Weights are written with this many decimals: finer digits are noise of the fit.
DECIMALS = 4
# The second-stage thresholds the threshold table reports.
THRESHOLDS = tuple(round(float(t), 2) for t in np.arange(0.1, 0.91, 0.05))

__all__ = ["collect", "fit", "load", "main", "photo_and_boxes", "save", "threshold_summary", "threshold_table",
           "usable_photos", "write_threshold_table"]


def photo_and_boxes(photo: annotations.LabelledPhoto) -> tuple[np.ndarray, np.ndarray] | str:
    """The photo decoded as the pipeline does, and its labelled boxes in its pixels; or why it cannot be used."""
    rgb = images.load_rgb(photo.image)
    boxes = np.array([face.box for face in photo.faces], dtype=np.float64).reshape(-1, 4)
    if not np.isfinite(boxes).all():
        return "a box is not four finite numbers"
    height, width = rgb.shape[:2]
    if photo.drawn_size is None or photo.drawn_size == (width, height):
        return rgb, boxes
    from PIL import Image

    # A tool that ignored the EXIF orientation drew on the raw pixel grid (benchmarks.common.load_photo).
    with Image.open(photo.image) as image:
        if image.size == photo.drawn_size:
            return np.asarray(images.to_rgb8(image)), boxes
    drawn_width, drawn_height = photo.drawn_size
    # Boxes drawn on a resized copy scale with it; a turned photo's would not, so it is left out.
    if abs(drawn_width / drawn_height - width / height) > 0.02 * width / height:
        return f"the boxes were drawn on a {drawn_width}x{drawn_height} picture, the photo is {width}x{height}"
    return rgb, boxes * np.array([width / drawn_width, height / drawn_height] * 2)


def usable_photos(photos):
    """(photo's RGB, its labelled boxes) for each labelled photo that can be used (:func:`photo_and_boxes`); one
    that cannot is one warning line and skipped."""
    for photo in photos:
        try:
            loaded = photo_and_boxes(photo)
        except images.DECODE_ERRORS as error:
            loaded = f"cannot be read ({error})"
        if isinstance(loaded, str):
            log.warning("%s: %s; skipped", photo.image, " ".join(loaded.split()))
            continue
        yield loaded


def collect(labels: annotations.Labels, detector: FaceDetector, match_iou: float = MATCH_IOU,
            progress: bool = True) -> tuple[list[str], np.ndarray, np.ndarray, int]:
    """Features and targets of every gated proposal group in the labelled photos.

    Returns the feature names (:func:`maskdetect.face.fusion.fusion_features` of the detector's
    sources), X (a row per group), y (1 where the group's box has IoU >= ``match_iou`` with a
    labelled face) and the number of photos used. A photo that cannot be used is one warning line
    and skipped.
    """
    from tqdm import tqdm

    if not 0 < match_iou <= 1:
        raise ValueError(f"match_iou must be in (0, 1], got {match_iou!r}")
    sources = detector.settings.source_names()
    if not sources:
        raise ValueError("the detector runs no second stage: there is nothing to fit")
    names = fusion_features(sources)
    for problem in labels.problems:
        log.warning("%s", problem)
    rows: list[list[float]] = []
    targets: list[int] = []
    used = 0
    for rgb, truth in usable_photos(tqdm(labels.photos, desc="fusion features", unit="photo",
                                         disable=not progress)):
        for box, features in detector.proposal_groups(rgb):
            rows.append([features.get(name, 0.0) for name in names])
            targets.append(int(len(truth) > 0 and iou(box[None], truth).max() >= match_iou))
        used += 1
    return names, np.array(rows, dtype=np.float64).reshape(-1, len(names)), np.array(targets, dtype=int), used


def _design(feature_names: Sequence[str], X: np.ndarray, y: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The feature names, X and y checked; a source's pass count that never exceeds 1 left out."""
    names = list(feature_names)
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if X.ndim != 2 or X.shape[1] != len(names) or y.shape != (X.shape[0],):
        raise ValueError(f"X must be (rows, {len(names)} features) and y one value per row, "
                         f"got {X.shape} and {y.shape}")
    if not np.isfinite(X).all() or not np.isin(y, (0, 1)).all():
        raise ValueError("X must be finite and y 0 or 1")
    positives, negatives = int(y.sum()), int(len(y) - y.sum())
    if not positives or not negatives:
        raise ValueError(f"fitting needs groups on faces and groups off them: got {positives} on, {negatives} off")
    keep = [index for index, name in enumerate(names)
            if not (name.endswith(PASSES_SUFFIX) and X[:, index].max() <= 1)]
    return [names[index] for index in keep], X[:, keep], y


def _folds(y: np.ndarray):
    """The cross-validation folds, or None when a class has too few rows for them."""
    from sklearn.model_selection import StratifiedKFold

    if min(int(y.sum()), int(len(y) - y.sum())) < 2 * CV_FOLDS:
        return None
    return StratifiedKFold(CV_FOLDS, shuffle=True, random_state=0)


def _strength(X: np.ndarray, y: np.ndarray) -> float:
    """The penalty's strength C chosen by cross-validated log loss; 1 without enough rows for folds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    folds = _folds(y)
    if folds is None:
        return 1.0
    losses = [-cross_val_score(LogisticRegression(C=strength, max_iter=5000), X, y, cv=folds,
                               scoring="neg_log_loss").mean() for strength in C_GRID]
    return C_GRID[int(np.argmin(losses))]


def fit(feature_names: Sequence[str], X: np.ndarray, y: np.ndarray, fitted_on: str = "") -> dict[str, Any]:
    """A logistic regression of ``y`` on ``X``, as a fusion weights table (the file's format).

    The penalty's strength is chosen by cross-validated log loss (:data:`C_GRID`, :data:`CV_FOLDS`
    stratified folds) when each class has enough rows for it, else C = 1. A source's pass count that
    never exceeds 1 is left out: for a source that looks once it only says "proposed", which its
    score (0 when it proposed nothing) already says.
    """
    from sklearn.linear_model import LogisticRegression

    names, X, y = _design(feature_names, X, y)
    c = _strength(X, y)
    model = LogisticRegression(C=c, max_iter=5000).fit(X, y)
    sources = [name for name in names if not name.endswith(PASSES_SUFFIX)
               and name not in (ZOOMED_FULL_RANGE, ZOOMED_SHORT_RANGE)]
    description = f"{len(y)} proposal groups ({int(y.sum())} on labelled faces), logistic regression, C={c:.3g}"
    return check_fusion({
        "weights": {name: round(float(weight), DECIMALS) for name, weight in zip(names, model.coef_[0], strict=True)},
        "bias": round(float(model.intercept_[0]), DECIMALS),
        "sources": sources,
        "fitted_on": f"{fitted_on}: {description}" if fitted_on else description,
    }, "fit")


def threshold_table(feature_names: Sequence[str], X: np.ndarray, y: np.ndarray,
                    thresholds: Sequence[float] = THRESHOLDS) -> list[dict[str, Any]]:
    """What each second-stage threshold would keep of these groups, by probabilities that :func:`fit`'s model
    gives each group from the folds it was not fitted on: a row per threshold with the groups kept, the faces
    among them, precision, recall (of the groups on faces: MTCNN's faces are not groups) and F1.

    On the photos it was fitted on, a model's probabilities flatter it; cross-validated ones show the
    trade-off a user gets on new photos of the same kind. In-sample probabilities when there are too few rows
    for folds (the table then says so in its ``probabilities`` column).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict

    _, X, y = _design(feature_names, X, y)
    model = LogisticRegression(C=_strength(X, y), max_iter=5000)
    folds = _folds(y)
    if folds is None:
        probabilities, how = model.fit(X, y).predict_proba(X)[:, 1], "in-sample"
    else:
        probabilities, how = cross_val_predict(model, X, y, cv=folds, method="predict_proba")[:, 1], "cross-validated"
    rows = []
    for threshold in thresholds:
        kept = probabilities >= threshold
        faces = int((kept & (y == 1)).sum())
        precision = faces / kept.sum() if kept.any() else float("nan")
        recall = faces / y.sum()
        f1 = 2 * precision * recall / (precision + recall) if faces else 0.0
        rows.append({"threshold": round(float(threshold), 4), "groups_kept": int(kept.sum()), "faces_kept": faces,
                     "precision": round(float(precision), 4), "recall": round(float(recall), 4),
                     "f1": round(float(f1), 4), "probabilities": how})
    return rows


def write_threshold_table(rows: Sequence[dict[str, Any]], path: str | os.PathLike) -> None:
    """The table as a CSV file."""
    import csv

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def threshold_summary(rows: Sequence[dict[str, Any]], default: float) -> str:
    """One line: where F1 peaks, and what the face stage's default threshold keeps."""
    best = max(rows, key=lambda row: row["f1"])
    line = (f"second-stage threshold ({rows[0]['probabilities']} on the groups): F1 peaks at {best['threshold']:g} "
            f"({best['f1']:.3f})")
    at_default = next((row for row in rows if abs(row["threshold"] - default) < 1e-9), None)
    if at_default is not None:
        line += (f"; at the default {default:g}: precision {at_default['precision']:.3f}, recall "
                 f"{at_default['recall']:.3f}, F1 {at_default['f1']:.3f}")
    return line


def save(fusion: dict[str, Any], path: str | os.PathLike) -> None:
    """Write a fusion weights table to ``path`` atomically (a reader never sees half a file)."""
    table = check_fusion(fusion, str(path))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(json.dumps(table, indent=2) + "\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load(path: str | os.PathLike) -> dict[str, Any]:
    """The fusion weights table in ``path``; a one-line ValueError when it is missing or malformed."""
    return load_fusion(path)


def collecting_detector(sources: Sequence[str] | None = None, preset: str = "accurate",
                        **settings: Any) -> FaceDetector:
    """A detector for :func:`collect`, as the face stage's ``preset`` runs (``sources`` and ``settings`` on top):
    it needs no fitted weights, but a detector checks that every source it runs has one, so it gets a table of
    zeros for its sources' features."""
    if sources is not None:
        settings["proposal_sources"] = tuple(sources)
    # the verifier only decides which groups are kept; collecting needs every group, so it is not loaded
    settings.setdefault("verifier_threshold", None)
    chosen = preset_settings(preset, **settings)
    source_names = chosen.source_names()
    with tempfile.TemporaryDirectory() as folder:
        neutral = Path(folder) / "neutral.json"
        save({"weights": dict.fromkeys(fusion_features(source_names), 0.0), "bias": 0.0,
              "sources": list(source_names), "fitted_on": "nothing (collecting features)"}, neutral)
        return FaceDetector(dataclasses.replace(chosen, fusion=str(neutral)))


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage plus a line
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(prog="python -m maskdetect.face.fusion_fit", description=__doc__.splitlines()[0])
    parser.add_argument("--annotations", nargs="+", required=True, type=Path,
                        help="labelled photos: VOC folders, CSV files or YOLO folders (see maskdetect.annotations)")
    parser.add_argument("--output", required=True, type=Path, help="the fusion weights file to write")
    parser.add_argument("--limit", type=int, default=0, help="only the first N labelled photos; 0: all")
    parser.add_argument("--preset", choices=tuple(PRESETS), default="accurate",
                        help="the face-stage preset the weights are for (default %(default)s)")
    parser.add_argument("--sources", nargs="+", default=None,
                        help="proposal sources to run (default: the preset's)")
    parser.add_argument("--holdout", type=float, default=0.0, metavar="SHARE",
                        help="only the photos train_face_detector.py holds out of the face finder's training with "
                        "this --holdout (fit on photos the finder never saw); 0: every photo (default)")
    parser.add_argument("--match-iou", type=float, default=MATCH_IOU,
                        help=f"IoU with a labelled face for a group to count as a face (default {MATCH_IOU})")
    parser.add_argument("--fitted-on", default="",
                        help="what the photos are, for the file's fitted_on (default: the --annotations paths)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    runtime.configure_logging()

    def body() -> int:
        if args.limit < 0 or not 0 < args.match_iou <= 1 or not 0 <= args.holdout < 1:
            raise ValueError("--limit must be >= 0, --match-iou in (0, 1] and --holdout in [0, 1)")
        labels = annotations.Labels()
        for path in args.annotations:
            labels.extend(annotations.read(path))
        if args.holdout:
            labels.photos = [photo for photo in labels.photos if annotations.held_out(photo.image.name, args.holdout)]
        if args.limit:
            labels.photos = labels.photos[:args.limit]
        if not labels.photos:
            raise ValueError(f"no labelled photos in {' '.join(map(str, args.annotations))}")
        detector = collecting_detector(args.sources, args.preset)
        names, X, y, used = collect(labels, detector, args.match_iou, progress=not args.quiet)
        where = args.fitted_on or ", ".join(str(path) for path in args.annotations)
        if args.holdout:
            where = f"{where}, held out of the face finder's training (--holdout {args.holdout:g})"
        save(fit(names, X, y, fitted_on=f"{used} photos of {where}"), args.output)
        table = threshold_table(names, X, y)
        table_path = args.output.with_name(f"{args.output.stem}_thresholds.csv")
        write_threshold_table(table, table_path)
        print(f"{used} photos used, {len(y)} groups, {int(y.sum())} positives, {len(labels.photos) - used} skipped; "
              f"wrote {args.output}")
        print(f"{threshold_summary(table, DetectorSettings().second_stage_threshold)} -> {table_path}")
        return runtime.EXIT_OK

    return runtime.run_cli(body, "python -m maskdetect.face.fusion_fit: interrupted; nothing was written")

if __name__ == "__main__":
    sys.exit(main())
