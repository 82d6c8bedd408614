"""Decision weights: fitted on street faces (a discriminant for two classes, a fixed operating point for more),
applied by decide()."""

from __future__ import annotations

import numpy as np
import pytest

from maskdetect import decisions

pytestmark = pytest.mark.unit  # no TensorFlow: see conftest.py

TWO = ["mask", "without_mask"]


def threshold(weights):
    """A two-class model's decision weights as a threshold on the second class's probability."""
    return weights[0] / (weights[0] + weights[1])


def log_odds_faces(masked_mean=-5.0, without_mean=0.0, spread=1.5, counts=(200, 40), seed=0):
    """Two-class probabilities whose log-odds P(without_mask) / P(mask) are Gaussian per class: a model sure of
    "mask" on street faces, unmasked ones included."""
    rng = np.random.default_rng(seed)
    truth = np.repeat([0, 1], counts)
    log_odds = np.r_[rng.normal(masked_mean, spread, counts[0]), rng.normal(without_mean, spread, counts[1])]
    without = 1 / (1 + np.exp(-log_odds))
    return truth, np.c_[1 - without, without]


def test_decision_weights_fitted_on_street_faces_balance_the_recalls():
    """Argmax gets half of these unmasked faces right; the fitted weights move the threshold to where two
    Gaussians with these priors cross, and decide() applies them."""
    truth, probabilities = log_odds_faces()
    assert (decisions.decide(probabilities)[truth == 1] == 1).mean() < 0.6
    fitted = decisions.calibrate(truth, probabilities, TWO)
    assert fitted["rule"] == "linear discriminant on the log-odds"
    assert fitted["balanced_accuracy_argmax"] < 0.8 < 0.9 < fitted["balanced_accuracy"]
    # the population's own crossing point: midpoint + variance / distance * log(prior ratio)
    assert abs(fitted["log_odds_threshold"] - (-2.5 + 1.5 ** 2 / 5 * np.log(200 / 40))) < 0.3, fitted
    assert abs(np.log(threshold(fitted["weights"]) / (1 - threshold(fitted["weights"])))
               - fitted["log_odds_threshold"]) < 1e-4
    chosen = decisions.decide(probabilities, fitted["weights"])
    assert [(chosen[truth == k] == k).mean() for k in (0, 1)] == fitted["recalls"]
    meta = {"class_names": TWO, "decision": fitted}
    assert decisions.decision_weights(meta) == fitted["weights"]
    assert decisions.decision_weights({"class_names": TWO}) is None  # an older model: argmax


def test_the_threshold_uses_every_face_not_the_few_hardest():
    """Where the 4 hardest of 200 masked faces score moves a 98 % quantile across most of the range between
    the classes; the discriminant, fitted on all faces, moves a fraction of that."""
    truth, probabilities = log_odds_faces(seed=3)
    masked = np.flatnonzero(truth == 0)
    hardest = masked[np.argsort(probabilities[masked, 1])[-4:]]
    fitted = []
    for without in (0.05, 0.5):  # the hardest masked faces: fairly sure of "mask", or undecided
        moved = probabilities.copy()
        moved[hardest] = [1 - without, without]
        fitted.append(decisions.calibrate(truth, moved, TWO)["log_odds_threshold"])
    quantile_moves = np.log(0.5 / 0.5) - np.log(0.05 / 0.95)  # 2.9 in log-odds
    assert abs(fitted[1] - fitted[0]) < quantile_moves / 4, fitted


def test_class_order_does_not_matter_and_a_backwards_model_falls_back():
    truth, probabilities = log_odds_faces()
    fitted = decisions.calibrate(truth, probabilities, TWO)
    # the same faces with the classes listed the other way round: the same faces called unmasked
    swapped = decisions.calibrate(1 - truth, probabilities[:, ::-1], ["no_mask", "with_mask"])
    assert np.array_equal(decisions.decide(probabilities, fitted["weights"]),
                          1 - decisions.decide(probabilities[:, ::-1], swapped["weights"]))
    # a model that scores unmasked faces lower than masked ones on average: no discriminant to fit
    backwards = decisions.calibrate(truth, probabilities[:, ::-1], TWO)
    assert backwards["rule"] == "balanced accuracy" and backwards["weights"] is not None
    # a probability of exactly 0 is floored instead of ending in -inf
    zeros = probabilities.copy()
    zeros[0] = [1.0, 0.0]
    assert np.isfinite(decisions.calibrate(truth, zeros, TWO)["log_odds_threshold"])


def test_three_classes_keep_the_masked_faces_and_share_the_rest():
    """mask / without_mask / incorrect_mask: the masked faces keep their 98 %, the two other classes get the
    best mean recall there is."""
    rng = np.random.default_rng(1)
    truth = np.repeat([0, 1, 2], [60, 20, 20])
    probabilities = rng.dirichlet([1, 1, 1], len(truth)) * 0.4 + np.eye(3)[truth] * 0.3 + np.eye(3)[0] * 0.3
    fitted = decisions.calibrate(truth, probabilities, ["mask", "without_mask", "incorrect_mask"])
    assert fitted["recalls"][0] >= 0.98
    argmax_recalls = [(decisions.decide(probabilities)[truth == k] == k).mean() for k in (1, 2)]
    assert np.mean(fitted["recalls"][1:]) > np.mean(argmax_recalls)
    assert fitted["rule"] == "keep 98% of masked faces right"
    loose = decisions.calibrate(truth, probabilities, ["mask", "without_mask", "incorrect_mask"], masked_kept=0.9)
    assert loose["recalls"][0] >= 0.9 and np.mean(loose["recalls"][1:]) >= np.mean(fitted["recalls"][1:])


def test_too_few_street_faces_keep_plain_argmax_and_bad_input_is_refused():
    fitted = decisions.calibrate(np.array([0] * 30 + [1] * 4), np.full((34, 2), 0.5), TWO)
    assert fitted["weights"] is None and "fewer than" in fitted["why"]
    # class names that say nothing of masks: the best balanced accuracy, then the centre of the ties
    three = decisions.calibrate(np.repeat([0, 1, 2], 12), np.eye(3)[np.repeat([0, 1, 2], 12)], ["a", "b", "c"])
    assert three["weights"] == [1.0, 1.0, 1.0] and three["rule"] == "balanced accuracy"
    with pytest.raises(ValueError, match="do not fit"):
        decisions.decision_weights({"class_names": ["a", "b"], "decision": {"weights": [1.0, -2.0]}})
    with pytest.raises(ValueError, match="masked_kept"):
        decisions.calibrate(np.array([0, 1]), np.eye(2), TWO, masked_kept=1.5)
