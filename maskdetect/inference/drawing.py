"""Annotated frames: each face's box in its class's colour with its label, and a count per class.

OpenCV is imported when a frame is drawn, not on import.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from maskdetect.classes import mask_worn_wrong, no_mask, wears_mask
from maskdetect.inference.pipeline import Detection

# Colours (RGB) by class: green for a worn mask, red for none, orange for a mask worn wrong (under the nose, on
# the chin), then distinct colours for other classes. None of the others is orange, green or red, so the three
# mask classes never share a colour with another class.
_GREEN, _RED, _ORANGE = (0, 200, 0), (230, 30, 30), (255, 140, 0)
_UNDECIDED = (180, 180, 180)  # a person not classified yet
_OTHER_COLOURS = ((0, 140, 255), (200, 0, 200), (0, 200, 200), (255, 230, 0), (140, 90, 40), (160, 160, 160))


def class_colours(class_names: Sequence[str]) -> dict[str, tuple[int, int, int]]:
    """A colour (RGB) per class.

    Green for a worn mask, red for no mask, orange for a mask worn wrong (as ``maskdetect.classes`` tells them);
    every other class gets a colour of its own, none of them green, red or orange.

    Args:
        class_names: the model's classes.

    Returns:
        Each class name mapped to its colour.
    """
    colours, others = {}, iter(_OTHER_COLOURS * (len(class_names) // len(_OTHER_COLOURS) + 1))
    for name in class_names:
        colours[name] = (_GREEN if wears_mask(name) else _RED if no_mask(name)
                         else _ORANGE if mask_worn_wrong(name) else next(others))
    return colours


def annotate(rgb: np.ndarray, detections: Sequence[Detection], class_names: Sequence[str],
             people: Mapping[str, int] | None = None, line: Sequence[float] | None = None,
             line_text: str = "") -> np.ndarray:
    """A copy of a frame with its detections drawn.

    Each box is drawn in its class's colour (:func:`class_colours`) with its label and probability (and, on
    video, its person's number: ``#3 mask 97%``; grey and ``#3 ?`` before the person's first verdict), kept
    inside the picture; the top left holds the count of every class in ``class_names``, each in its colour: the
    frame's faces, or with ``people`` the people counted so far (``people: mask 4 ...``).

    Args:
        rgb: the frame, H x W x 3 uint8; it is not changed.
        detections: the frame's classified faces.
        class_names: the model's classes, in the order the counts are drawn.
        people: people per class so far, drawn instead of the frame's faces.
        line: a counting line x1, y1, x2, y2, drawn in white with ``line_text`` beside its start.
        line_text: the line's crossing counts.

    Returns:
        The annotated copy, the same size as ``rgb``.
    """
    import cv2

    out = np.ascontiguousarray(rgb).copy()
    height, width = out.shape[:2]
    colours = class_colours(class_names)
    scale = max(0.4, min(1.2, max(height, width) / 1200))
    thickness = max(1, round(scale * 2))
    font = cv2.FONT_HERSHEY_SIMPLEX
    for detection in detections:
        x1, y1, x2, y2 = (int(round(value)) for value in detection.box)
        colour = colours.get(detection.label, _UNDECIDED if not detection.label else _OTHER_COLOURS[0])
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thickness)
        text = f"{detection.label} {detection.probability:.0%}" if detection.label else "?"
        if detection.track is not None:
            text = f"#{detection.track} {text}"
        (text_w, text_h), base = cv2.getTextSize(text, font, scale * 0.6, 1)
        # the label above the box, or below its top edge at the top of the picture; kept inside the picture
        top = y1 - text_h - base - 2 if y1 - text_h - base - 2 >= 0 else min(y2, height - text_h - base - 2)
        _tag(cv2, out, text, max(0, min(x1, width - text_w - 4)), top, colour, scale * 0.6)
    if line is not None:
        start, end = (round(line[0]), round(line[1])), (round(line[2]), round(line[3]))
        cv2.line(out, start, end, (255, 255, 255), thickness + 1, cv2.LINE_AA)
        if line_text:
            (text_w, text_h), base = cv2.getTextSize(line_text, font, scale * 0.6, 1)
            _tag(cv2, out, line_text, max(0, min(start[0], width - text_w - 4)),
                 max(0, min(start[1], height - text_h - base - 2)), (0, 0, 0), scale * 0.6)
    # the count of every class, each in its box colour, so a mask worn wrong stands out from a worn one
    counts = Counter(detection.label for detection in detections) if people is None else people
    parts = [(f"{name}: {counts.get(name, 0)}", colours[name]) for name in class_names]
    if people is not None:
        parts.insert(0, ("people", (255, 255, 255)))
    gap = cv2.getTextSize("  ", font, scale * 0.7, thickness)[0][0]
    sizes = [cv2.getTextSize(text, font, scale * 0.7, thickness) for text, _ in parts]
    text_h = max(size[0][1] for size in sizes)
    base = max(size[1] for size in sizes)
    total_w = sum(size[0][0] for size in sizes) + gap * (len(parts) - 1)
    cv2.rectangle(out, (0, 0), (min(width, total_w + 10), text_h + base + 10), (0, 0, 0), -1)
    left = 5
    for (text, colour), ((text_w, _), _) in zip(parts, sizes, strict=True):
        cv2.putText(out, text, (left, text_h + 5), font, scale * 0.7, colour, thickness, cv2.LINE_AA)
        left += text_w + gap
    return out


def _tag(cv2, out: np.ndarray, text: str, left: int, top: int, colour: tuple[int, int, int], size: float) -> None:
    """``text`` in white on a ``colour`` box whose top left corner is at (``left``, ``top``), drawn on ``out``."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    (text_w, text_h), base = cv2.getTextSize(text, font, size, 1)
    cv2.rectangle(out, (left, top), (left + text_w + 4, top + text_h + base + 2), colour, -1)
    cv2.putText(out, text, (left + 2, top + text_h + 1), font, size, (255, 255, 255), 1, cv2.LINE_AA)
