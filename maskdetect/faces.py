"""The face stage: every face in every photo, found by the detector, cropped square to a fixed size, with
a manifest (``process_faces.py``).

The layout of the output, the crop geometry and the manifest are :mod:`maskdetect.facecrops`'s, finding the faces
is :mod:`maskdetect.face`'s (the detector and its padded retry, which inference uses too); this module works
through the photos in worker processes (:func:`run`), and is the command line, which also applies review verdicts
and hand-drawn boxes (:mod:`maskdetect.review`) and cuts labelled photos (:mod:`maskdetect.annotations`).

A source is done once its row is in ``sources.csv``; a rerun skips it (by sha256), so the stage resumes
where a kill or Ctrl-C stopped it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maskdetect import annotations, facecrops, images, records, review, runtime, suspects
from maskdetect.face import retry
from maskdetect.face import settings as face_settings
from maskdetect.facecrops import FACE_STAGES, CropSettings

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# The stage


@dataclass
class SourceResult:
    """What one photo gave: manifest rows to append, and the sources.csv row."""

    faces: list[dict] = field(default_factory=list)
    source: dict = field(default_factory=dict)


# The detector of this process: built once per worker, since loading the models takes seconds.
_DETECTOR = None


def init_worker(settings: CropSettings, threads: int = 1) -> None:
    """Build this process's detector, each process using ``threads`` threads so workers share cores fairly."""
    global _DETECTOR
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with runtime.native_stderr_silenced():
        import cv2
        import tensorflow as tf

        if threads:
            cv2.setNumThreads(threads)
            try:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(threads)
            except RuntimeError:  # TensorFlow already started in this process: its thread pools are fixed
                pass
        from maskdetect.face import FaceDetector, from_crop_settings

        _DETECTOR = FaceDetector(from_crop_settings(settings, threads or None))
        _DETECTOR.detect(np.zeros((64, 64, 3), np.uint8))  # the first call builds the graphs: log it here


def process_source(task: tuple[str, str, str, str, CropSettings]) -> SourceResult:
    """Read one photo, find its faces, save the crops (a worker function; returns rows to record)."""
    source_text, sha256, class_name, output_text, settings = task
    source, output = Path(source_text), Path(output_text)
    start = time.perf_counter()
    result = SourceResult()
    base = {"source": str(source), "source_sha256": sha256, "class": class_name}
    try:
        rgb = images.load_rgb(source, settings.max_pixels)
    except images.DECODE_ERRORS as error:
        result.source = {**base, "status": "unreadable", "faces": 0, "low_confidence": 0, "detail": str(error)}
        return result
    faces, padded = retry.detect_faces(_DETECTOR, rgb, settings)

    def kind_of(face) -> str:
        return facecrops.LOW_CONFIDENCE if face.low_confidence else facecrops.AUTO

    result.faces = facecrops.save_faces(rgb, faces, source, sha256, class_name, output, settings, kind_of)
    kept = sum(row["kind"] == facecrops.AUTO for row in result.faces)
    low = len(result.faces) - kept
    if kept == 0:
        facecrops.atomic_no_face_copy(source, class_name, output)
    status = "faces" if kept else "no_face"
    detail = "found after padding (a tight crop)" if padded and faces else ""
    result.source = {**base, "status": status, "faces": kept, "low_confidence": low, "detail": detail,
                     "seconds": round(time.perf_counter() - start, 3)}
    return result


def list_sources(input_root: Path, classes: Sequence[str] | None = None) -> list[tuple[Path, str]]:
    """(photo, class) for every file under the class folders of ``input_root``; links are skipped."""
    class_dirs = images.class_dirs(input_root)
    if classes:
        unknown = sorted(set(classes) - {folder.name for folder in class_dirs})
        if unknown:
            raise ValueError(f"no class folder(s) {unknown} in {input_root}")
        class_dirs = [folder for folder in class_dirs if folder.name in classes]
    if not class_dirs:
        raise ValueError(f"no class folders in {input_root}: put the photos in {input_root}/<class name>/")
    return [(path.resolve(), folder.name) for folder in class_dirs for path in images.walk_files(folder)
            if not path.is_symlink()]


