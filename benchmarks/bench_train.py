"""Training speed of our tf.data pipeline against the tutorial way, accuracy on real faces, sweep trials/hour.

1. Speed (the default): the default configuration (``maskdetect.data.make_dataset``: decode and resize
   once, cache, shuffle, batch, ``light`` augmentation in the pipeline, prefetch; the ``small`` network at
   the default image size and batch size, Adam) against a naive baseline as older tutorials do it: every
   crop read with ``cv2.imread`` + ``cv2.resize`` into one float32 numpy array at the start of the run, then
   a ``keras.utils.PyDataset`` that augments each image in Python (random flip, a small rotation and zoom with
   ``cv2.warpAffine``). Same crops (the training split of ``grouped_split`` with the default shares), same
   network, optimizer, class weights, batch size and number of epochs; no validation and no early stopping on
   either side. Each side runs in a child process of its own (``--side``), so peak memory (ru_maxrss) and
   TensorFlow state are separate. Listing and checking the crops (``find_crops``) is done once, by the
   parent, and counted for neither side; importing TensorFlow and building the model are counted for neither.
   Our pipeline decodes lazily, so its first epoch includes the decoding the baseline does before training:
   compare the end-to-end rates, and see the per-epoch times for the steady state. After training, each
   side times one more pass over its (loaded) training input without the model: "input alone".
   ``--repeats N`` alternates the two sides N times and compares the best run of each.

       .venv/bin/python -m benchmarks.bench_train --data processed_data --epochs 3
       .venv/bin/python -m benchmarks.bench_train --data processed_data --epochs 3 --repeats 2

2. Generalisation (``--evaluate``): every ground-truth face labelled ``mask`` or ``without_mask`` in the
   detection set (``boxes.csv`` + ``images/``; ``incorrect_mask`` faces and faces under 32 px on the short
   side are skipped and counted) is cut with the pipeline's geometry (``facecrops.crop_face(rgb, box, 0.2,
   256)``), passed through the same JPEG (quality 95) the face stage writes, decoded and resized exactly as
   ``make_dataset`` does (``artifact.classifier_input``: ``tf.image.resize`` with antialias, rounded to uint8),
   and classified by the saved model, each face's class decided by the model's decision weights as detection
   decides. Prints accuracy per class and overall, and the confusion matrix.

       .venv/bin/python -m benchmarks.bench_train --evaluate logs/runs/<run>/model.keras
       .venv/bin/python -m benchmarks.bench_train --evaluate logs/runs/<run>/model.keras \\
           --detection /work/shared/data/detection --limit 50

3. Sweep throughput (``--sweep``): trials/hour with ``auto_train.py --jobs 1`` against ``--jobs 2``. Both sides
   sweep the same grid (4 trials: batch size 32 and 64, kernel size 3 and 5, the ``small`` network at
   --image-size, 64 px unless given, --epochs each, no early stop in 3 epochs) on the same crops, each into a
   fresh log folder, one after the other; ``--repeats N`` alternates them N times and keeps each side's best.
   ``--jobs 1`` gives its one trial all the cores (TensorFlow threads = cores); ``--jobs 2`` gives each of its two
   trials half of them. Trials/hour counts completed trials over the whole sweep's wall time, start-up of each
   child (TensorFlow import, crop check) included, as a user experiences it. ``--per-class N`` sweeps a copy of
   the first N crops of each class.

       .venv/bin/python -m benchmarks.bench_train --sweep --data processed_data
       .venv/bin/python -m benchmarks.bench_train --sweep --data processed_data --per-class 600 --epochs 2

Each mode's result lines are written to --out as results.json and results.csv.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import (
    DEFAULT_DETECTION,
    MIN_FACE,
    REPO,
    add_out_argument,
    has_detection_set,
    load_photo,
    write_results,
)
from maskdetect import artifact, data, decisions, facecrops, images, records, runlog, runtime, sweep, train

NAME = "bench_train"

EVALUATED_LABELS = ("mask", "without_mask")
CROP_MARGIN = 0.2
CROP_SIZE = 256
CROP_QUALITY = 95  # facecrops.atomic_write_image's JPEG quality
SIDES = ("baseline", "ours")
SWEEP_IMAGE_SIZE = 64  # the sweep's grid: the small network at 64 px unless --image-size says otherwise


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = train.Settings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="processed_data", help="folder of <class>/ crops (default %(default)s)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs on each side (default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="(default %(default)s)")
    parser.add_argument("--image-size", type=int, default=None,
                        help=f"(default {defaults.image_size}; with --sweep, {SWEEP_IMAGE_SIZE})")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="(default %(default)s)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="run baseline and ours this many times, alternating; the best of each is compared "
                        "(default %(default)s)")
    parser.add_argument("--evaluate", metavar="MODEL.keras",
                        help="instead of the speed test: accuracy of this model on faces cut from --detection")
    parser.add_argument("--detection", type=Path, default=DEFAULT_DETECTION,
                        help="folder with boxes.csv and images/ (default %(default)s)")
    parser.add_argument("--limit", type=int, default=0,
                        help="--evaluate: only the first N photos (sorted by name); 0: all (default)")
    parser.add_argument("--sweep", action="store_true",
                        help="instead of the speed test: sweep trials/hour with --jobs 1 against --jobs 2")
    parser.add_argument("--per-class", type=int, default=0,
                        help="--sweep: use only the first N crops of each class (default: all)")
    add_out_argument(parser, NAME)
    # internal: one side of the speed test, run in a child process
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--crops", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.image_size is None:
        args.image_size = SWEEP_IMAGE_SIZE if args.sweep else defaults.image_size
    if args.epochs < 1 or args.batch_size < 1 or args.repeats < 1 or args.limit < 0 or args.per_class < 0:
        parser.error("--epochs, --batch-size and --repeats must be at least 1, --limit and --per-class at least 0")
    if args.sweep and args.evaluate:
        parser.error("--sweep and --evaluate are two modes: one at a time")
    if not 32 <= args.image_size <= 512:
        parser.error("--image-size must be between 32 and 512")
    if args.side and not (args.crops and args.result):
        parser.error("--side needs --crops and --result")
    if args.evaluate and not has_detection_set(args.detection):
        parser.error(f"{args.detection} has no boxes.csv and images/ (see --detection)")
    return args


# ---------------------------------------------------------------------------------------------
# Part 1: speed. The parent lists the crops once; each side runs in a child process.


def import_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with runtime.native_stderr_silenced():
        import keras
        import tensorflow as tf

        tf.constant(0)  # TensorFlow logs its device search at the first operation
    return keras, tf


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def make_baseline_sequence(keras, pixels: np.ndarray, labels: np.ndarray, batch_size: int, seed: int):
    """The tutorial generator: a PyDataset that shuffles the index each epoch and augments image by image."""
    import cv2

    class Augmented(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.rng = np.random.default_rng(seed)
            self.order = self.rng.permutation(len(pixels))

        def __len__(self):
            return math.ceil(len(pixels) / batch_size)

        def __getitem__(self, index):
            chosen = self.order[index * batch_size : (index + 1) * batch_size]
            batch = []
            for image in pixels[chosen]:
                if self.rng.random() < 0.5:
                    image = image[:, ::-1]
                side = image.shape[0]
                # the same ranges as the light preset: rotation 0.04 of a turn, zoom +-10 %
                angle = self.rng.uniform(-0.04, 0.04) * 360
                scale = self.rng.uniform(0.9, 1.1)
                matrix = cv2.getRotationMatrix2D((side / 2, side / 2), angle, scale)
                batch.append(cv2.warpAffine(np.ascontiguousarray(image), matrix, (side, side),
                                            borderMode=cv2.BORDER_REFLECT_101))
            return np.stack(batch), labels[chosen]

        def on_epoch_end(self):
            self.order = self.rng.permutation(len(pixels))

    return Augmented()


def run_side(args: argparse.Namespace) -> int:
    """One side of the speed test, in its own process; writes its timings to --result as JSON."""
    crops = json.loads(Path(args.crops).read_text())
    paths, labels = crops["paths"], np.asarray(crops["labels"], dtype=np.int64)
    classes = len(crops["class_names"])
    keras, tf = import_tensorflow()
    from maskdetect import models

    keras.utils.set_random_seed(args.seed)
    start = time.perf_counter()
    if args.side == "ours":
        augment = models.build_augmentation("light", args.seed)
        training = data.make_dataset(paths, labels, args.image_size, args.batch_size, shuffle=True, seed=args.seed,
                                     augment=augment)
    else:
        import cv2

        loaded = []
        for path in paths:
            image = cv2.imread(path)
            if image is None:
                raise ValueError(f"cv2.imread cannot read {path}")
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
            loaded.append(cv2.resize(image, (args.image_size, args.image_size)))
        pixels = np.array(loaded, dtype="float32")  # as the tutorials keep it
        del loaded
        training = make_baseline_sequence(keras, pixels, labels, args.batch_size, args.seed)
    prepare_seconds = time.perf_counter() - start

    settings = train.Settings(batch_size=args.batch_size, image_size=args.image_size, epochs=args.epochs)
    model = models.build_model(settings.model, settings.image_size, settings.kernel_size, classes)
    model.compile(optimizer=train.make_optimizer(settings, settings.rate),
                  loss="binary_crossentropy" if classes == 2 else "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    epoch_seconds: list[float] = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.began = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epoch_seconds.append(time.perf_counter() - self.began)

    start = time.perf_counter()
    history = model.fit(training, epochs=args.epochs, class_weight=data.class_weights(labels, classes),
                        callbacks=[EpochTimer()], verbose=0)
    train_seconds = time.perf_counter() - start
    # the input side alone: one more pass over the (now loaded) training input, no model
    start = time.perf_counter()
    if args.side == "ours":
        for _ in training:
            pass
    else:
        for index in range(len(training)):
            training[index]
        training.on_epoch_end()
    input_seconds = time.perf_counter() - start
    result = {"side": args.side, "images": len(paths), "epochs": args.epochs, "prepare_seconds": prepare_seconds,
              "train_seconds": train_seconds, "epoch_seconds": epoch_seconds, "input_seconds": input_seconds,
              "final_accuracy": float(history.history["accuracy"][-1]), "peak_rss_mib": peak_rss_mib()}
    Path(args.result).write_text(json.dumps(result))
    return runtime.EXIT_OK


def run_child(side: str, args: argparse.Namespace, crops_file: Path, work: Path) -> dict:
    result_file = work / f"{side}.json"
    result_file.unlink(missing_ok=True)
    command = [sys.executable, "-m", "benchmarks.bench_train", "--side", side, "--crops", str(crops_file),
               "--result", str(result_file), "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
               "--image-size", str(args.image_size), "--seed", str(args.seed)]
    # the child imports the benchmarks package from the repository, wherever it runs
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    finished = subprocess.run(command, capture_output=True, text=True, env=environment)
    if finished.returncode != 0 or not result_file.is_file():
        sys.stderr.write(finished.stderr[-4000:])
        raise RuntimeError(f"the {side} side failed with exit status {finished.returncode}")
    return json.loads(result_file.read_text())


def rates(result: dict) -> dict:
    seen = result["images"] * result["epochs"]
    later = result["epoch_seconds"][1:]
    return {
        "train": seen / result["train_seconds"],
        "end_to_end": seen / (result["prepare_seconds"] + result["train_seconds"]),
        "steady": result["images"] * len(later) / sum(later) if later else float("nan"),
        "input": result["images"] / result["input_seconds"],
    }


def number(value: float, spec: str = "7.1f") -> str:
    """``value`` formatted, or n/a for NaN (no epoch after the first)."""
    return "n/a" if math.isnan(value) else format(value, spec)


def describe(name: str, result: dict) -> str:
    rate = rates(result)
    epochs = ", ".join(f"{seconds:.1f}" for seconds in result["epoch_seconds"])
    return (f"{name:9s} load/prepare {result['prepare_seconds']:7.1f} s | training {result['train_seconds']:7.1f} s "
            f"(epochs: {epochs} s) | {rate['train']:7.1f} images/s training, {number(rate['steady'])} after epoch 1, "
            f"{rate['end_to_end']:7.1f} end-to-end, {rate['input']:7.1f} input alone | "
            f"peak RSS {result['peak_rss_mib']:7.0f} MiB | final training accuracy {result['final_accuracy']:.3f}")


def speed(args: argparse.Namespace) -> int:
    crops = data.find_crops(args.data, runtime.default_jobs())
    defaults = train.Settings()
    shares = (1 - defaults.val_split - defaults.test_split, defaults.val_split, defaults.test_split)
    train_idx = data.grouped_split(crops.labels, crops.groups, shares, args.seed)[0]
    counts = np.bincount(crops.labels[train_idx], minlength=len(crops.class_names))
    print(f"data: {args.data}: {len(crops.paths)} crops, {crops.skipped} skipped; training split {len(train_idx)} ("
          + ", ".join(f"{name} {count}" for name, count in zip(crops.class_names, counts, strict=True)) + ")")
    print(f"config: small network, {args.image_size} px, batch {args.batch_size}, {args.epochs} epochs, light "
          f"augmentation, Adam; no validation, no early stopping; {runtime.default_jobs()} cores")
    with tempfile.TemporaryDirectory(prefix="bench_train_") as folder:
        work = Path(folder)
        crops_file = work / "crops.json"
        crops_file.write_text(json.dumps({"paths": [crops.paths[i] for i in train_idx],
                                          "labels": crops.labels[train_idx].tolist(),
                                          "class_names": crops.class_names}))
        results: dict[str, list[dict]] = {side: [] for side in SIDES}
        for repeat in range(args.repeats):
            for side in SIDES:
                result = run_child(side, args, crops_file, work)
                results[side].append(result)
                label = f"{side}" if args.repeats == 1 else f"{side}#{repeat + 1}"
                print(describe(label, result), flush=True)
    best = {side: min(runs, key=lambda result: result["prepare_seconds"] + result["train_seconds"])
            for side, runs in results.items()}
    ours, base = rates(best["ours"]), rates(best["baseline"])
    memory = best["ours"]["peak_rss_mib"] / best["baseline"]["peak_rss_mib"]
    steady = ours["steady"] / base["steady"] if args.epochs > 1 else float("nan")
    print(f"speed-up: ours/baseline {ours['train'] / base['train']:.2f}x training images/s, "
          f"{number(steady, '.2f')}{'' if math.isnan(steady) else 'x'} after epoch 1, "
          f"{ours['end_to_end'] / base['end_to_end']:.2f}x end-to-end "
          f"(loading included), {ours['input'] / base['input']:.2f}x input alone; peak RSS ratio {memory:.2f}")
    rows = [{"mode": "speed", **best[side], "images_per_s": rates(best[side])} for side in SIDES]
    rows.append({"mode": "speed", "side": "ours/baseline", "train": ours["train"] / base["train"],
                 "steady": steady, "end_to_end": ours["end_to_end"] / base["end_to_end"],
                 "input": ours["input"] / base["input"], "peak_rss": memory})
    report_written(write_results(args.out, rows))
    return runtime.EXIT_OK


def report_written(paths: tuple[Path, Path]) -> None:
    print(f"results: {paths[0]}, {paths[1]}")


# ---------------------------------------------------------------------------------------------
# Part 2: generalisation to faces cut from the labelled detection photos.


def as_training_input(tf, crop: np.ndarray, image_size: int) -> np.ndarray:
    """A 256 px crop as the training pipeline sees it: saved as JPEG by the face stage, then decoded and
    resized as ``data.make_dataset`` resizes (``artifact.classifier_input``: tf.image.resize with antialias,
    rounded and clipped to uint8)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(crop).save(buffer, "JPEG", quality=CROP_QUALITY)
    image = tf.io.decode_image(buffer.getvalue(), channels=3, expand_animations=False)
    return artifact.classifier_input(image, image_size).numpy()


