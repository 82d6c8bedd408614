"""One verdict per person on video: when a track's face is classified, how its frames vote, and what is counted.

A track is classified on a schedule, not on every frame (:meth:`VerdictSettings.due`): first when its face is
large and sharp enough (or, failing that, once it has been in view for ``patience`` frames), then every
``reclassify`` frames and whenever its face has grown by ``grow`` since the largest view classified. Its label is
a vote over its last ``window`` classifications: their probabilities, each weighted by its face's side, are
averaged and decided by the model's decision weights (``maskdetect.decisions.decide``, as a single face is). A
new label replaces the track's label only when the vote gives it on ``confirm`` classifications in a row; each
change is recorded with its frame, so a person who takes a mask off is one person with one change, not two
people. A track counts as a person once the face stage has found it on ``min_detections`` detection frames, has
been at least ``min_confidence`` sure of it on one of them, and it has a label.

Pure numpy: the classifier and the pictures come in from the video loop.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from maskdetect import decisions

PEOPLE = "people.csv"
PEOPLE_FIELDS = ["source", "track", "first_frame", "last_frame", "first_time", "last_time", "frames_seen",
                 "detections", "confidence", "label", "probability", "label_changes", "crop"]


@dataclass(frozen=True)
class VerdictSettings:
    """When a track is classified and how its label is voted.

    Attributes:
        min_face: the short side (px) a face needs for its first classification.
        min_sharpness: the variance of the Laplacian of its grey face a face needs for its first classification.
        patience: a track in view this many frames is classified even when never large and sharp enough.
        reclassify: classify a track again every this many frames.
        grow: classify a track again when its face's side is this many times the largest classified so far.
        window: the vote is over this many latest classifications.
        confirm: a new label needs the vote on this many classifications in a row.
        min_detections: the detection frames a track needs to count as a person.
        min_confidence: the face-stage confidence a track needs on at least one of its detections to count as a
            person. Tracks the face stage was never sure of are mostly boxes on things that are not faces.
    """

    min_face: int = 32
    min_sharpness: float = 20.0
    patience: int = 15
    reclassify: int = 10
    grow: float = 1.25
    window: int = 5
    confirm: int = 2
    min_detections: int = 2
    min_confidence: float = 0.9

    def __post_init__(self) -> None:
        if min(self.min_face, self.patience, self.reclassify, self.window, self.confirm, self.min_detections) < 1 \
                or self.grow <= 1 or self.min_sharpness < 0 or not 0 <= self.min_confidence <= 1:
            raise ValueError("the verdict settings need positive counts, grow > 1, min_sharpness >= 0 and "
                             "0 <= min_confidence <= 1")


def sharpness(gray: np.ndarray, box: Sequence[float]) -> float:
    """The variance of the Laplacian of ``gray`` (H x W uint8) inside ``box``: low for a blurred face."""
    import cv2

    height, width = gray.shape[:2]
    x1, y1 = max(0, int(box[0])), max(0, int(box[1]))
    x2, y2 = min(width, int(np.ceil(box[2]))), min(height, int(np.ceil(box[3])))
    if x2 - x1 < 3 or y2 - y1 < 3:
        return 0.0
    return float(cv2.Laplacian(gray[y1:y2, x1:x2], cv2.CV_64F).var())


@dataclass
class Person:
    """A track and its verdict.

    Attributes:
        track: its number in this video (1, 2, ... in the order tracks appear).
        first_frame, last_frame: the frames it was first and last in view.
        frames_seen: frames it was in view (detected or followed).
        detections: frames the face stage found it on.
        confidence: the face stage's highest confidence in it so far.
        label: its current label (None before its first classification).
        probability: the voted probability of that label.
        changes: (frame, old label, new label) of every change after the first label.
        crop: its best face crop so far (the classifier's crop of its largest, sharpest classified view).
    """

    track: int
    first_frame: int
    last_frame: int = 0
    frames_seen: int = 0
    detections: int = 0
    confidence: float = 0.0
    label: str | None = None
    probability: float = 0.0
    changes: list[tuple[int, str, str]] = field(default_factory=list)
    crop: np.ndarray | None = None
    crop_score: float = -1.0
    last_classified: int = -(10 ** 9)
    largest_classified: float = 0.0
    votes: deque = field(default_factory=deque)
    pending: tuple[str, int] | None = None  # a label the vote gave, and how many times in a row

    def counted(self, settings: VerdictSettings) -> bool:
        """Whether the track counts as a person: found on enough detection frames, once with enough confidence,
        and labelled."""
        return (self.label is not None and self.detections >= settings.min_detections
                and self.confidence >= settings.min_confidence)


class People:
    """The people of one video: their tracks' verdicts, counts per class, and people.csv's rows.

    Args:
        class_names: the classifier's classes.
        weights: its decision weights (None: plain argmax).
        settings: the schedule and the vote.
        fps: the video's frame rate, for the times in people.csv.
    """

    def __init__(self, class_names: Sequence[str], weights: Sequence[float] | None,
                 settings: VerdictSettings = VerdictSettings(), fps: float = 25.0) -> None:
        self.class_names = list(class_names)
        self.weights = weights
        self.settings = settings
        self.fps = fps
        self.people: dict[int, Person] = {}  # by the tracker's identity
        self.classifications = 0
        # the label each counted person is counted under, and the counts, kept as people change: the overlay
        # asks for the counts on every frame of a stream that may see thousands of people
        self._counted_as: dict[int, str] = {}
        self._counts: Counter = Counter()

    def seen(self, frame: int, track: int, detections: int, confidence: float,
             first_frame: int | None = None) -> Person:
        """Record that ``track`` is in view on ``frame``, found by the face stage on ``detections`` frames so far,
        with ``confidence`` at its latest detection; a new track started on ``first_frame`` (default ``frame``)."""
        person = self.people.get(track)
        if person is None:
            start = frame if first_frame is None else first_frame
            person = self.people[track] = Person(len(self.people) + 1, start, votes=deque(maxlen=self.settings.window))
            person.frames_seen = frame - start  # frames before it had its identity
        person.last_frame = frame
        person.frames_seen += 1
        person.detections = detections
        person.confidence = max(person.confidence, confidence)
        self._recount(person)
        return person

    def due(self, person: Person, frame: int, side: float, sharp: float) -> bool:
        """Whether ``person``'s face, of short side ``side`` px and sharpness ``sharp``, is classified on
        ``frame``."""
        settings = self.settings
        if person.label is None:
            good = side >= settings.min_face and sharp >= settings.min_sharpness
            return good or frame - person.first_frame >= settings.patience
        return (frame - person.last_classified >= settings.reclassify
                or side >= settings.grow * person.largest_classified)

    def classified(self, person: Person, frame: int, probabilities: np.ndarray, side: float, sharp: float,
                   crop: np.ndarray | None = None) -> None:
        """Add one classification of ``person``'s face (the classifier's probabilities, one per class) to its
        vote; keep ``crop`` when it is the best view so far (largest, then sharpest)."""
        self.classifications += 1
        person.last_classified = frame
        person.largest_classified = max(person.largest_classified, side)
        person.votes.append((np.asarray(probabilities, dtype=np.float64), max(side, 1.0)))
        score = side * min(1.0, sharp / max(self.settings.min_sharpness, 1e-9))
        if crop is not None and score > person.crop_score:
            person.crop, person.crop_score = crop, score
        label, probability = self.vote(person)
        if person.label is None:
            person.label, person.probability = label, probability
        elif label == person.label:
            person.probability, person.pending = probability, None
        else:
            count = person.pending[1] + 1 if person.pending and person.pending[0] == label else 1
            person.pending = (label, count)
            if count >= self.settings.confirm:
                person.changes.append((frame, person.label, label))
                person.label, person.probability, person.pending = label, probability, None
        self._recount(person)

    def vote(self, person: Person) -> tuple[str, float]:
        """The label of ``person``'s latest classifications: their probabilities averaged, weighted by face
        side, decided by the decision weights; and the averaged probability of that label."""
        probabilities = np.stack([p for p, _ in person.votes])
        sides = np.array([side for _, side in person.votes])
        mean = (probabilities * sides[:, None]).sum(axis=0) / sides.sum()
        chosen = int(decisions.decide(mean[None, :], self.weights)[0])
        return self.class_names[chosen], float(mean[chosen])

    def counts(self) -> Counter:
        """People per class: tracks that count (:meth:`Person.counted`) by their current label."""
        return Counter(self._counts)

    def _recount(self, person: Person) -> None:
        """Move ``person`` to the count of its current label, if it counts, after :meth:`seen` or
        :meth:`classified` changed it."""
        now = person.label if person.counted(self.settings) else None
        before = self._counted_as.get(person.track)
        if now == before:
            return
        if before is not None:
            self._counts[before] -= 1
            if not self._counts[before]:
                del self._counts[before]
        if now is None:
            del self._counted_as[person.track]
        else:
            self._counted_as[person.track] = now
            self._counts[now] += 1

    def counted(self) -> list[Person]:
        """The tracks that count as people, in the order they appeared."""
        return sorted((p for p in self.people.values() if p.counted(self.settings)), key=lambda p: p.track)

    def row(self, source: str, person: Person, crop: str) -> dict:
        """people.csv's row for ``person`` of ``source``; ``crop`` is its saved face crop's path."""
        return {"source": source, "track": person.track, "first_frame": person.first_frame,
                "last_frame": person.last_frame, "first_time": round(person.first_frame / self.fps, 2),
                "last_time": round(person.last_frame / self.fps, 2), "frames_seen": person.frames_seen,
                "detections": person.detections, "confidence": round(person.confidence, 4), "label": person.label,
                "probability": round(person.probability, 4),
                "label_changes": ";".join(f"{frame}:{old}>{new}" for frame, old, new in person.changes),
                "crop": crop}

