"""People on video: tracks, one verdict per person and people per class, scored against labelled photos made into
videos; and frames/s on 640x480 video.

Videos are made from the labelled photos of --data (``boxes.csv`` + ``images/``; the detection set by default,
``../shared/data/wild`` to choose settings) at 640x480 and 25 frames/s:
  - pans: a virtual camera moves across a crowd photo from its left edge to its right (--pan-frames frames)
    while it zooms in by 25 % and out again, so faces come into view and leave it;
  - cuts: three photos one after another, each shown whole and held --hold frames while the camera zooms in
    slowly, with a hard cut between them.
Every labelled box is carried into every frame by the same camera motion, so each labelled face is one person with
a known label. A face counts on a frame when at least half of it is in view and its short side is at least
--min-size px (32); a person counts when their face counts on at least --min-person-frames frames (20). Boxes on
smaller faces, and people in view too briefly, are neither expected nor counted against the tracker.

Each setting runs ``maskdetect.inference.run.process`` on every video, as ``detect_mask.py`` does (decoding,
detection, tracking, classification, drawing and writing the annotated video all in the time), and is scored:
  - with motmetrics on the faces' boxes and track numbers (a box matches a face at IoU >= 0.4): IDF1, MOTA and
    identity switches;
  - people per class (people.csv) against the true people per class, in all and per video: tracks whose faces are
    mostly those of people not counted (too briefly in view, a mask worn wrongly for a two-class model) are left
    out; tracks on no face, and a second track of one person, count against the tracker;
  - per person: found (a counted track matches the face on most of the frames the person's best track covers) and
    labelled right (that track's people.csv label is the person's label).
The baseline is the behaviour before tracking, measured in the same run: faces detected every --baseline-every
frames and carried, every face classified on every frame, people = face-frames. frames/s at --every 1 is measured
on the first --fps-frames frames of the first two videos.

    .venv/bin/python -m benchmarks.bench_video --model logs/runs/<run>/model.keras
    .venv/bin/python -m benchmarks.bench_video --model M --data ../shared/data/wild --videos 6 --every 15 10 20
    .venv/bin/python -m benchmarks.bench_video --model M --data ../shared/data/wild --held-out --every 15 --rules
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from benchmarks.common import (
    CLASSES,
    DEFAULT_DETECTION,
    MATCH_IOU,
    MIN_FACE,
    add_out_argument,
    benchmark_label,
    box_iou,
    load_photo,
    load_truth,
    photo_sizes,
    require_detection_set,
    write_results,
)
from maskdetect import annotations, runtime
from maskdetect.artifact import load_classifier
from maskdetect.facecrops import FACE_STAGES
from maskdetect.inference import MaskDetector, annotate, best_model
from maskdetect.inference.media import Item
from maskdetect.inference.people import VerdictSettings
from maskdetect.inference.pipeline import CROP
from maskdetect.inference.run import DEFAULT_VIDEO_EVERY, process
from maskdetect.inference.tracking import TRACKERS, TrackingSettings
from maskdetect.inference.video import VideoOptions

NAME = "bench_video"
SIZE = (640, 480)
FPS = 25


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a model.keras (default: the best run in logs/training_log.csv)")
    parser.add_argument("--logs", type=Path, default=Path("logs"), help="for the default model")
    parser.add_argument("--data", type=Path, default=DEFAULT_DETECTION,
                        help="labelled photos: boxes.csv + images/ (default %(default)s)")
    parser.add_argument("--videos", type=int, default=12, help="videos to make: pans and cuts alternately")
    parser.add_argument("--pan-frames", type=int, default=75, help="frames of a pan (default %(default)s)")
    parser.add_argument("--hold", type=int, default=40, help="frames each photo of a cut video is held")
    parser.add_argument("--every", type=int, nargs="+", default=[DEFAULT_VIDEO_EVERY, 5, 10],
                        help="face-stage intervals to score, the default first (default %(default)s)")
    parser.add_argument("--trackers", nargs="+", default=["bytetrack"], choices=TRACKERS,
                        help="trackers to score at the first --every (default %(default)s)")
    parser.add_argument("--baseline-every", type=int, default=5, help="the baseline's interval (default 5)")
    parser.add_argument("--fps-frames", type=int, default=60,
                        help="frames per video for frames/s at --every 1; 0: skip (default %(default)s)")
    parser.add_argument("--min-size", type=int, default=MIN_FACE, help="short side (px) of the faces counted")
    parser.add_argument("--min-person-frames", type=int, default=20, help="frames a person must be counted on")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--rules", action="store_true",
                        help="also replay the rules for when a track counts as a person (detection frames, face-stage "
                        "confidence) on the first --every's tracks")
    parser.add_argument("--held-out", action="store_true",
                        help="only photos held out of the face stage's own training (the share its face finder, "
                        "verifier and fusion fit hold out): for choosing settings on --data ../shared/data/wild, "
                        "whose other photos trained the face finder")
    parser.add_argument("--face-stage", choices=FACE_STAGES, default="fast",
                        help="the face-stage preset on the videos (default %(default)s, as detect_mask.py's on video)")
    add_out_argument(parser, NAME)
    args = parser.parse_args(argv)
    if args.videos < 1 or min(args.every) < 1 or args.pan_frames < 10 or args.hold < 10:
        parser.error("--videos >= 1, --every >= 1, --pan-frames >= 10, --hold >= 10")
    require_detection_set(parser, args.data, "--data")
    return args


# ---------------------------------------------------------------------------------------------
# Videos with every labelled face carried into every frame


def held_out_share() -> float:
    """The share of labelled photos the shipped face finder was not trained on (``annotations.held_out``), as its
    file records it; its fusion weights were fitted on them and the verifier was not trained on them either."""
    from maskdetect.face import facefinder

    return float(facefinder.read_meta(facefinder.SHIPPED_MODEL)["holdout_share"])


def _usable(truth: dict, sizes: dict, min_size: int, held_out_only: bool = False) -> list[str]:
    """Photos with at least two labelled faces of at least ``min_size`` px at a 640x480 fit, sorted by name; with
    ``held_out_only``, only those held out of the face stage's training (:func:`held_out_share`)."""
    share = held_out_share() if held_out_only else None
    chosen = []
    for photo in sorted(truth):
        if share is not None and not annotations.held_out(photo, share):
            continue
        width, height = sizes[photo]
        fit = min(SIZE[0] / width, SIZE[1] / height) * 1.2
        if sum(min(b[2] - b[0], b[3] - b[1]) * fit >= min_size for _, b in truth[photo]) >= 2:
            chosen.append(photo)
    return chosen