def run(input_root: Path, output: Path, settings: CropSettings, jobs: int = 1,
        classes: Sequence[str] | None = None, on_result=None) -> dict:
    """Crop every face of every photo not done yet; returns counts for the summary.

    ``on_result(SourceResult)``, when given, is called as each photo is recorded (benchmarks time it).
    """
    sources = list_sources(input_root, classes)
    output.mkdir(parents=True, exist_ok=True)
    for stale in output.rglob(".*.tmp"):  # our own half-written files from a killed run
        stale.unlink()
    finished = facecrops.done_sources(output)
    tasks, seen = [], set(finished)
    for path, class_name in sources:
        sha256 = images.sha256_file(path)
        if sha256 in seen:
            continue
        seen.add(sha256)
        tasks.append((str(path), sha256, class_name, str(output.resolve()), settings))
    counts = {"read": len(sources), "skipped": len(sources) - len(tasks), "faces": 0, "low_confidence": 0,
              "no_face": 0, "unreadable": 0}
    results = runtime.parallel_map(process_source, tasks, jobs, "faces", unit="photo",
                                   initializer=init_worker, initargs=(settings, 1 if jobs > 1 else 0), heavy=True)
    for result in results:
        if result.faces:
            records.append_rows(output / facecrops.MANIFEST, facecrops.FACE_FIELDS, result.faces)
        records.append_rows(output / facecrops.SOURCES, facecrops.SOURCE_FIELDS,
                            [{**result.source, "time": facecrops.now()}])
        if on_result is not None:
            on_result(result)
        counts["faces"] += int(result.source["faces"])
        counts["low_confidence"] += int(result.source["low_confidence"])
        if result.source["status"] in ("no_face", "unreadable"):
            counts[result.source["status"]] += 1
            log.info("%s: %s", result.source["status"].replace("_", " "), result.source["source"])
    return counts


def class_yield(output: Path) -> dict[str, float]:
    """Share of the photos of each class that gave at least one crop, over every run so far."""
    totals: dict[str, list[int]] = {}
    for row in records.read_rows(output / facecrops.SOURCES):
        total = totals.setdefault(row["class"], [0, 0])
        total[0] += 1
        total[1] += int(row["faces"] or 0) > 0
    return {name: found / count for name, (count, found) in sorted(totals.items()) if count}


def annotations_summary(counts) -> str:
    """The summary line of ``--annotations``, from :func:`maskdetect.annotations.crop`'s counts."""
    by_class = ", ".join(f"{key.split(':', 1)[1]} {value}" for key, value in sorted(counts.items())
                         if key.startswith("class:")) or "none"
    return (f"process_faces: annotations: {counts['photos']} labelled photos, {counts['done']} done now, "
            f"{counts['skipped']} skipped (done before or identical); {counts['faces']} faces cut ({by_class}); "
            f"not cut: {counts['too_small']} too small, {counts['dropped']} dropped by --label-map, "
            f"{counts['rare']} of labels with too few faces, {counts['bad_box']} bad boxes, {counts['bad_label']} "
            f"unknown labels; {counts['unreadable']} unreadable photos, {counts['problems']} unusable files or lines")


# ---------------------------------------------------------------------------------------------
# Command line