def generalisation(args: argparse.Namespace) -> int:
    from sklearn import metrics

    _, tf = import_tensorflow()
    model, meta = artifact.load_model(args.evaluate)
    class_names, image_size = list(meta["class_names"]), int(meta["image_size"])
    faces_by_photo: dict[str, list[dict]] = {}
    with open(args.detection / "boxes.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            faces_by_photo.setdefault(row["image"], []).append(row)
    photos = sorted(faces_by_photo)[: args.limit or None]
    skipped = {"incorrect_mask": 0, "other label": 0, f"short side < {MIN_FACE} px": 0, "label not in model": 0,
               "box outside photo": 0, "photo unreadable": 0}
    pixels, truth = [], []
    start = time.perf_counter()
    for name in photos:
        rows = faces_by_photo[name]
        wanted = []
        for row in rows:
            box = tuple(float(row[key]) for key in ("xmin", "ymin", "xmax", "ymax"))
            if row["label"] == "incorrect_mask":
                skipped["incorrect_mask"] += 1
            elif row["label"] not in EVALUATED_LABELS:
                skipped["other label"] += 1
            elif min(box[2] - box[0], box[3] - box[1]) < MIN_FACE:
                skipped[f"short side < {MIN_FACE} px"] += 1
            elif row["label"] not in class_names:
                skipped["label not in model"] += 1
            else:
                wanted.append((row["label"], box))
        if not wanted:
            continue
        try:
            rgb = load_photo(args.detection / "images" / name, int(rows[0]["width"]), int(rows[0]["height"]))
        except OSError:
            skipped["photo unreadable"] += len(wanted)
            continue
        for label, box in wanted:
            try:
                crop = facecrops.crop_face(rgb, box, CROP_MARGIN, CROP_SIZE)
            except ValueError:
                skipped["box outside photo"] += 1
                continue
            pixels.append(as_training_input(tf, crop, image_size))
            truth.append(class_names.index(label))
    if not pixels:
        raise ValueError("no face left to evaluate")
    probabilities = artifact.predict_probabilities(model, np.stack(pixels))
    seconds = time.perf_counter() - start
    # decided as detection decides: by the model's decision weights (plain argmax for a model without them)
    truth_array = np.asarray(truth)
    predicted = decisions.decide(probabilities, decisions.decision_weights(meta))
    print(f"model: {args.evaluate} (classes {', '.join(class_names)}; {image_size} px)")
    print(f"photos: {len(photos)} of {len(faces_by_photo)} in {args.detection}; faces evaluated: {len(truth)} in "
          f"{seconds:.1f} s; skipped: " + ", ".join(f"{count} {why}" for why, count in skipped.items() if count))
    evaluated = [index for index, name in enumerate(class_names) if name in EVALUATED_LABELS]
    rows = []
    for index in evaluated:
        chosen = truth_array == index
        if chosen.any():
            correct = int((predicted[chosen] == index).sum())
            print(f"accuracy {class_names[index]:14s} {correct / chosen.sum():.4f} ({correct}/{int(chosen.sum())})")
            rows.append({"mode": "evaluate", "model": args.evaluate, "label": class_names[index], "faces":
                         int(chosen.sum()), "correct": correct, "accuracy": correct / chosen.sum()})
    correct = int((predicted == truth_array).sum())
    print(f"accuracy {'overall':14s} {correct / len(truth_array):.4f} ({correct}/{len(truth_array)})")
    rows.append({"mode": "evaluate", "model": args.evaluate, "label": "overall", "faces": len(truth_array),
                 "correct": correct, "accuracy": correct / len(truth_array), "skipped": skipped})
    matrix = metrics.confusion_matrix(truth_array, predicted, labels=list(range(len(class_names))))
    width = max(14, *(len(name) + 2 for name in class_names))
    print("confusion matrix (rows: true label, columns: predicted):")
    print(" " * width + "".join(f"{name:>{width}}" for name in class_names))
    for index in evaluated:
        print(f"{class_names[index]:<{width}}" + "".join(f"{count:>{width}}" for count in matrix[index]))
    report_written(write_results(args.out, rows))
    return runtime.EXIT_OK


# ---------------------------------------------------------------------------------------------
# Part 3: sweep throughput, auto_train.py --jobs 1 against --jobs 2.


def subset(data_folder: Path, per_class: int, target: Path) -> Path:
    """The first ``per_class`` crops of each class, copied (with faces.csv, for the grouped split)."""
    for folder in images.class_dirs(data_folder):
        (target / folder.name).mkdir(parents=True)
        for path in sorted(folder.iterdir())[:per_class]:
            if path.is_file():
                shutil.copy2(path, target / folder.name / path.name)
    manifest = data_folder / "faces.csv"
    if manifest.is_file():
        rows = [row for row in records.read_rows(manifest)
                if (target / Path(row.get("crop", "")).parent.name / Path(row.get("crop", "")).name).is_file()]
        for row in rows:
            row["crop"] = str((target / Path(row["crop"]).parent.name / Path(row["crop"]).name).resolve())
        if rows:
            records.append_rows(target / "faces.csv", list(rows[0]), rows)
    return target


def one_sweep(data_folder: Path, jobs: int, grid: list[str], scratch: Path) -> tuple[float, int, list[dict]]:
    """Seconds, completed trials and their log rows of one ``auto_train.py --jobs jobs`` sweep of ``grid``."""
    logs = scratch / f"logs_jobs{jobs}_{time.monotonic_ns()}"
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = sweep.main(["--data", str(data_folder), "--logs", str(logs), "--jobs", str(jobs), *grid])
    seconds = time.perf_counter() - start
    rows = records.read_rows(logs / runlog.LOG_NAME)
    completed = [row for row in rows if row.get("status") in runlog.COMPLETED]
    if code != 0 or len(completed) != len(rows):
        raise SystemExit(f"the --jobs {jobs} sweep failed (exit {code}); see {logs}")
    return seconds, len(completed), completed


def sweep_speed(args: argparse.Namespace) -> int:
    grid = ["--model", "small", "--epochs", str(args.epochs), "--image-size", str(args.image_size),
            "--batch-size", "32", "64", "--kernel-size", "3", "5"]
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as scratch_text:
        scratch = Path(scratch_text)
        crops_folder = subset(Path(args.data), args.per_class, scratch / "crops") if args.per_class else Path(args.data)
        crops = sum(1 for folder in images.class_dirs(crops_folder) for path in folder.iterdir() if path.is_file())
        best: dict[int, tuple[float, int, list[dict]]] = {}
        for repeat in range(args.repeats):
            for jobs in (1, 2):
                result = one_sweep(crops_folder, jobs, grid, scratch)
                print(f"[repeat {repeat + 1}] --jobs {jobs}: {result[1]} trials in {result[0]:.1f} s = "
                      f"{result[1] / result[0] * 3600:.1f} trials/hour", flush=True)
                if jobs not in best or result[0] < best[jobs][0]:
                    best[jobs] = result
    print(f"grid: {' '.join(grid)}; {crops} crops; {runtime.default_jobs()} cores")
    rows = []
    for jobs, (seconds, trials, log_rows) in best.items():
        mean_train = sum(float(row["train_seconds"]) for row in log_rows) / len(log_rows)
        accuracy = ", ".join(f"{float(row['val_accuracy']):.4f}" for row in log_rows)
        print(f"--jobs {jobs}: {trials} trials in {seconds:6.1f} s = {trials / seconds * 3600:6.1f} trials/hour "
              f"(fit {mean_train:.1f} s per trial on average; validation accuracy {accuracy})")
        rows.append({"mode": "sweep", "jobs": jobs, "trials": trials, "seconds": seconds,
                     "trials_per_hour": trials / seconds * 3600, "mean_fit_seconds": mean_train,
                     "val_accuracy": [float(row["val_accuracy"]) for row in log_rows], "crops": crops,
                     "grid": " ".join(grid)})
    ratio = best[1][0] / best[2][0]
    print(f"--jobs 2 against --jobs 1: {ratio:.2f}x the trials/hour")
    rows.append({"mode": "sweep", "jobs": "2 against 1", "trials_per_hour_ratio": ratio})
    report_written(write_results(args.out, rows))
    return runtime.EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runtime.configure_logging()
    if args.side:
        return run_side(args)
    if args.evaluate:
        return runtime.run_cli(lambda: generalisation(args), "bench_train: interrupted")
    if args.sweep:
        return runtime.run_cli(lambda: sweep_speed(args), "bench_train: interrupted")
    return runtime.run_cli(lambda: speed(args), "bench_train: interrupted")


if __name__ == "__main__":
    sys.exit(main())
