"""The networks and augmentation presets. Imports Keras, so only training and inference load it.

Every model takes raw 0-255 RGB pixels (rescaling is its first layer), so a saved model needs no
preprocessing code beside it. Two classes get one sigmoid output; more get a softmax.
"""

from __future__ import annotations

import keras
from keras import layers

from maskdetect.train import AUGMENTATIONS, KERNEL_SIZES, NETWORKS


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


def build_model(network: str, image_size: int, kernel_size: int, num_classes: int,
                weights: str | None = None, steps_per_epoch: int = 100) -> keras.Model:
    """``small``: 4 blocks of one conv (32-64-128-256 filters), quick. ``deep``: 4 blocks of two convs
    (32-64-128-256). ``mobilenetv2``: Keras's MobileNetV2 (its own 3x3 kernels), from scratch unless
    ``weights`` names a local ImageNet weights file (no download). ``steps_per_epoch`` sets the batch-norm
    momentum of small and deep (see ``batch_norm_momentum``)."""
    if network not in NETWORKS:
        raise ValueError(f"--model must be one of {', '.join(NETWORKS)}, not {network!r}")
    if kernel_size not in KERNEL_SIZES:
        raise ValueError(f"--kernel-size must be one of {KERNEL_SIZES}, not {kernel_size}")
    if num_classes < 2:
        raise ValueError("a classifier needs at least two classes")
    inputs = keras.Input((image_size, image_size, 3), name="pixels")
    if network == "mobilenetv2":
        x = layers.Rescaling(1 / 127.5, offset=-1, name="rescale")(inputs)
        backbone = keras.applications.MobileNetV2(
            input_shape=(image_size, image_size, 3), include_top=False, weights=None, alpha=1.0
        )
        if weights:
            backbone.load_weights(weights)
        return keras.Model(inputs, _head(backbone(x), num_classes, 0.2), name="mobilenetv2")
    x = layers.Rescaling(1 / 255, name="rescale")(inputs)
    momentum = batch_norm_momentum(steps_per_epoch)
    if network == "small":
        for index, filters in enumerate((32, 64, 128, 256)):
            x = _conv_block(x, filters, kernel_size, 1, f"block{index + 1}", momentum)
        return keras.Model(inputs, _head(x, num_classes, 0.3), name="small")
    for index, filters in enumerate((32, 64, 128, 256)):
        x = _conv_block(x, filters, kernel_size, 2, f"block{index + 1}", momentum)
    return keras.Model(inputs, _head(x, num_classes, 0.4), name="deep")


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
