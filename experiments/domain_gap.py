"""Where end-to-end accuracy is lost: the training set's faces versus faces like those the model is used on.

benchmarks/bench_detect.py measures the classifier on the faces the face stage finds in the labelled detection
photos. This experiment asks why it loses what it loses, by training the project's own classifier
(``train.run``, the same hyperparameters every time) on three data sets, in one run, and testing each on
held-out photos:

  training            --data alone (the user's crops, e.g. the processed faces_dataset);
  training+in-domain  --data plus the labelled faces of the other half of the detection photos, cropped from
                      their ground-truth boxes with the face stage's geometry;
  in-domain           those labelled faces alone.

The detection photos are split into two folds by a hash of their names; a model never sees a face of the
photos it is tested on. Each model is tested on the faces the face stage finds in the held-out fold (matched
to a labelled face at IoU >= --iou, short side >= --min-size px, as bench_detect counts them); the two folds'
counts are summed. Each found face is called by the benchmarks' end-to-end scorer
(``benchmarks.common.EndToEnd``) with its model's decision weights; these models have none (their validation
splits hold no street faces of known kind), so that is the largest probability. Printed per class: the
classifier's accuracy on found faces, end-to-end (found and right, over all labelled faces) and the gap to the
face stage's recall; and ROC AUC, which says how well the scores separate the classes whatever the decision
threshold. The data sets are hard links to the crops without faces.csv, so each model's own validation split
(it only drives early stopping here) is by crop, not photo.

    .venv/bin/python -m experiments.domain_gap --data processed_data
    .venv/bin/python -m experiments.domain_gap --data processed_data --epochs 5 --limit 200   # a quick look
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from benchmarks.common import (
    DEFAULT_DETECTION,
    FOLDS,
    MATCH_IOU,
    MIN_FACE,
    REPO,
    EndToEnd,
    collect,
    require_detection_set,
)
from maskdetect import facecrops, images, runtime, train
from maskdetect.artifact import load_classifier

SOURCES = ("training", "training+in-domain", "in-domain")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = train.Settings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / "processed_data",
                        help="the training crops, one folder per class (default %(default)s)")
    parser.add_argument("--detection", type=Path, default=DEFAULT_DETECTION,
                        help="folder with boxes.csv and images/ (default %(default)s)")
    parser.add_argument("--model", default=defaults.model, help="network (default %(default)s)")
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="(default %(default)s)")
    parser.add_argument("--image-size", type=int, default=defaults.image_size, help="(default %(default)s)")
    parser.add_argument("--augmentation", default=defaults.augmentation, help="(default %(default)s)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="(default %(default)s)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N photos (sorted by name); 0: all")
    parser.add_argument("--min-size", type=int, default=MIN_FACE, help="short side (px) of the faces counted")
    parser.add_argument("--iou", type=float, default=MATCH_IOU, help="IoU for a box to match a labelled face")
    parser.add_argument("--work", type=Path, help="keep the data sets and models here (default: a temporary "
                                                    "folder, removed at the end)")
    args = parser.parse_args(argv)
    if args.limit < 0 or args.min_size < 1 or not 0 < args.iou <= 1:
        parser.error("--limit >= 0, --min-size >= 1, 0 < --iou <= 1")
    require_detection_set(parser, args.detection)
    try:  # the hyperparameters are checked now, not after minutes of face detection
        train_settings(args, args.data, args.work or Path("."))
    except ValueError as error:
        parser.error(str(error))
    return args


def build_data(folder: Path, training: Path | None, labelled: dict, fold: int | None, class_names: list[str]) -> Path:
    """``folder``/<class>/: links to the training crops, plus the labelled faces of photos outside ``fold``."""
    for name in class_names:
        (folder / name).mkdir(parents=True, exist_ok=True)
        if training is not None:
            for path in images.walk_files(training / name):
                try:
                    os.link(path, folder / name / path.name)
                except OSError:  # another file system: a copy
                    shutil.copy2(path, folder / name / path.name)
    if fold is not None:
        for index in np.flatnonzero(labelled["folds"] != fold):
            label = str(labelled["labels"][index])
            facecrops.atomic_write_image(labelled["crops"][index], folder / label / f"in_domain_{index:05d}.jpg")
    return folder


def train_settings(args: argparse.Namespace, data: Path, work: Path) -> train.Settings:
    return train.Settings(model=args.model, epochs=args.epochs, image_size=args.image_size,
                          augmentation=args.augmentation, seed=args.seed, data=str(data), logs=str(work / "logs"),
                          notes=f"domain_gap {data.name}")


def train_model(args: argparse.Namespace, data: Path, work: Path) -> Path:
    started = time.perf_counter()
    row = train.run(train_settings(args, data, work))
    print(f"  {data.name}: {row['train_size']} training crops, {row['epochs_run']} epochs in "
          f"{time.perf_counter() - started:.0f} s; its own validation accuracy {row['val_accuracy']}", flush=True)
    return Path(row["model_path"])


def score(model_path: Path, found: dict, counted: Counter, fold: int) -> tuple[EndToEnd, np.ndarray, np.ndarray]:
    """The model on the faces found in ``fold``: their end-to-end tally (each decided by the model's decision
    weights; the labelled faces of the fold counted, from ``counted`` per (label, fold)), their labels and the
    model's class probabilities."""
    classifier = load_classifier(model_path)
    chosen = np.flatnonzero(found["folds"] == fold)
    probabilities = np.concatenate([classifier.probabilities(found["crops"][chosen[start:start + 128]])
                                    for start in range(0, len(chosen), 128)]
                                   or [np.zeros((0, len(classifier.class_names)))])
    labels = found["labels"][chosen]
    tally = EndToEnd.of(classifier)
    tally.add_found(labels, probabilities, {label: count for (label, of), count in counted.items() if of == fold})
    return tally, labels, probabilities


