"""A trained classifier as a file, and as a thing that classifies face crops.

``train_a_model.py`` saves a Keras ``model.keras`` with ``maskdetect.json`` inside it (:data:`META_NAME`: class
names, image size, the crop geometry of the training crops, the decision weights); ``detect_mask.py``,
``--rank-on`` scoring, the exports and the benchmarks load it from here. A crop reaches the classifier through
one resize, :func:`classifier_input`, in training's ``tf.data`` pipeline and in inference alike, so the model
sees faces as it saw them in training.

TensorFlow and Keras are imported inside the functions that need them, never when this module is imported.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from maskdetect import decisions, runtime
from maskdetect.facecrops import CropSettings

META_NAME = "maskdetect.json"  # added inside model.keras: class names and image size travel with the model


def save_with_meta(model, path: Path, meta: dict, name: str = META_NAME) -> None:
    """Save a Keras ``model`` with ``meta`` as the JSON entry ``name`` inside the .keras archive, atomically: a
    reader never finds a model without its metadata."""
    path = Path(path)
    partial = path.with_name(path.name + ".partial.keras")
    model.save(partial)
    with zipfile.ZipFile(partial, "a") as archive:
        archive.writestr(name, json.dumps(meta, indent=2))
    partial.replace(path)


def read_meta(path: Path, name: str, what: str, maker: str) -> dict:
    """The JSON entry ``name`` of a .keras archive; one-line ValueErrors: "``what`` PATH does not exist", and
    "PATH is not ``maker``" for a file without it."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} {path} does not exist")
    try:
        with zipfile.ZipFile(path) as archive:
            meta = json.loads(archive.read(name))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError):
        raise ValueError(f"{path} is not {maker}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path} is not {maker}")
    return meta


def load_for_inference(path: Path, what: str):
    """A .keras file of the face stage loaded for inference (Keras's safe mode, not compiled), TensorFlow imported
    with its start-up noise silenced; and the ``tensorflow`` module. A file Keras cannot load is a one-line
    ValueError naming it (``what``: "face detector", "face verifier")."""
    with runtime.native_stderr_silenced():
        import keras
        import tensorflow as tf

        tf.constant(0)
    try:
        return keras.models.load_model(path, safe_mode=True, compile=False), tf
    except Exception as error:  # Keras raises many kinds; the user needs the file named, in one line
        reason = " ".join(str(error).split())[:200]
        raise ValueError(f"{path}: the {what} does not load ({reason})") from None


def load_model(path: str | Path):
    """A saved classifier and its metadata (class names, image size); Keras's safe mode stays on."""
    import keras

    path = Path(path)
    meta = read_meta(path, META_NAME, "model file", "a model saved by train_a_model.py")
    from maskdetect import models  # noqa: F401  (registers the layers a saved classifier may use)

    model = keras.models.load_model(path, safe_mode=True, compile=False)
    return model, meta


def model_crop(meta: dict) -> tuple[float, int]:
    """(margin, crop size) a model's metadata says its faces are cut with; the face stage's defaults for a
    model saved before the crop geometry was recorded. ValueError for values no crop could have."""
    defaults = CropSettings()
    crop = meta.get("crop")
    if crop is None:
        return defaults.margin, defaults.size
    try:
        margin, size = float(crop["margin"]), int(crop["crop_size"])
        CropSettings(margin=margin, size=size)  # the face stage's own checks of both
    except (TypeError, KeyError, ValueError) as error:
        raise ValueError(f"the model's crop geometry {crop!r} is not usable: {error}") from None
    return margin, size


