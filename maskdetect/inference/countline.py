"""``--count-line``: people who cross a line on video, in each direction and per class.

The line is ``x1,y1,x2,y2`` in the video's pixels. A person crosses it when the centre of their face's box goes
from one side to the other (``supervision``'s ``LineZone``, by track). ``in`` is a crossing to the left of the line
as seen looking from (x1, y1) towards (x2, y2): on a line drawn from top to bottom, left to right; on a line drawn
from left to right, upwards. Each crossing is recorded with its track, so the counts per class take each
person's label as it stands when the counts are read (a label decided after the crossing counts).

``supervision`` is imported when a :class:`CountLine` is built, not on import.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence


def parse_line(text: str) -> tuple[float, float, float, float]:
    """``x1,y1,x2,y2`` as four numbers.

    Raises:
        ValueError: not four numbers, or both ends at the same point; the message names ``--count-line``.
    """
    parts = [part.strip() for part in str(text).split(",")]
    try:
        values = tuple(float(part) for part in parts)
    except ValueError:
        values = ()
    if len(values) != 4 or not all(value == value and abs(value) != float("inf") for value in values):
        raise ValueError(f"--count-line must be four numbers x1,y1,x2,y2 in the video's pixels, not {text!r}")
    if values[:2] == values[2:]:
        raise ValueError(f"--count-line {text} has both ends at the same point: it is no line")
    return values  # type: ignore[return-value]


def check_inside(line: Sequence[float], width: int, height: int, source: str) -> None:
    """Refuse a line whose ends are not on the picture of a ``width`` x ``height`` video.

    Raises:
        ValueError: an end lies outside ``[0, width] x [0, height]``.
    """
    x1, y1, x2, y2 = line
    if not all(0 <= x <= width for x in (x1, x2)) or not all(0 <= y <= height for y in (y1, y2)):
        raise ValueError(f"--count-line {','.join(f'{v:g}' for v in line)} lies outside the {width}x{height} "
                         f"picture of {source}: give both ends within 0-{width}, 0-{height}")


class CountLine:
    """The crossings of one video's line.

    Args:
        line: x1, y1, x2, y2 in the video's pixels.
    """

    def __init__(self, line: Sequence[float]) -> None:
        import supervision as sv

        self.line = tuple(float(v) for v in line)
        self._zone = sv.LineZone(start=sv.Point(*self.line[:2]), end=sv.Point(*self.line[2:]),
                                 triggering_anchors=[sv.Position.CENTER])
        self.crossings: list[tuple[int, int, str]] = []  # (frame, track, "in" or "out")

    def update(self, frame: int, tracks: Sequence[int], boxes: Sequence[Sequence[float]]) -> None:
        """The tracked faces of ``frame``: their tracks and boxes (x1, y1, x2, y2)."""
        import numpy as np
        import supervision as sv

        if not len(tracks):
            self._zone.trigger(sv.Detections.empty())
            return
        detections = sv.Detections(xyxy=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
                                   tracker_id=np.asarray(tracks, dtype=int))
        crossed_in, crossed_out = self._zone.trigger(detections)
        for track, went_in, went_out in zip(tracks, crossed_in, crossed_out, strict=True):
            if went_in:
                self.crossings.append((frame, int(track), "in"))
            if went_out:
                self.crossings.append((frame, int(track), "out"))

    def counts(self, labels: Mapping[int, str | None], class_names: Sequence[str]) -> dict:
        """Crossings in each direction, in all and per class: ``{"in": n, "out": n, "in_per_class": {...},
        "out_per_class": {...}}``; ``labels`` maps a track to its label (None or absent: ``unlabelled``)."""
        result: dict = {}
        for direction in ("in", "out"):
            per_class = Counter(labels.get(track) or "unlabelled" for _, track, way in self.crossings
                                if way == direction)
            result[direction] = sum(per_class.values())
            result[f"{direction}_per_class"] = {name: per_class.get(name, 0) for name in class_names}
            if per_class.get("unlabelled"):
                result[f"{direction}_per_class"]["unlabelled"] = per_class["unlabelled"]
        return result
