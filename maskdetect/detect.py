"""detect_mask.py's command line: find every face in photos, folders, videos or a webcam, classify it with a
trained model, and write annotated copies, ``detections.csv`` and ``summary.json``; on video, track each person and
write ``people.csv``; export a model to TFLite or a SavedModel.

The work is :mod:`maskdetect.inference`'s: faces are found and cut as the face stage finds and cuts them, at the
crop geometry of the model's training crops (:mod:`maskdetect.inference.pipeline`). The default model is the best
of the training log (:func:`maskdetect.inference.best_model`).

Output (``--output``, default ``<logs>/detect/<time>/``)::

    detections.csv      one row per face (per frame on video): source, frame, face, track, box x1 y1 x2 y2 (the
                        source's pixels, EXIF orientation applied), label, probability, detector confidence,
                        detector, carried
    people.csv          video: one row per person (track), with its label, label changes and best face crop
    summary.json        per source and in all: frames, faces and people per class, mask-wearing rates, speed
    <name>              each image annotated, under the name of its source (folders keep their layout)
    <stem>.mp4          each video annotated (.avi with MJPG where this OpenCV cannot write mp4)
    people/<stem>/      each person's best face crop

Only :func:`main` configures logging; TensorFlow, Keras and OpenCV are imported when a model or a detector
is built, not when this module is imported.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from maskdetect import export, images, runtime
from maskdetect.artifact import load_classifier
from maskdetect.face import settings as face_settings
from maskdetect.facecrops import FACE_STAGES
from maskdetect.inference import MaskDetector, best_model
from maskdetect.inference.countline import parse_line
from maskdetect.inference.media import VIDEO_EXTENSIONS, Item, plan_inputs
from maskdetect.inference.pipeline import CROP
from maskdetect.inference.run import DEFAULT_VIDEO_EVERY, DETECTIONS, PEOPLE, SUMMARY, process
from maskdetect.inference.tracking import TrackingSettings
from maskdetect.inference.video import VideoOptions

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="detect_mask.py",
        description="Find the faces in images, folders, videos or a webcam and classify each with a trained model "
        "(mask / without_mask / ...): annotated copies, detections.csv and summary.json. The face detector and its "
        "settings are process_faces.py's defaults.",
    )
    parser.add_argument("inputs", nargs="*", metavar="INPUT",
                        help="an image, a folder (searched recursively for images and videos), a video file "
                        f"({', '.join(sorted(VIDEO_EXTENSIONS))}) or a webcam index (0, 1, ...)")
    parser.add_argument("--model", type=Path,
                        help="a model.keras from train_a_model.py (default: the best run in LOGS/training_log.csv "
                        "whose model file exists, ranked by the balanced accuracy on labelled photos when runs were "
                        "scored with auto_train.py --rank-on, else by validation accuracy)")
    parser.add_argument("--logs", type=Path, default=Path("logs"),
                        help="where the training log is (default %(default)s)")
    parser.add_argument("--output", type=Path,
                        help="folder for detections.csv, summary.json and the annotated files "
                        "(default LOGS/detect/<time>)")
    parser.add_argument("--every", type=int, default=None, metavar="K",
                        help=f"on video and webcam, run the face stage every K frames (and after a scene cut); the "
                        f"tracker follows each face in between; default {DEFAULT_VIDEO_EVERY}, 1 detects on every "
                        "frame")
    parser.add_argument("--count-line", metavar="X1,Y1,X2,Y2",
                        help="on video and webcam, count the people who cross this line (in the video's pixels), in "
                        "each direction and per class: in = to the line's left as seen from X1,Y1 towards X2,Y2")
    parser.add_argument("--max-frames", type=int, default=0, metavar="N",
                        help="stop each video or webcam after N frames (default: all; a webcam runs until q or Ctrl-C)")
    parser.add_argument("--show", action="store_true",
                        help="show the annotated frames in a window (needs a display and an OpenCV with windows): "
                        "an image waits for a key, q or Esc stops a video")
    parser.add_argument("--export", metavar="FORMAT",
                        help=f"also write the model as {' or '.join(export.FORMATS)}, to run without this code")
    parser.add_argument("--export-path", type=Path,
                        help="where --export writes (default: beside the model: model.tflite, model_savedmodel/)")
    parser.add_argument("--face-stage", choices=FACE_STAGES, default=None,
                        help=f"{face_settings.FACE_STAGE_HELP} (default: accurate on photos, fast on video and "
                        "webcams)")
    parser.add_argument("--face-detector", metavar="DIR",
                        help="a face detector you trained with train_face_detector.py (default: the shipped one)")
    parser.add_argument("--second-stage-threshold", type=float, default=None, metavar="P",
                        help=face_settings.second_stage_threshold_help())
    parser.add_argument("--verifier-threshold", type=float, default=None, metavar="P",
                        help=face_settings.verifier_threshold_help())
    parser.add_argument("--no-verifier", action="store_true", help=face_settings.NO_VERIFIER_HELP)
    parser.add_argument("--max-pixels", type=int, default=images.DEFAULT_MAX_PIXELS, help=images.MAX_PIXELS_HELP)
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run detect_mask.py with ``argv`` (default: the process's arguments); configures logging.

    Returns:
        ``runtime.EXIT_OK`` (0) when every input was processed or there was only ``--export`` to do,
        ``runtime.EXIT_FAILURE`` (1) when an input failed, ``runtime.EXIT_USAGE`` (2) for a user error (one
        ``error:`` line), ``runtime.EXIT_INTERRUPTED`` (130) on Ctrl-C.
    """
    args = build_parser().parse_args(argv)
    runtime.configure_logging(args.verbose)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return runtime.run_cli(lambda: _main(args), "detect_mask: interrupted; what was processed is in the output folder.")


