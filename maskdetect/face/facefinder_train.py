"""Training the face stage's own face finder (``maskdetect.face.facefinder``) on labelled photos, and fitting the face
stage's fusion weights for it: ``train_face_detector.py``.

Photos are split by a hash of their names: most train the finder, the rest (``--holdout``) validate it and then
fit the fusion weights, since on its own training photos the finder's scores are overconfident. Keras and
TensorFlow are imported only where a model is built or trained.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskdetect.annotations import held_out
from maskdetect.face.facefinder import DEFAULT_SIDE, STRIDE, build_model, letterbox, loss, save, targets
from maskdetect.face.settings import PRESET_FUSION

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# Training data


@dataclass
class Sample:
    canvas: np.ndarray  # the letterboxed photo, uint8 (side, side, 3)
    boxes: np.ndarray  # faces, x1, y1, x2, y2 in canvas px
    name: str


def samples(labelled_photos: Sequence, side: int, progress: bool = True) -> tuple[list[Sample], list[str]]:
    """Each labelled photo decoded, letterboxed and its boxes scaled; the photos that could not be used, one
    line each (as ``process_faces.py --annotations``, a photo whose labels were drawn on a picture of another
    size is left alone: the boxes may be rotated against it)."""
    from tqdm import tqdm

    from maskdetect import images

    kept, problems = [], []
    for photo in tqdm(labelled_photos, desc="reading labelled photos", unit="photo", disable=not progress):
        try:
            rgb = images.load_rgb(photo.image)
        except images.DECODE_ERRORS as error:
            problems.append(f"{photo.image}: cannot be read ({error})")
            continue
        height, width = rgb.shape[:2]
        if photo.drawn_size and tuple(photo.drawn_size) != (width, height):
            problems.append(f"{photo.origin}: the boxes of {photo.image.name} were drawn on a "
                            f"{photo.drawn_size[0]}x{photo.drawn_size[1]} picture, but the photo is {width}x{height}")
            continue
        boxes = np.array([face.box for face in photo.faces], np.float64).reshape(-1, 4)
        canvas, scale = letterbox(rgb, side)
        kept.append(Sample(canvas, boxes * scale, photo.image.name))
    return kept, problems


def augment(sample: Sample, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random view of a sample: mirrored half the time, zoomed out or in on a random window (so faces appear at
    more sizes), brightness and contrast jittered."""
    import cv2

    canvas, boxes = sample.canvas, sample.boxes.copy()
    side = canvas.shape[0]
    if rng.random() < 0.5:
        canvas = canvas[:, ::-1]
        boxes[:, [0, 2]] = side - boxes[:, [2, 0]]
    roll = rng.random()
    if roll < 0.2:
        # zoomed out: the picture smaller, somewhere on the square (faces as small as big photos give)
        shrink = rng.uniform(0.6, 1.0)
        small = max(1, int(side * shrink))
        left, top = rng.integers(0, side - small + 1, 2)
        shrunk = np.zeros_like(canvas)
        shrunk[top:top + small, left:left + small] = cv2.resize(np.ascontiguousarray(canvas), (small, small),
                                                                interpolation=cv2.INTER_AREA)
        canvas, boxes = shrunk, boxes * (small / side) + np.array([left, top, left, top])
    elif roll < 0.8:
        # zoomed in on a window: close-ups, which street photos of a few hundred pixels seldom hold
        window = rng.uniform(0.3, 1.0) * side
        left, top = rng.uniform(0, side - window, 2)
        zoom = side / window
        canvas = cv2.resize(np.ascontiguousarray(canvas[int(top):int(top + window), int(left):int(left + window)]),
                            (side, side), interpolation=cv2.INTER_LINEAR)
        boxes = (boxes - np.array([left, top, left, top])) * zoom
        # a face cut by the window's edge keeps what is left of it, if most of it is there
        clipped = np.clip(boxes, 0, side)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        kept_area = (clipped[:, 2] - clipped[:, 0]).clip(0) * (clipped[:, 3] - clipped[:, 1]).clip(0)
        boxes = clipped[kept_area >= 0.6 * np.maximum(area, 1e-6)]
    contrast, brightness = rng.uniform(0.75, 1.25), rng.uniform(-25, 25)
    canvas = np.clip(canvas.astype(np.float32) * contrast + brightness, 0, 255).astype(np.uint8)
    return canvas, boxes


