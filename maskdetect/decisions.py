"""How a classifier's probabilities become a class: per-class decision weights, fitted on street faces.

A model trained mostly on close-up collections is sure of "mask" on street faces: its plain argmax called one
unmasked street face in five "mask". Training therefore fits one weight per class on the validation split's
street faces (crops cut from labelled photos), saves them in the model, and detection, ``--rank-on``, the test
metrics and the exports all decide with them. Pure numpy: no TensorFlow.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from maskdetect import classes

# Street faces (labelled photos, kind "annotated") in the validation split that a calibration needs per class.
MIN_CALIBRATION_FACES = 10
# The operating point of models with more than two classes: the share of masked street faces the decision must
# keep right. Within it, the weights catch as many faces without a (properly worn) mask as they can.
MASKED_KEPT = 0.98
_CALIBRATION_STEPS = np.linspace(-7, 7, 141)  # log class weights tried: e^-7 .. e^7, in steps of 0.1
# Probabilities below this count as this in log-odds: one face whose float32 probability underflowed to 0 would
# otherwise weigh on the variance of a two-class fit as much as many ordinary ones.
_PROBABILITY_FLOOR = 1e-12

def decide(probabilities: np.ndarray, weights: Sequence[float] | None = None) -> np.ndarray:
    """The class index chosen for each row of ``probabilities``: the largest probability times its class's
    decision weight (all 1, plain argmax, when ``weights`` is None). For two classes this is a threshold
    on the second class's probability: p >= w0 / (w0 + w1)."""
    probabilities = np.asarray(probabilities)
    if weights is None:
        return probabilities.argmax(axis=1)
    return (probabilities * np.asarray(weights, dtype=float)[None, :]).argmax(axis=1)


def decision_weights(meta: dict) -> list[float] | None:
    """The decision weights a model's metadata carries (None for models saved before them)."""
    calibration = meta.get("decision") or {}
    weights = calibration.get("weights")
    if weights is None:
        return None
    if len(weights) != len(meta["class_names"]) or not all(np.isfinite(w) and w > 0 for w in weights):
        raise ValueError(f"the model's decision weights {weights} do not fit its classes {meta['class_names']}")
    return [float(w) for w in weights]


def _two_class_threshold(truth: np.ndarray, probabilities: np.ndarray, masked: np.ndarray) -> float | None:
    """The log-odds of the no-mask class over the masked one above which a face is called unmasked, by linear
    discriminant analysis on those log-odds: two Gaussians with one shared variance, priors from these faces.
    None when the model ranks the no-mask faces below the masked ones on average (nothing to fit)."""
    floored = np.log(np.maximum(probabilities, _PROBABILITY_FLOOR))
    log_odds = floored[:, int(np.flatnonzero(~masked)[0])] - floored[:, int(np.flatnonzero(masked)[0])]
    without = truth == int(np.flatnonzero(~masked)[0])
    mean_without, mean_masked = log_odds[without].mean(), log_odds[~without].mean()
    if mean_without <= mean_masked:
        return None
    pooled = (((log_odds[without] - mean_without) ** 2).sum() + ((log_odds[~without] - mean_masked) ** 2).sum()) \
        / (len(log_odds) - 2)
    return float((mean_without + mean_masked) / 2
                 + pooled / (mean_without - mean_masked) * np.log((~without).sum() / without.sum()))


RULES = ("discriminant", "masked kept", "balanced accuracy")


