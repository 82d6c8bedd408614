"""Track identities for the faces of a video: who is who from one frame to the next.

The face stage runs on every ``every``-th frame (and at once after a scene cut). Between those frames each face's
box follows the face by sparse optical flow (OpenCV's pyramidal Lucas-Kanade on a grid of points in the box,
moved by the median of the points that flow back to where they started, scaled by the median change of their
distances). Identities come from a multi-object tracker of the ``trackers`` package (ByteTrack by default; SORT
for comparison): every frame it gets the followed boxes as low-confidence boxes that can only continue a track,
and on detection frames the face stage's faces as high-confidence ones that can also start a track. Its Kalman
filter therefore sees a box on every frame, and a face the face stage misses once is carried by the flow for
``follow_rounds`` more detection rounds before its track coasts on the Kalman prediction alone.

A scene cut (the frame's 32 x 24 thumbnail differs from the last one by ``cut_threshold`` grey levels on average)
ends every track, so no identity jumps from one shot to the next, and asks for a detection on that frame.

``trackers``, ``supervision`` and OpenCV are imported when a :class:`FaceTracker` is built, not on import.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from maskdetect.face.boxes import iou

TRACKERS = ("bytetrack", "sort")
# The confidence a followed box is given: under ByteTrack's high-confidence threshold (0.6) and SORT's and
# ByteTrack's activation thresholds, so it can continue a track and never start one.
_FOLLOWED_CONFIDENCE = 0.2
_GRID = 6  # optical-flow points per side of a box
_MIN_POINTS = 5  # fewer good points than this: the face is not followed on this frame


@dataclass(frozen=True)
class TrackingSettings:
    """How faces are detected and followed on video.

    Attributes:
        every: run the face stage every this many frames (and after each scene cut).
        tracker: ``bytetrack`` or ``sort`` (both from the ``trackers`` package).
        lost_frames: a track neither detected nor followed for this many frames ends.
        follow_rounds: a track the face stage missed is followed by optical flow for this many more detection
            rounds.
        min_iou: the least overlap of a box with a track's predicted box for the two to be associated.
        cut_threshold: the mean grey-level difference of two frames' 32 x 24 thumbnails that marks a scene cut.
    """

    every: int = 15
    tracker: str = "bytetrack"
    lost_frames: int = 30
    follow_rounds: int = 2
    min_iou: float = 0.1
    cut_threshold: float = 30.0

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"--every must be at least 1, not {self.every}")
        if self.tracker not in TRACKERS:
            raise ValueError(f"the tracker must be one of {', '.join(TRACKERS)}, not {self.tracker!r}")
        if self.lost_frames < 1 or self.follow_rounds < 0 or not 0 < self.min_iou < 1 or self.cut_threshold <= 0:
            raise ValueError("lost_frames >= 1, follow_rounds >= 0, 0 < min_iou < 1 and cut_threshold > 0")


@dataclass(frozen=True)
class TrackedFace:
    """A face on one frame with its track.

    Attributes:
        track: the tracker's identity (unique within a :class:`FaceTracker`).
        box: x1, y1, x2, y2 in the frame's pixels.
        detected: True when the face stage found the box on this frame; False when it was followed.
        confidence: the face stage's confidence when the face was last detected.
        detector: the part of the face stage that last detected it.
        detections: the frames the face stage has found the track on so far, this one included.
        first_frame: the frame the track started on (its first detection).
    """

    track: int
    box: tuple[float, float, float, float]
    detected: bool
    confidence: float
    detector: str
    detections: int = 1
    first_frame: int = 0


def _make_tracker(settings: TrackingSettings):
    from trackers import ByteTrackTracker, SORTTracker

    # one tracker frame per video frame; lost_track_buffer is in frames at 30 frames/s
    if settings.tracker == "bytetrack":
        return ByteTrackTracker(lost_track_buffer=settings.lost_frames, frame_rate=30.0,
                                track_activation_threshold=0.5, minimum_consecutive_frames=1,
                                minimum_iou_threshold=settings.min_iou, high_conf_det_threshold=0.5)
    return SORTTracker(lost_track_buffer=settings.lost_frames, frame_rate=30.0, track_activation_threshold=0.5,
                       minimum_consecutive_frames=1, minimum_iou_threshold=settings.min_iou)


def follow_boxes(previous: np.ndarray, current: np.ndarray, boxes: np.ndarray) -> list[np.ndarray | None]:
    """Where each box of ``previous`` (a grey frame) is on ``current``, by pyramidal Lucas-Kanade optical flow.

    A grid of points in each box is tracked forward and back; points that do not come back within a pixel of
    the median forward-backward error (at most 2 px) are dropped. The box moves by the median displacement of
    the rest and scales by the median ratio of their distances to the box's centre.

    Args:
        previous: the earlier frame, H x W uint8.
        current: the later frame, the same size.
        boxes: (n, 4) x1, y1, x2, y2 on ``previous``.

    Returns:
        Per box, its x1, y1, x2, y2 on ``current``, or None where too few points could be followed.
    """
    import cv2

    if not len(boxes):
        return []
    steps = (np.arange(_GRID) + 0.5) / _GRID
    grids = []
    for x1, y1, x2, y2 in boxes:
        # the inner part of the box: its edges hold background that moves otherwise
        xs = x1 + (x2 - x1) * (0.15 + 0.7 * steps)
        ys = y1 + (y2 - y1) * (0.15 + 0.7 * steps)
        grids.append(np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2))
    points = np.concatenate(grids).astype(np.float32).reshape(-1, 1, 2)
    params = {"winSize": (15, 15), "maxLevel": 3,
              "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03)}
    forward, status, _ = cv2.calcOpticalFlowPyrLK(previous, current, points, None, **params)
    backward, status_back, _ = cv2.calcOpticalFlowPyrLK(current, previous, forward, None, **params)
    error = np.linalg.norm(points - backward, axis=2).ravel()
    good = (status.ravel() == 1) & (status_back.ravel() == 1)
    per_box = _GRID * _GRID
    moved: list[np.ndarray | None] = []
    for index, box in enumerate(boxes):
        part = slice(index * per_box, (index + 1) * per_box)
        ok = good[part]
        if ok.sum() < _MIN_POINTS:
            moved.append(None)
            continue
        limit = min(2.0, float(np.median(error[part][ok])) + 1.0)
        ok &= error[part] <= limit
        if ok.sum() < _MIN_POINTS:
            moved.append(None)
            continue
        before = points[part][ok, 0]
        after = forward[part][ok, 0]
        shift = np.median(after - before, axis=0)
        centre_before, centre_after = before.mean(axis=0), after.mean(axis=0)
        spread_before = np.linalg.norm(before - centre_before, axis=1)
        spread_after = np.linalg.norm(after - centre_after, axis=1)
        usable = spread_before > 1
        scale = float(np.median(spread_after[usable] / spread_before[usable])) if usable.sum() >= 3 else 1.0
        scale = float(np.clip(scale, 0.8, 1.25))
        cx, cy = (box[0] + box[2]) / 2 + shift[0], (box[1] + box[3]) / 2 + shift[1]
        half_w, half_h = (box[2] - box[0]) / 2 * scale, (box[3] - box[1]) / 2 * scale
        moved.append(np.array([cx - half_w, cy - half_h, cx + half_w, cy + half_h]))
    return moved


class FaceTracker:
    """Track identities of the faces of one video, frame by frame.

    Call :meth:`wants_detection` with each frame's grey image, then :meth:`update` with the face stage's faces on
    that frame when it said yes (or when you ran the face stage anyway), else with None.

    Args:
        settings: how faces are detected and followed.
    """

    def __init__(self, settings: TrackingSettings = TrackingSettings()) -> None:
        self.settings = settings
        self._tracker = _make_tracker(settings)
        self._previous: np.ndarray | None = None  # the last frame's grey image
        self._thumbnail: np.ndarray | None = None
        self._since_detection = settings.every  # frames since the face stage last ran: detect on the first frame
        self._cut = False
        self._current: list[dict] = []  # the last frame's faces: box, track, last detection frame, ...
        self._frame = -1
        self.cuts = 0
        self.detections = 0  # frames the face stage ran on
        self._hits: dict[int, int] = {}  # track -> frames the face stage found it on
        self._born: dict[int, int] = {}  # track -> the frame of its first detection

    def wants_detection(self, gray: np.ndarray) -> bool:
        """Whether the face stage should run on this frame (the next one :meth:`update` gets): every ``every``
        frames, and on a scene cut, which also ends every track."""
        import cv2

        thumbnail = cv2.resize(gray, (32, 24), interpolation=cv2.INTER_AREA).astype(np.float32)
        self._cut = (self._thumbnail is not None
                     and float(np.abs(thumbnail - self._thumbnail).mean()) >= self.settings.cut_threshold)
        self._thumbnail = thumbnail
        return self._cut or self._since_detection >= self.settings.every

    def update(self, gray: np.ndarray, faces: Sequence | None) -> list[TrackedFace]:
        """This frame's tracked faces.

        Args:
            gray: the frame, H x W uint8 (call :meth:`wants_detection` with it first).
            faces: the face stage's faces on this frame (``maskdetect.face.Face``: x1, y1, x2, y2, confidence,
                detector), or None when it did not run.

        Returns:
            The faces detected or followed on this frame that belong to a track.
        """
        import supervision as sv

        self._frame += 1
        if self._cut:
            self.cuts += 1
            self._tracker = _make_tracker(self.settings)  # a new shot: no track goes on
            self._current = []
            self._hits, self._born = {}, {}
        rows = self._followed(gray)
        if faces is not None:
            self._since_detection = 0
            self.detections += 1
            detected = [{"box": np.array([f.x1, f.y1, f.x2, f.y2], float), "confidence": 1.0,
                         "face_confidence": float(f.confidence), "detector": str(f.detector),
                         "detected_at": self._frame, "detected": True, "born": self._frame, "hits": 1}
                        for f in faces]
            # a followed box that a detection covers is the same face: keep the detection alone, with what the
            # followed box knew of the face when no track holds it yet (ByteTrack names a track on its second
            # frame, so on back-to-back detection frames the first detection would be lost)
            if rows and detected:
                overlap = iou(np.array([r["box"] for r in rows]), np.array([d["box"] for d in detected]))
                for row, best, index in zip(rows, overlap.max(axis=1), overlap.argmax(axis=1), strict=True):
                    if best >= 0.3 and row.get("track", -1) < 0:
                        same = detected[int(index)]
                        same["born"] = min(same["born"], row["born"])
                        same["hits"] = max(same["hits"], row["hits"] + 1)
                rows = [row for row, best in zip(rows, overlap.max(axis=1), strict=True) if best < 0.3]
            rows = detected + rows
        self._since_detection += 1
        self._previous = gray
        boxes = np.array([row["box"] for row in rows], dtype=np.float32).reshape(-1, 4)
        detections = sv.Detections(xyxy=boxes, confidence=np.array([r["confidence"] for r in rows], np.float32),
                                   data={"row": np.arange(len(rows))})
        result = self._tracker.update(detections)
        current = []
        for box, track, row_index in zip(result.xyxy, result.tracker_id, result.data.get("row", []), strict=True):
            row = rows[int(row_index)]
            if track < 0 and not row["detected"]:
                continue  # a followed box no track took
            track = int(track)
            if track >= 0:
                # a track gets its identity on its second frame: its first detection comes with its box
                if track not in self._hits:
                    self._hits[track] = row["hits"] - int(row["detected"])
                else:
                    row = {**row, "born": min(row["born"], self._born.get(track, row["born"]))}
                self._hits[track] += int(row["detected"])
                self._born[track] = row["born"]
            current.append({**row, "box": np.asarray(box, float), "track": track})
        self._current = current
        return [TrackedFace(row["track"], tuple(float(v) for v in row["box"]), row["detected"],
                            row["face_confidence"], row["detector"], self._hits[row["track"]],
                            self._born[row["track"]]) for row in current if row["track"] >= 0]

    def _followed(self, gray: np.ndarray) -> list[dict]:
        """The last frame's faces moved onto this one by optical flow: those detected within ``follow_rounds``
        detection rounds, as low-confidence boxes."""
        if self._previous is None or not self._current or self._cut:
            return []
        horizon = (self.settings.follow_rounds + 1) * self.settings.every
        alive = [row for row in self._current if self._frame - row["detected_at"] <= horizon]
        moved = follow_boxes(self._previous, gray, np.array([row["box"] for row in alive]).reshape(-1, 4))
        height, width = gray.shape[:2]
        rows = []
        for row, box in zip(alive, moved, strict=True):
            if box is None or box[2] <= 0 or box[3] <= 0 or box[0] >= width or box[1] >= height:
                continue  # lost, or gone out of the frame
            rows.append({**row, "box": box, "confidence": _FOLLOWED_CONFIDENCE, "detected": False})
        return rows
