"""bench_detect's threshold ceiling: the figure that tells a threshold problem from a model problem."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench_detect import threshold_ceiling  # noqa: E402


def test_separable_scores_reach_every_face_even_when_0_5_would_not():
    # every unmasked face scores above every masked one, but all below 0.5: the default threshold
    # would call them all masked, the ceiling shows a threshold exists that gets all of them
    positive = np.array([False] * 6 + [True] * 4)
    score = np.array([0.01, 0.02, 0.05, 0.08, 0.1, 0.12, 0.2, 0.3, 0.35, 0.4])
    auc, threshold, negative_accuracy, positive_accuracy = threshold_ceiling(positive, score)
    assert auc == 1.0
    assert (negative_accuracy, positive_accuracy) == (1.0, 1.0)
    assert 0.12 < threshold <= 0.2


def test_overlapping_scores_give_the_best_worse_class():
    positive = np.array([False, False, False, False, True, True, True, True])
    score = np.array([0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9])
    auc, threshold, negative_accuracy, positive_accuracy = threshold_ceiling(positive, score)
    assert auc == pytest.approx(15 / 16)  # only 0.4 < 0.6 is out of order
    # at 0.4: masks 3/4 right, unmasked 4/4; at 0.7: masks 4/4, unmasked 3/4; never both 4/4
    assert min(negative_accuracy, positive_accuracy) == 0.75
    assert threshold in (0.4, 0.7)


def test_one_class_is_a_clear_error():
    with pytest.raises(ValueError, match="both classes"):
        threshold_ceiling(np.array([True, True]), np.array([0.2, 0.9]))
