"""Training plots, drawn with matplotlib's file-only backend (no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save(figure, path: Path) -> None:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def learning_curves(history: dict, path: Path) -> None:
    """Loss and accuracy, training against validation, per epoch."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    epochs = np.arange(1, len(history["loss"]) + 1)
    for axis, key in zip(axes, ("loss", "accuracy"), strict=True):
        axis.plot(epochs, history[key], label="training")
        axis.plot(epochs, history[f"val_{key}"], label="validation")
        axis.set_xlabel("epoch")
        axis.set_title(key)
        axis.grid(alpha=0.3)
        axis.legend()
    best = int(np.argmin(history["val_loss"])) + 1
    axes[0].axvline(best, color="grey", linestyle=":", label="best")
    save(figure, path)


def confusion(matrix: Sequence[Sequence[int]], class_names: Sequence[str], path: Path) -> None:
    matrix = np.asarray(matrix)
    figure, axis = plt.subplots(figsize=(1.6 * len(class_names) + 2.5, 1.4 * len(class_names) + 2))
    axis.imshow(matrix, cmap="Blues")
    ticks = np.arange(len(class_names))
    axis.set_xticks(ticks, class_names, rotation=30, ha="right")
    axis.set_yticks(ticks, class_names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    for row in range(len(class_names)):
        for column in range(len(class_names)):
            value = matrix[row, column]
            axis.text(column, row, str(value), ha="center", va="center",
                      color="white" if value > matrix.max() / 2 else "black")
    axis.set_title("test set")
    save(figure, path)


def roc(truth: np.ndarray, scores: np.ndarray, auc: float | None, class_names: Sequence[str], path: Path) -> None:
    from sklearn.metrics import roc_curve

    figure, axis = plt.subplots(figsize=(4.5, 4.5))
    if auc is not None:
        false_positive, true_positive, _ = roc_curve(truth, scores)
        axis.plot(false_positive, true_positive, label=f"AUC {auc:.4f}")
    axis.plot([0, 1], [0, 1], color="grey", linestyle=":")
    axis.set_xlabel(f"false positive rate ({class_names[0]} called {class_names[1]})")
    axis.set_ylabel("true positive rate")
    axis.set_title(f"ROC, positive class: {class_names[1]}")
    axis.legend(loc="lower right")
    save(figure, path)


def misclassified(pixels: np.ndarray, truth: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str],
                  path: Path, limit: int = 36) -> None:
    """A grid of the test crops the model got wrong, with the true class and the probabilities."""
    count = min(limit, len(pixels))
    columns = 6
    rows = max(1, int(np.ceil(count / columns)))
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 2, rows * 2.6), squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index >= count:
            continue
        axis.imshow(pixels[index])
        predicted = int(probabilities[index].argmax())
        axis.set_title(f"true {class_names[truth[index]]}\n{class_names[predicted]} "
                       f"{probabilities[index][predicted]:.2f}", fontsize=8)
    if count == 0:
        axes.flat[0].text(0.5, 0.5, "no test crop was misclassified", ha="center", va="center")
    figure.suptitle(f"misclassified test crops: {len(pixels)}" + (f" (first {count})" if len(pixels) > count else ""))
    save(figure, path)
