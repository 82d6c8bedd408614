"""The fusion used at detection time: a small logistic model that turns a proposal group's evidence into the
probability that it is a face. Its weights are fitted by :mod:`maskdetect.face.fusion_fit`.

probability = sigmoid(bias + the sum of weight * feature over the weights table), both from a JSON file (see
:func:`load_fusion`). The features are each proposal source's best score in the group, under the source's name
(0 when it proposed nothing there or did not run); a source's number of passes that proposed the group, under
"<name>_passes"; and the best zoomed-in BlazeFace full-range and short-range scores (0 where absent). A feature
without a weight does not count. The sum runs in the file's order, so that a file gives the same probabilities
to the last bit wherever it is loaded.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from maskdetect.face.proposals import PASSES_SUFFIX, ZOOMED_FULL_RANGE, ZOOMED_SHORT_RANGE

# The shipped weights; ``fitted_on`` inside says on what.
SHIPPED_FUSION = Path(__file__).resolve().parent / "weights" / "fusion.json"
FUSION_KEYS = ("weights", "bias", "sources", "fitted_on")


def fusion_features(source_names: Sequence[str]) -> list[str]:
    """Every fusion feature the second stage computes with these sources running, in the order a
    weights table lists them: the sources' scores, their pass counts, then the zoomed-in scores."""
    return [*source_names, *(name + PASSES_SUFFIX for name in source_names), ZOOMED_FULL_RANGE, ZOOMED_SHORT_RANGE]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_fusion(data: Any, where: str) -> dict[str, Any]:
    """``data`` as a fusion weights table, or a one-line ValueError naming ``where`` and what is wrong.

    The table is a JSON object: ``weights`` (feature name -> weight; the sum runs in this order),
    ``bias``, ``sources`` (the proposal sources it was fitted with) and ``fitted_on`` (a description).
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"fusion weights {where}: expected a JSON object, got {type(data).__name__}")
    missing = [key for key in FUSION_KEYS if key not in data]
    unknown = sorted(set(data) - set(FUSION_KEYS))
    if missing or unknown:
        raise ValueError(f"fusion weights {where}: " + "; ".join(
            ([f"missing key(s) {missing}"] if missing else []) + ([f"unknown key(s) {unknown}"] if unknown else [])))
    weights = data["weights"]
    if not isinstance(weights, Mapping) or not weights \
            or not all(isinstance(name, str) and _is_number(weight) for name, weight in weights.items()):
        raise ValueError(f"fusion weights {where}: 'weights' must map feature names to finite numbers, got {weights!r}")
    if not _is_number(data["bias"]):
        raise ValueError(f"fusion weights {where}: 'bias' must be a finite number, got {data['bias']!r}")
    sources = data["sources"]
    if not isinstance(sources, (list, tuple)) or not all(isinstance(name, str) for name in sources):
        raise ValueError(f"fusion weights {where}: 'sources' must be a list of source names, got {sources!r}")
    if not isinstance(data["fitted_on"], str):
        raise ValueError(f"fusion weights {where}: 'fitted_on' must be a string, got {data['fitted_on']!r}")
    return {"weights": {name: float(weight) for name, weight in weights.items()}, "bias": float(data["bias"]),
            "sources": list(sources), "fitted_on": data["fitted_on"]}


def load_fusion(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The fusion weights table in ``path`` (None: the shipped one), checked by :func:`check_fusion`."""
    path = SHIPPED_FUSION if path is None else Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"fusion weights {path} do not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"fusion weights {path} cannot be read: {error}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"fusion weights {path} are not valid JSON: {error}") from None
    return check_fusion(data, str(path))


def fused_probability(fusion: Mapping[str, Any], features: Mapping[str, float]) -> float:
    """The probability that a proposal group is a face.

    Args:
        fusion: a weights table (as :func:`load_fusion` returns it).
        features: the group's fusion features (see :func:`fusion_features`); a weighted feature that is absent
            (its source did not run) counts as 0, as if the source had seen nothing.

    Returns:
        sigmoid(bias + sum of weight * feature), summed in the table's order.
    """
    logit = fusion["bias"] + sum(weight * features.get(name, 0.0) for name, weight in fusion["weights"].items())
    return 1.0 / (1.0 + math.exp(-logit))