def report(results: dict, class_names: list[str]) -> None:
    from sklearn import metrics

    print("\nheld-out found faces, both folds summed (end-to-end = found and right / labelled faces):")
    print(f"  {'trained on':20s} {'class':14s} {'classifier':>10s} {'end-to-end':>10s} {'recall':>7s} "
          f"{'gap':>7s}   ROC AUC")
    for source in SOURCES:
        tally = EndToEnd(class_names)
        for fold_tally, _, _ in results[source]:
            tally.merge(fold_tally)
        labels = np.concatenate([labels for _, labels, _ in results[source]])
        probabilities = np.concatenate([probs for _, _, probs in results[source]])
        if len(class_names) == 2:
            auc = metrics.roc_auc_score(labels == class_names[1], probabilities[:, 1])
        else:
            auc = metrics.roc_auc_score(labels, probabilities, multi_class="ovr", labels=class_names)
        for position, name in enumerate(class_names):
            total, found, right = tally.counted[name], tally.found[name], tally.correct[name]
            recall, end_to_end = found / max(total, 1), right / max(total, 1)
            print(f"  {source if position == 0 else '':20s} {name:14s} {right / max(found, 1):10.1%} "
                  f"{end_to_end:10.1%} {recall:7.1%} {100 * (recall - end_to_end):5.1f} pt"
                  + (f"   {auc:.4f}" if position == 0 else ""))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runtime.configure_logging()

    def body() -> int:
        class_names = [path.name for path in images.class_dirs(args.data)]
        if not class_names:
            raise ValueError(f"{args.data} has no class folders of crops")
        work = args.work or Path(tempfile.mkdtemp(prefix="domain_gap_"))
        try:
            cache = collect(args.detection, class_names, args.limit, args.min_size, args.iou)
            found, labelled = cache["found"], cache["labelled"]
            per_fold = Counter(zip(labelled["folds"].tolist(), labelled["labels"].tolist(), strict=True))
            print("labelled in-domain faces: " + "; ".join(
                f"fold {fold}: " + ", ".join(f"{name} {per_fold[fold, name]}" for name in class_names)
                for fold in range(FOLDS)))
            results: dict[str, list] = {source: [] for source in SOURCES}
            print("training:", flush=True)
            alone = train_model(args, build_data(work / "training", args.data, labelled, None, class_names), work)
            for fold in range(FOLDS):
                results["training"].append(score(alone, found, cache["counted"], fold))
                for source, training in (("training+in-domain", args.data), ("in-domain", None)):
                    data = build_data(work / f"{source.replace('+', '_')}_fold{fold}", training, labelled, fold,
                                      class_names)
                    results[source].append(score(train_model(args, data, work), found, cache["counted"], fold))
            report(results, class_names)
        finally:
            if args.work is None:
                shutil.rmtree(work, ignore_errors=True)
        return runtime.EXIT_OK

    return runtime.run_cli(body, "domain_gap: interrupted")


if __name__ == "__main__":
    sys.exit(main())
