"""maskdetect.plots: each plot writes a PNG that opens, is not blank, and needs no display."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import distinct_pictures
from PIL import Image

from maskdetect import plots

pytestmark = pytest.mark.unit  # no TensorFlow: see conftest.py

CLASSES = ["mask", "without_mask"]


def opened(path: Path) -> Image.Image:
    """The PNG at ``path``, decoded to the end and checked to show something."""
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        image.load()
        pixels = np.asarray(image.convert("L"))
    assert min(pixels.shape) > 100 and pixels.std() > 5, "the plot is blank"
    return image


def history(epochs: int) -> dict:
    rng = np.random.default_rng(0)
    loss = np.linspace(0.7, 0.2, epochs) + rng.random(epochs) * 0.05
    return {"loss": list(loss), "val_loss": list(loss + 0.05), "accuracy": list(1 - loss),
            "val_accuracy": list(0.95 - loss)}


@pytest.mark.parametrize("epochs", [1, 12])
def test_learning_curves(tmp_path, epochs):
    plots.learning_curves(history(epochs), tmp_path / "curves.png")
    assert opened(tmp_path / "curves.png").width > opened(tmp_path / "curves.png").height  # two panels side by side


@pytest.mark.parametrize("names", [CLASSES, ["incorrect_mask", "mask", "without_mask"]])
def test_confusion(tmp_path, names):
    matrix = np.eye(len(names), dtype=int) * 30 + 2
    plots.confusion(matrix.tolist(), names, tmp_path / "confusion.png")
    opened(tmp_path / "confusion.png")


# plots.roc calls legend() with no curve when there is no AUC; matplotlib warns, the picture is still written
@pytest.mark.filterwarnings("ignore:No artists with labels found:UserWarning")
def test_roc_with_and_without_an_auc(tmp_path):
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 2, 60)
    plots.roc(truth, np.clip(truth * 0.5 + rng.random(60) * 0.6, 0, 1), 0.93, CLASSES, tmp_path / "roc.png")
    opened(tmp_path / "roc.png")
    # one class in the test set: no curve, still a page-ready picture
    plots.roc(np.ones(5, int), np.full(5, 0.8), None, CLASSES, tmp_path / "roc_none.png")
    opened(tmp_path / "roc_none.png")


def test_misclassified_shows_real_crops_and_says_when_there_are_none(tmp_path):
    crops = np.stack([np.asarray(picture) for picture in distinct_pictures(40, size=64)])
    probabilities = np.tile([[0.2, 0.8]], (40, 1))
    plots.misclassified(crops, np.zeros(40, int), probabilities, CLASSES, tmp_path / "wrong.png", limit=12)
    full = opened(tmp_path / "wrong.png")
    plots.misclassified(crops[:0], np.zeros(0, int), probabilities[:0], CLASSES, tmp_path / "none.png")
    empty = opened(tmp_path / "none.png")
    assert full.height > empty.height  # two rows of six crops against one empty row


def test_plots_need_no_display_and_leave_no_figure_open(tmp_path):
    import matplotlib
    import matplotlib.pyplot as plt

    assert matplotlib.get_backend().lower() == "agg"
    before = len(plt.get_fignums())
    plots.confusion([[1, 0], [0, 1]], CLASSES, tmp_path / "a.png")
    plots.learning_curves(history(3), tmp_path / "b.png")
    assert len(plt.get_fignums()) == before
