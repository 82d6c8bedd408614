"""mobilenetv2's ImageNet weights through Keras's cache, offline: loading, warm-up then fine-tuning, the one-line
error without file or network, --weights none, and a download from a local server into a temporary KERAS_HOME."""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from helpers import SHARED_DATA, make_crop_dataset

from maskdetect import artifact, records, runlog, train
from maskdetect.settings import DEFAULT_ALPHA, DEFAULT_WARMUP_EPOCHS, HYPERPARAMETERS, Settings

NAME = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"
SHARED_WEIGHTS = SHARED_DATA.parent / "weights" / NAME
SHA256 = "d43c70f8ea04b1087170401b2f4739f41b94200e30892ea8d050ac65779146c6"
TINY = ["--epochs", "2", "--image-size", "32", "--batch-size", "8", "--jobs", "1"]


def shared_weights() -> Path:
    if not SHARED_WEIGHTS.is_file():
        pytest.skip(f"{SHARED_WEIGHTS} is absent (the shared weights file is not part of the project)")
    return SHARED_WEIGHTS


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> Path:
    return make_crop_dataset(tmp_path_factory.mktemp("crops") / "processed_data", per_class=20)


@pytest.fixture
def keras_home(tmp_path, monkeypatch) -> Path:
    """An empty Keras home for this test alone."""
    home = tmp_path / "keras_home"
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


@pytest.fixture
def no_network(monkeypatch) -> list[str]:
    """Every URL open fails (urllib's and the one Keras's get_file imported); returns the URLs tried."""
    import keras.src.utils.file_utils

    tried: list[str] = []

    def refuse(url, *args, **kwargs):
        tried.append(getattr(url, "full_url", url))
        raise urllib.error.URLError("the network is off in this test")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(urllib.request, "urlretrieve", refuse)
    monkeypatch.setattr(keras.src.utils.file_utils, "urlretrieve", refuse)
    return tried


@pytest.fixture
def cached_weights(keras_home) -> Path:
    """The shared weights file copied into the temporary Keras cache, as a user offline would."""
    (keras_home / "models").mkdir(parents=True)
    return Path(shutil.copy(shared_weights(), keras_home / "models" / NAME))


def file_weights(path: Path) -> dict[str, list[np.ndarray]]:
    """Layer name -> its weight arrays, read straight from a Keras .h5 weights file."""
    import h5py

    with h5py.File(path, "r") as handle:
        return {name: [np.asarray(handle[name][weight]) for weight in handle[name].attrs["weight_names"]]
                for name in handle.attrs["layer_names"] if len(handle[name].attrs["weight_names"])}


def test_imagenet_weights_load_into_the_frozen_trunk(cached_weights, no_network):
    from maskdetect import models

    model = models.build_model("mobilenetv2", 48, 3, 2, "imagenet", alpha=0.35)
    trunk = model.get_layer(models.TRUNK)
    expected = file_weights(cached_weights)
    assert len(expected) > 100
    for name, arrays in expected.items():
        loaded = trunk.get_layer(name).get_weights()
        assert len(loaded) == len(arrays), name
        assert all(np.array_equal(a, b) for a, b in zip(loaded, arrays, strict=True)), name
    assert not trunk.trainable_weights and model.trainable_weights  # the head trains first, alone
    assert no_network == []  # the cached file was used, no download tried


@pytest.mark.slow
def test_pretrained_run_warms_up_then_fine_tunes_and_saves(crops, tmp_path, cached_weights, no_network):
    import keras

    from maskdetect import models

    expected = file_weights(cached_weights)

    class Probe(keras.callbacks.Callback):
        """The trunk's first conv kernel and batch-norm statistics after each epoch."""

        def __init__(self):
            super().__init__()
            self.kernels, self.means = [], []

        def on_epoch_end(self, epoch, logs=None):
            trunk = self.model.get_layer(models.TRUNK)
            self.kernels.append(trunk.get_layer("Conv1").get_weights()[0].copy())
            self.means.append(trunk.get_layer("bn_Conv1").get_weights()[2].copy())

    probe = Probe()
    settings = train.Settings(model="mobilenetv2", epochs=2, warmup_epochs=1, image_size=32, batch_size=8, jobs=1,
                              data=str(crops), logs=str(tmp_path / "logs"))
    row = train.run(settings, [probe])
    assert row["status"] == "ok" and row["epochs_run"] == 2 and no_network == []
    # warm-up: the trunk is ImageNet's, untouched; fine-tuning: it trains, its batch norm stays ImageNet's
    assert np.array_equal(probe.kernels[0], expected["Conv1"][0])
    assert not np.array_equal(probe.kernels[1], expected["Conv1"][0])
    assert np.array_equal(probe.means[1], expected["bn_Conv1"][2])

    logged = records.read_rows(tmp_path / "logs" / runlog.LOG_NAME)[0]
    assert (logged["weights"], logged["alpha"], logged["warmup_epochs"], logged["epochs_run"]) == (
        "imagenet", "0.35", "1", "2")
    history = records.read_rows(Path(row["run_dir"]) / "history.csv")
    assert [item["epoch"] for item in history] == ["0", "1"]
    assert np.isclose(float(history[1]["learning_rate"]), float(history[0]["learning_rate"]) * train.FINE_TUNE_FACTOR)

    model, meta = artifact.load_model(row["model_path"])
    assert meta["hyperparameters"]["alpha"] == 0.35 and meta["hyperparameters"]["weights"] == "imagenet"
    pixels = np.random.default_rng(0).integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)
    assert artifact.predict_probabilities(model, pixels).shape == (3, 2)


