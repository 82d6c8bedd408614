"""What a run records of each source: detections.csv's rows, and the tally summary.json reports (frames, faces
per class and, on video, people per class).

Pure Python: no model, no OpenCV.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from maskdetect.classes import wears_mask

DETECTION_FIELDS = ["source", "frame", "face", "track", "x1", "y1", "x2", "y2", "label", "probability", "confidence",
                    "detector", "carried"]


@dataclass
class Tally:
    """What one source gave, for summary.json.

    Attributes:
        source: the file's path, or ``webcam:<index>``.
        kind: ``image``, ``video`` or ``webcam``.
        output: the annotated file, relative to the output folder.
        frames: frames read.
        counts: faces per class, over all frames.
        seconds: the time the source took.
        every: faces were detected every this many frames.
        people: on video, people per class (tracks that count as people, by their label).
        people_rows: on video, the people (rows of people.csv).
        line: on video with ``--count-line``, the crossings (``CountLine.counts``).
        problem: a video that stopped early (a webcam that went away): what happened; its outputs are kept.
    """

    source: str
    kind: str
    output: str = ""  # the annotated file, relative to the output folder
    frames: int = 0
    counts: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    every: int = 1
    people: Counter = field(default_factory=Counter)
    people_rows: list = field(default_factory=list)
    line: dict | None = None
    problem: str = ""
    classifications: int = 0
    detection_frames: int = 0

    def as_dict(self, class_names: Sequence[str]) -> dict:
        """The source's entry in summary.json; ``class_names`` lists every class, those without a face at 0."""
        faces_total = sum(self.counts.values())
        result = {"source": self.source, "kind": self.kind, "output": self.output, "frames": self.frames,
                  "faces": faces_total, "faces_per_class": {name: self.counts.get(name, 0) for name in class_names},
                  "mask_wearing_rate": mask_rate(self.counts), "seconds": round(self.seconds, 3)}
        if self.kind != "image":
            result["detect_every"] = self.every
            result["frames_per_second"] = round(self.frames / self.seconds, 2) if self.seconds else None
            result["faces_per_frame"] = round(faces_total / self.frames, 3) if self.frames else None
            result["people"] = sum(self.people.values())
            result["people_per_class"] = {name: self.people.get(name, 0) for name in class_names}
            result["people_mask_wearing_rate"] = mask_rate(self.people)
            result["detection_frames"] = self.detection_frames
            result["classifications"] = self.classifications
            result["label_changes"] = sum(bool(row.get("label_changes")) for row in self.people_rows)
            if self.line is not None:
                result["count_line"] = self.line
            if self.problem:
                result["problem"] = self.problem
        return result


def mask_rate(counts: Counter) -> float | None:
    """The mask-wearing rate: faces (or people) whose class means a correctly worn mask (``classes.wears_mask``)
    over all of them.

    A mask worn wrong (``incorrect_mask``) counts in the faces, not in the masks.

    Args:
        counts: faces (or people) per class.

    Returns:
        The rate rounded to 4 places, or None without faces.
    """
    total = sum(counts.values())
    return round(sum(count for name, count in counts.items() if wears_mask(name)) / total, 4) if total else None


def detection_row(source: str, frame: int, index: int, detection) -> dict:
    """detections.csv's row for ``detection`` (a ``maskdetect.inference.Detection``), the ``index``-th face of
    ``frame`` of ``source``; ``track`` is empty on photos."""
    x1, y1, x2, y2 = detection.box
    track = "" if detection.track is None else detection.track
    return {"source": source, "frame": frame, "face": index, "track": track,
            "x1": round(x1, 1), "y1": round(y1, 1), "x2": round(x2, 1), "y2": round(y2, 1), "label": detection.label,
            "probability": round(detection.probability, 4), "confidence": round(detection.confidence, 4),
            "detector": detection.detector, "carried": int(detection.carried)}