def calibrate(truth: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str],
              masked_kept: float = MASKED_KEPT, rule: str | None = None) -> dict:
    """Decision weights fitted on these faces (the validation split's street faces, never close-ups).

    A masked and a no-mask class: linear discriminant analysis on the log-odds of the two (Gaussians with a
    shared variance, the priors of these faces), which uses every face. Rules that hang on a few faces (the best
    balanced accuracy, the edge of a perfectly separating range; a threshold keeping a share of the masked
    faces, a quantile set by the hardest few) moved far more between trainings and under resampling of the
    validation faces (``experiments/decision_rules.py``, docs/benchmarks.md).

    More classes with masked ones among them (``classes.wears_mask``): a fixed operating point. Of the weights
    that keep at least ``masked_kept`` of the masked faces right, those with the highest mean recall of the
    other classes; among equal ones, those leaning furthest to the classes without a mask. Other class names
    (no mask classes among them), or a two-class model that ranks backwards: the best balanced accuracy,
    then the weights nearest the centre of the ties. ``rule`` (one of ``RULES``) forces a rule, for
    benchmarks; the discriminant needs a masked and a no-mask class, the masked share masked classes.

    The validation split drives early stopping only, so fitting a few numbers on it keeps the test split
    untouched."""
    if not 0 < masked_kept <= 1:
        raise ValueError(f"masked_kept must be in (0, 1], not {masked_kept}")
    if rule is not None and rule not in RULES:
        raise ValueError(f"rule must be one of {', '.join(RULES)}, not {rule!r}")
    truth = np.asarray(truth)
    probabilities = np.asarray(probabilities, dtype=float)
    counts = np.bincount(truth, minlength=len(class_names))
    if counts.min() < MIN_CALIBRATION_FACES:
        return {"weights": None, "faces": counts.tolist(),
                "why": f"fewer than {MIN_CALIBRATION_FACES} street faces of a class in the validation split"}

    masked = np.array([classes.wears_mask(name) for name in class_names])
    operating_point = masked.any() and not masked.all()
    if rule is not None and rule != "balanced accuracy" and not operating_point:
        raise ValueError(f"the rule {rule!r} needs a class of worn masks and one without: {list(class_names)}")
    if rule == "discriminant" and len(class_names) != 2:
        raise ValueError(f"the discriminant decides between two classes, not {len(class_names)}")
    if operating_point and len(class_names) == 2 and rule in (None, "discriminant"):
        threshold = _two_class_threshold(truth, probabilities, masked)
        if threshold is not None:
            # call the no-mask class when its log-odds reach the threshold: its weight is e^-threshold
            chosen_logs = np.where(masked, 0.0, -threshold)
            chosen_logs -= chosen_logs[0]
            return _fitted(np.exp(chosen_logs), "linear discriminant on the log-odds", truth, probabilities, counts,
                           log_odds_threshold=round(threshold, 4))
        operating_point = False
    operating_point = operating_point and rule != "balanced accuracy"
    # the first class's weight stays 1: only the ratios matter
    grid = np.array(list(itertools.product(_CALIBRATION_STEPS, repeat=len(class_names) - 1)))
    logs = np.c_[np.zeros(len(grid)), grid]
    recalls = np.array([_recalls(truth, decide(probabilities, np.exp(row)), counts) for row in logs])
    if operating_point:
        feasible = recalls[:, masked].min(axis=1) >= masked_kept
        # the weights are bounded, so at worst no grid point keeps enough masked faces: then the best there is
        if not feasible.any():
            feasible = np.isclose(recalls[:, masked].min(axis=1), recalls[:, masked].min(axis=1).max())
        objective = np.where(feasible, recalls[:, ~masked].mean(axis=1), -1.0)
    else:
        objective = recalls.mean(axis=1)
    objective = objective.round(6)
    tied = np.flatnonzero(objective == objective.max())
    if operating_point:
        toward_no_mask = logs[tied] @ np.where(masked, -1.0, 1.0)
        tied = tied[np.isclose(toward_no_mask, toward_no_mask.max())]
    chosen = tied[np.argmin(np.abs(logs[tied] - logs[tied].mean(axis=0)).sum(axis=1))]
    return _fitted(np.exp(logs[chosen]),
                   f"keep {masked_kept:.0%} of masked faces right" if operating_point else "balanced accuracy",
                   truth, probabilities, counts)


def _fitted(weights: np.ndarray, rule: str, truth: np.ndarray, probabilities: np.ndarray, counts: np.ndarray,
            **extra) -> dict:
    """What a calibration reports: the weights, the faces per class, the rule, and the recalls of these faces
    with the weights and with plain argmax."""
    recalls = _recalls(truth, decide(probabilities, weights), counts)
    return {"weights": [round(float(w), 6) for w in weights], "faces": counts.tolist(), "rule": rule, **extra,
            "recalls": [round(float(r), 4) for r in recalls],
            "balanced_accuracy": round(float(recalls.mean()), 4),
            "balanced_accuracy_argmax": round(float(_recalls(truth, decide(probabilities), counts).mean()), 4)}


def _recalls(truth: np.ndarray, predicted: np.ndarray, counts: np.ndarray) -> np.ndarray:
    return np.bincount(truth[predicted == truth], minlength=len(counts)) / counts