def classifier_input(pixels, image_size: int):
    """Crops resized to the classifier's ``image_size`` square, as a uint8 tensor: ``tf.image.resize`` with
    antialiasing, rounded and clipped to 0-255. ``pixels`` is one image (height, width, 3) or a batch (n, height,
    width, 3), an array or a tensor.

    The one resize between a crop and the classifier: the training pipeline (``data.make_dataset``), inference
    (:class:`Classifier`) and the benchmarks call it, so a model never sees faces resized another way than
    those it was trained on."""
    import tensorflow as tf

    resized = tf.image.resize(pixels, (image_size, image_size), antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def class_probabilities(output: np.ndarray) -> np.ndarray:
    """A model's output as probabilities per class, (n, classes): a two-class model's single sigmoid
    (the probability of the second class) becomes two columns."""
    output = np.asarray(output)
    return np.concatenate([1 - output, output], axis=1) if output.shape[-1] == 1 else output


def predict_probabilities(model, pixels: np.ndarray) -> np.ndarray:
    """Class probabilities, shape (n, classes), for uint8 images already at the model's input size."""
    return class_probabilities(model.predict(pixels, verbose=0, batch_size=64))


class Classifier:
    """A trained model with its class names and the crop geometry of its training crops; classifies face crops
    the way training saw them."""

    def __init__(self, model, meta: dict, path: str | Path) -> None:
        self.model, self.meta, self.path = model, meta, Path(path)
        self.class_names = [str(name) for name in meta["class_names"]]
        self.image_size = int(meta["image_size"])
        # the margin and side the training crops were cut with (the defaults for an older model)
        self.crop_margin, self.crop_size = model_crop(meta)
        recorded = meta.get("crop")
        self.crop_source = str(recorded.get("source", "model")) if isinstance(recorded, dict) else "default"
        # the decision weights fitted on street faces at training (None: plain argmax, an older model)
        self.decision_weights = decisions.decision_weights(meta)
        import tensorflow as tf

        size = self.image_size

        # One traced graph for resize + model: calling the model eagerly on a handful of faces is several times
        # faster than model.predict, which sets up a whole input pipeline on each call.
        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)], reduce_retracing=True)
        def probabilities(crops):
            return model(tf.cast(classifier_input(crops, size), tf.float32), training=False)

        self._probabilities = probabilities

    def probabilities(self, crops: np.ndarray) -> np.ndarray:
        """Class probabilities (n, classes) for uint8 crops (n, crop_size, crop_size, 3)."""
        if not len(crops):
            return np.zeros((0, len(self.class_names)), np.float32)
        return class_probabilities(self._probabilities(np.ascontiguousarray(crops, dtype=np.uint8)).numpy())

    def decide(self, probabilities: np.ndarray) -> np.ndarray:
        """The class index of each row of ``probabilities``, by the model's decision weights."""
        return decisions.decide(probabilities, self.decision_weights)


def _first_line(error: Exception) -> str:
    return next((line.strip() for line in str(error).splitlines() if line.strip()), "")


def load_classifier(path: str | Path) -> Classifier:
    """A model saved by train_a_model.py, checked: one line (ValueError) for anything else."""
    path = Path(path)
    with runtime.native_stderr_silenced():
        import tensorflow as tf

        tf.constant(0)  # TensorFlow logs its device search at the first operation
    try:
        model, meta = load_model(path)  # Keras's safe mode stays on
    except ValueError as error:
        # load_model's own one-liners (no file, not our archive) say it all; Keras's (e.g. safe mode refusing
        # a Lambda layer) need the file named
        if "train_a_model.py" in str(error) or "does not exist" in str(error):
            raise
        raise ValueError(f"{path} cannot be loaded as a model saved by train_a_model.py: "
                         f"{_first_line(error)}") from None
    except Exception as error:  # a damaged or foreign archive: Keras raises many kinds of errors
        raise ValueError(f"{path} cannot be loaded as a model saved by train_a_model.py: "
                         f"{type(error).__name__}: {_first_line(error)}") from None
    names, size = meta.get("class_names"), meta.get("image_size")
    if not isinstance(names, list) or len(names) < 2 or not isinstance(size, int):
        raise ValueError(f"{path} has no usable class names and image size in its {META_NAME}")
    shape = tuple(model.input_shape)
    if len(shape) != 4 or shape[1:3] != (size, size) or shape[3] != 3:
        raise ValueError(f"{path} is a model trained for another image size: its input is {shape[1:]}, "
                         f"its metadata says {size} x {size} x 3")
    outputs = model.output_shape[-1]
    if outputs != (1 if len(names) == 2 else len(names)):
        raise ValueError(f"{path} has {outputs} outputs for {len(names)} classes ({', '.join(names)})")
    try:
        model_crop(meta)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    return Classifier(model, meta, path)
