"""A face detector of our own, trained on labelled street photos: finds the masked faces that detectors trained
before 2020 miss (masks with glasses, caps and hoods, masks up to the eyes, turned heads, small faces).

The network is a CenterNet-style single-shot head on the ImageNet MobileNetV2 trunk (alpha 0.35, the
classifier's): the photo is scaled so that its long side is ``side`` px and padded to a square; features at
strides 8, 16 and 32 are merged top-down into one map at stride 8, on which the head predicts, per cell, the
probability that a face's centre lies there (a heat map), the face's log width and height, and the centre's
offset within the cell. A face is a local maximum of the heat map. No anchors, no box matching: the targets are
Gaussian peaks at the labelled centres, trained with CenterNet's focal loss.

It runs as the ``facefinder`` proposal source of the face stage's second stage (``detectors``): its boxes are
evidence beside MTCNN's, the SSD's and BlazeFace's, fused by the weights that
``train_face_detector.py`` fits on photos the network did not train on.

The model file is a Keras ``.keras`` archive with ``facefinder.json`` inside (side, stride, what it was trained
on). Keras and TensorFlow are imported only where a model is built, trained or run.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

META_NAME = "facefinder.json"
STRIDE = 8  # the heat map's cell, in pixels of the scaled photo
DEFAULT_SIDE = 512  # the long side photos are scaled to, in training and detection
SHIPPED_MODEL = Path(__file__).resolve().parent / "weights" / "facefinder.keras"
HEAD_CHANNELS = 64
# Outputs per cell: heat, log width, log height (in cells), x and y offset of the centre within the cell.
OUTPUTS = 5
# Labelled faces smaller than this (short side, px of the scaled photo) are left out of the targets: at stride 8
# they are under a cell.
MIN_TARGET_FACE = 6
# Heat-map peak spread: sigma in cells = max(_SIGMA_MIN, _SIGMA_SHARE * face size in cells); about CenterNet's
# radius for boxes that still overlap the labelled one at IoU 0.7.
_SIGMA_MIN, _SIGMA_SHARE = 0.5, 0.1
# CenterNet's focal-loss exponents and the heat head's starting bias (a prior of 0.1 face probability per cell).
_FOCAL_ALPHA, _FOCAL_BETA = 2.0, 4.0
_HEAT_BIAS = -2.19
_SIZE_LOSS_WEIGHT, _OFFSET_LOSS_WEIGHT = 1.0, 1.0
_MAX_FACES = 200  # peaks decoded per photo


def letterbox(rgb: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """``rgb`` scaled so its long side is ``side`` (enlarged or shrunk), on a black ``side`` x ``side`` square
    at the top left; and the scale (scaled px per photo px)."""
    import cv2

    height, width = rgb.shape[:2]
    scale = side / max(height, width)
    scaled_width, scaled_height = max(1, round(width * scale)), max(1, round(height * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    canvas = np.zeros((side, side, 3), np.uint8)
    canvas[:scaled_height, :scaled_width] = cv2.resize(rgb, (scaled_width, scaled_height),
                                                       interpolation=interpolation)
    return canvas, scale


def targets(boxes: np.ndarray, side: int) -> np.ndarray:
    """Training targets (side/8, side/8, 6) for faces ``boxes`` (x1, y1, x2, y2 in scaled px): the heat map
    (1 at each face's centre cell, a Gaussian around it), log width and height in cells, the centre's offset
    in its cell, and a mask of the centre cells."""
    cells = side // STRIDE
    target = np.zeros((cells, cells, OUTPUTS + 1), np.float32)
    ys, xs = np.mgrid[0:cells, 0:cells].astype(np.float32)
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    # the largest first, so that a small face whose centre shares a cell keeps its own size
    order = np.argsort(-(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    for x1, y1, x2, y2 in boxes[order]:
        width, height = x2 - x1, y2 - y1
        if min(width, height) < MIN_TARGET_FACE:
            continue
        centre_x, centre_y = (x1 + x2) / 2 / STRIDE, (y1 + y2) / 2 / STRIDE
        column, row = int(centre_x), int(centre_y)
        if not (0 <= column < cells and 0 <= row < cells):
            continue
        sigma = max(_SIGMA_MIN, _SIGMA_SHARE * math.sqrt(width * height) / STRIDE)
        peak = np.exp(-((xs - column) ** 2 + (ys - row) ** 2) / (2 * sigma ** 2))
        target[..., 0] = np.maximum(target[..., 0], peak)
        target[row, column, 0] = 1.0
        target[row, column, 1:3] = np.log(width / STRIDE), np.log(height / STRIDE)
        target[row, column, 3:5] = centre_x - column, centre_y - row
        target[row, column, 5] = 1.0
    return target


def build_model(side: int = DEFAULT_SIDE, weights: str | None = "imagenet", alpha: float = 0.35):
    """The network: uint8-range RGB (side, side, 3) in, (side/8, side/8, 5) out (heat probability, log width,
    log height, x and y offset)."""
    import keras
    from keras import layers

    from maskdetect import models

    if side % 32:
        raise ValueError(f"the side must be a multiple of 32, not {side}")
    inputs = keras.Input((side, side, 3), name="pixels")
    trunk = models.mobilenetv2_trunk(side, alpha, weights, name="trunk")
    features = keras.Model(trunk.input, [trunk.get_layer(name).output
                                         for name in ("block_5_add", "block_12_add", "out_relu")], name="features")
    stride8, stride16, stride32 = features(layers.Rescaling(1 / 127.5, offset=-1, name="rescale")(inputs))
    merged = layers.Conv2D(HEAD_CHANNELS, 1, name="lateral32")(stride32)
    for name, lateral in (("16", stride16), ("8", stride8)):
        merged = layers.Add(name=f"merge{name}")([layers.UpSampling2D(2, name=f"up{name}")(merged),
                                                   layers.Conv2D(HEAD_CHANNELS, 1, name=f"lateral{name}")(lateral)])
    for index in range(2):
        merged = layers.SeparableConv2D(HEAD_CHANNELS, 3, padding="same", activation="relu",
                                        name=f"head{index}")(merged)
    heat = layers.Conv2D(1, 1, activation="sigmoid", name="heat",
                         bias_initializer=keras.initializers.Constant(_HEAT_BIAS))(merged)
    size = layers.Conv2D(2, 1, name="size")(merged)
    offset = layers.Conv2D(2, 1, activation="sigmoid", name="offset")(merged)
    model = keras.Model(inputs, layers.Concatenate(name="outputs")([heat, size, offset]), name="facefinder")
    # Batch norm keeps ImageNet's statistics: batches of a few photos would make them noise.
    for layer in trunk.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.trainable = False
    return model


def loss(y_true, y_pred):
    """CenterNet's loss: focal loss on the heat map, L1 on size and offset at the centre cells; per face."""
    from keras import ops

    heat_true, heat = y_true[..., 0], ops.clip(y_pred[..., 0], 1e-6, 1 - 1e-6)
    centres = y_true[..., 5]
    faces = ops.maximum(ops.sum(centres), 1.0)
    positive = ops.log(heat) * (1 - heat) ** _FOCAL_ALPHA * centres
    negative = ops.log(1 - heat) * heat ** _FOCAL_ALPHA * (1 - heat_true) ** _FOCAL_BETA * (1 - centres)
    heat_loss = -(ops.sum(positive) + ops.sum(negative)) / faces
    size_loss = ops.sum(ops.abs(y_pred[..., 1:3] - y_true[..., 1:3]) * centres[..., None]) / faces
    offset_loss = ops.sum(ops.abs(y_pred[..., 3:5] - y_true[..., 3:5]) * centres[..., None]) / faces
    return heat_loss + _SIZE_LOSS_WEIGHT * size_loss + _OFFSET_LOSS_WEIGHT * offset_loss


def decode(outputs: np.ndarray, scale: float, min_score: float, max_faces: int = _MAX_FACES) -> np.ndarray:
    """Rows x1, y1, x2, y2, score in photo px, highest score first, from one photo's outputs: the heat map's
    local maxima (3 x 3) of at least ``min_score``."""
    heat = outputs[..., 0]
    padded = np.pad(heat, 1, constant_values=-1.0)
    neighbourhood = np.max([padded[dy:dy + heat.shape[0], dx:dx + heat.shape[1]]
                            for dy in range(3) for dx in range(3)], axis=0)
    rows, columns = np.nonzero((heat >= neighbourhood) & (heat >= min_score))
    scores = heat[rows, columns]
    order = np.argsort(-scores, kind="stable")[:max_faces]
    rows, columns, scores = rows[order], columns[order], scores[order]
    cell = outputs[rows, columns]
    centre_x, centre_y = (columns + cell[:, 3]) * STRIDE, (rows + cell[:, 4]) * STRIDE
    width, height = np.exp(np.clip(cell[:, 1], -3, 6)) * STRIDE, np.exp(np.clip(cell[:, 2], -3, 6)) * STRIDE
    boxes = np.stack([centre_x - width / 2, centre_y - height / 2, centre_x + width / 2, centre_y + height / 2], 1)
    return np.concatenate([boxes / scale, scores[:, None]], axis=1).astype(np.float64)


def save(model, path: Path, meta: dict) -> None:
    path = Path(path)
    partial = path.with_name(path.name + ".partial.keras")
    model.save(partial)
    with zipfile.ZipFile(partial, "a") as archive:
        archive.writestr(META_NAME, json.dumps(meta, indent=2))
    partial.replace(path)


def read_meta(path: Path) -> dict:
    """The metadata of a face-finder file; a one-line ValueError for anything else."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"face detector file {path} does not exist")
    try:
        with zipfile.ZipFile(path) as archive:
            meta = json.loads(archive.read(META_NAME))
        side = int(meta["side"])
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError):
        raise ValueError(f"{path} is not a face detector saved by train_face_detector.py") from None
    if side % 32 or side < 64:
        raise ValueError(f"{path}: its side {side} is not a multiple of 32 of at least 64")
    return meta


@dataclass
class FaceFinder:
    """A trained face finder, ready to run on photos (one instance per thread)."""

    path: Path
    side: int
    meta: dict
    _call: object = None

    @classmethod
    def load(cls, path: str | Path) -> FaceFinder:
        from maskdetect import runtime

        path = Path(path)
        meta = read_meta(path)
        with runtime.native_stderr_silenced():
            import keras
            import tensorflow as tf

            tf.constant(0)
        try:
            model = keras.models.load_model(path, safe_mode=True, compile=False)
        except Exception as error:  # Keras raises many kinds; the user needs the file named, in one line
            reason = " ".join(str(error).split())[:200]
            raise ValueError(f"{path}: the face detector does not load ({reason})") from None
        side = int(meta["side"])

        @tf.function(input_signature=[tf.TensorSpec([1, side, side, 3], tf.uint8)])
        def call(canvas):
            return model(tf.cast(canvas, tf.float32), training=False)

        return cls(path, side, meta, call)

    def __call__(self, rgb: np.ndarray, min_score: float) -> np.ndarray:
        """Rows x1, y1, x2, y2, score (photo px) of the faces it finds, at least ``min_score``."""
        canvas, scale = letterbox(rgb, self.side)
        outputs = self._call(canvas[None]).numpy()[0]
        return decode(outputs, scale, min_score)


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


def held_out(name: str, share: float) -> bool:
    """Whether a photo is held out of training (for validation and the fusion fit): by a hash of its name, so
    that a rerun, or a resumed run, holds out the same photos."""
    return zlib.crc32(name.encode()) % 1000 < round(share * 1000)


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
    history = model.fit(batches(training, batch_size, seed, True), validation_data=batches(validation, batch_size,
                                                                                           seed, False),
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
    del history
    return meta


def fit_fusion(labels, output: Path, holdout: float, progress: bool = True) -> dict:
    """Fit the face stage's fusion weights, with the new finder as one of its sources, on the labelled photos
    the finder did not train on (on its own training photos its scores would be overconfident), into
    ``output``/fusion.json."""
    from maskdetect import annotations, fusion

    held = annotations.Labels([photo for photo in labels.photos if held_out(photo.image.name, holdout)])
    detector = fusion.collecting_detector(face_model=str(output / "facefinder.keras"))
    names, features, targets_, used = fusion.collect(held, detector, progress=progress)
    if not targets_.sum() or targets_.all():
        raise ValueError(f"the {used} held-out photos gave {len(targets_)} proposal groups, {int(targets_.sum())} "
                         f"of them faces: too few of both kinds to fit the fusion weights; label more photos")
    fitted = fusion.fit(names, features, targets_, fitted_on=f"{used} held-out labelled photos, "
                                                            f"{int(targets_.sum())} of {len(targets_)} groups faces")
    fusion.save(fitted, output / "fusion.json")
    return {"groups": len(targets_), "faces": int(targets_.sum()), "photos": used}


# ---------------------------------------------------------------------------------------------
# Command line: train_face_detector.py

DEFAULT_OUTPUT = Path("models") / "face_detector"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="train_face_detector.py",
        description="Train the face stage's own face finder on labelled photos (VOC, CSV or YOLO, as "
                    "process_faces.py --annotations reads them), then fit the face stage's fusion weights on the "
                    "photos it held out. Use the result with process_faces.py / detect_mask.py --face-detector DIR.")
    parser.add_argument("--annotations", nargs="+", type=Path, required=True, metavar="PATH",
                        help="labelled photos: VOC folders, boxes.csv files or folders, YOLO folders")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help="folder for facefinder.keras, fusion.json, history.csv (default %(default)s)")
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
    parser.add_argument("--seed", type=int, default=42, help="(default %(default)s)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    from maskdetect import annotations, runtime

    args = parse_args(argv)
    runtime.configure_logging(args.verbose)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    def body() -> int:
        labels = annotations.Labels()
        for path in args.annotations:
            labels.extend(annotations.read(path))
        for problem in labels.problems:
            logger.warning("%s", problem)
        if not labels.photos:
            raise ValueError(f"no labelled photos in {', '.join(map(str, args.annotations))}")
        progress = sys.stderr.isatty()
        meta = train(labels.photos, args.output, args.epochs, args.batch_size, args.side, args.holdout,
                     args.learning_rate, args.weights, args.seed, progress=progress)
        fitted = fit_fusion(labels, args.output, args.holdout, progress)
        print(f"face detector: {meta['trained_on'] + meta['held_out']} photos in, {meta['trained_on']} trained on "
              f"({meta['faces']} faces), {meta['held_out']} held out, "
              f"{len(labels.problems) + meta['unusable_photos']} skipped; {meta['epochs']} epochs in "
              f"{meta['train_seconds'] / 60:.1f} min, best validation loss {meta['best_val_loss']:.3f} -> "
              f"{args.output / 'facefinder.keras'}")
        print(f"fusion weights: fitted on {fitted['groups']} proposal groups ({fitted['faces']} faces) of "
              f"{fitted['photos']} held-out photos -> {args.output / 'fusion.json'}; use both with "
              f"process_faces.py / detect_mask.py --face-detector {args.output}")
        return runtime.EXIT_OK

    return runtime.run_cli(body, "train_face_detector.py: interrupted; run the same command again to resume from "
                                 "the last finished epoch")
