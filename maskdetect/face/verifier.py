"""The face verifier's interface: a second look at each proposal group, on a crop of its own.

A verifier scores boxes of a photo on several views and may move them to a better placement; the
:class:`~maskdetect.face.decision.KeepRule` then adds what the fusion rejected and the verifier is sure of, and
vetoes what the fusion kept with little conviction and no view sees. The shipped one is
:class:`maskdetect.face.faceverifier.FaceVerifier`; another model only needs the :class:`Verifier` shape.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from maskdetect.face.decision import KeepRule


@runtime_checkable
class Verifier(Protocol):
    """What the detector asks of a face verifier."""

    def placed(self, rgb: np.ndarray, boxes: np.ndarray,
               look_again: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Each box at the verifier's best placement, and its scores there on each view.

        Args:
            rgb: the photo, RGB uint8.
            boxes: (n, 4) boxes x1, y1, x2, y2 in the photo's pixels.
            look_again: given the first view's scores, which boxes the other views matter for; the others are
                scored on the first view only. None: every view of every box.

        Returns:
            The placed boxes (n, 4), and (views, n) probabilities of a face, NaN where a view was not looked at.
        """
        ...


def load_verifier(path: str | Path | None) -> Verifier:
    """The shipped face verifier (``path`` None), or the one in ``path`` (a ``.keras`` file it saved)."""
    from maskdetect.face import faceverifier

    return faceverifier.FaceVerifier.load(path or faceverifier.SHIPPED_MODEL)


def verify(verifier: Verifier | None, rule: KeepRule, rgb: np.ndarray, boxes: np.ndarray,
           probabilities: np.ndarray | None = None,
           every_view: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The boxes at the verifier's best placement, and the lowest and the highest of its views there: a face is
    added on the lowest, vetoed on the highest.

    Args:
        verifier: the verifier; None gives the boxes as they are and NaN scores.
        rule: the decision the scores are for.
        rgb: the photo, RGB uint8.
        boxes: (n, 4) group boxes.
        probabilities: the groups' fused probabilities; with them, only the boxes whose other views can change
            what ``rule`` keeps are looked at on them (:meth:`KeepRule.needs_other_views`), elsewhere the lowest
            and highest are the first view's score, for the very same decision.
        every_view: False scores every box on the first view alone (``DetectorSettings.verifier_views`` 1).

    Returns:
        (placed boxes (n, 4), lowest (n,), highest (n,)).
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if verifier is None:
        return boxes, np.full(len(boxes), np.nan), np.full(len(boxes), np.nan)
    look_again = None
    if not every_view:
        def look_again(first: np.ndarray) -> np.ndarray:
            return np.zeros(len(first), bool)
    elif probabilities is not None:
        probabilities = np.asarray(probabilities, np.float64).reshape(-1)

        def look_again(first: np.ndarray) -> np.ndarray:
            return rule.needs_other_views(first, probabilities)

    placed, views = verifier.placed(rgb, boxes, look_again)
    return placed, np.nanmin(views, axis=0), np.nanmax(views, axis=0)