def build_parser():
    import argparse

    parser = argparse.ArgumentParser(
        prog="process_faces.py",
        description="Find every face in the photos of each class and save it as a square crop; "
        "write review sheets; apply review verdicts and hand-drawn boxes.",
    )
    parser.add_argument("--input", type=Path,
                        default=Path("original_data"), help="photos, one folder per class (default %(default)s)")
    parser.add_argument("--output", type=Path,
                        default=Path("processed_data"), help="crops and manifest (default %(default)s)")
    parser.add_argument("--logs", type=Path,
                        default=Path("logs"), help="review sheets go to LOGS/review/ (default %(default)s)")
    parser.add_argument("--classes", nargs="+", help="only these class folders (default: all)")
    defaults = CropSettings()
    parser.add_argument("--threshold", type=float, default=defaults.threshold,
                        help="MTCNN confidence to keep a face (default %(default)s)")
    parser.add_argument("--review-threshold", type=float, default=defaults.review_threshold,
                        help="faces from here up to --threshold go to _low_confidence/ (default %(default)s)")
    parser.add_argument("--margin", type=float, default=defaults.margin,
                        help="added around the face box on each side, as a share of its long side "
                        "(default %(default)s)")
    parser.add_argument("--size", type=int, default=defaults.size, help="crop side in pixels (default %(default)s)")
    parser.add_argument("--detect-size", type=int, default=defaults.detect_size,
                        help="photos are shrunk to this long side for detection; crops come from the "
                        "full resolution (default: the face stage's, 640 accurate, 480 fast)")
    parser.add_argument("--no-second-stage", action="store_true",
                        help="MTCNN only: do not add the masked faces it misses")
    parser.add_argument("--no-pad-retry", action="store_true",
                        help="do not retry small photos inside a border when no face is found")
    parser.add_argument("--face-stage", choices=FACE_STAGES, default=defaults.face_stage,
                        help=f"{face_settings.FACE_STAGE_HELP} (default %(default)s)")
    parser.add_argument("--face-detector", metavar="DIR",
                        help="a face detector you trained with train_face_detector.py (default: the shipped one)")
    parser.add_argument("--second-stage-threshold", type=float, default=None, metavar="P",
                        help=face_settings.second_stage_threshold_help())
    parser.add_argument("--verifier-threshold", type=float, default=None, metavar="P",
                        help=face_settings.verifier_threshold_help())
    parser.add_argument("--no-verifier", action="store_true", help=face_settings.NO_VERIFIER_HELP)
    parser.add_argument("--jobs", type=int, default=runtime.default_jobs(), help="processes (default: all cores)")
    parser.add_argument("--review", action="store_true", help="only (re)write the review sheets")
    parser.add_argument("--apply-review", type=Path, metavar="FILE",
                        help="apply a verdicts file from a review sheet (lines 'reject NAME' / 'accept NAME' / "
                        "'move NAME => CLASS'); crops deleted by hand count as rejected")
    parser.add_argument("--manual-boxes", type=Path, metavar="FILE",
                        help="crop the boxes drawn on a review sheet (CSV: source,class,x1,y1,x2,y2)")
    parser.add_argument("--annotations", nargs="+", type=Path, metavar="PATH",
                        help="cut the labelled faces of these annotation sets instead of detecting faces: a PASCAL "
                        "VOC folder (annotations/*.xml beside images/), a CSV of boxes (image,label,xmin,ymin,xmax,"
                        "ymax) or a YOLO folder (labels/, images/, classes.txt); --classes keeps only those labels")
    parser.add_argument("--label-map", nargs="+", metavar="OLD=NEW", default=[],
                        help="with --annotations: rename labels (e.g. with_mask=mask), OLD=- drops a label; a label "
                        f"with fewer than {annotations.MIN_LABEL_FACES} usable faces is left out unless mapped "
                        "(incorrect_mask=incorrect_mask keeps it)")
    parser.add_argument("--min-face", type=int, default=annotations.DEFAULT_MIN_FACE, metavar="PX",
                        help="with --annotations: labelled faces whose short side is below PX are counted and "
                        "skipped (default %(default)s)")
    parser.add_argument("--suspects", action="store_true",
                        help="score every crop of --output with quick models trained on the other folds (grouped by "
                        "source photo) and write OUTPUT/suspects.csv; the review sheets then start with the crops "
                        "whose label the models dispute, least likely first")
    parser.add_argument("--folds", type=int, default=suspects.DEFAULT_FOLDS, metavar="K",
                        help="with --suspects: folds (default %(default)s)")
    parser.add_argument("--quick-size", type=int, default=suspects.DEFAULT_SIZE, metavar="PX",
                        help="with --suspects: the quick models' input side, 64-224 (default %(default)s)")
    parser.add_argument("--weights", default="imagenet", metavar="imagenet|FILE",
                        help="with --suspects: the MobileNetV2 alpha 0.35 trunk's weights: Keras's ImageNet file "
                        "(fetched into Keras's cache on first use) or a local copy (default %(default)s)")
    parser.add_argument("--undo-review", action="store_true",
                        help="put back the crops the review moved to another class")
    parser.add_argument("--max-pixels", type=int, default=images.DEFAULT_MAX_PIXELS, help=images.MAX_PIXELS_HELP)
    parser.add_argument("--check", action="store_true", help="check the flags and stop, changing nothing")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    runtime.configure_logging(args.verbose)
    return runtime.run_cli(
        lambda: _main(args),
        "process_faces: interrupted; every finished photo is recorded. Run again to go on where it stopped.",
    )