def batches(items: Sequence[Sample], batch_size: int, seed: int, training: bool):
    """A keras PyDataset of (pixels, targets) batches; training batches are shuffled and augmented."""
    import keras

    class Batches(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()
            self.rng = np.random.default_rng(seed)
            self.order = np.arange(len(items))
            self.on_epoch_end()

        def __len__(self) -> int:
            return math.ceil(len(items) / batch_size)

        def on_epoch_end(self) -> None:
            if training:
                self.rng.shuffle(self.order)

        def __getitem__(self, index: int):
            chosen = [items[i] for i in self.order[index * batch_size:(index + 1) * batch_size]]
            views = [augment(item, self.rng) if training else (item.canvas, item.boxes) for item in chosen]
            side = chosen[0].canvas.shape[0]
            return (np.stack([view[0] for view in views]).astype(np.float32),
                    np.stack([targets(view[1], side) for view in views]))

    return Batches()


# ---------------------------------------------------------------------------------------------
# Training


def train(labelled_photos: Sequence, output: Path, epochs: int = 40, batch_size: int = 8, side: int = DEFAULT_SIDE,
          holdout: float = 0.2, learning_rate: float = 1e-3, weights: str | None = "imagenet", seed: int = 42,
          progress: bool = True) -> dict:
    """Train a face finder on ``labelled_photos`` (annotations' LabelledPhoto) into ``output``/facefinder.keras;
    returns what the run did. An interrupted run resumes from ``output``/backup at the last finished epoch."""
    import csv

    from maskdetect import runtime

    if epochs < 1 or batch_size < 1:
        raise ValueError("epochs and batch size must be at least 1")
    if not 0 < holdout < 1:
        raise ValueError(f"the held-out share must be between 0 and 1, not {holdout}")
    if side % 32 or side < 64:  # before the photos are read, not after; a finder file must have such a side
        raise ValueError(f"--side must be a multiple of 32 of at least 64, not {side}")
    items, problems = samples(labelled_photos, side, progress)
    for problem in problems:
        logger.warning("%s", problem)
    training = [item for item in items if not held_out(item.name, holdout)]
    validation = [item for item in items if held_out(item.name, holdout)]
    if len(training) < batch_size or not validation:
        raise ValueError(f"too few labelled photos: {len(training)} to train on, {len(validation)} held out "
                         f"(at least --batch-size {batch_size} and 1 needed)")
    with runtime.native_stderr_silenced():
        import keras
        import tensorflow as tf

        tf.constant(0)
    keras.utils.set_random_seed(seed)
    output.mkdir(parents=True, exist_ok=True)
    if not (output / "backup").exists():  # a new run, not a resumed one: its history starts empty
        for stale in ("history.csv", "best.weights.h5"):
            (output / stale).unlink(missing_ok=True)
    model = build_model(side, weights)
    steps = math.ceil(len(training) / batch_size) * epochs
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, steps, warmup_target=None)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=loss)
    best = output / "best.weights.h5"
    callbacks = [keras.callbacks.BackupAndRestore(str(output / "backup")),
                 keras.callbacks.ModelCheckpoint(str(best), monitor="val_loss", save_best_only=True,
                                                 save_weights_only=True),
                 keras.callbacks.CSVLogger(str(output / "history.csv"), append=True)]
    started = time.perf_counter()
    model.fit(batches(training, batch_size, seed, True), validation_data=batches(validation, batch_size, seed, False),
              epochs=epochs, callbacks=callbacks, verbose=1 if progress else 2)
    if best.is_file():
        model.load_weights(str(best))
    with (output / "history.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    meta = {"side": side, "stride": STRIDE, "trained_on": len(training), "held_out": len(validation),
            "holdout_share": holdout, "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
            "seed": seed, "faces": int(sum(len(item.boxes) for item in training)),
            "best_val_loss": min((float(row["val_loss"]) for row in rows), default=None),
            "train_seconds": round(time.perf_counter() - started, 1), "unusable_photos": len(problems)}
    # saved without the optimizer's state: the file ships, and detection never trains
    shipped = build_model(side, None)
    shipped.set_weights(model.get_weights())
    save(shipped, output / "facefinder.keras", meta)
    return meta


def fit_fusion(labels, output: Path, holdout: float, progress: bool = True) -> dict:
    """Fit the face stage's fusion weights, with the new finder as one of its sources, on the labelled photos
    the finder did not train on (on its own training photos its scores would be overconfident), one file per
    preset (``output``/fusion.json for accurate, fusion_fast.json for fast); and what each second-stage threshold
    would keep of their groups (cross-validated), into ``output``/thresholds.csv (thresholds_fast.csv)."""
    from maskdetect import annotations
    from maskdetect.face import fusion_fit

    held = annotations.Labels([photo for photo in labels.photos if held_out(photo.image.name, holdout)])
    result: dict = {}
    for preset, name in PRESET_FUSION.items():
        detector = fusion_fit.collecting_detector(preset=preset, face_model=str(output / "facefinder.keras"))
        names, features, targets_, used = fusion_fit.collect(held, detector, progress=progress)
        if not targets_.sum() or targets_.all():
            problem = (f"the {used} held-out photos gave {len(targets_)} proposal groups of the {preset} face stage, "
                       f"{int(targets_.sum())} of them faces: too few of both kinds to fit the fusion weights")
            if preset == "accurate":
                raise ValueError(f"{problem}; label more photos")
            # the folder still serves the accurate preset; the fast one refuses it in one line
            logger.warning("%s: no %s, so this detector works with --face-stage accurate only", problem, name)
            continue
        # fusion_fit.fit adds the groups and faces counted to the description
        fitted = fusion_fit.fit(names, features, targets_,
                                fitted_on=f"{used} labelled photos held out of the finder's training ({preset})")
        fusion_fit.save(fitted, output / name)
        table = fusion_fit.threshold_table(names, features, targets_)
        fusion_fit.write_threshold_table(table, output / name.replace("fusion", "thresholds").replace(".json", ".csv"))
        if not result:  # the accurate preset's, the one the trade-off is printed for
            result = {"groups": len(targets_), "faces": int(targets_.sum()), "photos": used, "thresholds": table}
    return result


