"""Speed of the face stage against the simple way, on the same photos in the same run, with recall for both.

Baseline: one process, the same detectors and settings, but each photo at full resolution, one call
per photo, crops saved as they come. Ours: ``maskdetect.faces.run`` (detection on a copy shrunk to
--detect-size, crops from the full resolution, one detector process per core).

    .venv/bin/python -m benchmarks.bench_faces --limit 120
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from maskdetect.face.boxes import iou

from benchmarks.common import DEFAULT_DETECTION, MATCH_IOU, MIN_FACE, load_truth
from maskdetect import facecrops, faces, images, records, runtime


def recall(found: dict[str, list], truth: dict) -> dict[str, tuple[int, int]]:
    """Per label: (ground-truth faces of at least MIN_FACE px matched by a box with IoU >= 0.4, all such faces)."""
    totals: dict[str, list[int]] = {}
    for photo, labelled in truth.items():
        if photo not in found:
            continue
        boxes = np.asarray(found[photo], dtype=float).reshape(-1, 4)
        for label, box in labelled:
            if min(box[2] - box[0], box[3] - box[1]) < MIN_FACE:
                continue
            total = totals.setdefault(label, [0, 0])
            total[1] += 1
            if len(boxes) and iou(np.asarray(box, dtype=float)[None], boxes).max() >= MATCH_IOU:
                total[0] += 1
    return {label: (hit, count) for label, (hit, count) in sorted(totals.items())}


def steady_rate(stamps: list[float]) -> float:
    """Photos per second between the first and the last photo done: start-up (model loading) left out."""
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else float("nan")


def run_baseline(photos: list[Path], settings: facecrops.CropSettings, output: Path) -> tuple[float, float, dict]:
    from maskdetect.face import DetectorSettings, FaceDetector

    start = time.perf_counter()
    with runtime.native_stderr_silenced():
        detector = FaceDetector(DetectorSettings(threshold=settings.threshold, detect_size=None,
                                                 second_stage=settings.second_stage))
    found, stamps = {}, []
    for path in photos:
        rgb = images.load_rgb(path)
        detected = detector.detect(rgb)
        for index, face in enumerate(detected):
            crop = facecrops.crop_face(rgb, (face.x1, face.y1, face.x2, face.y2), settings.margin, settings.size)
            facecrops.atomic_write_image(crop, output / f"{path.stem}_face{index}.jpg")
        found[path.name] = [(face.x1, face.y1, face.x2, face.y2) for face in detected]
        stamps.append(time.perf_counter())
    return time.perf_counter() - start, steady_rate(stamps), found


def run_ours(photos: list[Path], settings: facecrops.CropSettings, work: Path, jobs: int) -> tuple[float, float, dict]:
    source = work / "in" / "photos"
    source.mkdir(parents=True)
    for path in photos:
        shutil.copy(path, source / path.name)
    stamps: list[float] = []
    start = time.perf_counter()
    faces.run(work / "in", work / "out", settings, jobs, on_result=lambda _: stamps.append(time.perf_counter()))
    seconds = time.perf_counter() - start
    found: dict[str, list] = {path.name: [] for path in photos}
    for row in records.read_rows(work / "out" / facecrops.MANIFEST):
        if row["kind"] == facecrops.AUTO:
            found[Path(row["source"]).name].append(tuple(float(row[key]) for key in ("x1", "y1", "x2", "y2")))
    return seconds, steady_rate(stamps), found


def describe(name: str, seconds: float, steady: float, count: int, scores: dict) -> str:
    parts = ", ".join(f"{label} {hit / total:.1%} ({hit}/{total})" for label, (hit, total) in scores.items())
    return (f"{name:9s} {count} photos in {seconds:6.1f} s = {count / seconds:5.2f} photos/s "
            f"({steady:5.2f} after start-up); recall (>= {MIN_FACE} px): {parts}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DETECTION)
    parser.add_argument("--limit", type=int, default=120, help="photos to use (the first N by name)")
    parser.add_argument("--jobs", type=int, default=runtime.default_jobs())
    parser.add_argument("--no-second-stage", action="store_true")
    args = parser.parse_args(argv)
    if not (args.data / "boxes.csv").exists():
        print(f"skipped: {args.data} is absent")
        return 0
    truth = load_truth(args.data)
    photos = [args.data / "images" / name for name in sorted(truth)[: args.limit]]
    settings = facecrops.CropSettings(second_stage=not args.no_second_stage)
    with tempfile.TemporaryDirectory() as work:
        base_seconds, base_steady, base_found = run_baseline(photos, settings, Path(work) / "baseline")
        our_seconds, our_steady, our_found = run_ours(photos, settings, Path(work) / "ours", args.jobs)
    print(describe("baseline", base_seconds, base_steady, len(photos), recall(base_found, truth))
          + " [1 process, full resolution]")
    print(describe("ours", our_seconds, our_steady, len(photos), recall(our_found, truth))
          + f" [{args.jobs} processes, detect at {settings.detect_size} px]")
    print(f"speed-up: {base_seconds / our_seconds:.2f}x with model loading, "
          f"{our_steady / base_steady:.2f}x after start-up")
    return 0


if __name__ == "__main__":
    sys.exit(main())