def _cameras_pan(width: int, height: int, frames: int) -> list[tuple[float, float, float]]:
    """(scale, x offset, y offset) per frame: across the photo from left to right, zooming in by 25 % and out."""
    base = max(SIZE[1] * 1.15 / height, SIZE[0] * 1.35 / width)
    cameras = []
    for index in range(frames):
        t = index / (frames - 1)
        scale = base * (1 + 0.25 * np.sin(np.pi * t))
        x = t * (width * scale - SIZE[0])
        y = (height * scale - SIZE[1]) / 2
        cameras.append((scale, x, y))
    return cameras


def _cameras_hold(width: int, height: int, frames: int) -> list[tuple[float, float, float]]:
    """The whole photo, centred, zooming in by 0.5 % a frame about its centre."""
    fit = min(SIZE[0] / width, SIZE[1] / height)
    cameras = []
    for index in range(frames):
        scale = fit * (1 + 0.005 * index)
        cameras.append((scale, (width * scale - SIZE[0]) / 2, (height * scale - SIZE[1]) / 2))
    return cameras


def make_video(path: Path, shots: list[tuple[str, np.ndarray, list, list]], min_size: int) -> list[dict]:
    """Write ``shots`` (photo, RGB, labelled faces, cameras) as one MJPG video; returns per frame the faces in view:
    ``{"counted": [(person, label, box)], "small": [box]}``."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, SIZE)
    frames = []
    for photo, rgb, labels, cameras in shots:
        for scale, x, y in cameras:
            matrix = np.array([[scale, 0, -x], [0, scale, -y]], dtype=np.float64)
            frame = cv2.warpAffine(rgb, matrix, SIZE, flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            counted, small = [], []
            for index, (label, box) in enumerate(labels):
                full = box * scale - np.array([x, y, x, y])
                clipped = np.clip(full, 0, [SIZE[0], SIZE[1], SIZE[0], SIZE[1]])
                area = max(0.0, clipped[2] - clipped[0]) * max(0.0, clipped[3] - clipped[1])
                if area < 0.5 * (full[2] - full[0]) * (full[3] - full[1]):
                    continue
                if min(clipped[2] - clipped[0], clipped[3] - clipped[1]) >= min_size:
                    counted.append((f"{photo}#{index}", label, clipped))
                else:
                    small.append((f"{photo}#{index}", label, clipped))
            frames.append({"counted": counted, "small": small})
    writer.release()
    return frames


def make_videos(args: argparse.Namespace, folder: Path) -> list[tuple[Path, list[dict]]]:
    truth, sizes = load_truth(args.data), photo_sizes(args.data)
    photos = iter(_usable(truth, sizes, args.min_size, args.held_out))
    videos = []
    for number in range(args.videos):
        kind = "pan" if number % 2 == 0 else "cuts"
        shots = []
        for _ in range(1 if kind == "pan" else 3):
            photo = next(photos, None)
            if photo is None:
                break
            width, height = sizes[photo]
            rgb = load_photo(args.data / "images" / photo, width, height)
            cameras = _cameras_pan(width, height, args.pan_frames) if kind == "pan" else \
                _cameras_hold(width, height, args.hold)
            shots.append((photo, rgb, truth[photo], cameras))
        if not shots:
            break
        path = folder / f"{number:02d}_{kind}.avi"
        videos.append((path, make_video(path, shots, args.min_size)))
    return videos


# ---------------------------------------------------------------------------------------------
# Scoring


def _read(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def score_video(frames: list[dict], rows: list[dict], people: dict[int, str], min_person_frames: int) -> dict:
    """One video's tracks against its truth: a motmetrics accumulator, the people counted per class (tracks of
    people not counted left out) and the true ones, and per true person whether a counted track found them and
    labelled them right."""
    import motmetrics as mm

    by_frame = defaultdict(list)
    for row in rows:
        if row["track"] != "":
            by_frame[int(row["frame"])].append((int(row["track"]), [float(row[k]) for k in ("x1", "y1", "x2", "y2")]))
    seen = Counter(person for frame in frames for person, _, _ in frame["counted"])
    labels = {person: label for frame in frames for person, label, _ in frame["counted"] + frame["small"]}
    persons = {person for person, count in seen.items() if count >= min_person_frames}
    accumulator = mm.MOTAccumulator(auto_id=True)
    numbers = {person: number for number, person in enumerate(sorted(labels))}  # motmetrics wants numbers
    pairs: Counter = Counter()  # (person, track) -> frames matched by motmetrics
    on_face: Counter = Counter()  # (person, track) -> frames the track's box is on the person's face, any size
    for index, frame in enumerate(frames):
        truth_boxes = np.array([box for _, _, box in frame["counted"]]).reshape(-1, 4)
        hyps = by_frame.get(index, [])
        hyp_boxes = np.array([box for _, box in hyps]).reshape(-1, 4)
        # a box on a face too small to count is neither right nor wrong
        small = np.array([box for _, _, box in frame["small"]]).reshape(-1, 4)
        # which face each track is on, small ones included: a track on a face too small to count is no error
        every_face = frame["counted"] + frame["small"]
        overlap_all = box_iou(np.array([box for _, _, box in every_face]).reshape(-1, 4), hyp_boxes)
        for column, (track, _) in enumerate(hyps):
            if len(every_face) and overlap_all[:, column].max() >= MATCH_IOU:
                on_face[(every_face[int(overlap_all[:, column].argmax())][0], track)] += 1
        keep = ~((box_iou(small, hyp_boxes).max(axis=0, initial=0) >= MATCH_IOU)
                 & (box_iou(truth_boxes, hyp_boxes).max(axis=0, initial=0) < MATCH_IOU))
        hyps = [hyp for hyp, kept in zip(hyps, keep, strict=True) if kept]
        hyp_boxes = hyp_boxes[keep]
        overlap = box_iou(truth_boxes, hyp_boxes)
        distances = np.where(overlap >= MATCH_IOU, 1 - overlap, np.nan)
        accumulator.update([numbers[person] for person, _, _ in frame["counted"]], [track for track, _ in hyps],
                           distances)
    events = accumulator.mot_events
    people_by_number = {number: person for person, number in numbers.items()}
    matched = events[events["Type"].isin(["MATCH", "SWITCH"])]
    for person, track in zip(matched["OId"], matched["HId"], strict=True):
        pairs[(people_by_number[int(person)], int(track))] += 1
    # each track belongs to the person it matched most; each person to their most-matched counted track
    owner: dict[int, str] = {}
    for (person, track), _ in sorted(on_face.items(), key=lambda item: -item[1]):
        owner.setdefault(track, person)
    predicted: Counter = Counter()
    extra: Counter = Counter()  # tracks counted beyond one per person: on no face, or a person's second track
    owned: Counter = Counter()
    for track, label in people.items():
        person = owner.get(track)
        if person is not None and (person not in persons or labels[person] == "incorrect_mask"):
            continue
        predicted[benchmark_label(label)] += 1
        if person is None:
            extra["no_face"] += 1
        else:
            owned[person] += 1
    extra["second_track"] = sum(count - 1 for count in owned.values())
    found, right = Counter(), Counter()
    for person in persons:
        tracks = [(count, track) for (who, track), count in pairs.items() if who == person and track in people]
        if tracks:
            track = max(tracks)[1]
            found[labels[person]] += 1
            right[labels[person]] += benchmark_label(people[track]) == labels[person]
    true = Counter(labels[person] for person in persons)
    return {"accumulator": accumulator, "predicted": predicted, "true": true, "found": found, "right": right,
            "extra": extra}


def summarise(name: str, scored: list[dict], seconds: float, frames: int, fps_every_1: float | None = None) -> dict:
    import motmetrics as mm

    metrics = mm.metrics.create()
    table = metrics.compute_many([s["accumulator"] for s in scored], names=[str(i) for i in range(len(scored))],
                                 metrics=["idf1", "mota", "num_switches", "num_false_positives", "num_misses"],
                                 generate_overall=True)
    overall = table.loc["OVERALL"]
    predicted, true, found, right, extra = Counter(), Counter(), Counter(), Counter(), Counter()
    errors = defaultdict(list)
    for s in scored:
        predicted.update(s["predicted"])
        true.update(s["true"])
        found.update(s["found"])
        right.update(s["right"])
        extra.update(s["extra"])
        for label in ("mask", "without_mask"):
            if s["true"][label]:
                errors[label].append(abs(s["predicted"][label] - s["true"][label]) / s["true"][label])
    result = {"setting": name, "frames": frames, "seconds": round(seconds, 1),
              "frames_per_second": round(frames / seconds, 2), "idf1": float(overall["idf1"]),
              "mota": float(overall["mota"]), "id_switches": int(overall["num_switches"]),
              "false_positives": int(overall["num_false_positives"]), "misses": int(overall["num_misses"]),
              "tracks_on_no_face": extra["no_face"], "second_tracks": extra["second_track"]}
    for label in ("mask", "without_mask", "incorrect_mask"):
        result[f"true_{label}"] = true[label]
        if label == "incorrect_mask":
            continue
        result[f"people_{label}"] = predicted[label]
        result[f"count_error_{label}"] = (predicted[label] - true[label]) / true[label] if true[label] else None
        result[f"mean_video_error_{label}"] = float(np.mean(errors[label])) if errors[label] else None
        result[f"found_{label}"] = found[label] / true[label] if true[label] else None
        result[f"right_{label}"] = right[label] / true[label] if true[label] else None
        result[f"right_of_found_{label}"] = right[label] / found[label] if found[label] else None
    if fps_every_1 is not None:
        result["frames_per_second_every_1"] = fps_every_1
    return result


# ---------------------------------------------------------------------------------------------
# Running


def _run(pipeline: MaskDetector, videos: list, options: VideoOptions, work: Path) -> tuple[dict, dict, float, int]:
    """``process`` on ``videos``: detections.csv's rows and people.csv's rows (by track) per video, seconds,
    frames."""
    items = [Item("video", str(path), path.with_suffix(".mp4").name) for path, _ in videos]
    summary = process(pipeline, items, work, video=options, progress=False)
    rows = defaultdict(list)
    for row in _read(work / "detections.csv"):
        rows[row["source"]].append(row)
    people = defaultdict(dict)
    for row in _read(work / "people.csv"):
        people[row["source"]][int(row["track"])] = row
    sources = summary["sources"]
    return rows, people, sum(s["seconds"] for s in sources), sum(s["frames"] for s in sources)


def run_tracked(pipeline: MaskDetector, videos: list, options: VideoOptions, work: Path) -> tuple[list[dict], float,
                                                                                                  int]:
    rows, people, seconds, frames = _run(pipeline, videos, options, work)
    scored = [score_video(truth, rows[str(path)], {track: row["label"] for track, row in people[str(path)].items()},
                          ARGS.min_person_frames) for path, truth in videos]
    return scored, seconds, frames


def counted_under(people: dict[int, dict], detections: int, confidence: float) -> dict[int, str]:
    """Track -> label of the people.csv rows (by track) that count as people when a track needs ``detections``
    detection frames and ``confidence`` once."""
    return {track: row["label"] for track, row in people.items()
            if int(row["detections"]) >= detections and float(row["confidence"]) >= confidence}


def replay_rules(pipeline: MaskDetector, videos: list, every: int, work: Path) -> list[dict]:
    """Every labelled track counted, once; then each rule of ``RULES`` (the detection frames and the face-stage
    confidence a track needs to count as a person) replayed on people.csv's rows, scored as a setting."""
    options = VideoOptions(tracking=TrackingSettings(every=every),
                           verdicts=VerdictSettings(min_detections=1, min_confidence=0.0))
    rows, people, seconds, frames = _run(pipeline, videos, options, work)
    results = []
    for detections, confidence in RULES:
        scored = [score_video(truth, rows[str(path)], counted_under(people[str(path)], detections, confidence),
                              ARGS.min_person_frames) for path, truth in videos]
        results.append(summarise(f"rule: {detections} detections, {confidence:g} sure", scored, seconds, frames))
    return results


