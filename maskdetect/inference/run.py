"""A run of inference over many inputs: annotated copies, ``detections.csv`` and ``summary.json``.

Output folder::

    detections.csv      one row per face: source, frame, face, box x1 y1 x2 y2 (the source's pixels, EXIF
                        orientation applied), label, probability, detector confidence, detector, carried
    summary.json        per source and in all: frames, faces per class, mask-wearing rate, speed
    <name>              each image annotated, under the name of its source (folders keep their layout)
    <stem>.mp4          each video annotated (.avi with MJPG where this OpenCV cannot write mp4)
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from maskdetect import images, runtime
from maskdetect.classes import wears_mask
from maskdetect.face import from_crop_settings
from maskdetect.inference.drawing import annotate
from maskdetect.inference.media import FALLBACK_FPS, Display, Item, open_capture, open_video_writer, save_image
from maskdetect.inference.pipeline import Detection, MaskDetector

log = logging.getLogger(__name__)

DETECTIONS = "detections.csv"
SUMMARY = "summary.json"
DETECTION_FIELDS = ["source", "frame", "face", "x1", "y1", "x2", "y2", "label", "probability", "confidence",
                    "detector", "carried"]
# Finding faces costs far more than classifying them, so a video detects on every 5th frame and carries the boxes
# in between; benchmarks/bench_detect.py measures the trade.
DEFAULT_VIDEO_EVERY = 5


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
    """

    source: str
    kind: str
    output: str = ""  # the annotated file, relative to the output folder
    frames: int = 0
    counts: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    every: int = 1

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
        return result


def mask_rate(counts: Counter) -> float | None:
    """The mask-wearing rate: faces whose class means a correctly worn mask (``classes.wears_mask``) over all faces.

    A mask worn wrong (``incorrect_mask``) counts in the faces, not in the masks.

    Args:
        counts: faces per class.

    Returns:
        The rate rounded to 4 places, or None without faces.
    """
    total = sum(counts.values())
    return round(sum(count for name, count in counts.items() if wears_mask(name)) / total, 4) if total else None


def _row(source: str, frame: int, index: int, detection: Detection) -> dict:
    x1, y1, x2, y2 = detection.box
    return {"source": source, "frame": frame, "face": index, "x1": round(x1, 1), "y1": round(y1, 1),
            "x2": round(x2, 1), "y2": round(y2, 1), "label": detection.label,
            "probability": round(detection.probability, 4), "confidence": round(detection.confidence, 4),
            "detector": detection.detector, "carried": int(detection.carried)}


def run_video(pipeline: MaskDetector, capture, item: Item, output: Path, every: int, writer_rows,
              display: Display, max_frames: int = 0) -> Tally:
    """Annotate a video or a webcam frame by frame.

    Faces are detected every ``every`` frames and their boxes carried onto the frames in between; every frame's
    faces are classified. Ctrl-C ends a webcam cleanly, keeping the video so far.

    Args:
        pipeline: the detector and classifier.
        capture: an opened ``cv2.VideoCapture`` (:func:`~maskdetect.inference.media.open_capture`); released
            here.
        item: the source and where its annotated video goes.
        output: the output folder.
        every: detect faces every this many frames.
        writer_rows: called with each frame's detections.csv rows.
        display: the ``--show`` window; q or Esc in it stops the video.
        max_frames: stop after this many frames; 0: all.

    Returns:
        The source's tally.

    Raises:
        OSError: no frame could be decoded, or the annotated video cannot be written.
        KeyboardInterrupt: Ctrl-C on a video file.
    """
    import cv2

    tally = Tally(item.source, item.kind, every=every)
    fps = capture.get(cv2.CAP_PROP_FPS)
    fps = fps if fps and math.isfinite(fps) and 1 <= fps <= 240 else FALLBACK_FPS
    writer, carried = None, []
    if item.kind == "webcam" and not max_frames:
        log.info("%s: running until Ctrl-C%s", item.source, " or q in the window" if display.ok else "")
    start = time.perf_counter()
    try:
        while not max_frames or tally.frames < max_frames:
            ok, bgr = capture.read()
            if not ok or bgr is None:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            fresh = tally.frames % every == 0
            if fresh:
                carried = pipeline.faces(rgb, video=True)
            detections = pipeline.classify(rgb, carried, carried=not fresh)
            annotated = annotate(rgb, detections, pipeline.classifier.class_names)
            if writer is None:
                writer, target = open_video_writer(output / item.output, fps, rgb.shape[1], rgb.shape[0])
                tally.output = str(target.relative_to(output))
            writer.write(cv2.cvtColor(annotated, cv2.COLOR_RGB2BGR))
            writer_rows([_row(item.source, tally.frames, index, d) for index, d in enumerate(detections)])
            tally.counts.update(d.label for d in detections)
            tally.frames += 1
            if not display.frame(annotated, 1):
                break
    except KeyboardInterrupt:
        if item.kind != "webcam":
            raise
        log.info("webcam stopped by Ctrl-C after %d frames", tally.frames)
    finally:
        tally.seconds = time.perf_counter() - start
        if writer is not None:
            writer.release()
        capture.release()
    if not tally.frames:
        raise OSError(f"cannot read video {item.source}: no frame could be decoded")
    return tally


