"""A video or webcam, frame by frame: faces tracked, one verdict per person, people counted, the annotated video.

Per frame: the face stage runs when the tracker asks for it (every ``every`` frames and after a scene cut;
:mod:`~maskdetect.inference.tracking`); the tracker gives each face its track, found or followed; each track's
face is classified when its schedule says so, all due faces of the frame in one batch, and its label is the vote
of :mod:`~maskdetect.inference.people`. The frame is drawn with each face's person number and label, the people
counted so far per class and, with a count line, its crossings. detections.csv gets a row per face per frame
(its person's label at that frame, ``carried`` for a followed box); people.csv a row per person and a best face
crop under ``people/<video>/`` when the video ends, is stopped, or is interrupted.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskdetect.face import Face
from maskdetect.facecrops import atomic_write_image
from maskdetect.inference.countline import CountLine, check_inside
from maskdetect.inference.drawing import annotate
from maskdetect.inference.media import FALLBACK_FPS, Display, Item, open_video_writer
from maskdetect.inference.people import People, VerdictSettings, sharpness
from maskdetect.inference.pipeline import Detection, MaskDetector
from maskdetect.inference.tally import Tally, detection_row
from maskdetect.inference.tracking import FaceTracker, TrackingSettings

log = logging.getLogger(__name__)

PEOPLE_CROPS = "people"  # best face crops: <output>/people/<video>/person_<n>.jpg


@dataclass(frozen=True)
class VideoOptions:
    """How videos and webcams are run.

    Attributes:
        tracking: detection schedule and tracker.
        verdicts: classification schedule and vote.
        count_line: x1, y1, x2, y2 of a line whose crossings are counted, or None.
        max_frames: stop after this many frames; 0: all.
    """

    tracking: TrackingSettings = TrackingSettings()
    verdicts: VerdictSettings = VerdictSettings()
    count_line: tuple[float, float, float, float] | None = None
    max_frames: int = 0


def _fps(capture) -> float:
    import cv2

    fps = capture.get(cv2.CAP_PROP_FPS)
    return fps if fps and math.isfinite(fps) and 1 <= fps <= 240 else FALLBACK_FPS


def _frame_count(capture) -> int | None:
    import cv2

    count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    return int(count) if count and math.isfinite(count) and count > 0 else None


class _Run:
    """The state of one video while it runs."""

    def __init__(self, pipeline: MaskDetector, item: Item, output: Path, options: VideoOptions, fps: float) -> None:
        self.pipeline, self.item, self.output, self.options = pipeline, item, output, options
        classifier = pipeline.classifier
        self.tracker = FaceTracker(options.tracking)
        self.people = People(classifier.class_names, classifier.decision_weights, options.verdicts, fps)
        self.line = CountLine(options.count_line) if options.count_line is not None else None

    def frame(self, index: int, rgb: np.ndarray) -> list[Detection]:
        """Track, classify what is due, and give the frame's faces with their people's labels."""
        import cv2

        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        faces = self.pipeline.faces(rgb, video=True) if self.tracker.wants_detection(gray) else None
        tracked = self.tracker.update(gray, faces)
        people = self.people
        due, persons = [], []
        for face in tracked:
            person = people.seen(index, face.track, face.detections, face.confidence, face.first_frame)
            persons.append(person)
            side = min(face.box[2] - face.box[0], face.box[3] - face.box[1])
            # sharpness only where it can decide: a first verdict of a face large enough
            sharp = sharpness(gray, face.box) if person.label is None and side >= people.settings.min_face else \
                people.settings.min_sharpness
            if people.due(person, index, side, sharp):
                if person.label is not None:  # it is classified now: its sharpness picks the person's best crop
                    sharp = sharpness(gray, face.box)
                due.append((face, person, side, sharp))
        if due:
            boxes = [Face(*face.box, face.confidence) for face, _, _, _ in due]
            crops, kept = self.pipeline.crops(rgb, boxes)
            if kept:
                probabilities = self.pipeline.classifier.probabilities(np.stack(crops))
                by_box = {id(box): (crop, p) for box, crop, p in zip(kept, crops, probabilities, strict=True)}
                for box, (_, person, side, sharp) in zip(boxes, due, strict=True):
                    if id(box) in by_box:
                        crop, p = by_box[id(box)]
                        people.classified(person, index, p, side, sharp, crop)
        if self.line is not None:
            self.line.update(index, [person.track for person in persons], [face.box for face in tracked])
        return [Detection(face.box, person.label or "", person.probability if person.label else 0.0,
                          face.confidence, face.detector, carried=not face.detected, track=person.track)
                for face, person in zip(tracked, persons, strict=True)]

    def line_counts(self) -> dict | None:
        if self.line is None:
            return None
        labels = {person.track: person.label for person in self.people.people.values()}
        return self.line.counts(labels, self.people.class_names)

    def line_text(self) -> str:
        counts = self.line_counts()
        if counts is None:
            return ""
        return f"in {counts['in']}  out {counts['out']}"

    def finish(self, tally: Tally, people_rows) -> None:
        """Write the best crop of every person counted, give their people.csv rows to ``people_rows`` and fill
        the tally's people."""
        stem = Path(self.item.output).with_suffix("")
        rows = []
        for person in self.people.counted():
            crop = ""
            if person.crop is not None:
                relative = Path(PEOPLE_CROPS) / stem / f"person_{person.track}.jpg"
                atomic_write_image(person.crop, self.output / relative)
                crop = relative.as_posix()
            rows.append(self.people.row(self.item.source, person, crop))
        people_rows(rows)
        tally.people = self.people.counts()
        tally.people_rows = rows
        tally.line = self.line_counts()
        tally.classifications = self.people.classifications
        tally.detection_frames = self.tracker.detections


