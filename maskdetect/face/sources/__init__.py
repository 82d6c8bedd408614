"""The built-in proposal sources, one module each. Importing this package registers them; the order of the
imports below is their registration order, which is the order they run in by default."""

from maskdetect.face.sources import ssd  # noqa: F401  (isort: skip)
from maskdetect.face.sources import blazeface  # noqa: F401  (isort: skip)
from maskdetect.face.sources import mtcnn_below_threshold  # noqa: F401  (isort: skip)
from maskdetect.face.sources import facefinder  # noqa: F401  (isort: skip)
