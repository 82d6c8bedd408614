"""End-to-end mask detection on labelled photos, and detect_mask's speed on a 640x480 video, for each face-stage
preset (--face-stages, default accurate then fast; the first is the baseline of the seconds-per-photo ratios).

1. Accuracy. On the detection set (``boxes.csv`` + ``images/``, the format bench_face_stage.py reads), each
   photo goes through ``maskdetect.inference.MaskDetector``: the face stage's detector and settings, then the
   classifier on every face in one batch; ``benchmarks.common.EndToEnd`` decides each found face's class by the
   model's decision weights, as detection does. For ground-truth faces whose short side is at least --min-size px
   (32, as bench_face_stage's recall), per class:
     - face-stage recall: a kept box has IoU >= 0.4 with the face (bench_face_stage's rule);
     - end-to-end: found AND the best-overlapping box is classified as the face's label (what a user gets);
     - the gap in points between the two (target: at most 2), and the classifier's accuracy on found faces.
   For a mask / without_mask model it also prints how well the classifier ranks the found faces (ROC AUC) and
   the best that any decision threshold could give them, the threshold being picked on these same faces: a
   ceiling that says whether a gap is a matter of the threshold or of the model, never a setting to use.
   ``incorrect_mask`` faces are reported too; a model without that class can only get them wrong. A model's
   classes are read in the labels' words: a worn-mask class (``with_mask``) is ``mask``, a no-mask class is
   ``without_mask``, a mask-worn-wrong class (``mask_weared_incorrect``) is ``incorrect_mask``. For a model of
   three or more classes it prints the accuracy per class on found faces and the confusion among the classes.
2. Speed. A 640x480 video is made from --video-photos of the photos (letterboxed, each held for --hold frames
   while it zooms in slowly, so no two frames are alike) and run through ``inference.run.process`` twice in this run:
   detection on every frame (k=1) and every --every frames (the faces tracked between and classified on a
   schedule, as detect_mask.py does; benchmarks/bench_video.py scores the tracks and the people counted), with
   each preset's video settings. Frames/s count everything a user waits for: decoding, detection,
   classification, drawing and writing the annotated video; the models are loaded before the clock starts.
   Targets on this machine (2 cores): accurate >= 10 frames/s with k > 1; fast >= 15 frames/s at k=1.

One annotated photo with many faces is written to ``logs/bench_detect_crowd.jpg`` (git-ignored). The figures of
both parts (per class, seconds per photo, frames/s at each k) are written to --out as results.json and results.csv.

    .venv/bin/python -m benchmarks.bench_detect --model logs/runs/<run>/model.keras
    .venv/bin/python -m benchmarks.bench_detect --model M --limit 100 --video-photos 20 --every 10
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import (
    CLASSES,
    DEFAULT_DETECTION,
    MATCH_IOU,
    MIN_FACE,
    REPO,
    EndToEnd,
    add_out_argument,
    benchmark_label,
    load_photo,
    load_truth,
    photo_sizes,
    require_detection_set,
    write_results,
)
from maskdetect import runtime
from maskdetect.artifact import load_classifier
from maskdetect.facecrops import FACE_STAGES
from maskdetect.inference import MaskDetector, annotate, best_model
from maskdetect.inference.media import Item, save_image
from maskdetect.inference.pipeline import CROP
from maskdetect.inference.run import DEFAULT_VIDEO_EVERY, process
from maskdetect.inference.tracking import TrackingSettings
from maskdetect.inference.video import VideoOptions

NAME = "bench_detect"
VIDEO_SIZE = (640, 480)
CROWD = REPO / "logs" / "bench_detect_crowd.jpg"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a model.keras (default: the best run in logs/training_log.csv)")
    parser.add_argument("--logs", type=Path, default=REPO / "logs", help="for the default model (default %(default)s)")
    parser.add_argument("--detection", type=Path, default=DEFAULT_DETECTION,
                        help="folder with boxes.csv and images/ (default %(default)s)")
    parser.add_argument("--limit", type=int, default=0, help="only the first N photos (sorted by name); 0: all")
    parser.add_argument("--every", type=int, default=DEFAULT_VIDEO_EVERY,
                        help="the larger k of the speed test (default %(default)s)")
    parser.add_argument("--video-photos", type=int, default=30, help="photos in the test video (default %(default)s)")
    parser.add_argument("--hold", type=int, default=8, help="frames each photo is held (default %(default)s)")
    parser.add_argument("--min-size", type=int, default=MIN_FACE, help="short side (px) of the faces counted")
    parser.add_argument("--iou", type=float, default=MATCH_IOU, help="IoU for a box to match a labelled face")
    parser.add_argument("--skip-video", action="store_true", help="accuracy only")
    parser.add_argument("--face-stages", nargs="+", choices=FACE_STAGES, default=list(FACE_STAGES), metavar="PRESET",
                        help="the face-stage presets to measure, each on photos and video, the first the baseline "
                        "(default: %(default)s)")
    parser.add_argument("--no-verifier", action="store_true",
                        help="the face stage without its face verifier (to measure what the verifier adds)")
    add_out_argument(parser, NAME)
    args = parser.parse_args(argv)
    if args.limit < 0 or args.every < 2 or args.video_photos < 1 or args.hold < 1 or not 0 < args.iou <= 1:
        parser.error("--limit >= 0, --every >= 2, --video-photos >= 1, --hold >= 1, 0 < --iou <= 1")
    require_detection_set(parser, args.detection)
    return args


# ---------------------------------------------------------------------------------------------
# Part 1: accuracy


def accuracy(pipeline: MaskDetector, args: argparse.Namespace, photos: list[str], truth: dict,
             sizes: dict) -> tuple[EndToEnd, str, float]:
    """The face stage and the classifier on each photo, scored by the shared end-to-end scorer (each found face
    called as the model's decision weights call it); the photo with the most labelled faces; the mean seconds per
    photo of detection and classification (decoding excluded)."""
    classifier = pipeline.classifier
    tally = EndToEnd.of(classifier)
    seconds, crowd, crowd_faces = [], "", -1
    start = time.perf_counter()
    for index, photo in enumerate(photos):
        width, height = sizes[photo]
        rgb = load_photo(args.detection / "images" / photo, width, height)
        began = time.perf_counter()
        crops, kept = pipeline.crops(rgb, pipeline.faces(rgb))
        probabilities = (classifier.probabilities(np.stack(crops)) if crops
                         else np.zeros((0, len(classifier.class_names))))
        seconds.append(time.perf_counter() - began)
        labels = truth[photo]
        tally.add_photo(labels, [(face.x1, face.y1, face.x2, face.y2) for face in kept], probabilities,
                        args.min_size, args.iou)
        if len(labels) > crowd_faces:
            crowd, crowd_faces = photo, len(labels)
        if (index + 1) % 100 == 0:
            print(f"  {index + 1}/{len(photos)} photos, {np.mean(seconds):.3f} s/photo so far", flush=True)
    print(f"accuracy part: {len(photos)} photos in {time.perf_counter() - start:.0f} s, "
          f"{np.mean(seconds):.3f} s/photo (detection + classification)")
    return tally, crowd, float(np.mean(seconds))


def threshold_ceiling(positive: np.ndarray, score: np.ndarray) -> tuple[float, float, float, float]:
    """(ROC AUC, threshold, negative-class accuracy, positive-class accuracy) where the threshold on
    ``score >= threshold`` maximises the worse of the two accuracies. Picked on the scores it is measured on,
    so the accuracies are the most any threshold can give those faces."""
    from sklearn import metrics

    positive = np.asarray(positive, bool)
    if positive.all() or not positive.any():
        raise ValueError("needs faces of both classes")
    false_positive, true_positive, thresholds = metrics.roc_curve(positive, score)
    best = int(np.argmax(np.minimum(true_positive, 1 - false_positive)))
    return (float(metrics.roc_auc_score(positive, score)), float(min(thresholds[best], 1.0)),
            float(1 - false_positive[best]), float(true_positive[best]))


def confusion_lines(result: dict, class_names: list[str]) -> list[str]:
    """The found faces' confusion as a table: a row per labelled class, a column per class of the model (in the
    labels' words), and the share of each row classified right."""
    columns = [benchmark_label(name) for name in class_names]
    width = max(16, *(len(name) + 2 for name in columns))
    lines = ["  " + "true / predicted".ljust(18) + "".join(f"{name:>{width}s}" for name in columns) + f"{'right':>8s}"]
    for label in CLASSES:
        row = result["confusion"][label]
        found = sum(row.values())
        if not found:
            continue
        right = f"{row[label] / found:8.1%}" if label in columns else f"{'n/a':>8s}"
        lines.append(f"  {label:18s}" + "".join(f"{row[name]:>{width}d}" for name in columns) + right)
    return lines


def report_ceiling(result: dict, class_names: list[str]) -> None:
    """For a mask / without_mask model, the threshold ceiling; for three or more classes, where no one threshold
    applies, the confusion among the classes on the found faces."""
    model_classes = sorted(benchmark_label(name) for name in class_names)
    if len(model_classes) > 2:
        print(f"threshold ceiling: only for two classes; the {len(model_classes)} classes on found faces "
              "(rows: the labels; right: the share of the row's found faces classified as their label):")
        print("\n".join(confusion_lines(result, class_names)))
        return
    if model_classes != ["mask", "without_mask"]:
        print("threshold ceiling: only for a model of the two classes mask and without_mask")
        return
    scored = [(label, predicted, p) for label, predicted, p in result["scored"] if label in model_classes]
    positive = np.array([label == "without_mask" for label, _, _ in scored])
    score = np.array([p if predicted == "without_mask" else 1 - p for _, predicted, p in scored])
    try:
        auc, threshold, mask_accuracy, without_accuracy = threshold_ceiling(positive, score)
    except ValueError as error:  # found faces of one class only
        print(f"threshold ceiling: {error}")
        return
    gaps = [result["found"][label] / result["counted"][label] * (1 - accuracy) * 100
            for label, accuracy in (("mask", mask_accuracy), ("without_mask", without_accuracy))]
    print(f"classifier on found faces: ROC AUC {auc:.4f}. The best any threshold could do, picked on these same "
          f"faces (a ceiling, not a setting): P(without_mask) >= {threshold:.3f} gives mask {mask_accuracy:.1%}, "
          f"without_mask {without_accuracy:.1%}, end-to-end gaps {gaps[0]:.1f} / {gaps[1]:.1f} pt")


def report(result: dict, class_names: list[str], min_size: int) -> None:
    model_classes = {benchmark_label(name) for name in class_names}
    print(f"\nper class, ground-truth faces with short side >= {min_size} px:")
    print(f"  {'class':16s} {'faces':>6s} {'face-stage recall':>18s} {'end-to-end':>11s} {'gap':>8s} "
          f"{'classifier on found':>20s}  target (gap <= 2 points)")
    for label in CLASSES:
        total = result["counted"][label]
        if not total:
            continue
        found, correct = result["found"][label], result["correct"][label]
        recall, end_to_end = found / total, correct / total
        on_found = correct / found if found else float("nan")
        gap = (recall - end_to_end) * 100
        verdict = ("met" if gap <= 2 else "missed") if label in model_classes else "n/a: not a class of the model"
        print(f"  {label:16s} {total:6d} {recall:17.1%} {end_to_end:10.1%} {gap:6.1f} pt {on_found:19.1%}  {verdict}")
    print("found faces, true label -> predicted: " + "; ".join(
        f"{label}: " + ", ".join(f"{name} {count}" for name, count in sorted(result["confusion"][label].items()))
        for label in CLASSES if result["confusion"][label]))


# ---------------------------------------------------------------------------------------------
# Part 2: speed


def make_video(path: Path, photos: list[str], data: Path, sizes: dict, hold: int) -> int:
    """A 640x480 MJPG video: each photo letterboxed, held for ``hold`` frames while it zooms in by 1 % a frame."""
    import cv2

    width, height = VIDEO_SIZE
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, VIDEO_SIZE)
    frames = 0
    for photo in photos:
        rgb = load_photo(data / "images" / photo, *sizes[photo])
        fit = min(width / rgb.shape[1], height / rgb.shape[0])
        for step in range(hold):
            scale = fit * (1 + 0.01 * step)
            w, h = max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale))
            resized = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
            frame = np.zeros((height, width, 3), np.uint8)
            # centre the (possibly larger) picture: crop what runs past the frame
            sx, sy = max(0, (w - width) // 2), max(0, (h - height) // 2)
            dx, dy = max(0, (width - w) // 2), max(0, (height - h) // 2)
            part = resized[sy:sy + height, sx:sx + width]
            frame[dy:dy + part.shape[0], dx:dx + part.shape[1]] = part
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            frames += 1
    writer.release()
    return frames


def speed(pipeline: MaskDetector, args: argparse.Namespace, photos: list[str], sizes: dict) -> list[dict]:
    """The video part with ``pipeline``'s video settings, printed; a result line for each k and one for their
    ratio."""
    stage = pipeline.video_settings.face_stage
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_detect_") as folder:
        work = Path(folder)
        video = work / "photos.avi"
        frames = make_video(video, photos[: args.video_photos], args.detection, sizes, args.hold)
        print(f"\nvideo: {frames} frames of {VIDEO_SIZE[0]}x{VIDEO_SIZE[1]} ({min(len(photos), args.video_photos)} "
              f"photos, {args.hold} frames each); {runtime.default_jobs()} cores")

        def run(chosen: MaskDetector, every: int, name: str, label: str | None = None) -> dict:
            """``chosen`` on the video, detecting every ``every`` frames, into ``work/name``: the video's summary;
            and a result row, its "every" ``label`` when given."""
            options = VideoOptions(tracking=TrackingSettings(every=every))
            source = process(chosen, [Item("video", str(video), f"{name}.mp4")], work / name,
                             video=options)["sources"][0]
            rows.append({"part": "video", "face_stage": stage, "every": every if label is None else label,
                         **{key: source[key] for key in ("frames", "seconds", "frames_per_second", "faces_per_frame")}})
            return source

        rates = {}
        for every in (1, args.every):
            source = run(pipeline, every, f"k{every}")
            rates[every] = source["frames_per_second"]
            print(f"  k={every:<3d} {source['frames']} frames in {source['seconds']:.1f} s: "
                  f"{source['frames_per_second']:.1f} frames/s, {source['faces_per_frame']:.2f} faces/frame")
        if pipeline.detector_settings(True).concurrent:
            # the baseline of running the proposal sources beside MTCNN: one after the other, in the same run
            after = MaskDetector(pipeline.classifier, pipeline.settings, pipeline.video_settings, concurrent=False)
            after.faces(np.zeros((64, 64, 3), np.uint8), video=True)  # its models load before the clock starts
            source = run(after, 1, "k1_sequential", "1, sources after MTCNN")
            print(f"  k=1 with the proposal sources after MTCNN (not beside it): {source['frames_per_second']:.1f} "
                  f"frames/s; beside it is {rates[1] / source['frames_per_second']:.2f}x that")
        ratio = rates[args.every] / rates[1]
        # the fast preset is for live video: it must keep up at every frame
        every, target = (1, 15) if stage == "fast" else (args.every, 10)
        verdict = "met" if rates[every] >= target else "missed"
        print(f"speed ({stage}): k={args.every} is {ratio:.1f}x k=1; {rates[every]:.1f} frames/s at 640x480 at "
              f"k={every} (target >= {target}: {verdict})")
    rows.append({"part": "video", "face_stage": stage, "every": f"{args.every} against 1",
                 "frames_per_second_ratio": ratio})
    return rows


def crop_settings(args: argparse.Namespace, face_stage: str = "accurate"):
    """detect_mask.py's face settings with the preset ``face_stage``, less the face verifier with --no-verifier."""
    return dataclasses.replace(CROP, verifier=not args.no_verifier, face_stage=face_stage)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runtime.configure_logging()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    def body() -> int:
        model_path = args.model or best_model(args.logs)
        classifier = load_classifier(model_path)
        truth, sizes = load_truth(args.detection), photo_sizes(args.detection)
        photos = sorted(truth)[: args.limit or None]
        rows, per_photo = [], {}
        for stage in args.face_stages:
            start = time.perf_counter()
            settings = crop_settings(args, stage)
            pipeline = MaskDetector(classifier, settings, settings)
            pipeline.faces(np.zeros((64, 64, 3), np.uint8))  # loads the face stage's models before the clock starts
            print(f"\n== face stage {stage} ==\nmodel: {model_path} (classes {', '.join(classifier.class_names)}; "
                  f"{classifier.image_size} px); detector loaded in {time.perf_counter() - start:.1f} s; "
                  f"face verifier {'off' if args.no_verifier else 'on'}")
            tally, crowd, seconds = accuracy(pipeline, args, photos, truth, sizes)
            per_photo[stage] = seconds
            result = tally.as_dict()
            report(result, classifier.class_names, args.min_size)
            report_ceiling(result, classifier.class_names)
            model_classes = {benchmark_label(name) for name in classifier.class_names}
            common = {"part": "accuracy", "face_stage": stage, "model": model_path, "verifier": not args.no_verifier}
            rows += [{**common, **tally.rates(label), "a_class_of_the_model": label in model_classes}
                     for label in CLASSES if tally.counted[label]]
            rows.append({**common, "label": "all", "photos": len(photos), "s_per_photo": seconds})
            if stage == args.face_stages[0]:
                rgb = load_photo(args.detection / "images" / crowd, *sizes[crowd])
                CROWD.parent.mkdir(parents=True, exist_ok=True)
                save_image(annotate(rgb, pipeline.image(rgb), classifier.class_names), CROWD)
                print(f"annotated crowd photo ({crowd}, {len(truth[crowd])} labelled faces): {CROWD}")
            if not args.skip_video:
                rows += speed(pipeline, args, photos, sizes)
        base = args.face_stages[0]
        print("\n" + "; ".join(f"{stage}: {seconds:.3f} s/photo ({seconds / per_photo[base]:.2f}x {base})"
                               for stage, seconds in per_photo.items()))
        json_path, csv_path = write_results(args.out, rows)
        print(f"results: {json_path}, {csv_path}")
        return runtime.EXIT_OK

    return runtime.run_cli(body, "bench_detect: interrupted")


if __name__ == "__main__":
    sys.exit(main())
