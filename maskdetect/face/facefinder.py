"""A face detector of our own, trained on labelled street photos: finds the masked faces that detectors trained
before 2020 miss (masks with glasses, caps and hoods, masks up to the eyes, turned heads, small faces).

The network is a CenterNet-style single-shot head on the ImageNet MobileNetV2 trunk (alpha 0.35, the
classifier's): the photo is scaled so that its long side is ``side`` px and padded to a square; features at
strides 8, 16 and 32 are merged top-down into one map at stride 8, on which the head predicts, per cell, the
probability that a face's centre lies there (a heat map), the face's log width and height, and the centre's
offset within the cell. A face is a local maximum of the heat map. No anchors, no box matching: the targets are
Gaussian peaks at the labelled centres, trained with CenterNet's focal loss.

It runs as the ``facefinder`` proposal source of the face stage's second stage
(:mod:`maskdetect.face.sources.facefinder`): its boxes are evidence beside MTCNN's, the SSD's and BlazeFace's,
fused by the weights that ``train_face_detector.py`` (``maskdetect.face.facefinder_train``) fits on photos the
network did not train on.

The model file is a Keras ``.keras`` archive with ``facefinder.json`` inside (side, stride, what it was trained
on). Keras and TensorFlow are imported only where a model is built, trained or run.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskdetect import artifact

logger = logging.getLogger(__name__)

META_NAME = "facefinder.json"
STRIDE = 8  # the heat map's cell, in pixels of the scaled photo
TRUNK_STRIDE = 32  # the coarsest feature map's cell: a canvas's sides are multiples of it
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


def letterbox(rgb: np.ndarray, side: int, square: bool = True) -> tuple[np.ndarray, float]:
    """``rgb`` scaled so its long side is ``side`` (enlarged or shrunk), at the top left of a black canvas; and
    the scale (scaled px per photo px).

    The canvas is ``side`` x ``side`` (training batches need one shape); with ``square`` False it is only as large
    as the scaled photo rounded up to the trunk's stride (32), which is all detection needs: a 4:3 photo is then a
    quarter fewer pixels to run, with the same faces found.
    """
    import cv2

    height, width = rgb.shape[:2]
    scale = side / max(height, width)
    scaled_width, scaled_height = max(1, round(width * scale)), max(1, round(height * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    if square:
        canvas_height = canvas_width = side
    else:
        canvas_height, canvas_width = (-(-n // TRUNK_STRIDE) * TRUNK_STRIDE for n in (scaled_height, scaled_width))
    canvas = np.zeros((canvas_height, canvas_width, 3), np.uint8)
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
    artifact.save_with_meta(model, path, meta, META_NAME)


def read_meta(path: Path) -> dict:
    """The metadata of a face-finder file; a one-line ValueError for anything else."""
    foreign = "a face detector saved by train_face_detector.py"
    meta = artifact.read_meta(path, META_NAME, "face detector file", foreign)
    try:
        side = int(meta["side"])
    except (KeyError, ValueError, TypeError):
        raise ValueError(f"{path} is not {foreign}") from None
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
        path = Path(path)
        meta = read_meta(path)
        model, tf = artifact.load_for_inference(path, "face detector")
        side = int(meta["side"])

        # the network is convolutional: any canvas whose sides are multiples of TRUNK_STRIDE, not only the square
        @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3], tf.uint8)], reduce_retracing=True)
        def call(canvas):
            return model(tf.cast(canvas, tf.float32), training=False)

        return cls(path, side, meta, call)

    def __call__(self, rgb: np.ndarray, min_score: float) -> np.ndarray:
        """Rows x1, y1, x2, y2, score (photo px) of the faces it finds, at least ``min_score``."""
        canvas, scale = letterbox(rgb, self.side, square=False)
        outputs = self._call(canvas[None]).numpy()[0]
        return decode(outputs, scale, min_score)