def _main(args) -> int:
    settings = CropSettings(
        size=args.size, margin=args.margin, threshold=args.threshold, review_threshold=args.review_threshold,
        detect_size=args.detect_size, second_stage=not args.no_second_stage, pad_retry=not args.no_pad_retry,
        face_detector=args.face_detector, second_stage_threshold=args.second_stage_threshold,
        verifier_threshold=args.verifier_threshold, verifier=not args.no_verifier, face_stage=args.face_stage,
        max_pixels=args.max_pixels,
    )
    face_settings.from_crop_settings(settings)  # a preset the --face-detector folder has no fusion for: now, once
    if args.jobs < 1:
        raise ValueError(f"--jobs must be at least 1, not {args.jobs}")
    if args.label_map and not args.annotations:
        # checked before anything runs, so a mistyped command changes nothing
        raise ValueError("--label-map is for --annotations")
    annotations.parse_label_map(args.label_map)
    # the crops and the review sheets: a folder that cannot take them is one line now, also for preprocess.sh's
    # --check before its first step renames anything
    runtime.check_writable(args.output, "--output")
    runtime.check_writable(args.logs, "--logs")
    if args.check:
        return runtime.EXIT_OK
    output = args.output
    if args.apply_review:
        if not args.apply_review.is_file():
            raise ValueError(f"verdicts file {args.apply_review} does not exist")
        counts = review.apply_verdicts(output, review.read_verdicts(args.apply_review), args.logs)
        print(f"process_faces: review applied: {counts['rejected']} crops rejected, {counts['missing']} deleted by "
              f"hand recorded, {counts['accepted']} low-confidence crops accepted, {counts['moved']} moved to another "
              f"class ({counts['gone']} no longer there), {counts['unknown']} unknown names")
    if args.undo_review:
        restored = review.undo_relabels(output, args.logs)
        print(f"process_faces: undo: {restored} crops moved back to the class they had before the review")
    if args.suspects:
        scores = suspects.score(output, args.folds, args.quick_size, args.weights, jobs=args.jobs)
        path, counts = suspects.write(scores, output)
        print(f"process_faces: suspects: {len(scores.crops.paths)} crops scored in {args.folds} folds in "
              f"{scores.seconds:.0f} s; {counts.get(suspects.DISPUTED, 0) + counts.get(suspects.BYSTANDER, 0)} "
              f"disputed ({counts.get(suspects.BYSTANDER, 0)} of them in photos of several faces), "
              f"{scores.crops.skipped} unreadable skipped; {path}")
    if args.manual_boxes:
        if not args.manual_boxes.is_file():
            raise ValueError(f"manual boxes file {args.manual_boxes} does not exist")
        written = review.crop_manual_boxes(output, review.read_manual_boxes(args.manual_boxes), settings,
                                           [args.input])
        print(f"process_faces: {written} hand-drawn faces cropped into {output}")
    if args.annotations:
        label_map = annotations.parse_label_map(args.label_map)
        labels = annotations.Labels()
        for path in args.annotations:
            labels.extend(annotations.read(path, settings.max_pixels))
        counts = annotations.crop(labels, output, settings, label_map, args.min_face, args.classes)
        print(annotations_summary(counts))
    if not (args.review or args.apply_review or args.manual_boxes or args.annotations or args.suspects
            or args.undo_review):
        if not args.input.is_dir():
            raise ValueError(f"input folder {args.input} does not exist")
        counts = run(args.input, output, settings, args.jobs, args.classes)
        yields = ", ".join(f"{name} {share:.1%}" for name, share in class_yield(output).items())
        print(f"process_faces: {counts['read']} photos read, {counts['skipped']} skipped (done before or "
              f"identical); {counts['faces']} faces saved, {counts['low_confidence']} low-confidence for review, "
              f"{counts['no_face']} photos with no face (copied to {facecrops.NO_FACE_DIR}/), {counts['unreadable']} "
              f"unreadable; photos giving a face: {yields}")
    if output.is_dir():
        pages = review.write_sheets(output, args.logs)
        if pages:
            print("review sheets: " + " ".join(str(page) for page in pages))
    return runtime.EXIT_OK
