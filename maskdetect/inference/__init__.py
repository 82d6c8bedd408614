"""Inference: find every face in a picture, classify it with a trained model, and draw the result.

:mod:`~maskdetect.inference.pipeline` finds and classifies the faces of one frame, :mod:`~maskdetect.inference.drawing`
draws them, :mod:`~maskdetect.inference.media` reads and writes images, videos and webcams, and
:mod:`~maskdetect.inference.run` runs many inputs into an output folder (what ``detect_mask.py`` does).

    >>> from maskdetect.artifact import load_classifier
    >>> from maskdetect.inference import MaskDetector
    >>> from maskdetect.images import load_rgb
    >>> detector = MaskDetector(load_classifier("logs/runs/<run>/model.keras"))
    >>> detector.image(load_rgb("photo.jpg"))           # a list of Detection

Nothing here imports TensorFlow, Keras or OpenCV until a model or a detector is built or a frame is drawn.
"""

from maskdetect.inference.drawing import annotate
from maskdetect.inference.pipeline import Detection, MaskDetector, best_model

__all__ = ["Detection", "MaskDetector", "annotate", "best_model"]
