"""maskdetect.models: each network at a tiny size, the trunk switch, batch-norm momentum, the augmentation presets,
the ImageNet file's name and Keras's cache folder. No training here (test_train and test_weights train)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from helpers import picture

from maskdetect import models
from maskdetect.settings import AUGMENTATIONS, NETWORKS

SIZE = 32


def faces(count: int = 4, size: int = SIZE) -> np.ndarray:
    """``count`` real pictures (crops of the astronaut photo) as a float32 batch of 0-255 RGB pixels."""
    base = picture("astronaut")
    crops = [base.crop((150 + 10 * k, 40 + 5 * k, 330 + 10 * k, 220 + 5 * k)).resize((size, size))
             for k in range(count)]
    return np.stack([np.asarray(crop, dtype=np.float32) for crop in crops])


@pytest.mark.parametrize("network", NETWORKS)
@pytest.mark.parametrize("classes", [2, 3])
def test_each_network_takes_raw_pixels_and_gives_probabilities(network, classes):
    model = models.build_model(network, SIZE, 3, classes, weights=None)
    assert model.input_shape == (None, SIZE, SIZE, 3)
    assert model.output_shape == ((None, 1) if classes == 2 else (None, classes))
    assert model.layers[1].name == "rescale"  # raw 0-255 pixels in: the model rescales itself
    probabilities = np.asarray(model(faces(), training=False))
    assert probabilities.shape == (4, 1 if classes == 2 else classes)
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    if classes > 2:
        assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)


def test_kernel_size_shapes_the_small_and_deep_convolutions():
    for network, convs in (("small", 4), ("deep", 8)):
        model = models.build_model(network, SIZE, 5, 2)
        kernels = [layer.kernel_size for layer in model.layers if layer.name.endswith(("_conv0", "_conv1"))]
        assert kernels == [(5, 5)] * convs


def test_deep_is_bigger_than_small():
    small, deep = models.build_model("small", SIZE, 3, 2), models.build_model("deep", SIZE, 3, 2)
    assert deep.count_params() > small.count_params()


@pytest.mark.parametrize("args, message", [
    (("vgg", SIZE, 3, 2), "--model must be one of"),
    (("small", SIZE, 4, 2), "--kernel-size must be one of"),
    (("small", SIZE, 3, 1), "at least two classes"),
])
def test_bad_arguments_are_one_line(args, message):
    with pytest.raises(ValueError, match=message):
        models.build_model(*args)


@pytest.mark.parametrize("steps, momentum", [(1000, 0.99), (100, 0.99), (50, 0.98), (20, 0.95), (5, 0.9), (1, 0.9),
                                             (0, 0.9)])
def test_batch_norm_momentum_catches_up_within_short_epochs(steps, momentum):
    assert models.batch_norm_momentum(steps) == pytest.approx(momentum)


@pytest.mark.parametrize("network", ["small", "deep"])
def test_small_and_deep_use_that_momentum(network):
    from keras import layers

    model = models.build_model(network, SIZE, 3, 2, steps_per_epoch=20)
    norms = [layer for layer in model.layers if isinstance(layer, layers.BatchNormalization)]
    assert norms and all(layer.momentum == pytest.approx(0.95) for layer in norms)


def test_set_trunk_trainable_freezes_and_unfreezes_the_trunk_but_never_its_batch_norm():
    from keras import layers

    model = models.build_model("mobilenetv2", SIZE, 3, 2, weights=None)
    trunk = model.get_layer(models.TRUNK)
    assert trunk.trainable  # from scratch: nothing is frozen
    head = model.get_layer("probability")
    models.set_trunk_trainable(model, False)
    assert not trunk.trainable and head.trainable
    assert len(model.trainable_weights) == len(head.trainable_weights)  # the head alone learns
    models.set_trunk_trainable(model, True)
    assert trunk.trainable
    norms = [layer for layer in trunk.layers if isinstance(layer, layers.BatchNormalization)]
    convs = [layer for layer in trunk.layers if isinstance(layer, layers.Conv2D)]
    assert norms and not any(layer.trainable for layer in norms)
    assert convs and all(layer.trainable for layer in convs)


def test_a_model_without_a_trunk_cannot_be_switched():
    with pytest.raises(ValueError):
        models.set_trunk_trainable(models.build_model("small", SIZE, 3, 2), False)


def test_imagenet_weights_name_is_keras_s_own():
    assert models.imagenet_weights_name(0.35) == "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"
    assert models.imagenet_weights_name(1) == "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
    assert models.WEIGHTS_BASE_URL.endswith("/") and models.imagenet_weights_name(0.5).endswith("_no_top.h5")


def test_keras_cache_home_reads_keras_home_at_call_time(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "new home"))
    assert models.keras_cache_home() == tmp_path / "new home"
    assert (tmp_path / "new home").is_dir()  # created, as Keras creates its home at import
    monkeypatch.delenv("KERAS_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert models.keras_cache_home() == tmp_path / ".keras"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to any folder")
def test_an_unwritable_keras_home_falls_back_to_tmp(tmp_path, monkeypatch):
    home = tmp_path / "locked"
    home.mkdir()
    home.chmod(0o500)
    monkeypatch.setenv("KERAS_HOME", str(home))
    try:
        assert models.keras_cache_home().name == ".keras" and models.keras_cache_home() != home
    finally:
        home.chmod(0o700)


def test_augmentation_presets():
    assert set(AUGMENTATIONS) == {"none", "light", "heavy"}
    assert models.build_augmentation("none", 0) is None
    light, heavy = models.build_augmentation("light", 0), models.build_augmentation("heavy", 0)
    assert [type(layer).__name__ for layer in light.layers] == ["RandomFlip", "RandomRotation", "RandomZoom"]
    assert [type(layer).__name__ for layer in heavy.layers][:3] == ["RandomFlip", "RandomRotation", "RandomZoom"]
    assert {"RandomContrast", "RandomBrightness", "VideoDegrade"} <= {type(layer).__name__ for layer in heavy.layers}
    with pytest.raises(ValueError, match="--augmentation must be one of"):
        models.build_augmentation("extreme", 0)


@pytest.mark.parametrize("preset", ["light", "heavy"])
def test_augmentation_changes_pictures_in_training_only(preset):
    batch = faces(8)
    augment = models.build_augmentation(preset, 3)
    trained = np.asarray(augment(batch, training=True))
    assert trained.shape == batch.shape
    assert not np.allclose(trained, batch)
    assert trained.min() >= -1e-3 and trained.max() <= 255 + 1e-3  # still pixels
    assert np.allclose(np.asarray(augment(batch, training=False)), batch)


def test_video_degrade_blurs_about_half_the_pictures_and_is_identity_outside_training():
    batch = faces(16, size=64)
    degrade = models.VideoDegrade(seed=1)
    out = np.asarray(degrade(batch, training=True))
    changed = [not np.allclose(out[k], batch[k]) for k in range(len(batch))]
    assert 0 < sum(changed) < len(batch)
    # a blurred picture has less fine detail: smaller differences between neighbouring pixels
    for k in np.flatnonzero(changed):
        assert np.abs(np.diff(out[k], axis=1)).mean() < np.abs(np.diff(batch[k], axis=1)).mean()
    assert np.array_equal(np.asarray(degrade(batch, training=False)), batch)
    assert models.VideoDegrade(probability=0.25).get_config()["probability"] == 0.25


def test_early_stopping_keeps_its_best_across_phases():
    model = models.build_model("small", SIZE, 3, 2)
    stopper = models.EarlyStoppingOverPhases(monitor="val_loss", patience=2, restore_best_weights=True)
    stopper.set_model(model)
    stopper.on_train_begin()
    for epoch, loss in enumerate((0.9, 0.5, 0.6)):
        stopper.on_epoch_end(epoch, {"val_loss": loss})
    assert stopper.best == 0.5 and stopper.wait == 1
    stopper.on_train_begin()  # the fine-tuning phase: the best carries over, the patience starts afresh
    assert stopper.best == 0.5 and stopper.wait == 0 and stopper.phases == 2
    stopper.on_epoch_end(3, {"val_loss": 0.7})
    assert stopper.best == 0.5 and stopper.wait == 1
