"""A run of inference over many inputs: annotated copies, ``detections.csv``, ``people.csv`` and ``summary.json``.

Output folder::

    detections.csv      one row per face (per frame on video): source, frame, face, track (video: the person's
                        number), box x1 y1 x2 y2 (the source's pixels, EXIF orientation applied), label,
                        probability, detector confidence, detector, carried (video: a box followed, not detected)
    people.csv          video: one row per person (track): first and last frame and time, frames seen, label,
                        probability, label changes, the best face crop
    summary.json        per source and in all: frames, faces per class, people per class (video), mask-wearing
                        rates, speed
    <name>              each image annotated, under the name of its source (folders keep their layout)
    <stem>.mp4          each video annotated (.avi with MJPG where this OpenCV cannot write mp4)
    people/<stem>/      the best face crop of each person of a video
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from maskdetect import images, records, runtime
from maskdetect.classes import wears_mask
from maskdetect.inference.drawing import annotate
from maskdetect.inference.media import Display, Item, open_capture, save_image
from maskdetect.inference.people import PEOPLE, PEOPLE_FIELDS
from maskdetect.inference.pipeline import MaskDetector
from maskdetect.inference.tally import DETECTION_FIELDS, Tally, detection_row, mask_rate
from maskdetect.inference.tracking import TrackingSettings
from maskdetect.inference.video import VideoOptions, run_video

log = logging.getLogger(__name__)

DETECTIONS = "detections.csv"
SUMMARY = "summary.json"
# Finding faces costs far more than anything else, so a video runs the face stage every 15th frame (and after a
# scene cut) and the tracker follows the faces in between; benchmarks/bench_video.py measures the trade.
DEFAULT_VIDEO_EVERY = TrackingSettings().every
__all__ = ["DETECTIONS", "DETECTION_FIELDS", "PEOPLE", "SUMMARY", "DEFAULT_VIDEO_EVERY", "Tally", "mask_rate",
           "process", "run_image"]


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
    writer_rows([detection_row(item.source, 0, index, d) for index, d in enumerate(detections)])
    tally = Tally(item.source, "image", str(target.relative_to(output)), frames=1, seconds=time.perf_counter() - start)
    tally.counts.update(d.label for d in detections)
    display.frame(annotated, 0)
    return tally


def _describe(tally: Tally) -> str:
    faces_text = ", ".join(f"{name} {count}" for name, count in sorted(tally.counts.items())) or "no face"
    if tally.kind == "image":
        return f"{tally.source}: {faces_text}"
    rate = tally.frames / tally.seconds if tally.seconds else float("nan")
    people_text = ", ".join(f"{name} {count}" for name, count in sorted(tally.people.items())) or "none"
    share, frame_share = mask_rate(tally.people), mask_rate(tally.counts)
    line = ""
    if tally.line is not None:
        line = f"; crossed the line: in {tally.line['in']}, out {tally.line['out']}"
    return (f"{tally.source}: {tally.frames} frames in {tally.seconds:.1f} s ({rate:.1f} frames/s, faces found every "
            f"{tally.every} frames); people: {people_text}"
            + (f"; mask-wearing rate {share:.1%} of people" if share is not None else "")
            + (f" ({frame_share:.1%} of face-frames)" if frame_share is not None else "") + line)


def process(pipeline: MaskDetector, items: Sequence[Item], output: Path, show: bool = False,
            problems: Sequence[str] = (), video: VideoOptions | None = None, progress: bool = True) -> dict:
    """Run every item, writing ``detections.csv``, ``people.csv``, the annotated files and ``summary.json`` into
    ``output``.

    An item that fails is reported in one ``error:`` line on stderr and recorded in the summary; the others go
    on. A webcam that stops giving frames is one ``error:`` line too, and what it gave is kept. A line per
    finished source goes to stdout. people.csv and summary.json are written even when a run is interrupted.

    Args:
        pipeline: the detector and classifier.
        items: what to process (:func:`~maskdetect.inference.media.plan_inputs`).
        output: the output folder, created when absent; one that holds a ``detections.csv`` or ``people.csv`` is
            refused (FileExistsError) before anything is written.
        show: show the annotated frames in a window where there is a display.
        problems: inputs that gave no item, recorded as failures.
        video: the detection interval, tracking, verdict, count-line and frame-limit settings for videos and
            webcams (default: the defaults).
        progress: show a progress bar per video.

    Returns:
        The summary, as written to summary.json.
    """
    video = video or VideoOptions()
    output.mkdir(parents=True, exist_ok=True)
    display = Display(show, output)
    tallies: list[Tally] = []
    failures = [{"source": "", "error": problem} for problem in problems]
    started = time.perf_counter()
    # "x": an earlier run's records (or a second run started into the same folder) are never overwritten
    with open(output / DETECTIONS, "x", newline="", encoding="utf-8", errors="surrogateescape") as handle, \
            open(output / PEOPLE, "x", newline="", encoding="utf-8", errors="surrogateescape") as people_handle:
        writer = csv.DictWriter(handle, fieldnames=DETECTION_FIELDS, lineterminator="\n")
        writer.writeheader()
        people = csv.DictWriter(people_handle, fieldnames=PEOPLE_FIELDS, lineterminator="\n")
        people.writeheader()

        def people_rows(rows: list[dict]) -> None:
            people.writerows(rows)
            people_handle.flush()

        try:
            for item in items:
                try:
                    if item.kind == "image":
                        tally = run_image(pipeline, item, output, writer.writerows, display)
                    else:
                        capture = open_capture(item)
                        tally = run_video(pipeline, capture, item, output, video, writer.writerows, people_rows,
                                          display, progress)
                except (OSError, ValueError) as error:
                    # one line, as run_cli words an error about a path: the path, why, what to do
                    message = runtime.os_error_line(error) if getattr(error, "filename", None) else str(error)
                    print(f"error: {message}", file=sys.stderr)
                    failures.append({"source": item.source, "error": message})
                    continue
                finally:
                    handle.flush()
                tallies.append(tally)
                print(_describe(tally), flush=True)
                if tally.problem:
                    print(f"error: {tally.problem}", file=sys.stderr)
                    failures.append({"source": item.source, "error": tally.problem})
        finally:
            display.close()
            summary = _summary(pipeline, tallies, failures, output, video, time.perf_counter() - started)
            records.write_whole(output / SUMMARY, json.dumps(summary, indent=2))  # whole or absent
    return summary


def _summary(pipeline: MaskDetector, tallies: list[Tally], failures: list[dict], output: Path,
             video: VideoOptions, seconds: float) -> dict:
    class_names = pipeline.classifier.class_names
    counts: Counter = Counter()
    people: Counter = Counter()
    for tally in tallies:
        counts.update(tally.counts)
        people.update(tally.people)
    videos = [tally for tally in tallies if tally.kind != "image"]

    def detector_settings(video: bool) -> dict:
        settings, used = pipeline.video_settings if video else pipeline.settings, pipeline.detector_settings(video)
        return {"face_stage": settings.face_stage,
                **{key: getattr(settings, key) for key in ("threshold", "second_stage", "pad_retry", "margin", "size",
                                                           "face_detector")},
                # the values used, defaults included (None: no verifier, so no veto either)
                **{key: getattr(used, key) for key in ("detect_size", "second_stage_threshold", "verifier_threshold")},
                "verifier_veto": used.verifier_veto if used.verifier_threshold is not None else None}

    return {
        "model": str(pipeline.classifier.path), "class_names": class_names,
        "image_size": pipeline.classifier.image_size,
        "detect_every": video.tracking.every if videos else 1,
        "tracking": {**dataclasses.asdict(video.tracking), **dataclasses.asdict(video.verdicts),
                     "count_line": list(video.count_line) if video.count_line else None} if videos else None,
        # photos, and video and webcams, can be looked at with different face-stage presets
        "detector_settings": detector_settings(video=False),
        "video_detector_settings": detector_settings(video=True),
        # the model's crop geometry and where it came from (default: the model's metadata does not record it)
        "crop": {"margin": pipeline.settings.margin, "crop_size": pipeline.settings.size,
                 "source": pipeline.classifier.crop_source},
        # the classes the mask-wearing rate counts as worn; every other class counts as a face without one
        "worn_mask_classes": [name for name in class_names if wears_mask(name)],
        "totals": {"images": sum(t.kind == "image" for t in tallies),
                   "videos": sum(t.kind != "image" for t in tallies), "frames": sum(t.frames for t in tallies),
                   "faces": sum(counts.values()),
                   "faces_per_class": {name: counts.get(name, 0) for name in class_names},
                   "mask_wearing_rate": mask_rate(counts), "failed": len(failures), "seconds": round(seconds, 2),
                   # on video: people (tracks), not face-frames
                   "people": sum(people.values()),
                   "people_per_class": {name: people.get(name, 0) for name in class_names},
                   "people_mask_wearing_rate": mask_rate(people)},
        "sources": [tally.as_dict(class_names) for tally in tallies],
        "failed": failures,
        "detections": str(output / DETECTIONS),
        "people": str(output / PEOPLE),
    }
