"""Training the face verifier (``maskdetect.face.faceverifier``) on labelled photos: a step of
``train_face_detector.py``, and on its own:

    python -m maskdetect.face.faceverifier_train --annotations shared/data/wild --output my_verifier.keras

Its examples are crops of the photos that are not held out (the same hash of their names as the face finder's
split, so the held-out photos stay unseen by both): each labelled face three times, shifted and scaled a little;
the face stage's proposal groups on a labelled face (IoU >= 0.5) as faces and those on none (IoU < 0.3) as not
faces; and random patches of every size with no face at their centre. A second round then adds, as not faces,
the background patches the first round takes for faces (hard negatives). Keras and TensorFlow are imported
only to train.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from maskdetect.face.faceverifier import CONTEXT, DETAIL, SIDE, build_model, crops, save

logger = logging.getLogger(__name__)

JITTERED_COPIES = 3  # crops per labelled face
_JITTER_SHIFT, _JITTER_SCALE = 0.12, (0.85, 1.2)  # of the face's size; about how far a proposal's box strays
FACE_IOU, NOT_FACE_IOU = 0.5, 0.3  # a group at this IoU with a label or more is a face; under the other, not
RANDOM_PATCHES = 8  # per photo, from 12 px to the photo's short side, where no face is (see background_patches)
HARD_CANDIDATES = 32  # random patches per photo that the trained verifier scores in the hard-negative round
HARD_SCORE = 0.5  # those it scores this much or more are added as not faces, HARD_COPIES times each
HARD_COPIES = 2
HARD_EPOCHS = 2  # epochs of the hard-negative round, on all the examples and the hard negatives
MIN_FACE = 8  # labelled faces with a shorter side are left out: under a few px there is nothing to verify
DEFAULT_EPOCHS = 8


def examples(labelled_photos: Sequence, detector, seed: int = 42,
             progress: bool = True) -> tuple[np.ndarray, np.ndarray, int]:
    """Crops (n, SIDE, SIDE, 3) uint8 and targets (1 face, 0 not) from labelled photos, with ``detector``'s
    proposal groups (a :class:`maskdetect.face.FaceDetector`); and the number of photos used. A photo
    that cannot be used is one warning line and skipped."""
    from tqdm import tqdm

    from maskdetect.face.boxes import iou
    from maskdetect.face.fusion_fit import usable_photos

    rng = np.random.default_rng(seed)
    parts, targets, used = [], [], 0
    for rgb, truth in usable_photos(tqdm(labelled_photos, desc="verifier examples", unit="photo",
                                         disable=not progress)):
        height, width = rgb.shape[:2]
        boxes, labels = [], []
        for x1, y1, x2, y2 in truth:
            face_width, face_height = x2 - x1, y2 - y1
            if min(face_width, face_height) < MIN_FACE:
                continue
            for _ in range(JITTERED_COPIES):
                scale = rng.uniform(*_JITTER_SCALE)
                centre_x, centre_y = np.array([(x1 + x2) / 2, (y1 + y2) / 2]) \
                    + rng.uniform(-_JITTER_SHIFT, _JITTER_SHIFT, 2) * (face_width, face_height)
                half_width, half_height = face_width * scale / 2, face_height * scale / 2
                boxes.append([centre_x - half_width, centre_y - half_height, centre_x + half_width,
                              centre_y + half_height])
                labels.append(1)
        for group_box, _ in detector.proposal_groups(rgb):
            overlap = iou(np.asarray(group_box)[None], truth).max() if len(truth) else 0.0
            if overlap >= FACE_IOU or overlap < NOT_FACE_IOU:
                boxes.append(list(group_box))
                labels.append(int(overlap >= FACE_IOU))
        for patch in background_patches(rng, truth, height, width, RANDOM_PATCHES):
            boxes.append(patch.tolist())
            labels.append(0)
        if boxes:
            parts.append(crops(rgb, np.array(boxes)))
            targets.extend(labels)
        used += 1
    pixels = np.concatenate(parts) if parts else np.zeros((0, SIDE, SIDE, 3), np.uint8)
    return pixels, np.array(targets, np.float32), used


def background_patches(rng: np.random.Generator, truth: np.ndarray, height: int, width: int,
                       count: int) -> list[np.ndarray]:
    """Up to ``count`` random squares (x1, y1, x2, y2), sides log-uniform from 12 px to the short side, that
    hold no labelled face's centre and overlap none at IoU 0.2: the crop around such a square has no face at
    its centre. Large ones matter: a large round object (a cup seen from above) is otherwise never a negative."""
    from maskdetect.face.boxes import iou

    truth = np.asarray(truth, np.float64).reshape(-1, 4)
    centres = np.column_stack([(truth[:, 0] + truth[:, 2]) / 2, (truth[:, 1] + truth[:, 3]) / 2])
    short = max(13.0, float(min(height, width)))
    patches = []
    for _ in range(count):
        side = float(np.exp(rng.uniform(np.log(12), np.log(short))))
        left, top = rng.uniform(0, max(1, width - side)), rng.uniform(0, max(1, height - side))
        patch = np.array([left, top, left + side, top + side])
        if len(truth) and (iou(patch[None], truth).max() >= 0.2 or np.any(
                (centres[:, 0] > patch[0]) & (centres[:, 0] < patch[2])
                & (centres[:, 1] > patch[1]) & (centres[:, 1] < patch[3]))):
            continue
        patches.append(patch)
    return patches


def hard_negatives(labelled_photos: Sequence, score, seed: int = 42, progress: bool = True) -> np.ndarray:
    """Crops of random background patches (:func:`background_patches`, ``HARD_CANDIDATES`` a photo) that
    ``score`` (crops -> face probabilities) takes for faces (``HARD_SCORE`` or more): the negatives the first
    round got wrong."""
    from tqdm import tqdm

    from maskdetect.face.fusion_fit import usable_photos

    rng = np.random.default_rng(seed + 1)
    found = []
    for rgb, truth in usable_photos(tqdm(labelled_photos, desc="hard negatives", unit="photo",
                                         disable=not progress)):
        patches = background_patches(rng, truth, rgb.shape[0], rgb.shape[1], HARD_CANDIDATES)
        if patches:
            pixels = crops(rgb, np.array(patches))
            found.append(pixels[score(pixels) >= HARD_SCORE])
    return np.concatenate(found) if found else np.zeros((0, SIDE, SIDE, 3), np.uint8)


def train(labelled_photos: Sequence, output: Path, detector=None, epochs: int = DEFAULT_EPOCHS,
          batch_size: int = 64, holdout: float = 0.2, learning_rate: float = 5e-4, weights: str | None = "imagenet",
          seed: int = 42, progress: bool = True, hard_epochs: int = HARD_EPOCHS) -> dict:
    """Train a face verifier on the photos of ``labelled_photos`` (annotations' LabelledPhoto) that are not held
    out, with ``detector``'s proposal groups (None: the shipped face stage), into the file ``output``; returns
    what the run did."""
    from maskdetect import runtime
    from maskdetect.annotations import held_out

    if epochs < 1 or batch_size < 1 or hard_epochs < 0:
        raise ValueError("epochs and batch size must be at least 1, hard-negative epochs at least 0")
    if not 0 <= holdout < 1:
        raise ValueError(f"the held-out share must be from 0 to under 1, not {holdout}")
    training = [photo for photo in labelled_photos if not held_out(photo.image.name, holdout)]
    if detector is None:
        from maskdetect.face.fusion_fit import collecting_detector

        detector = collecting_detector()
    pixels, targets, used = examples(training, detector, seed, progress)
    faces = int(targets.sum())
    if not faces or faces == len(targets):
        raise ValueError(f"the {used} training photos gave {faces} face crops of {len(targets)}: too few of both "
                         f"kinds to train a face verifier; label more photos")
    with runtime.native_stderr_silenced():
        import keras
        import tensorflow as tf

        tf.constant(0)
    keras.utils.set_random_seed(seed)
    # the shipped model takes raw pixels; flips and brightness shifts are training's only
    model = build_model(SIDE, weights)
    inputs = keras.Input(model.input_shape[1:])
    augmented = keras.layers.RandomBrightness(0.15, value_range=(0, 255))(keras.layers.RandomFlip("horizontal")(inputs))
    trainer = keras.Model(inputs, model(augmented))

    def fit(pixels: np.ndarray, targets: np.ndarray, rate: float, rounds: int, shuffle_seed: int):
        steps = math.ceil(len(targets) / batch_size) * rounds
        trainer.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(rate, steps)),
                        loss="binary_crossentropy", metrics=[keras.metrics.AUC(name="auc")])
        order = np.random.default_rng(shuffle_seed).permutation(len(targets))
        return trainer.fit(pixels[order].astype(np.float32), targets[order], batch_size=batch_size, epochs=rounds,
                           verbose=1 if progress else 2)

    started = time.perf_counter()
    history = fit(pixels, targets, learning_rate, epochs, seed)
    hard = np.zeros((0, SIDE, SIDE, 3), np.uint8)
    if hard_epochs:
        # the second round: the background the first round takes for faces, added as not faces
        hard = hard_negatives(training, lambda batch: model.predict(batch, batch_size=256, verbose=0)[:, 0],
                              seed, progress)
        logger.info("hard-negative round: %d of the background patches scored %.2f or more", len(hard), HARD_SCORE)
        if len(hard):
            pixels = np.concatenate([pixels, *[hard] * HARD_COPIES])
            targets = np.concatenate([targets, np.zeros(len(hard) * HARD_COPIES, np.float32)])
            history = fit(pixels, targets, learning_rate / 5, hard_epochs, seed + 2)
    meta = {"side": SIDE, "context": CONTEXT, "detail": DETAIL, "trained_on": used, "holdout_share": holdout,
            "crops": len(targets), "face_crops": faces, "hard_negatives": len(hard), "epochs": epochs,
            "hard_epochs": hard_epochs if len(hard) else 0, "batch_size": batch_size,
            "learning_rate": learning_rate, "seed": seed, "final_loss": round(float(history.history["loss"][-1]), 4),
            "train_seconds": round(time.perf_counter() - started, 1)}
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    save(model, output, meta)
    return meta


def summary_line(meta: dict, output: Path) -> str:
    hard = meta.get("hard_negatives", 0)
    rounds = f"{meta['epochs']}+{meta['hard_epochs']}" if meta.get("hard_epochs") else f"{meta['epochs']}"
    return (f"face verifier: {meta['trained_on']} photos, {meta['crops']} crops ({meta['face_crops']} faces, "
            f"{hard} hard negatives), {rounds} epochs in {meta['train_seconds'] / 60:.1f} min, loss "
            f"{meta['final_loss']:.3f} -> {output}")


# ---------------------------------------------------------------------------------------------
# Command line: python -m maskdetect.face.faceverifier_train


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m maskdetect.face.faceverifier_train",
        description="Train only the face stage's face verifier on labelled photos (VOC, CSV or YOLO); "
                    "train_face_detector.py trains it with the face finder.")
    parser.add_argument("--annotations", nargs="+", type=Path, required=True, metavar="PATH",
                        help="labelled photos: VOC folders, boxes.csv files or folders, YOLO folders")
    parser.add_argument("--output", type=Path, required=True, help="the verifier file to write (.keras)")
    parser.add_argument("--face-detector", type=Path, metavar="DIR",
                        help="the face finder whose proposal groups are the examples (default: the shipped one)")
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help="(default %(default)s)")
    parser.add_argument("--hard-epochs", type=int, default=HARD_EPOCHS,
                        help="epochs of the second round, with the background patches the first round takes for "
                             "faces added as not faces; 0 for none (default %(default)s)")
    parser.add_argument("--holdout", type=float, default=0.2,
                        help="share of photos left out, as train_face_detector.py holds them out (default "
                             "%(default)s)")
    parser.add_argument("--weights", default="imagenet", metavar="imagenet|none|FILE",
                        help="the MobileNetV2 trunk's starting weights (default: Keras's ImageNet file)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    from maskdetect import annotations, runtime
    from maskdetect.face.fusion_fit import collecting_detector

    args = parse_args(argv)
    runtime.configure_logging(args.verbose)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    def body() -> int:
        if args.output.suffix != ".keras":
            raise ValueError(f"--output must end in .keras, not {args.output.name}")
        labels = annotations.read_all(args.annotations)
        face_model = None if args.face_detector is None else str(args.face_detector / "facefinder.keras")
        detector = collecting_detector(face_model=face_model)
        meta = train(labels.photos, args.output, detector, args.epochs, holdout=args.holdout, weights=args.weights,
                     progress=sys.stderr.isatty(), hard_epochs=args.hard_epochs)
        print(summary_line(meta, args.output))
        return runtime.EXIT_OK

    return runtime.run_cli(body, "python -m maskdetect.face.faceverifier_train: interrupted; nothing written")


if __name__ == "__main__":
    sys.exit(main())
