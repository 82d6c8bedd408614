"""Which training recipe gets people in street photos right: training data, ImageNet weights, two or three classes.

Each row trains one model with ``train_a_model.py`` (the real command, in a child process) on a recipe of
training crops, then scores it end to end on the labelled street photos of the detection set, which nothing
here is trained on:

  faces       --faces: the user's crops of a close-up collection (e.g. faces_dataset through ./preprocess.sh);
  wild        --wild: a labelled street-photo set (VOC, CSV or YOLO; default ../shared/data/wild), cut with
              ``process_faces.py --annotations`` into the work folder (its incorrect_mask faces only in rows
              with three classes); wild3: the same faces three times over (oversampled).

The face stage runs once over the detection photos (cached in ``<work>/found_*.npz``); every row's classifier
is then scored on the same found faces by the benchmarks' end-to-end scorer (``benchmarks.common.EndToEnd``),
once as the model decides (its decision weights) and once by plain argmax. Printed per row and class, for
labelled faces whose short side is at least --min-size px: the face stage's recall, end to end (found AND
called right), the classifier on found faces, the ROC AUC of P(without_mask) between found mask and
without_mask faces (how well the model ranks, whatever the threshold), and the training minutes. Targets for
the default training: unmasked end to end within 4 points of the face stage's recall, masked within 2.

Rows already scored are kept in ``<work>/results.json``: a rerun with the same --work trains only the rows
it lacks, so the experiment can be run a row at a time (``--rows``).

    .venv/bin/python -m experiments.street_recipes --faces /tmp/fd/processed_data --work /tmp/street_recipes
    .venv/bin/python -m experiments.street_recipes --faces F --work W --rows wild/mobilenetv2 --train-flags '--epochs 3'
    .venv/bin/python -m experiments.street_recipes --faces F --work W --rows faces+wild/mobilenetv2-128px --seed 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import (
    DEFAULT_DETECTION,
    DEFAULT_WILD,
    MATCH_IOU,
    MIN_FACE,
    REPO,
    EndToEnd,
    benchmark_label,
    found_faces,
    require_detection_set,
)
from maskdetect import annotations, facecrops, images, records, runlog, runtime
from maskdetect.artifact import load_classifier
from maskdetect.faces import annotations_summary

TWO = ("mask", "without_mask")
THREE = ("incorrect_mask", "mask", "without_mask")
# ImageNet MobileNetV2 alpha 0.35 at 96 px, 12 epochs at most (3 on the frozen trunk, then fine-tuning)
MOBILENET = ("--model", "mobilenetv2", "--image-size", "96", "--epochs", "12")
# the small network from scratch: 64 px, 30 epochs at most
SMALL = ("--model", "small", "--image-size", "64", "--epochs", "30")
# name: (sources, classes, train_a_model.py flags beyond the common ones)
ROWS = {
    "faces/small": (("faces",), TWO, SMALL),
    "faces/mobilenetv2": (("faces",), TWO, MOBILENET),
    "faces+wild/small": (("faces", "wild"), TWO, SMALL),
    "faces+wild/mobilenetv2-scratch": (("faces", "wild"), TWO, (*MOBILENET, "--weights", "none")),
    "faces+wild/mobilenetv2": (("faces", "wild"), TWO, MOBILENET),
    "faces+wild/mobilenetv2-3class": (("faces", "wild"), THREE, MOBILENET),
    "wild/mobilenetv2": (("wild",), TWO, MOBILENET),
    "faces+wild3/mobilenetv2": (("faces", "wild3"), TWO, MOBILENET),
    "faces+wild/mobilenetv2-128px": (("faces", "wild"), TWO, (*MOBILENET, "--image-size", "128", "--epochs", "20")),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, required=True, help="the close-up collection's crops (<class>/)")
    parser.add_argument("--wild", type=Path, default=DEFAULT_WILD, help="labelled street photos (default %(default)s)")
    parser.add_argument("--detection", type=Path, default=DEFAULT_DETECTION,
                        help="labelled photos to score on: boxes.csv + images/ (default %(default)s)")
    parser.add_argument("--work", type=Path, required=True, help="data sets, models, caches and results.json")
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS), help="(default: all)")
    parser.add_argument("--train-flags", default="", help="more train_a_model.py flags for every row, e.g. "
                        "'--epochs 10 --image-size 96'")
    parser.add_argument("--wild-min-face", type=int, default=annotations.DEFAULT_MIN_FACE,
                        help="short side (px) of the wild faces trained on (default %(default)s)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N detection photos; 0: all")
    parser.add_argument("--min-size", type=int, default=MIN_FACE, help="short side (px) of the faces counted")
    parser.add_argument("--iou", type=float, default=MATCH_IOU, help="IoU for a box to match a labelled face")
    parser.add_argument("--seed", type=int, default=42,
                        help="train_a_model.py's --seed (split, initial weights, order); rows trained with "
                             "another seed than %(default)s are rows of their own, named '<row> seed<N>'")
    parser.add_argument("--again", action="store_true", help="train and score the chosen rows again")
    args = parser.parse_args(argv)
    require_detection_set(parser, args.detection)
    for folder in (args.faces, args.wild):
        if not folder.exists():
            parser.error(f"{folder} does not exist")
    return args


def wild_crops(args: argparse.Namespace) -> Path:
    output = args.work / f"wild_crops_{args.wild_min_face}"
    labels = annotations.read(args.wild)
    # every label, incorrect_mask too: the rows with three classes measure what a rare class does
    counts = annotations.crop(labels, output, facecrops.CropSettings(), min_face=args.wild_min_face, progress=False,
                              min_label_faces=0)
    print(annotations_summary(counts))
    return output


def build_data(folder: Path, sources: dict[str, Path], classes: tuple[str, ...]) -> Path:
    """``folder``/<class>/ of hard links to the sources' crops, with a faces.csv naming the links, so the
    training split still keeps the faces of one photo together."""
    if (folder / facecrops.MANIFEST).is_file():
        return folder
    rows = []
    for source_name, source in sources.items():
        repeats = 3 if source_name.endswith("3") else 1
        by_crop = {str(Path(row["crop"]).resolve()): row for row in records.read_rows(source / facecrops.MANIFEST)}
        for name in classes:
            if not (source / name).is_dir():
                continue
            (folder / name).mkdir(parents=True, exist_ok=True)
            for path in images.walk_files(source / name):
                for repeat in range(repeats):
                    link = folder / name / f"{source.name}_{repeat}_{path.name}"
                    if not link.exists():
                        os.link(path, link)
                    row = by_crop.get(str(path.resolve()))
                    if row:  # the copies keep the photo's group: all on one side of the split
                        rows.append({**row, "crop": str(link.resolve())})
    records.append_rows(folder / facecrops.MANIFEST, facecrops.FACE_FIELDS, rows)
    return folder


def train_row(name: str, data: Path, flags: tuple[str, ...], args: argparse.Namespace) -> dict:
    logs = args.work / "logs"
    command = [sys.executable, str(REPO / "train_a_model.py"), "--data", str(data), "--logs", str(logs),
               "--notes", f"street_recipes {name}", "--seed", str(args.seed), *flags, *args.train_flags.split()]
    print(f"\n== {name}: {' '.join(command[1:])}", flush=True)
    started = time.perf_counter()
    finished = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    (args.work / f"train_{name.replace('/', '_').replace(' ', '_')}.log").write_text(finished.stdout)
    if finished.returncode != 0:
        raise RuntimeError(f"{name}: train_a_model.py failed:\n{finished.stdout[-2000:]}")
    row = [row for row in records.read_rows(logs / runlog.LOG_NAME) if row["notes"] == f"street_recipes {name}"][-1]
    print(finished.stdout.strip().splitlines()[-1])
    return {"model": row["model_path"], "minutes": round((time.perf_counter() - started) / 60, 1),
            "train_minutes": round(float(row["train_seconds"]) / 60, 1), "val_accuracy": row["val_accuracy"],
            "train_size": row["train_size"], "epochs_run": row["epochs_run"]}


def score(model: str, found: dict) -> dict:
    """Per class: faces found, and of them called right; predictions on every found face; the AUC."""
    from sklearn import metrics

    classifier = load_classifier(model)
    crops, labels = found["crops"], found["labels"]
    probabilities = np.concatenate([classifier.probabilities(crops[start:start + 128])
                                    for start in range(0, len(crops), 128)])
    names = classifier.class_names
    result = {"classes": names, "decision_weights": classifier.decision_weights}
    # as the model decides (its decision weights from street faces), and by plain argmax
    for key, weights in (("per_class", classifier.decision_weights), ("per_class_argmax", None)):
        tally = EndToEnd(names, weights)
        tally.add_found(labels, probabilities)
        result[key] = {label: {"found": tally.found[label], "right": tally.correct[label],
                               "called": {name: tally.confusion[label][benchmark_label(name)] for name in names}}
                       for label in THREE}
    both = np.isin(labels, TWO)
    result["auc"] = float(metrics.roc_auc_score(labels[both] == "without_mask",
                                                probabilities[both, names.index("without_mask")]))
    return result


def report(results: dict, counted: dict, rows: list[str], key: str = "per_class") -> None:
    print("\n" + ("as each model decides (decision weights fitted on the validation street faces)"
                  if key == "per_class" else "plain argmax (a 0.5 threshold for two classes)"))
    print(f"{'row':32s} {'class':15s} {'faces':>6s} {'recall':>7s} {'end-to-end':>10s} {'gap':>7s} "
          f"{'on found':>9s} {'AUC':>7s} {'train min':>9s}  target")
    for name in rows:
        result = results[name]
        for position, label in enumerate(THREE):
            total = counted.get(label, 0)
            entry = result[key][label]
            recall, end_to_end = entry["found"] / max(total, 1), entry["right"] / max(total, 1)
            gap = 100 * (recall - end_to_end)
            limit = {"mask": 2, "without_mask": 4}.get(label)
            if label not in result["classes"]:
                verdict = "not a class: called " + ", ".join(f"{k} {v}" for k, v in entry["called"].items())
            else:
                verdict = f"gap <= {limit}: {'met' if gap <= limit else 'missed'}" if limit else ""
            print(f"{name if position == 0 else '':32s} {label:15s} {total:6d} {recall:7.1%} {end_to_end:10.1%} "
                  f"{gap:5.1f} pt {entry['right'] / max(entry['found'], 1):9.1%} "
                  + (f"{result['auc']:7.4f} {result['train_minutes']:9.1f}" if position == 0 else f"{'':17s}")
                  + f"  {verdict}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runtime.configure_logging()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    def body() -> int:
        args.work.mkdir(parents=True, exist_ok=True)
        results_path = args.work / "results.json"
        results = json.loads(results_path.read_text()) if results_path.is_file() else {}
        found = found_faces(args.detection, args.work, args.limit, args.min_size, args.iou)
        print("labelled faces counted: " + ", ".join(f"{k} {v}" for k, v in sorted(found["counted"].items()))
              + f"; found by the face stage: {len(found['labels'])}")
        sources = {"faces": args.faces.resolve()}
        if any(source.startswith("wild") for name in args.rows for source in ROWS[name][0]):
            sources["wild"] = sources["wild3"] = wild_crops(args)
        for row_name in args.rows:
            row_sources, classes, flags = ROWS[row_name]
            # a row on street faces of another minimum size is a row of its own
            wild = any(source.startswith("wild") for source in row_sources)
            other_size = wild and args.wild_min_face != annotations.DEFAULT_MIN_FACE
            name = f"{row_name} min{args.wild_min_face}" if other_size else row_name
            name += f" seed{args.seed}" if args.seed != 42 else ""
            if name in results and not args.again:
                if "per_class_argmax" not in results[name]:  # a row scored without its argmax figures
                    results[name].update(score(results[name]["model"], found))
                    results_path.write_text(json.dumps(results, indent=2))
                continue
            folder = f"{'+'.join(row_sources)}_{len(classes)}" + (f"_min{args.wild_min_face}" if other_size else "")
            data = build_data(args.work / "data" / folder, {key: sources[key] for key in row_sources}, classes)
            trained = train_row(name, data, flags, args)
            results[name] = {**trained, **score(trained["model"], found)}
            results_path.write_text(json.dumps(results, indent=2))
            report(results, found["counted"], [name])
        done = sorted(results, key=lambda name: (list(ROWS).index(name.split(" ")[0]), name))
        report(results, found["counted"], done, "per_class_argmax")
        report(results, found["counted"], done)
        for name in done:
            print(f"{name}: decision weights {results[name].get('decision_weights')}, {results[name]['train_size']} "
                  f"training crops, {results[name]['epochs_run']} epochs, validation accuracy "
                  f"{results[name]['val_accuracy']}")
        return runtime.EXIT_OK

    return runtime.run_cli(body, "street_recipes: interrupted; finished rows are kept in results.json")


if __name__ == "__main__":
    sys.exit(main())
