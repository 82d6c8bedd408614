"""Export a trained classifier to a format that runs without this package: TFLite or a TensorFlow SavedModel.

The exported model is the Keras model itself, so it takes what the Keras model takes: float32 RGB pixels
in 0-255 (rescaling is the model's first layer), shape (n, S, S, 3) with S the training image size.
Two classes give one sigmoid output (the probability of the second class), more give a softmax.
The class names, image size and crop geometry (the margin and size faces are cut with before the resize)
go into a JSON file beside the model (see :func:`meta_path` and :func:`describe`).

Imports TensorFlow inside the functions only.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import warnings
from pathlib import Path

import numpy as np

from maskdetect import artifact, decisions, runtime

FORMATS = ("tflite", "savedmodel")
_META_IN_FOLDER = "maskdetect.json"


def default_path(model_path: str | Path, export_format: str) -> Path:
    """Next to the .keras file: ``model.tflite`` or the folder ``model_savedmodel/``."""
    model_path = Path(model_path)
    return model_path.with_suffix(".tflite") if export_format == "tflite" else model_path.with_name(
        f"{model_path.stem}_savedmodel")


def meta_path(export_path: str | Path, export_format: str) -> Path:
    """Where the class names travel: ``model.json`` beside a .tflite file, ``maskdetect.json`` inside a
    SavedModel folder (so copying the folder takes them along)."""
    export_path = Path(export_path)
    return export_path.with_suffix(".json") if export_format == "tflite" else export_path / _META_IN_FOLDER


def export(model, meta: dict, export_format: str, path: str | Path, source: str | Path = "") -> Path:
    """Write ``model`` as ``export_format`` to ``path`` and its metadata beside it; returns the metadata file."""
    if export_format not in FORMATS:
        raise ValueError(f"--export must be one of {', '.join(FORMATS)}, not {export_format!r}")
    path = Path(path)
    if export_format == "tflite" and path.is_dir():
        raise ValueError(f"--export-path {path} is a folder; a TFLite model is one file (e.g. model.tflite)")
    if export_format == "savedmodel" and path.exists() and not path.is_dir():
        raise ValueError(f"--export-path {path} is a file; a SavedModel is a folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    # The converter and model.export print their traces and signatures to stdout and stderr.
    with runtime.native_stderr_silenced(), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import tensorflow as tf

        if export_format == "tflite":
            converter = tf.lite.TFLiteConverter.from_keras_model(model)
            temporary = path.with_name(f".{path.name}.tmp")
            temporary.write_bytes(converter.convert())
            temporary.replace(path)
        else:
            if path.exists():
                shutil.rmtree(path)  # a SavedModel folder mixes badly with an older one
            model.export(str(path), format="tf_saved_model", verbose=False)
    target = meta_path(path, export_format)
    target.write_text(json.dumps(describe(meta, export_format, source), indent=2))
    return target


def describe(meta: dict, export_format: str, source: str | Path = "") -> dict:
    """What code without this package needs to use an exported model: class names, input, output, and how to
    cut a face. ``crop_margin`` and ``crop_size`` are the training crops' (the face stage's defaults, 0.2 and
    256, for a model saved before they were recorded)."""
    image_size = int(meta["image_size"])
    binary = len(meta["class_names"]) == 2
    margin, crop_size = artifact.model_crop(meta)
    return {
        "format": export_format,
        "class_names": list(meta["class_names"]),
        "image_size": image_size,
        "binary": binary,
        "input": f"float32 RGB pixels 0-255, shape (n, {image_size}, {image_size}, 3); the model rescales itself",
        "output": ("one sigmoid probability per image: that of class_names[1]" if binary
                   else "softmax probabilities over class_names"),
        "crop_margin": margin,
        "crop_size": crop_size,
        "crop": f"the face box grown by crop_margin ({margin:g}) of its long side on each side, squared (shifted "
                f"to stay inside the photo, shrunk to its short side where it cannot), then resized ({crop_size} px, "
                f"then {image_size} px with antialiasing), as the training crops were made",
        # the model's decision rule, fitted on street faces at training (null: the largest probability)
        "decision_weights": decisions.decision_weights(meta),
        "decision": "the class whose probability times its decision weight is largest (all weights 1 when "
                    "decision_weights is null); for two classes: class_names[1] when its probability p satisfies "
                    "p * w1 >= (1 - p) * w0",
        "source_model": str(source),
        "run_id": meta.get("run_id", ""),
    }


def load_exported(path: str | Path, export_format: str):
    """An exported model as a function: uint8 or float pixels (n, S, S, 3) -> probabilities (n, classes),
    and its metadata. Uses TensorFlow's TFLite interpreter or ``tf.saved_model.load``, not Keras or this package's
    training code (the probabilities per class are :func:`maskdetect.artifact.class_probabilities`, numpy)."""
    path = Path(path)
    meta = json.loads(meta_path(path, export_format).read_text())
    with runtime.native_stderr_silenced(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter warns that it moves to ai_edge_litert
        import tensorflow as tf

        if export_format == "tflite":
            interpreter = tf.lite.Interpreter(model_path=str(path))
        else:
            loaded = tf.saved_model.load(str(path))

    if export_format == "tflite":
        entry = interpreter.get_input_details()[0]["index"]
        exit_ = interpreter.get_output_details()[0]["index"]

        def predict(pixels: np.ndarray) -> np.ndarray:
            pixels = np.asarray(pixels, dtype=np.float32)
            interpreter.resize_tensor_input(entry, list(pixels.shape))
            interpreter.allocate_tensors()
            interpreter.set_tensor(entry, pixels)
            interpreter.invoke()
            return artifact.class_probabilities(np.array(interpreter.get_tensor(exit_)))
    else:
        def predict(pixels: np.ndarray) -> np.ndarray:
            output = loaded.serve(tf.constant(np.asarray(pixels, dtype=np.float32)))
            return artifact.class_probabilities(np.asarray(output))

    return predict, meta
