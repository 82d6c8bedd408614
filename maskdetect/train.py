"""Train one classifier on the face crops: split, fit, evaluate once on the test set, record everything.

A run writes ``<logs>/runs/<time>_<id>/`` (config.json, history.csv, metrics.json, model.keras and
plots) and appends one row to ``<logs>/training_log.csv``. The test set is touched once, at the end;
early stopping and the best weights are chosen on the validation set.

What a run may be set to is :mod:`maskdetect.settings`; the log's columns are :mod:`maskdetect.runlog`'s and
the model file's format :mod:`maskdetect.artifact`'s, so that the sweep, inference and the report read them
without this stage.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import logging
import math
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from maskdetect import artifact, data, decisions, facecrops, runlog, runtime
from maskdetect.settings import (
    ALPHAS,
    DEFAULT_ALPHA,
    DEFAULT_WARMUP_EPOCHS,
    FINE_TUNE_FACTOR,
    OPTIMIZERS,
    Settings,
)

log = logging.getLogger(__name__)


def make_optimizer(settings: Settings, rate: float):
    """The Keras optimizer ``settings.optimizer`` at learning rate ``rate`` (``settings.rate``, or a tenth of it
    to fine-tune a pretrained trunk); SGD with Nesterov momentum 0.9."""
    import keras

    if settings.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=rate, momentum=0.9, nesterov=True)
    return {"adam": keras.optimizers.Adam, "adamw": keras.optimizers.AdamW,
            "rmsprop": keras.optimizers.RMSprop}[settings.optimizer](learning_rate=rate)


def weights_file(settings: Settings) -> str | None:
    """The local file a pretrained trunk starts from: ``--weights FILE``, or Keras's ImageNet file, fetched
    into Keras's cache on first use; None from scratch. Raises a one-line ValueError when the ImageNet file
    is neither cached nor downloadable."""
    if not settings.pretrained:
        return None
    if settings.weights != "imagenet":
        return settings.weights
    with runtime.native_stderr_silenced():
        import keras  # noqa: F401  (TensorFlow's start-up lines go to stderr at import)
    from maskdetect import models

    return models.fetch_imagenet_weights(settings.alpha)


def run(settings: Settings, callbacks: Sequence = (), record: Callable[[dict], None] | None = None) -> dict:
    """Train, evaluate and record one run; returns its log row. Raises ValueError for bad data.

    ``record`` receives the row, also the row of a failed or interrupted run just before the error is
    raised again; the default appends it to ``<logs>/training_log.csv``. A sweep passes its own, so that
    the row reaches the driver, which alone writes the log.
    """
    if record is None:
        record = functools.partial(runlog.append_log, settings.logs)
    # a log folder that cannot be written, or a log that is another file, is one line now, not after the training
    runtime.check_writable(settings.logs, "--logs")
    runlog.check_log(Path(settings.logs) / runlog.LOG_NAME)
    jobs = settings.jobs or runtime.default_jobs()
    crops = data.find_crops(settings.data, jobs)
    shares = (1 - settings.val_split - settings.test_split, settings.val_split, settings.test_split)
    splits = data.grouped_split(crops.strata(), crops.groups, shares, settings.seed)
    for name, indices in zip(("train", "validation", "test"), splits, strict=True):
        present = np.bincount(crops.labels[indices], minlength=len(crops.class_names))
        empty = [crops.class_names[i] for i, count in enumerate(present) if count == 0]
        if empty:
            raise ValueError(f"too few images to split: the {name} set gets none of {', '.join(empty)} "
                             f"({len(crops.paths)} crops in all); add images or lower the split shares")
    # before the run folder exists: missing weights are a one-line error, not a failed run in the log
    weights = weights_file(settings)

    run_id = time.strftime("%Y%m%d-%H%M%S_") + uuid.uuid4().hex[:6]
    run_dir = Path(settings.logs) / "runs" / run_id
    run_dir.mkdir(parents=True)
    row = {**dataclasses.asdict(settings), "learning_rate": settings.rate, "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
           "run_id": run_id, "run_dir": str(run_dir), "data_size": len(crops.paths), "data_hash": crops.digest(),
           "classes": " ".join(crops.class_names), "train_size": len(splits[0]), "val_size": len(splits[1]),
           "test_size": len(splits[2]), "skipped_crops": crops.skipped, "code_version": runlog.code_version()}
    # the margin and size of the training crops: the model carries them so detection cuts faces alike
    crop = data.crop_geometry(settings.data, [crops.paths[index] for index in splits[0]])
    (run_dir / "config.json").write_text(json.dumps({**row, "split_seed": settings.seed, "crop": crop}, indent=2,
                                                    default=str))
    try:
        row.update(_train_and_evaluate(settings, crops, splits, run_dir, callbacks, weights, crop))
    except KeyboardInterrupt:
        row.update(status="interrupted", error="stopped by Ctrl-C")
        record(row)
        raise
    except Exception as error:  # recorded, then re-raised: a failed run leaves a row that says why
        if runtime.interrupt_requested():  # the KeyboardInterrupt, turned into an error of TensorFlow's
            row.update(status="interrupted", error=f"stopped by Ctrl-C (during {type(error).__name__})")
            record(row)
            raise KeyboardInterrupt from error
        row.update(status="failed", error=f"{type(error).__name__}: {error}"[:500])
        record(row)
        raise
    record(row)
    return row


def _train_and_evaluate(settings: Settings, crops: data.Crops, splits, run_dir: Path, callbacks,
                        weights: str | None, crop: dict) -> dict:
    with runtime.native_stderr_silenced():
        import keras
        import tensorflow as tf

        tf.constant(0)  # TensorFlow looks for GPUs at its first operation and logs it to stderr

    from maskdetect import models, plots

    keras.utils.set_random_seed(settings.seed)
    train_idx, val_idx, test_idx = splits
    paths = np.asarray(crops.paths)
    classes = len(crops.class_names)
    binary = classes == 2
    augment = models.build_augmentation(settings.augmentation, settings.seed)

    def dataset(indices, shuffle, augmentation=None, sample_weights=None):
        return data.make_dataset(paths[indices], crops.labels[indices], settings.image_size, settings.batch_size,
                                 shuffle=shuffle, seed=settings.seed, augment=augmentation,
                                 sample_weights=sample_weights)

    # Each class, among close-ups and among street faces, weighs alike in the loss (data.balanced_weights).
    train_ds = dataset(train_idx, True, augment, data.balanced_weights(crops.strata()[train_idx]))
    val_ds = dataset(val_idx, False)
    model = models.build_model(settings.model, settings.image_size, settings.kernel_size, classes, weights,
                               steps_per_epoch=math.ceil(len(train_idx) / settings.batch_size),
                               alpha=settings.alpha or DEFAULT_ALPHA)
    # A pretrained trunk: first the new head alone on the frozen trunk (random gradients from the head would
    # wreck the trunk's features), then everything at a tenth of the rate. From scratch: one phase.
    if settings.pretrained:
        warmup = min(settings.warmup_epochs, settings.epochs)
        phases = [(warmup, False, settings.rate), (settings.epochs, True, settings.rate * FINE_TUNE_FACTOR)]
    else:
        phases = [(settings.epochs, None, settings.rate)]
    stopper = models.EarlyStoppingOverPhases(monitor="val_loss", patience=6, restore_best_weights=True)
    history: dict[str, list] = {}
    start = time.perf_counter()
    for last_epoch, trunk_trainable, rate in phases:
        done = len(history.get("loss", []))
        if last_epoch <= done:
            continue
        if trunk_trainable is not None:
            models.set_trunk_trainable(model, trunk_trainable)
        model.compile(optimizer=make_optimizer(settings, rate),
                      loss="binary_crossentropy" if binary else "sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        # The same callbacks in each phase, so that history.csv keeps one set of columns; it is appended to.
        fit_callbacks = [
            stopper,
            keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=3, min_lr=1e-6),
            keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=done > 0),
            *callbacks,
        ]
        phase = model.fit(train_ds, validation_data=val_ds, initial_epoch=done, epochs=last_epoch,
                          callbacks=fit_callbacks, shuffle=False,  # the dataset shuffles itself
                          verbose=1 if sys.stdout.isatty() else 2)
        for key, values in phase.history.items():
            history.setdefault(key, []).extend(values)
        if model.stop_training:  # early stopping or a sweep's pruning: no next phase
            break
    train_seconds = time.perf_counter() - start
    epochs_run = len(history["loss"])
    val_loss, val_accuracy = model.evaluate(val_ds, verbose=0)
    best_epoch = int(np.argmin(history["val_loss"])) + 1
    # From here on the classifier is the saved one: each face and its mirror image, averaged (see
    # models.mirror_averaged); the decision weights are fitted on what detection will see.
    model = models.mirror_averaged(model)
    street = np.asarray([index for index in val_idx if crops.kinds and crops.kinds[index] == facecrops.ANNOTATED])
    decision = {"weights": None, "faces": [0] * classes, "why": "no street faces in the validation split"}
    if len(street):
        street_pixels = np.concatenate([batch for batch, _ in dataset(street, False)])
        decision = decisions.calibrate(crops.labels[street], artifact.predict_probabilities(model, street_pixels),
                                       crops.class_names)
    log.info("decision weights from %s validation street faces: %s", sum(decision["faces"]), decision)

    # the test set, once
    test_pixels = np.concatenate([batch for batch, _ in dataset(test_idx, False)])
    probabilities = artifact.predict_probabilities(model, test_pixels)
    truth = crops.labels[test_idx]
    predicted = decisions.decide(probabilities, decision["weights"])
    metrics = evaluate(truth, probabilities, crops.class_names, decision["weights"])
    model_path = run_dir / "model.keras"
    meta = {"class_names": crops.class_names, "image_size": settings.image_size, "binary": binary,
            "network": settings.model, "run_id": run_dir.name, "hyperparameters": settings.hyperparameters(),
            "crop": crop, "decision": decision, "mirror_averaged": True}
    artifact.save_with_meta(model, model_path, meta)
    metrics.update(decision=decision, val_accuracy=float(val_accuracy), val_loss=float(val_loss), epochs_run=epochs_run,
                   best_epoch=best_epoch, train_seconds=round(train_seconds, 1))
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    plots.learning_curves(history, run_dir / "curves.png")
    plots.confusion(metrics["confusion_matrix"], crops.class_names, run_dir / "confusion.png")
    if binary:
        plots.roc(truth, probabilities[:, 1], metrics["roc_auc"], crops.class_names, run_dir / "roc.png")
    wrong = np.flatnonzero(predicted != truth)
    plots.misclassified(test_pixels[wrong], truth[wrong], probabilities[wrong], crops.class_names,
                        run_dir / "misclassified.png")
    print(metrics["report"])
    images_seen = len(train_idx) * epochs_run
    return {
        "epochs_run": epochs_run, "best_epoch": best_epoch, "stopped_early": epochs_run < settings.epochs,
        "train_seconds": round(train_seconds, 1), "images_per_second": round(images_seen / train_seconds, 1),
        "train_accuracy": round(float(history["accuracy"][best_epoch - 1]), 4),
        "val_accuracy": round(float(val_accuracy), 4), "val_loss": round(float(val_loss), 4),
        "test_accuracy": round(metrics["accuracy"], 4), "test_loss": round(metrics["loss"], 4),
        "roc_auc": round(metrics["roc_auc"], 4) if metrics["roc_auc"] is not None else "",
        "per_class": json.dumps(metrics["per_class"]), "model_path": str(model_path),
        # a sweep's median-stopping callback marks the trials it cut short
        "status": "pruned" if any(getattr(callback, "pruned", False) for callback in callbacks) else "ok",
    }


def evaluate(truth: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str],
             weights: Sequence[float] | None = None) -> dict:
    """Accuracy, log loss, per-class precision/recall/F1, ROC-AUC and the confusion matrix; the classes are
    chosen as the model chooses them (``decisions.decide`` with its decision ``weights``)."""
    from sklearn import metrics

    predicted = decisions.decide(probabilities, weights)
    labels = list(range(len(class_names)))
    report = metrics.classification_report(truth, predicted, labels=labels, target_names=list(class_names),
                                           digits=4, zero_division=0, output_dict=True)
    try:
        if len(class_names) == 2:
            auc = metrics.roc_auc_score(truth, probabilities[:, 1])
        else:
            auc = metrics.roc_auc_score(truth, probabilities, multi_class="ovr", labels=labels)
    except ValueError:  # one class only in the test set
        auc = None
    return {
        "accuracy": float(metrics.accuracy_score(truth, predicted)),
        "loss": float(metrics.log_loss(truth, np.clip(probabilities, 1e-7, 1), labels=labels)),
        "roc_auc": None if auc is None else float(auc),
        "per_class": {name: {key: round(float(report[name][key]), 4) for key in ("precision", "recall", "f1-score")}
                      for name in class_names},
        "confusion_matrix": metrics.confusion_matrix(truth, predicted, labels=labels).tolist(),
        "report": metrics.classification_report(truth, predicted, labels=labels, target_names=list(class_names),
                                                digits=4, zero_division=0),
    }


def build_parser() -> argparse.ArgumentParser:
    defaults = Settings()
    parser = argparse.ArgumentParser(
        prog="train_a_model.py",
        description="Train a mask / no-mask (or more classes) classifier on processed_data/<class>/ face crops.",
    )
    # choices are checked by Settings, so a wrong value is one line, not argparse's usage block
    parser.add_argument("--model", default=defaults.model,
                        help="small: 4 blocks of one conv, quick; deep: 4 blocks of 2 convs; mobilenetv2: "
                        "Keras's MobileNetV2, from ImageNet weights unless --weights says otherwise "
                        "(default %(default)s)")
    parser.add_argument("--epochs", type=int, default=defaults.epochs,
                        help="most epochs; early stopping on validation loss ends sooner (default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="(default %(default)s)")
    parser.add_argument("--image-size", type=int, default=defaults.image_size,
                        help="crops are resized to this square size (default %(default)s)")
    parser.add_argument("--kernel-size", type=int, default=defaults.kernel_size,
                        help="3, 5 or 7: convolution kernel of small and deep (default %(default)s)")
    parser.add_argument("--optimizer", default=defaults.optimizer,
                        help=f"{', '.join(OPTIMIZERS)}; sgd uses Nesterov momentum 0.9 (default %(default)s)")
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="default: " + ", ".join(f"{name} {rate:g}" for name, rate in OPTIMIZERS.items()))
    parser.add_argument("--augmentation", default=defaults.augmentation,
                        help="none; light: flips, rotations, zoom; heavy: also contrast, brightness and "
                        "video-like blur (default %(default)s)")
    parser.add_argument("--data", default=defaults.data, help="folder of <class>/ crops (default %(default)s)")
    parser.add_argument("--logs", default=defaults.logs, help="run folders and training_log.csv (default %(default)s)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="(default %(default)s)")
    parser.add_argument("--val-split", type=float, default=defaults.val_split, help="(default %(default)s)")
    parser.add_argument("--test-split", type=float, default=defaults.test_split, help="(default %(default)s)")
    parser.add_argument("--notes", default="", help="free text saved in the log row")
    parser.add_argument("--weights",
                        help="mobilenetv2's start: imagenet (Keras's weights, downloaded once into Keras's cache, "
                        "$KERAS_HOME/models), a local weights file, or none (from scratch) (default imagenet)")
    parser.add_argument("--alpha", type=float,
                        help=f"mobilenetv2's width: {', '.join(map(str, ALPHAS))} (default {DEFAULT_ALPHA})")
    parser.add_argument("--warmup-epochs", type=int,
                        help="mobilenetv2 from pretrained weights: epochs of training the head alone on the frozen "
                        f"trunk before the whole network trains at {FINE_TUNE_FACTOR:g} x the learning rate; "
                        f"--epochs counts both (default {DEFAULT_WARMUP_EPOCHS})")
    parser.add_argument("--jobs", type=int, help="processes for checking the crops (default: all cores)")
    parser.add_argument("--rank-on", metavar="DIR",
                        help="after training, score the model on the labelled photos of DIR (VOC, CSV or YOLO; faces "
                        "of 32 px or more): balanced accuracy in the log row's rank_on_accuracy")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    fields = {field.name for field in dataclasses.fields(Settings)}
    if args.jobs is not None and args.jobs < 1:  # one rule for --jobs in every command
        raise ValueError(f"--jobs must be at least 1, not {args.jobs}")
    values = {key: value for key, value in vars(args).items() if key in fields}
    return Settings(**{**values, "jobs": args.jobs or 0})  # 0: all cores


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    runtime.configure_logging(args.verbose)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    def body() -> int:
        settings = settings_from(args)
        record = None
        if args.rank_on:
            from maskdetect import evaluate

            evaluate.check_folder(args.rank_on)  # a wrong folder is one line before training, not after

            def record(row: dict) -> None:
                if row.get("status") == "ok":
                    row.update(evaluate.scored_fields(row, args.rank_on))
                runlog.append_log(settings.logs, row)

        row = run(settings, record=record)
        print(f"train_a_model: {row['data_size']} crops ({row['train_size']} train / {row['val_size']} validation / "
              f"{row['test_size']} test, {row['skipped_crops']} skipped); {row['epochs_run']} epochs in "
              f"{row['train_seconds']} s; validation accuracy {row['val_accuracy']}, test accuracy "
              f"{row['test_accuracy']}; model {row['model_path']}")
        return runtime.EXIT_OK

    return runtime.run_cli(body, "train_a_model: interrupted; the run is logged with status 'interrupted'.")
