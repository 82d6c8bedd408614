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
# The operating point: the share of masked street faces the decision must keep right. Within it, the weights
# catch as many faces without a (properly worn) mask as they can. The product's question is "who is not
# wearing a mask?", and 2 % of masked people flagged is what its street-photo target allows.
MASKED_KEPT = 0.98
_CALIBRATION_STEPS = np.linspace(-7, 7, 141)  # log class weights tried: e^-7 .. e^7, in steps of 0.1


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


def calibrate(truth: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str],
              masked_kept: float = MASKED_KEPT) -> dict:
    """Decision weights fitted on these faces (the validation split's street faces, never close-ups).

    With classes of worn masks and classes of faces without one (``classes.wears_mask``), a fixed operating
    point: of the weights that keep at least ``masked_kept`` of the masked faces right, those with the highest
    mean recall of the other classes; among equal ones, those leaning furthest to the classes without a mask
    (for two classes: the lowest threshold on P(without_mask) that keeps 98 % of masked faces right). An
    earlier rule, the best balanced accuracy, was unstable: on ~230 validation faces a wide range of
    thresholds separated them equally well, and two trainings of one config fitted thresholds of 0.018 and
    0.33, which called 96.9 % and 88.9 % of the unmasked street faces of bench_street right. A quantile of the
    ~200 masked faces moves far less than the edge of a perfectly separating range. Other class names (no
    mask classes among them): the best balanced accuracy, then the weights nearest the centre of the ties.

    The validation split drives early stopping only, so fitting a few numbers on it keeps the test split
    untouched."""
    if not 0 < masked_kept <= 1:
        raise ValueError(f"masked_kept must be in (0, 1], not {masked_kept}")
    truth = np.asarray(truth)
    counts = np.bincount(truth, minlength=len(class_names))
    if counts.min() < MIN_CALIBRATION_FACES:
        return {"weights": None, "faces": counts.tolist(),
                "why": f"fewer than {MIN_CALIBRATION_FACES} street faces of a class in the validation split"}

    # the first class's weight stays 1: only the ratios matter
    grid = np.array(list(itertools.product(_CALIBRATION_STEPS, repeat=len(class_names) - 1)))
    logs = np.c_[np.zeros(len(grid)), grid]
    recalls = np.array([np.bincount(truth[predicted == truth], minlength=len(class_names)) / counts
                        for predicted in (decide(probabilities, np.exp(row)) for row in logs)])
    masked = np.array([classes.wears_mask(name) for name in class_names])
    operating_point = masked.any() and not masked.all()
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
    plain = int(np.flatnonzero((logs == 0).all(axis=1))[0])  # all weights 1: argmax
    return {"weights": [round(float(w), 6) for w in np.exp(logs[chosen])], "faces": counts.tolist(),
            "rule": f"keep {masked_kept:.0%} of masked faces right" if operating_point else "balanced accuracy",
            "recalls": [round(float(r), 4) for r in recalls[chosen]],
            "balanced_accuracy": round(float(recalls[chosen].mean()), 4),
            "balanced_accuracy_argmax": round(float(recalls[plain].mean()), 4)}
