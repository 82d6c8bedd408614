"""The networks, their ImageNet weights, and augmentation presets. Imports Keras, so only training and
inference load it.

Every model takes raw 0-255 RGB pixels (rescaling is its first layer), so a saved model needs no
preprocessing code beside it. Two classes get one sigmoid output; more get a softmax.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import keras
from keras import layers

from maskdetect.settings import AUGMENTATIONS, KERNEL_SIZES, NETWORKS

# Where Keras itself downloads MobileNetV2's ImageNet weights (keras/src/applications/mobilenet_v2.py);
# a module constant so that a test can point it at a local server.
WEIGHTS_BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/mobilenet_v2/"
# The no-top weights are convolutional, so the 224-pixel file fits any input size; it is the one Keras
# itself loads for sizes other than 96, 128, 160, 192 and 224.
WEIGHTS_ROWS = 224
TRUNK = "trunk"  # the name of MobileNetV2's backbone inside the model, to freeze and unfreeze it


def _head(features, num_classes: int, dropout: float):
    x = layers.GlobalAveragePooling2D(name="pool")(features)
    x = layers.Dropout(dropout, name="dropout")(x)
    if num_classes == 2:
        return layers.Dense(1, activation="sigmoid", name="probability")(x)
    return layers.Dense(num_classes, activation="softmax", name="probabilities")(x)


def batch_norm_momentum(steps_per_epoch: int) -> float:
    """Keras's 0.99 unless an epoch has under 100 steps; then 1 - 1/steps (at least 0.9), so that the running
    statistics that inference uses have caught up by the end of the first epochs. With 0.99 and a few hundred
    crops they had not: the model called every crop one class and early stopping kept it."""
    return min(0.99, max(0.9, 1 - 1 / max(steps_per_epoch, 1)))


def _conv_block(x, filters: int, kernel_size: int, convs: int, name: str, momentum: float):
    for index in range(convs):
        x = layers.Conv2D(filters, kernel_size, padding="same", use_bias=False, name=f"{name}_conv{index}")(x)
        x = layers.BatchNormalization(momentum=momentum, name=f"{name}_bn{index}")(x)
        x = layers.Activation("relu", name=f"{name}_relu{index}")(x)
    return layers.MaxPooling2D(2, name=f"{name}_pool")(x)


def imagenet_weights_name(alpha: float) -> str:
    """The file name under which Keras caches the no-top ImageNet weights of MobileNetV2 at width ``alpha``."""
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{WEIGHTS_ROWS}_no_top.h5"


def keras_cache_home() -> Path:
    """The folder whose ``models/`` holds Keras's downloaded weights, as ``keras.utils.get_file`` resolves it:
    ``$KERAS_HOME``, else ``~/.keras``; a folder that cannot be written falls back to ``/tmp/.keras``.

    Read at call time: Keras reads ``KERAS_HOME`` once, at import, so a later change (a test's, or a
    caller's) would otherwise be ignored."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    home = os.path.expanduser(home)
    with contextlib.suppress(OSError):  # Keras creates its home at import; a changed one may not exist yet
        os.makedirs(home, exist_ok=True)
    if not os.access(home, os.W_OK):
        home = os.path.join("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(), ".keras")
    return Path(home)


def fetch_imagenet_weights(alpha: float, file_hash: str | None = None) -> str:
    """The local path of Keras's ImageNet weights for ``MobileNetV2(include_top=False, alpha=alpha)``: the file
    in Keras's cache (``$KERAS_HOME/models/``), downloaded there by ``keras.utils.get_file`` on first use,
    just as ``weights="imagenet"`` would. ``file_hash`` (sha256) checks the file when given.

    Raises a one-line ValueError that names both remedies when the file is not cached and cannot be
    downloaded."""
    name = imagenet_weights_name(alpha)
    origin = WEIGHTS_BASE_URL + name
    home = keras_cache_home()
    try:
        return keras.utils.get_file(name, origin, cache_subdir="models", cache_dir=str(home), file_hash=file_hash)
    except Exception as error:  # Keras wraps a failed URL in a bare Exception; OSError and ValueError pass as such
        reason = " ".join(f"{type(error).__name__}: {error}".split())
        raise ValueError(
            f"the ImageNet weights of MobileNetV2 alpha {alpha} are not in {home / 'models'} and could not be "
            f"downloaded from {origin} ({reason[:300]}). Offline, copy Keras's file {name} into "
            f"{home / 'models'}/, or pass --weights FILE (a local weights file) or --weights none (from scratch)"
        ) from None


def mobilenetv2_trunk(image_size: int, alpha: float, weights: str | None, **options) -> keras.Model:
    """MobileNetV2 without its top at width ``alpha`` for ``image_size`` px, its weights from ``weights``:
    ``"imagenet"`` (Keras's file, see ``fetch_imagenet_weights``), a local weights file, or None or ``"none"``
    (from scratch). ``options`` go to ``keras.applications.MobileNetV2`` (``name``, ``pooling``). A file that
    does not load is a one-line ValueError."""
    # Built for the real input size with no weights, then loaded: Keras's weights="imagenet" would look
    # for the file in the import-time cache and warn about every size but five.
    trunk = keras.applications.MobileNetV2(input_shape=(image_size, image_size, 3), include_top=False, weights=None,
                                           alpha=alpha, **options)
    if weights == "imagenet":
        weights = fetch_imagenet_weights(alpha)
    if weights and weights != "none":
        try:
            trunk.load_weights(weights)
        except (ValueError, OSError, KeyError) as error:
            reason = " ".join(str(error).split())[:300]
            raise ValueError(f"the weights file {weights} does not load into MobileNetV2 alpha {alpha} ({reason}); "
                             f"give the --alpha it was made for, or replace a broken file") from None
    return trunk


def build_model(network: str, image_size: int, kernel_size: int, num_classes: int,
                weights: str | None = None, steps_per_epoch: int = 100, alpha: float = 0.35) -> keras.Model:
    """``small``: 4 blocks of one conv (32-64-128-256 filters), quick. ``deep``: 4 blocks of two convs
    (32-64-128-256). ``mobilenetv2``: Keras's MobileNetV2 at width ``alpha`` (its own 3x3 kernels), its trunk
    from ``weights``: ``"imagenet"`` (Keras's file, see ``fetch_imagenet_weights``), a local weights file, or
    None or ``"none"`` (from scratch). A pretrained trunk starts frozen (see ``set_trunk_trainable``).
    ``steps_per_epoch`` sets the batch-norm momentum of small and deep (see ``batch_norm_momentum``)."""
    if network not in NETWORKS:
        raise ValueError(f"--model must be one of {', '.join(NETWORKS)}, not {network!r}")
    if kernel_size not in KERNEL_SIZES:
        raise ValueError(f"--kernel-size must be one of {KERNEL_SIZES}, not {kernel_size}")
    if num_classes < 2:
        raise ValueError("a classifier needs at least two classes")
    inputs = keras.Input((image_size, image_size, 3), name="pixels")
    if network == "mobilenetv2":
        x = layers.Rescaling(1 / 127.5, offset=-1, name="rescale")(inputs)
        backbone = mobilenetv2_trunk(image_size, alpha, weights, name=TRUNK)
        model = keras.Model(inputs, _head(backbone(x), num_classes, 0.2), name="mobilenetv2")
        if weights and weights != "none":
            set_trunk_trainable(model, False)
        else:
            # From scratch, Keras's momentum 0.999 leaves the running statistics near their start for
            # thousands of steps: a 12-epoch run on 5600 crops called every crop one class (validation
            # accuracy stuck at the majority's share, experiments/street_recipes.py). The small networks' rule
            # fixes it.
            for layer in backbone.layers:
                if isinstance(layer, layers.BatchNormalization):
                    layer.momentum = batch_norm_momentum(steps_per_epoch)
        return model
    x = layers.Rescaling(1 / 255, name="rescale")(inputs)
    momentum = batch_norm_momentum(steps_per_epoch)
    if network == "small":
        for index, filters in enumerate((32, 64, 128, 256)):
            x = _conv_block(x, filters, kernel_size, 1, f"block{index + 1}", momentum)
        return keras.Model(inputs, _head(x, num_classes, 0.3), name="small")
    for index, filters in enumerate((32, 64, 128, 256)):
        x = _conv_block(x, filters, kernel_size, 2, f"block{index + 1}", momentum)
    return keras.Model(inputs, _head(x, num_classes, 0.4), name="deep")


def set_trunk_trainable(model: keras.Model, trainable: bool) -> None:
    """Freeze a pretrained MobileNetV2 trunk (to train the head alone) or unfreeze it for fine-tuning; its
    BatchNormalization layers stay frozen either way, and so in inference mode with ImageNet's statistics.

    Keras 3 passes the outer model's ``training`` flag to a nested model, over a ``training=False`` given
    when it was called (keras-team/keras#20285), so the usual ``backbone(x, training=False)`` would not keep
    batch normalization in inference mode during fit; a frozen BatchNormalization layer is always in it.
    Compile the model again after a change."""
    trunk = model.get_layer(TRUNK)
    trunk.trainable = trainable
    for layer in trunk.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.trainable = False


class EarlyStoppingOverPhases(keras.callbacks.EarlyStopping):
    """Early stopping whose best epoch and best weights carry over from one ``fit`` to the next (a warm-up
    on a frozen trunk, then fine-tuning), so that the weights kept at the end are the best of all epochs,
    not only of the last phase. The patience starts afresh in each phase: fine-tuning gets its own."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.phases = 0

    def on_train_begin(self, logs=None):
        if self.phases == 0:
            super().on_train_begin(logs)
        else:
            self.wait = 0
            self.stopped_epoch = 0
        self.phases += 1


def build_augmentation(preset: str, seed: int) -> keras.Sequential | None:
    """``light``: flips, small rotations and zoom. ``heavy``: also contrast, brightness, and a random
    blur or shrink-and-enlarge that imitates video frames. Runs in the input pipeline, not the model."""
    if preset not in AUGMENTATIONS:
        raise ValueError(f"--augmentation must be one of {', '.join(AUGMENTATIONS)}, not {preset!r}")
    if preset == "none":
        return None
    steps = [
        layers.RandomFlip("horizontal", seed=seed),
        layers.RandomRotation(0.04, fill_mode="reflect", seed=seed),
        layers.RandomZoom((-0.1, 0.1), fill_mode="reflect", seed=seed),
    ]
    if preset == "heavy":
        steps += [
            layers.RandomContrast(0.3, seed=seed),
            layers.RandomBrightness(0.2, value_range=(0, 255), seed=seed),
            VideoDegrade(seed=seed),
        ]
    return keras.Sequential(steps, name=f"augment_{preset}")


class VideoDegrade(layers.Layer):
    """Half of the images, at random: shrunk to 25-70 % and enlarged back, which blurs them the way a
    small face in a compressed video frame is blurred. Identity outside training."""

    def __init__(self, probability: float = 0.5, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.probability = probability
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=True):
        if not training:
            return images
        import tensorflow as tf

        size = tf.shape(images)[1:3]
        factor = keras.random.uniform((), 0.25, 0.7, seed=self.seed_generator)
        small = tf.cast(tf.cast(size, tf.float32) * factor, tf.int32)
        degraded = tf.image.resize(tf.image.resize(images, small, antialias=True), size)
        chosen = keras.random.uniform((tf.shape(images)[0], 1, 1, 1), seed=self.seed_generator) < self.probability
        return tf.where(chosen, degraded, images)

    def get_config(self):
        return {**super().get_config(), "probability": self.probability}


@keras.saving.register_keras_serializable(package="maskdetect")
class Mirror(layers.Layer):
    """The images mirrored left to right. Registered, so that a saved model that uses it loads in safe mode."""

    def call(self, images):
        return keras.ops.flip(images, axis=2)


def mirror_averaged(model: keras.Model) -> keras.Model:
    """``model`` applied to each image and to its mirror image, the two outputs averaged: the classifier that
    is saved, so that detection, the exports, ``--rank-on`` and the decision weights all see the same
    probabilities. It makes trainings steadier on street faces (docs/benchmarks.md), at twice the classifier's
    cost per face."""
    inputs = keras.Input(model.input_shape[1:], name="pixels")
    outputs = layers.Average(name="mirror_average")([model(inputs), model(Mirror(name="mirror")(inputs))])
    return keras.Model(inputs, outputs, name=f"{model.name}_mirror_averaged")
