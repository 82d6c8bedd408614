"""The shipped face verifier (the :class:`~maskdetect.face.verifier.Verifier` shape): a second look at each
proposal group of the face stage's second stage, on a crop of its own.

The fusion weighs what the proposal sources say about a group; sources trained before 2020 say little about a
masked face, so many masked faces end with a low fused probability. The verifier is a small classifier (the
ImageNet MobileNetV2 trunk at alpha 0.35, the classifier's) trained on crops of labelled street photos
(:mod:`maskdetect.face.faceverifier_train`): the labelled faces (jittered) against the proposal groups that are
not faces (hands, signs, the backs of heads) and random patches. It sees a square crop ``CONTEXT`` times the group
box's long side, at ``SIDE`` px, and says how likely a face is at its centre, on three views of it (``VIEWS``).

The model file is a Keras ``.keras`` archive with ``faceverifier.json`` inside (side, context, what it was
trained on). Keras and TensorFlow are imported only where a model is built, trained or run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskdetect import artifact, images

META_NAME = "faceverifier.json"
SIDE = 96  # crop side in px; MobileNetV2 has ImageNet weights for it
CONTEXT = 1.5  # the crop's side over the box's long side: the head and some of its surroundings
# A crop larger than this is first shrunk to it (then enlarged to SIDE): most labelled street faces are small
# and blurred, so a large sharp face, or a sharp round object, would otherwise look like nothing seen in training.
DETAIL = 64
# A box is scored on three views of it, and its score is the lowest: the crop as trained, its mirror image, and a
# crop with 1.2 times the context. A face is a face in all three; a hand, a collar or a cup that one view takes
# for a face seldom is in the others.
VIEWS = ((1.0, False), (1.0, True), (1.2, False))  # (context over the trained one, mirrored)
# A box is looked at where it is and moved down by these shares of its height, and scored where its first view
# scores best: the proposal sources, trained before 2020, often box a masked face's eyes and forehead, and the
# verifier, trained on faces centred in their crop, gives such a box next to nothing.
PLACEMENTS = (0.0, 0.15, 0.3)
SHIPPED_MODEL = Path(__file__).resolve().parent / "weights" / "faceverifier.keras"


def crops(rgb: np.ndarray, boxes: np.ndarray, side: int = SIDE, context: float = CONTEXT,
          detail: int | None = DETAIL) -> np.ndarray:
    """(n, side, side, 3) uint8: for each box (x1, y1, x2, y2), the square ``context`` times its long side
    around its centre (black outside the photo), shrunk to ``detail`` px when larger (None: never), then resized
    to ``side``."""
    import cv2

    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    out = np.zeros((len(boxes), side, side, 3), np.uint8)
    for index, box in enumerate(boxes):
        crop, _, _ = images.square_crop(rgb, box, context)
        if detail and crop.shape[0] > detail:
            crop = cv2.resize(crop, (detail, detail), interpolation=cv2.INTER_AREA)
        interpolation = cv2.INTER_AREA if crop.shape[0] > side else cv2.INTER_LINEAR
        out[index] = cv2.resize(crop, (side, side), interpolation=interpolation)
    return out


def build_model(side: int = SIDE, weights: str | None = "imagenet", alpha: float = 0.35):
    """The network: uint8-range RGB (side, side, 3) in, the probability of a face at the centre out."""
    import keras
    from keras import layers

    from maskdetect import models

    inputs = keras.Input((side, side, 3), name="pixels")
    trunk = models.mobilenetv2_trunk(side, alpha, weights, name="trunk")
    # Batch norm keeps ImageNet's statistics, as in the face finder: crops of one kind per batch would skew them.
    for layer in trunk.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.trainable = False
    features = layers.GlobalAveragePooling2D(name="pool")(trunk(layers.Rescaling(1 / 127.5, offset=-1,
                                                                                  name="rescale")(inputs)))
    outputs = layers.Dense(1, activation="sigmoid", name="face")(layers.Dropout(0.2, name="dropout")(features))
    return keras.Model(inputs, outputs, name="faceverifier")


def save(model, path: Path, meta: dict) -> None:
    artifact.save_with_meta(model, path, meta, META_NAME)


def read_meta(path: Path) -> dict:
    """The metadata of a face-verifier file; a one-line ValueError for anything else."""
    foreign = "a face verifier saved by train_face_detector.py or python -m maskdetect.face.faceverifier_train"
    meta = artifact.read_meta(path, META_NAME, "face verifier file", foreign)
    try:
        side, context = int(meta["side"]), float(meta["context"])
    except (KeyError, ValueError, TypeError):
        raise ValueError(f"{path} is not {foreign}") from None
    detail = meta.get("detail")
    if side < 32 or not context >= 1 or not (detail is None or (isinstance(detail, int) and detail >= 8)):
        raise ValueError(f"{path}: its side {side}, context {context} or detail {detail} is not one a verifier "
                         f"can have")
    return meta


@dataclass
class FaceVerifier:
    """A trained face verifier, ready to score boxes in photos (one instance per thread)."""

    path: Path
    side: int
    context: float
    meta: dict
    _call: object = None
    detail: int | None = None  # None for a file trained before crops were shrunk to DETAIL

    @classmethod
    def load(cls, path: str | Path) -> FaceVerifier:
        path = Path(path)
        meta = read_meta(path)
        model, tf = artifact.load_for_inference(path, "face verifier")
        side = int(meta["side"])

        @tf.function(input_signature=[tf.TensorSpec([None, side, side, 3], tf.uint8)])
        def call(batch):
            return model(tf.cast(batch, tf.float32), training=False)

        return cls(path, side, float(meta["context"]), meta, call, meta.get("detail"))

    def __call__(self, rgb: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """The probability of a face at each box (x1, y1, x2, y2, photo px) of an RGB uint8 photo: the lowest of
        the model's on the box's ``VIEWS``."""
        return self.view_scores(rgb, boxes).min(axis=0)

    def placed(self, rgb: np.ndarray, boxes: np.ndarray,
               look_again: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Each box (x1, y1, x2, y2, photo px) at its best ``PLACEMENTS`` (the one whose first view scores highest,
        the box where it is on a tie), and that placement's ``view_scores``. With ``look_again``, a function of the
        first view's scores at the chosen placements that returns which boxes the other views matter for, the
        other boxes are scored on the first view only (NaN on the others): each view costs a pass of the model."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        if not len(boxes):
            return boxes, np.zeros((len(VIEWS), 0))
        count = len(boxes)
        heights = boxes[:, 3] - boxes[:, 1]
        moved = np.concatenate([boxes + np.outer(heights * share, (0, 1, 0, 1)) for share in PLACEMENTS])
        scale, mirrored = VIEWS[0]
        cut = crops(rgb, moved, self.side, self.context * scale, self.detail)
        first = self._scores(cut[:, :, ::-1] if mirrored else cut)
        best = first.reshape(len(PLACEMENTS), count).argmax(axis=0) * count + np.arange(count)
        again = np.ones(count, bool) if look_again is None else np.asarray(look_again(first[best]), bool)
        views = np.full((len(VIEWS), count), np.nan)
        views[0] = first[best]
        if again.any():
            chosen = best[again]
            views[:, again] = self._view_scores(rgb, moved[chosen], {scale: cut[chosen]}, first[chosen])
        return moved[best], views

    def view_scores(self, rgb: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """(len(VIEWS), n): the model's probability of a face on each view of each box."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        if not len(boxes):
            return np.zeros((len(VIEWS), 0))
        return self._view_scores(rgb, boxes, {})

    def _view_scores(self, rgb: np.ndarray, boxes: np.ndarray, cut: dict[float, np.ndarray],
                     first: np.ndarray | None = None) -> np.ndarray:
        """``view_scores``, with the crops already cut by context scale in ``cut`` and the first view's scores, when
        known, in ``first``."""
        # a mirrored view is its unmirrored crop flipped: each context is cut once
        for scale in {scale for scale, _ in VIEWS} - set(cut):
            cut[scale] = crops(rgb, boxes, self.side, self.context * scale, self.detail)
        views = [cut[scale][:, :, ::-1] if mirrored else cut[scale] for scale, mirrored in VIEWS]
        if first is None:
            return self._scores(np.concatenate(views)).reshape(len(VIEWS), len(boxes))
        return np.vstack([first[None], self._scores(np.concatenate(views[1:])).reshape(len(VIEWS) - 1, len(boxes))])

    def _scores(self, batch: np.ndarray) -> np.ndarray:
        return self._call(np.ascontiguousarray(batch)).numpy()[:, 0].astype(np.float64)