def run_video(pipeline: MaskDetector, capture, item: Item, output: Path, options: VideoOptions, writer_rows,
              people_rows, display: Display, progress: bool = True) -> Tally:
    """Annotate a video or a webcam frame by frame, tracking faces and counting people.

    Ctrl-C ends a webcam cleanly, keeping the video so far and its people. A webcam that stops giving frames
    ends the same way, with the reason in the tally's ``problem``.

    Args:
        pipeline: the detector and classifier.
        capture: an opened ``cv2.VideoCapture`` (:func:`~maskdetect.inference.media.open_capture`); released
            here.
        item: the source and where its annotated video goes.
        output: the output folder.
        options: tracking, verdicts, the count line, the frame limit.
        writer_rows: called with each frame's detections.csv rows.
        people_rows: called once, when the video ends (or is stopped or interrupted), with its people.csv rows.
        display: the ``--show`` window; q or Esc in it stops the video.
        progress: show a progress bar.

    Returns:
        The source's tally, its people (people.csv's rows) included.

    Raises:
        OSError: no frame could be decoded, or the annotated video cannot be written.
        ValueError: the count line lies outside the video's picture (nothing is written for it).
        KeyboardInterrupt: Ctrl-C on a video file (its people are kept in the tally first).
    """
    import cv2
    from tqdm import tqdm

    fps = _fps(capture)
    tally = Tally(item.source, item.kind, every=options.tracking.every)
    run = _Run(pipeline, item, output, options, fps)
    max_frames = options.max_frames
    total = _frame_count(capture) if item.kind == "video" else None
    total = min(total, max_frames) if total and max_frames else (total or max_frames or None)
    writer = None
    if item.kind == "webcam" and not max_frames:
        log.info("%s: running until Ctrl-C%s", item.source, " or q in the window" if display.ok else "")
    bar = tqdm(total=total, unit="frame", desc=Path(item.source).name, disable=not progress, leave=False)
    start = time.perf_counter()
    try:
        while not max_frames or tally.frames < max_frames:
            ok, bgr = capture.read()
            if not ok or bgr is None:
                if item.kind == "webcam" and not max_frames:
                    tally.problem = (f"{item.source} stopped giving frames after {tally.frames} frames (unplugged or "
                                     "taken by another program); what it gave is kept")
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            if writer is None:
                if run.line is not None:
                    check_inside(run.line.line, rgb.shape[1], rgb.shape[0], item.source)
                writer, target = open_video_writer(output / item.output, fps, rgb.shape[1], rgb.shape[0])
                tally.output = str(target.relative_to(output))
            detections = run.frame(tally.frames, rgb)
            annotated = annotate(rgb, detections, pipeline.classifier.class_names, people=run.people.counts(),
                                 line=run.line.line if run.line else None, line_text=run.line_text())
            writer.write(cv2.cvtColor(annotated, cv2.COLOR_RGB2BGR))
            writer_rows([detection_row(item.source, tally.frames, index, d) for index, d in enumerate(detections)])
            tally.counts.update(d.label for d in detections if d.label)
            tally.frames += 1
            bar.update()
            if not display.frame(annotated, 1):
                break
    except KeyboardInterrupt:
        if item.kind != "webcam":
            run.finish(tally, people_rows)
            raise
        log.info("webcam stopped by Ctrl-C after %d frames", tally.frames)
    finally:
        bar.close()
        tally.seconds = time.perf_counter() - start
        if writer is not None:
            writer.release()
        capture.release()
    if not tally.frames:
        raise OSError(f"cannot read video {item.source}: no frame could be decoded")
    run.finish(tally, people_rows)
    return tally