def _main(args) -> int:
    if not args.inputs and not args.export:
        raise ValueError("give at least one INPUT (image, folder, video or webcam index), or --export FORMAT")
    if args.export is not None and args.export not in export.FORMATS:
        raise ValueError(f"--export must be one of {', '.join(export.FORMATS)}, not {args.export!r}")
    if args.export_path and not args.export:
        raise ValueError("--export-path needs --export")
    if args.every is not None and args.every < 1:
        raise ValueError(f"--every must be at least 1, not {args.every}")
    if args.max_frames < 0:
        raise ValueError(f"--max-frames must be 0 (all) or more, not {args.max_frames}")
    line = parse_line(args.count_line) if args.count_line is not None else None
    video = VideoOptions(tracking=TrackingSettings(every=args.every or DEFAULT_VIDEO_EVERY), count_line=line,
                         max_frames=args.max_frames)
    # checked before any model loads
    settings = dataclasses.replace(CROP, face_detector=args.face_detector,
                                   second_stage_threshold=args.second_stage_threshold,
                                   verifier_threshold=args.verifier_threshold, verifier=not args.no_verifier,
                                   face_stage=args.face_stage or "accurate", max_pixels=args.max_pixels)
    video_settings = dataclasses.replace(settings, face_stage=args.face_stage or "fast")
    for chosen in (settings, video_settings):
        face_settings.from_crop_settings(chosen)  # a preset the --face-detector folder has no fusion for
    items, problems = plan_inputs(args.inputs)
    if args.inputs and not items:
        raise ValueError("; ".join(problems) if problems else "nothing to process")
    # the output folder is checked before the model loads: a wrong one is one line, not a wait and a traceback
    base = args.output or args.logs / "detect" / time.strftime("%Y%m%d-%H%M%S")
    if items:
        _check_output(args, base, items)
    model_path = args.model or best_model(args.logs)
    classifier = load_classifier(model_path)
    log.info("model %s: classes %s, %d px; faces cut with margin %g at %d px (%s)", model_path,
             ", ".join(classifier.class_names), classifier.image_size, classifier.crop_margin, classifier.crop_size,
             classifier.crop_source)
    if args.export:
        target = args.export_path or export.default_path(model_path, args.export)
        meta_file = export.export(classifier.model, classifier.meta, args.export, target, model_path)
        print(f"detect_mask: exported {args.export} model to {target} (classes {', '.join(classifier.class_names)}, "
              f"input {classifier.image_size} px RGB 0-255); class names and crop geometry in {meta_file}")
    if not items:
        return runtime.EXIT_OK
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    pipeline = MaskDetector(classifier, settings, video_settings)
    # an explicit folder is made here or was empty; a default one is new, never shared with another run
    if args.output:
        output = args.output
        output.mkdir(parents=True, exist_ok=True)
    else:
        output = runtime.new_folder(base)
    summary = process(pipeline, items, output, show=args.show, problems=problems, video=video,
                      progress=sys.stderr.isatty())
    totals = summary["totals"]
    per_class = ", ".join(f"{name} {count}" for name, count in totals["faces_per_class"].items())
    rate = totals["mask_wearing_rate"]
    people = ""
    if totals["videos"]:
        per_person = ", ".join(f"{name} {count}" for name, count in totals["people_per_class"].items())
        people_rate = totals["people_mask_wearing_rate"]
        people = (f"; people: {per_person}"
                  + (f"; mask-wearing rate {people_rate:.1%} of people" if people_rate is not None else ""))
    frames_word = "face-frames" if totals["videos"] else "faces"
    print(f"detect_mask: {totals['images']} image(s) and {totals['videos']} video(s) ({totals['frames']} frames) read, "
          f"{totals['failed']} failed{people}; {frames_word}: {per_class}"
          + (f"; mask-wearing rate {rate:.1%}" + (" of face-frames" if totals["videos"] else "")
             if rate is not None else "")
          + f"; written to {output} ({DETECTIONS}, {PEOPLE + ', ' if totals['videos'] else ''}{SUMMARY}, "
            "annotated copies)")
    return runtime.EXIT_FAILURE if summary["failed"] else runtime.EXIT_OK