def run_baseline(pipeline: MaskDetector, videos: list, every: int, work: Path) -> dict:
    """The behaviour before tracking: detection every ``every`` frames, boxes carried, every face classified on
    every frame, drawn and written; people per class = face-frames per class."""
    import cv2

    from maskdetect.inference.media import iter_frames, open_video_writer

    counted: Counter = Counter()
    true: Counter = Counter()
    frames_done, seconds = 0, 0.0
    for path, truth_frames in videos:
        start = time.perf_counter()
        writer, _ = open_video_writer(work / path.with_suffix(".mp4").name, FPS, *SIZE)
        carried = []
        for index, rgb in enumerate(iter_frames(path)):
            if index % every == 0:
                carried = pipeline.faces(rgb)
            detections = pipeline.classify(rgb, carried, carried=index % every != 0)
            writer.write(cv2.cvtColor(annotate(rgb, detections, pipeline.classifier.class_names), cv2.COLOR_RGB2BGR))
            counted.update(benchmark_label(d.label) for d in detections)
            frames_done += 1
        writer.release()
        seconds += time.perf_counter() - start
        seen = Counter(person for frame in truth_frames for person, _, _ in frame["counted"])
        labels = {person: label for frame in truth_frames for person, label, _ in frame["counted"] + frame["small"]}
        true.update(labels[p] for p, n in seen.items() if n >= ARGS.min_person_frames)
    result = {"setting": f"baseline: no tracks, people = face-frames, every {every}", "frames": frames_done,
              "seconds": round(seconds, 1), "frames_per_second": round(frames_done / seconds, 2)}
    for label in ("mask", "without_mask"):
        result[f"people_{label}"] = counted[label]
        result[f"true_{label}"] = true[label]
        result[f"count_error_{label}"] = (counted[label] - true[label]) / true[label] if true[label] else None
    return result


