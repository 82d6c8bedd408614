"""Face-mask detection pipeline: organise photos, crop faces, train and sweep classifiers."""

__version__ = "0.1.0"