def run_image(pipeline: MaskDetector, item: Item, output: Path, writer_rows, display: Display) -> Tally:
    """Annotate one image (EXIF orientation applied) and save the copy.

    Args:
        pipeline: the detector and classifier.
        item: the image and where its annotated copy goes.
        output: the output folder.
        writer_rows: called with the image's detections.csv rows.
        display: the ``--show`` window; it waits for a key.

    Returns:
        The image's tally.

    Raises:
        OSError: the image cannot be read.
    """
    start = time.perf_counter()
    try:
        rgb = images.load_rgb(item.source, pipeline.settings.max_pixels)
    except images.DECODE_ERRORS as error:
        raise OSError(f"cannot read image {item.source}: {error}") from None
    detections = pipeline.image(rgb)
    annotated = annotate(rgb, detections, pipeline.classifier.class_names)
    target = save_image(annotated, output / item.output)
    writer_rows([_row(item.source, 0, index, d) for index, d in enumerate(detections)])
    tally = Tally(item.source, "image", str(target.relative_to(output)), frames=1, seconds=time.perf_counter() - start)
    tally.counts.update(d.label for d in detections)
    display.frame(annotated, 0)
    return tally


def _describe(tally: Tally) -> str:
    faces_text = ", ".join(f"{name} {count}" for name, count in sorted(tally.counts.items())) or "no face"
    if tally.kind == "image":
        return f"{tally.source}: {faces_text}"
    rate = tally.frames / tally.seconds if tally.seconds else float("nan")
    share = mask_rate(tally.counts)
    return (f"{tally.source}: {tally.frames} frames in {tally.seconds:.1f} s ({rate:.1f} frames/s, detection every "
            f"{tally.every}); face-frames: {faces_text}"
            + (f"; mask-wearing rate {share:.1%}" if share is not None else ""))