def _fmt(value, percent: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.1%}" if percent == "signed" else f"{value:.1%}" if percent else f"{value:.3f}"


def report(results: list[dict], baseline: dict | None) -> None:
    print("\nsetting                             frames/s  IDF1   MOTA   ID sw  people mask (true)  unmasked (true)  "
          "count error mask / unmasked  labelled right mask / unmasked (of found)")
    for r in results:
        print(f"{r['setting']:35s} {r['frames_per_second']:8.1f}  {r['idf1']:.3f}  {r['mota']:.3f}  "
              f"{r['id_switches']:5d}  {r['people_mask']:5d} ({r['true_mask']:4d})    {r['people_without_mask']:5d} "
              f"({r['true_without_mask']:4d})   {_fmt(r['count_error_mask'], 'signed'):>7s} / "
              f"{_fmt(r['count_error_without_mask'], 'signed'):7s}          {_fmt(r['right_mask'], True)} / "
              f"{_fmt(r['right_without_mask'], True)} ({_fmt(r['right_of_found_mask'], True)} / "
              f"{_fmt(r['right_of_found_without_mask'], True)})")
    print("tracks counted beyond one per person: " + "; ".join(
        f"{r['setting']}: {r['tracks_on_no_face']} on no face, {r['second_tracks']} a person's second track"
        for r in results))
    if baseline is not None:
        b = baseline
        print(f"{b['setting']}: {b['frames_per_second']:.1f} frames/s; 'people' mask {b['people_mask']} "
              f"(true {b['true_mask']}), unmasked {b['people_without_mask']} (true {b['true_without_mask']}): "
              f"count error {_fmt(b['count_error_mask'], 'signed')} / {_fmt(b['count_error_without_mask'], 'signed')}")
        default = results[0]
        print(f"default against the baseline: {default['frames_per_second'] / b['frames_per_second']:.2f}x the "
              "frames/s")
    default = results[0]
    checks = [("people per class within 10 % in total",
               all(abs(default[f"count_error_{c}"] or 0) <= 0.10 for c in ("mask", "without_mask"))),
              ("IDF1 >= 0.8", default["idf1"] >= 0.8),
              ("masked people labelled right >= 93 %", (default["right_mask"] or 0) >= 0.93),
              ("unmasked people labelled right >= 92 %", (default["right_without_mask"] or 0) >= 0.92),
              (">= 20 frames/s", default["frames_per_second"] >= 20)]
    print("targets at the default: " + "; ".join(f"{name}: {'met' if ok else 'missed'}" for name, ok in checks))
    if "frames_per_second_every_1" in default:
        print(f"frames/s at --every 1: {default['frames_per_second_every_1']:.1f}")