def test_no_file_and_no_network_is_one_line_naming_both_remedies(crops, tmp_path, keras_home, no_network, capsys):
    logs = tmp_path / "logs"
    assert train.main(["--data", str(crops), "--logs", str(logs), "--model", "mobilenetv2", *TINY]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    message = errors[0]
    for part in (NAME, str(keras_home / "models"), "--weights FILE", "--weights none"):
        assert part in message, (part, message)
    assert no_network  # a download was tried
    assert not logs.exists()  # no run folder and no failed row: the weights are checked first


def test_weights_none_builds_from_scratch_without_the_network(keras_home, no_network):
    from keras import layers

    from maskdetect import models

    settings = train.Settings(model="mobilenetv2", weights="none")
    assert not settings.pretrained and settings.warmup_epochs == 0 and train.weights_file(settings) is None
    model = models.build_model("mobilenetv2", 32, 3, 2, settings.weights, alpha=settings.alpha, steps_per_epoch=20)
    trunk = model.get_layer(models.TRUNK)
    norms = [layer for layer in trunk.layers if isinstance(layer, layers.BatchNormalization)]
    assert all(layer.trainable for layer in norms)
    # the small networks' momentum rule, not Keras's 0.999 that left a short run predicting one class
    assert {layer.momentum for layer in norms} == {models.batch_norm_momentum(20)}
    assert no_network == [] and not (keras_home / "models" / NAME).exists()


def test_the_weights_download_into_keras_cache_from_a_server(keras_home, monkeypatch):
    from maskdetect import models

    served = shared_weights().parent
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # quiet: the test's output is for failures
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        for variable in ("no_proxy", "NO_PROXY"):  # a proxy set for the machine must not take the local request
            monkeypatch.setenv(variable, "127.0.0.1,localhost")
        monkeypatch.setattr(models, "WEIGHTS_BASE_URL", f"http://127.0.0.1:{server.server_address[1]}/")
        path = Path(models.fetch_imagenet_weights(0.35, file_hash=SHA256))
    finally:
        server.shutdown()
        server.server_close()
    assert path == keras_home / "models" / NAME
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SHA256
    assert requests == [f"/{NAME}"]
    # the server is gone: a second run finds the file in the cache
    assert Path(models.fetch_imagenet_weights(0.35)) == path


def test_a_file_of_another_width_is_one_line(keras_home):
    from maskdetect import models

    with pytest.raises(ValueError, match="--alpha") as raised:
        models.build_model("mobilenetv2", 32, 3, 2, str(shared_weights()), alpha=0.5)
    assert "\n" not in str(raised.value)


def test_mobilenetv2_defaults_and_what_the_model_records():
    pretrained = Settings(model="mobilenetv2")
    assert (pretrained.weights, pretrained.alpha, pretrained.warmup_epochs, pretrained.pretrained) == (
        "imagenet", DEFAULT_ALPHA, DEFAULT_WARMUP_EPOCHS, True)
    assert pretrained.hyperparameters()["alpha"] == 0.35
    small = Settings(model="small")
    assert (small.weights, small.alpha, small.warmup_epochs, small.pretrained) == (None, None, None, False)
    assert "alpha" not in small.hyperparameters() and "alpha" not in HYPERPARAMETERS


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--model", "mobilenetv2", "--weights", "w.h5"], "--weights"),
        (["--model", "small", "--weights", "imagenet"], "--weights"),
        (["--model", "mobilenetv2", "--alpha", "0.4"], "--alpha"),
        (["--model", "small", "--alpha", "0.5"], "--alpha"),
        (["--model", "small", "--warmup-epochs", "2"], "--warmup-epochs"),
        (["--model", "mobilenetv2", "--weights", "none", "--warmup-epochs", "2"], "--warmup-epochs"),
        (["--model", "mobilenetv2", "--warmup-epochs", "-1"], "--warmup-epochs"),
    ],
)
def test_bad_weight_flags_are_one_line(tmp_path, capsys, flags, message):
    assert train.main(["--data", str(tmp_path), "--logs", str(tmp_path / "logs"), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
