"""Throughput of the data stages: duplicate removal and face cropping, each against the simple way, in one run.

``--stage dedup``: maskdetect.dedup against a naive baseline on the same files. Baseline (as older scripts do it):
one process, md5 of each whole file read at once, imagehash.phash of the fully decoded image, then every pair of
hashes compared in a Python loop. Ours: sha256 in chunks and phash of a draft-decoded image over all cores, then
a vectorised XOR + popcount pair search. Run on --faces-dataset (a <class>/<images> folder) and on --generated
224 px JPEGs (crops of real photos, 5 % exact and 5 % near copies; cached in --work between runs).

``--stage faces``: the face stage over the photos of a labelled detection set (--detection, the first --limit by
name), with recall for both sides. Baseline: one process, the same detectors and settings, but each photo at full
resolution, one call per photo, crops saved as they come. Ours: ``maskdetect.faces.run`` (detection on a copy
shrunk to the detect size, crops from the full resolution, one detector process per core).

``--stage all`` (the default) runs both. Each comparison is a line of results.json / results.csv in --out.

    .venv/bin/python -m benchmarks.bench_data                                  # both stages
    .venv/bin/python -m benchmarks.bench_data --stage dedup --generated 2000 --no-faces-dataset
    .venv/bin/python -m benchmarks.bench_data --stage faces --limit 120
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import shutil
import sys
import tempfile
import time
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.common import (
    DEFAULT_DETECTION,
    DEFAULT_FACES,
    MIN_FACE,
    add_out_argument,
    has_detection_set,
    load_truth,
    matches,
    write_results,
)
from maskdetect import dedup, facecrops, faces, images, records, runtime
from maskdetect.face.settings import from_crop_settings

NAME = "bench_data"
STAGES = ("dedup", "faces")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", choices=[*STAGES, "all"], default="all", help="(default %(default)s)")
    parser.add_argument("--jobs", type=int, default=runtime.default_jobs(),
                        help="processes for our side (default: the cores, %(default)s)")
    add_out_argument(parser, NAME)
    dedup_flags = parser.add_argument_group("--stage dedup")
    dedup_flags.add_argument("--faces-dataset", type=Path, default=DEFAULT_FACES,
                             help="a <class>/<images> folder (default %(default)s)")
    dedup_flags.add_argument("--no-faces-dataset", action="store_true", help="skip --faces-dataset")
    dedup_flags.add_argument("--generated", type=int, default=20_000,
                             help="images in the generated tree (0: none; default %(default)s)")
    dedup_flags.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "maskdetect-bench-dedup",
                             help="generated tree cache (default %(default)s)")
    dedup_flags.add_argument("--distance", type=int, default=dedup.DEFAULT_HASH_DISTANCE,
                             help="perceptual-hash distance of near copies (default %(default)s)")
    dedup_flags.add_argument("--skip-baseline", action="store_true", help="time ours alone")
    faces_flags = parser.add_argument_group("--stage faces")
    faces_flags.add_argument("--detection", type=Path, default=DEFAULT_DETECTION,
                             help="folder with boxes.csv and images/ (default %(default)s)")
    faces_flags.add_argument("--limit", type=int, default=120, help="photos to use, the first N by name "
                             "(default %(default)s)")
    faces_flags.add_argument("--no-second-stage", action="store_true", help="MTCNN alone on both sides")
    faces_flags.add_argument("--face-stage", choices=facecrops.FACE_STAGES, default="accurate",
                             help="the face-stage preset on both sides (default %(default)s)")
    faces_flags.add_argument("--scaling", action="store_true",
                             help="ours with 1 process, then with --jobs, instead of against the baseline: how close "
                             "--jobs processes come to --jobs times the photos per second")
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.generated < 0 or args.limit < 1 or args.distance < 0:
        parser.error("--jobs >= 1, --generated >= 0, --limit >= 1, --distance >= 0")
    return args


# ---------------------------------------------------------------------------------------------
# Duplicate removal


def dedup_baseline(files: list[Path], distance: int) -> tuple[float, int, int]:
    """Seconds, exact groups, near pairs, the simple way."""
    import imagehash

    start = time.perf_counter()
    by_md5: dict[str, list[Path]] = {}
    hashes = []
    for path in files:
        by_md5.setdefault(hashlib.md5(path.read_bytes()).hexdigest(), []).append(path)
        try:
            hashes.append(int(str(imagehash.phash(Image.open(path))), 16))
        except OSError:
            hashes.append(None)
    pairs = 0
    for i in range(len(hashes)):
        first = hashes[i]
        if first is None:
            continue
        for j in range(i + 1, len(hashes)):
            second = hashes[j]
            if second is not None and (first ^ second).bit_count() <= distance:
                pairs += 1
    seconds = time.perf_counter() - start
    return seconds, sum(len(group) > 1 for group in by_md5.values()), pairs


def dedup_ours(class_dirs: list[Path], distance: int, jobs: int) -> tuple[float, int, list[dedup.Group]]:
    """Seconds, files read, groups."""
    start = time.perf_counter()
    hashed = dedup.hash_classes(class_dirs, jobs)
    groups = dedup.find_duplicates(hashed, distance)
    return time.perf_counter() - start, len(hashed), groups


_SOURCES: list[np.ndarray] = []  # filled before the pool forks, so the workers inherit it


def _make_one(task: tuple[Path, int]) -> None:
    folder, index = task
    rng = np.random.default_rng(index)
    sources = _SOURCES
    path = folder / f"img_{index:05d}.jpg"
    kind = index % 20
    base_index = index - kind if kind in (1, 2) else index  # 5 % exact copies, 5 % near copies
    base_rng = np.random.default_rng(base_index)
    source = sources[base_index % len(sources)]
    crop = int(base_rng.integers(96, min(source.shape[:2])))
    top = int(base_rng.integers(0, source.shape[0] - crop + 1))
    left = int(base_rng.integers(0, source.shape[1] - crop + 1))
    picture = Image.fromarray(source[top : top + crop, left : left + crop]).resize((224, 224))
    # a coarse random pattern blended in makes every base picture distinct, as real photos are
    pattern = base_rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
    picture = Image.blend(picture, Image.fromarray(pattern).resize((224, 224), Image.NEAREST), 0.5)
    if kind == 2:
        picture = picture.resize((160, 160))
    picture.save(path, "JPEG", quality=int(rng.integers(60, 95)) if kind == 2 else 90)


def generate(folder: Path, count: int) -> list[Path]:
    """``count`` 224 px JPEGs: crops of real photos, 5 % exact and 5 % near copies. Cached between runs."""
    marker = folder.parent / f"complete-{count}"
    if not marker.exists():
        import skimage.data

        folder.mkdir(parents=True, exist_ok=True)
        names = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "cat")
        _SOURCES[:] = [getattr(skimage.data, name)() for name in names]
        with get_context("fork").Pool(runtime.default_jobs()) as pool:
            pool.map(_make_one, [(folder, index) for index in range(count)], chunksize=64)
        marker.touch()
    return sorted(folder.glob("img_*.jpg"))[:count]


def compare_dedup(name: str, class_dirs: list[Path], distance: int, jobs: int, skip_baseline: bool) -> dict:
    """Ours and (unless ``skip_baseline``) the baseline on the same files, printed; the result line."""
    files = [path for folder in class_dirs for path in images.walk_files(folder)]
    seconds, count, groups = dedup_ours(class_dirs, distance, jobs)
    near_groups = sum(group.kind == "near" for group in groups)
    exact_groups = sum(group.kind == "exact" for group in groups)
    print(f"[{name}] ours:     {count} files in {seconds:6.1f} s = {count / seconds:7.0f} files/s "
          f"({jobs} processes; {exact_groups} exact groups, {near_groups} near groups)")
    row = {"stage": "dedup", "set": name, "files": count, "jobs": jobs, "seconds": seconds,
           "files_per_s": count / seconds, "exact_groups": exact_groups, "near_groups": near_groups}
    if skip_baseline:
        return row
    base_seconds, base_exact, base_pairs = dedup_baseline(files, distance)
    print(f"[{name}] baseline: {len(files)} files in {base_seconds:6.1f} s = {len(files) / base_seconds:7.0f} files/s "
          f"(1 process; {base_exact} md5 groups, {base_pairs} near pairs)")
    print(f"[{name}] speed-up: {base_seconds / seconds:.1f}x")
    return {**row, "baseline_seconds": base_seconds, "baseline_files_per_s": len(files) / base_seconds,
            "baseline_md5_groups": base_exact, "baseline_near_pairs": base_pairs, "speed_up": base_seconds / seconds}


def run_dedup(args: argparse.Namespace) -> list[dict]:
    rows = []
    if not args.no_faces_dataset:
        if args.faces_dataset.is_dir():
            rows.append(compare_dedup("faces_dataset", images.class_dirs(args.faces_dataset), args.distance, args.jobs,
                                      args.skip_baseline))
        else:
            print(f"[faces_dataset] skipped: {args.faces_dataset} is absent")
    if args.generated:
        folder = args.work / f"generated-{args.generated}" / "class"
        start = time.perf_counter()
        generate(folder, args.generated)
        print(f"[generated] {args.generated} images ready in {time.perf_counter() - start:.1f} s (cached in {folder})")
        rows.append(compare_dedup(f"generated {args.generated}", [folder], args.distance, args.jobs,
                                  args.skip_baseline))
    return rows


# ---------------------------------------------------------------------------------------------
# Face cropping


def recall(found: dict[str, list], truth: dict) -> dict[str, tuple[int, int]]:
    """Per label: (ground-truth faces of at least MIN_FACE px matched by a box with IoU >= 0.4, all such faces)."""
    totals: dict[str, list[int]] = {}
    for photo, labelled in truth.items():
        if photo not in found:
            continue
        for label, _, best in matches(labelled, np.asarray(found[photo], dtype=float).reshape(-1, 4)):
            total = totals.setdefault(label, [0, 0])
            total[1] += 1
            total[0] += best is not None
    return {label: (hit, count) for label, (hit, count) in sorted(totals.items())}


def steady_rate(stamps: list[float]) -> float:
    """Photos per second between the first and the last photo done: start-up (model loading) left out."""
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else float("nan")


def faces_baseline(photos: list[Path], settings: facecrops.CropSettings, output: Path) -> tuple[float, float, dict]:
    from maskdetect.face import FaceDetector

    start = time.perf_counter()
    with runtime.native_stderr_silenced():
        detector = FaceDetector(dataclasses.replace(from_crop_settings(settings), detect_size=None))
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


def faces_ours(photos: list[Path], settings: facecrops.CropSettings, work: Path,
               jobs: int) -> tuple[float, float, dict]:
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


def scaling(args: argparse.Namespace, photos: list[Path], truth: dict, settings: facecrops.CropSettings) -> list[dict]:
    """Ours with one process and with --jobs, on the same photos: photos/s after start-up and their ratio."""
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for jobs in (1, args.jobs):
            seconds, steady, found = faces_ours(photos, settings, Path(work) / f"jobs{jobs}", jobs)
            print(describe(f"{jobs} jobs", seconds, steady, len(photos), recall(found, truth)))
            rows.append({"stage": "faces", "face_stage": settings.face_stage, "photos": len(photos), "jobs": jobs,
                         "seconds": seconds, "photos_per_s": len(photos) / seconds, "steady_photos_per_s": steady})
    ratio = rows[1]["steady_photos_per_s"] / rows[0]["steady_photos_per_s"]
    print(f"{args.jobs} processes give {ratio:.2f}x the photos/s of one after start-up "
          f"({ratio / args.jobs:.0%} of linear)")
    rows.append({"stage": "faces", "face_stage": settings.face_stage, "jobs": f"{args.jobs} against 1",
                 "steady_speed_up": ratio})
    return rows


def run_faces(args: argparse.Namespace) -> list[dict]:
    if not has_detection_set(args.detection):
        print(f"[faces] skipped: {args.detection} has no boxes.csv and images/")
        return []
    truth = load_truth(args.detection)
    photos = [args.detection / "images" / name for name in sorted(truth)[: args.limit]]
    settings = facecrops.CropSettings(second_stage=not args.no_second_stage, face_stage=args.face_stage)
    if args.scaling:
        return scaling(args, photos, truth, settings)
    with tempfile.TemporaryDirectory() as work:
        base_seconds, base_steady, base_found = faces_baseline(photos, settings, Path(work) / "baseline")
        our_seconds, our_steady, our_found = faces_ours(photos, settings, Path(work) / "ours", args.jobs)
    base_recall, our_recall = recall(base_found, truth), recall(our_found, truth)
    print(describe("baseline", base_seconds, base_steady, len(photos), base_recall)
          + " [1 process, full resolution]")
    detect_size = from_crop_settings(settings).detect_size  # the preset's, when not set
    print(describe("ours", our_seconds, our_steady, len(photos), our_recall)
          + f" [{args.jobs} processes, detect at {detect_size} px]")
    print(f"speed-up: {base_seconds / our_seconds:.2f}x with model loading, "
          f"{our_steady / base_steady:.2f}x after start-up")
    return [{"stage": "faces", "photos": len(photos), "jobs": args.jobs,
             "detect_size": detect_size,
             "seconds": our_seconds, "photos_per_s": len(photos) / our_seconds, "steady_photos_per_s": our_steady,
             "recall": {label: hit / total for label, (hit, total) in our_recall.items()},
             "baseline_seconds": base_seconds, "baseline_photos_per_s": len(photos) / base_seconds,
             "baseline_steady_photos_per_s": base_steady,
             "baseline_recall": {label: hit / total for label, (hit, total) in base_recall.items()},
             "speed_up": base_seconds / our_seconds, "steady_speed_up": our_steady / base_steady}]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows = []
    if args.stage in ("dedup", "all"):
        rows += run_dedup(args)
    if args.stage in ("faces", "all"):
        rows += run_faces(args)
    json_path, csv_path = write_results(args.out, rows)
    print(f"results: {json_path}, {csv_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