def train_verifier(labels, output: Path, holdout: float, epochs: int, weights: str | None, seed: int,
                   progress: bool = True) -> dict:
    """Train the face verifier on the photos the finder trained on, with the new finder's proposal groups, into
    ``output``/faceverifier.keras (``maskdetect.face.faceverifier_train``)."""
    from maskdetect.face import faceverifier_train, fusion_fit
    from maskdetect.facecrops import FACE_VERIFIER_FILE

    detector = fusion_fit.collecting_detector(face_model=str(output / "facefinder.keras"))
    return faceverifier_train.train(labels.photos, output / FACE_VERIFIER_FILE, detector, epochs, holdout=holdout,
                                    weights=weights, seed=seed, progress=progress)


# ---------------------------------------------------------------------------------------------
# Command line: train_face_detector.py

DEFAULT_OUTPUT = Path("logs") / "face_detector"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="train_face_detector.py",
        description="Train the face stage's own face finder on labelled photos (VOC, CSV or YOLO, as "
                    "process_faces.py --annotations reads them), then fit the face stage's fusion weights on the "
                    "photos it held out. Use the result with process_faces.py / detect_mask.py --face-detector DIR.")
    parser.add_argument("--annotations", nargs="+", type=Path, required=True, metavar="PATH",
                        help="labelled photos: VOC folders, boxes.csv files or folders, YOLO folders")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help="folder for facefinder.keras, fusion.json, thresholds.csv, history.csv "
                             "(default %(default)s)")
    parser.add_argument("--epochs", type=int, default=40, help="(default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=8, help="(default %(default)s)")
    parser.add_argument("--side", type=int, default=DEFAULT_SIDE,
                        help="long side photos are scaled to, a multiple of 32 (default %(default)s)")
    parser.add_argument("--holdout", type=float, default=0.2,
                        help="share of photos held out of training, for validation and the fusion fit "
                             "(default %(default)s)")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="(default %(default)s)")
    parser.add_argument("--weights", default="imagenet", metavar="imagenet|none|FILE",
                        help="the MobileNetV2 trunk's starting weights (default: Keras's ImageNet file)")
    parser.add_argument("--verifier-epochs", type=int, default=8,
                        help="epochs of the face verifier, trained after the finder on the same photos with its "
                             "proposal groups; 0 trains none (the shipped one then runs with this finder) "
                             "(default %(default)s)")
    parser.add_argument("--seed", type=int, default=42, help="(default %(default)s)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    from maskdetect import annotations, runtime
    from maskdetect.face import faceverifier_train, fusion_fit
    from maskdetect.face.settings import DetectorSettings
    from maskdetect.facecrops import FACE_VERIFIER_FILE

    args = parse_args(argv)
    runtime.configure_logging(args.verbose)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    def body() -> int:
        if args.verifier_epochs < 0:  # before hours of training, not after
            raise ValueError(f"--verifier-epochs must be 0 or more, not {args.verifier_epochs}")
        labels = annotations.read_all(args.annotations)
        progress = sys.stderr.isatty()
        meta = train(labels.photos, args.output, args.epochs, args.batch_size, args.side, args.holdout,
                     args.learning_rate, args.weights, args.seed, progress=progress)
        fitted = fit_fusion(labels, args.output, args.holdout, progress)
        verifier = None
        if args.verifier_epochs:
            verifier = train_verifier(labels, args.output, args.holdout, args.verifier_epochs, args.weights,
                                      args.seed, progress)
        print(f"face detector: {meta['trained_on'] + meta['held_out']} photos in, {meta['trained_on']} trained on "
              f"({meta['faces']} faces), {meta['held_out']} held out, "
              f"{len(labels.problems) + meta['unusable_photos']} skipped; {meta['epochs']} epochs in "
              f"{meta['train_seconds'] / 60:.1f} min, best validation loss {meta['best_val_loss']:.3f} -> "
              f"{args.output / 'facefinder.keras'}")
        print(f"fusion weights: fitted on {fitted['groups']} proposal groups ({fitted['faces']} faces) of "
              f"{fitted['photos']} held-out photos -> {args.output / 'fusion.json'}; use both with "
              f"process_faces.py / detect_mask.py --face-detector {args.output}")
        default = DetectorSettings().second_stage_threshold
        print(f"{fusion_fit.threshold_summary(fitted['thresholds'], default)} -> {args.output / 'thresholds.csv'}; "
              f"choose another with --second-stage-threshold")
        if verifier is not None:
            print(faceverifier_train.summary_line(verifier, args.output / FACE_VERIFIER_FILE))
        return runtime.EXIT_OK

    return runtime.run_cli(body, "train_face_detector.py: interrupted; run the same command again to resume from "
                                 "the last finished epoch")