ARGS: argparse.Namespace
# --rules: (detection frames, face-stage confidence) a track needs to count as a person; the default's first
RULES = ((2, 0.9), (1, 0.0), (2, 0.0), (1, 0.9), (2, 0.95), (3, 0.0))


def main(argv: list[str] | None = None) -> int:
    global ARGS
    args = ARGS = parse_args(argv)
    classifier = load_classifier(args.model or best_model(args.logs))
    settings = dataclasses.replace(CROP, face_stage=args.face_stage)
    pipeline = MaskDetector(classifier, settings, settings)
    # the classifier's graph is traced on its first call: before the clock starts, as the models are loaded
    classifier.probabilities(np.zeros((1, pipeline.settings.size, pipeline.settings.size, 3), np.uint8))
    print(f"{runtime.default_jobs()} cores; model {classifier.path}; data {args.data}", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_video_") as folder:
        work = Path(folder)
        videos = make_videos(args, work)
        total = sum(len(frames) for _, frames in videos)
        print(f"{len(videos)} videos, {total} frames of {SIZE[0]}x{SIZE[1]}", flush=True)
        settings = [(every, args.trackers[0]) for every in args.every]
        settings += [(args.every[0], tracker) for tracker in args.trackers[1:]]
        for number, (every, tracker) in enumerate(settings):
            options = VideoOptions(tracking=TrackingSettings(every=every, tracker=tracker))
            scored, seconds, frames = run_tracked(pipeline, videos, options, work / f"run{number}")
            fps_1 = None
            if number == 0 and args.fps_frames:
                quick = dataclasses.replace(options, tracking=dataclasses.replace(options.tracking, every=1),
                                            max_frames=args.fps_frames)
                _, quick_seconds, quick_frames = run_tracked(pipeline, videos[:2], quick, work / "every1")
                fps_1 = round(quick_frames / quick_seconds, 2)
            name = f"{tracker}, every {every}" + (" (default)" if number == 0 else "")
            results.append(summarise(name, scored, seconds, frames, fps_1))
            print(f"  {name}: {results[-1]['frames_per_second']:.1f} frames/s, IDF1 {results[-1]['idf1']:.3f}",
                  flush=True)
        if args.rules:
            results += replay_rules(pipeline, videos, args.every[0], work / "rules")
        baseline = None
        if not args.skip_baseline:
            (work / "baseline").mkdir()
            baseline = run_baseline(pipeline, videos, args.baseline_every, work / "baseline")
    report(results, baseline)
    paths = write_results(args.out, results + ([baseline] if baseline else []))
    print(f"results: {paths[0]}, {paths[1]}")
    assert set(CLASSES) >= {"mask", "without_mask"}
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