def _check_output(args, output: Path, items: Sequence[Item]) -> None:
    """Refuse an output folder that cannot take this run's files, before any model loads; the first reason that
    applies is the one given.

    Raises:
        ValueError: an item's annotated copy (a video's as .mp4 or .avi) would replace one of the photos or videos
            it is made from; ``--output`` is a file or a folder that is not empty (an earlier run's files or the
            user's); the folder cannot be written; or it would lie inside a folder given as input (a rerun would
            read the annotated copies as inputs).
    """
    sources = {Path(item.source).resolve() for item in items if item.kind != "webcam"}
    for item in items:
        target = output / item.output
        # a video goes to .mp4, or .avi where this OpenCV cannot write mp4
        targets = [target] if item.kind == "image" else [target.with_suffix(".mp4"), target.with_suffix(".avi")]
        for candidate in targets:
            if candidate.resolve() in sources:
                raise ValueError(f"--output {output} would overwrite {candidate} with its annotated copy; "
                                 "choose another folder")
    flag = "--output" if args.output else "--logs"
    if args.output:
        if output.exists() and not output.is_dir():
            raise ValueError(f"--output {output} is a file; give a folder (new or empty) for the annotated copies, "
                             f"{DETECTIONS} and {SUMMARY}")
        if output.is_dir() and any(output.iterdir()):
            raise ValueError(f"--output {output} is not empty; give a new or empty folder (nothing in it is "
                             "overwritten)")
    runtime.check_writable(output, flag)
    for text in args.inputs:
        folder = Path(text)
        if folder.is_dir() and output.resolve().is_relative_to(folder.resolve()):
            raise ValueError(f"the output folder {output} would be inside the input folder {folder}, and a rerun "
                             "would read its annotated copies; give --output a folder outside it")