def process(pipeline: MaskDetector, items: Sequence[Item], output: Path, every: int | None = None,
            show: bool = False, max_frames: int = 0, problems: Sequence[str] = ()) -> dict:
    """Run every item, writing ``detections.csv``, the annotated files and ``summary.json`` into ``output``.

    An item that fails is reported in one ``error:`` line on stderr and recorded in the summary; the others go
    on. A line per finished source goes to stdout. summary.json is written even when a run is interrupted.

    Args:
        pipeline: the detector and classifier.
        items: what to process (:func:`~maskdetect.inference.media.plan_inputs`).
        output: the output folder, created when absent; one that holds a ``detections.csv`` is refused
            (FileExistsError) before anything is written.
        every: on videos and webcams, detect faces every this many frames; None: ``DEFAULT_VIDEO_EVERY``.
        show: show the annotated frames in a window where there is a display.
        max_frames: stop each video or webcam after this many frames; 0: all.
        problems: inputs that gave no item, recorded as failures.

    Returns:
        The summary, as written to summary.json.
    """
    output.mkdir(parents=True, exist_ok=True)
    display = Display(show, output)
    tallies: list[Tally] = []
    failures = [{"source": "", "error": problem} for problem in problems]
    started = time.perf_counter()
    # "x": an earlier run's detections.csv (or a second run started into the same folder) is never overwritten
    with open(output / DETECTIONS, "x", newline="", encoding="utf-8", errors="surrogateescape") as handle:
        writer = csv.DictWriter(handle, fieldnames=DETECTION_FIELDS, lineterminator="\n")
        writer.writeheader()

        try:
            for item in items:
                try:
                    if item.kind == "image":
                        tally = run_image(pipeline, item, output, writer.writerows, display)
                    else:
                        capture = open_capture(item)
                        tally = run_video(pipeline, capture, item, output,
                                          every or DEFAULT_VIDEO_EVERY, writer.writerows, display, max_frames)
                except OSError as error:
                    # one line, as run_cli words an error about a path: the path, why, what to do
                    message = runtime.os_error_line(error) if error.filename else str(error)
                    print(f"error: {message}", file=sys.stderr)
                    failures.append({"source": item.source, "error": message})
                    continue
                finally:
                    handle.flush()
                tallies.append(tally)
                print(_describe(tally), flush=True)
        finally:
            display.close()
            summary = _summary(pipeline, tallies, failures, output, every, time.perf_counter() - started)
            partial = output / f".{SUMMARY}.partial"  # whole or absent, never half-written
            partial.write_text(json.dumps(summary, indent=2))
            os.replace(partial, output / SUMMARY)
    return summary


def _summary(pipeline: MaskDetector, tallies: list[Tally], failures: list[dict], output: Path, every: int | None,
             seconds: float) -> dict:
    class_names = pipeline.classifier.class_names
    counts: Counter = Counter()
    for tally in tallies:
        counts.update(tally.counts)

    def detector_settings(settings) -> dict:
        used = from_crop_settings(settings)
        return {"face_stage": settings.face_stage,
                **{key: getattr(settings, key) for key in ("threshold", "second_stage", "pad_retry", "margin", "size",
                                                           "face_detector")},
                # the values used, defaults included (None: no verifier, so no veto either)
                **{key: getattr(used, key) for key in ("detect_size", "second_stage_threshold", "verifier_threshold")},
                "verifier_veto": used.verifier_veto if used.verifier_threshold is not None else None}

    return {
        "model": str(pipeline.classifier.path), "class_names": class_names,
        "image_size": pipeline.classifier.image_size,
        "detect_every": every or DEFAULT_VIDEO_EVERY if any(t.kind != "image" for t in tallies) else 1,
        # photos, and video and webcams, can be looked at with different face-stage presets
        "detector_settings": detector_settings(pipeline.settings),
        "video_detector_settings": detector_settings(pipeline.video_settings),
        # the model's crop geometry and where it came from (default: the model's metadata does not record it)
        "crop": {"margin": pipeline.settings.margin, "crop_size": pipeline.settings.size,
                 "source": pipeline.classifier.crop_source},
        # the classes the mask-wearing rate counts as worn; every other class counts as a face without one
        "worn_mask_classes": [name for name in class_names if wears_mask(name)],
        "totals": {"images": sum(t.kind == "image" for t in tallies),
                   "videos": sum(t.kind != "image" for t in tallies), "frames": sum(t.frames for t in tallies),
                   "faces": sum(counts.values()),
                   "faces_per_class": {name: counts.get(name, 0) for name in class_names},
                   "mask_wearing_rate": mask_rate(counts), "failed": len(failures), "seconds": round(seconds, 2)},
        "sources": [tally.as_dict(class_names) for tally in tallies],
        "failed": failures,
        "detections": str(output / DETECTIONS),
    }
