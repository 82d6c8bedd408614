"""Duplicate detection speed: maskdetect.dedup against a naive baseline, on the same files in the same run.

Baseline (as older scripts do it): one process, md5 of each whole file read at once, imagehash.phash
of the fully decoded image, then every pair of hashes compared in a Python loop.
Ours: sha256 in chunks and phash of a draft-decoded image over all cores, then a vectorised
XOR + popcount pair search.

    .venv/bin/python -m benchmarks.bench_dedup                      # faces_dataset and 20,000 generated
    .venv/bin/python -m benchmarks.bench_dedup --generated 2000 --no-faces
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.common import DEFAULT_FACES
from maskdetect import dedup, images, runtime


def baseline(files: list[Path], distance: int) -> tuple[float, int, int]:
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


def ours(class_dirs: list[Path], distance: int, jobs: int) -> tuple[float, int, list[dedup.Group]]:
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


def compare(name: str, class_dirs: list[Path], distance: int, jobs: int, skip_baseline: bool) -> None:
    files = [path for folder in class_dirs for path in images.walk_files(folder)]
    seconds, count, groups = ours(class_dirs, distance, jobs)
    near_groups = sum(group.kind == "near" for group in groups)
    exact_groups = sum(group.kind == "exact" for group in groups)
    print(f"[{name}] ours:     {count} files in {seconds:6.1f} s = {count / seconds:7.0f} files/s "
          f"({jobs} processes; {exact_groups} exact groups, {near_groups} near groups)")
    if skip_baseline:
        return
    base_seconds, base_exact, base_pairs = baseline(files, distance)
    print(f"[{name}] baseline: {len(files)} files in {base_seconds:6.1f} s = {len(files) / base_seconds:7.0f} files/s "
          f"(1 process; {base_exact} md5 groups, {base_pairs} near pairs)")
    print(f"[{name}] speed-up: {base_seconds / seconds:.1f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=DEFAULT_FACES, help="a <class>/<images> folder (faces_dataset)")
    parser.add_argument("--no-faces", action="store_true", help="skip the faces data set")
    parser.add_argument("--generated", type=int, default=20_000, help="images in the generated tree (0: none)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/maskdetect-bench-dedup"), help="generated tree cache")
    parser.add_argument("--distance", type=int, default=dedup.DEFAULT_HASH_DISTANCE)
    parser.add_argument("--jobs", type=int, default=runtime.default_jobs())
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args(argv)
    if not args.no_faces:
        if args.faces.is_dir():
            compare("faces_dataset", images.class_dirs(args.faces), args.distance, args.jobs, args.skip_baseline)
        else:
            print(f"[faces_dataset] skipped: {args.faces} is absent")
    if args.generated:
        folder = args.work / f"generated-{args.generated}" / "class"
        start = time.perf_counter()
        generate(folder, args.generated)
        print(f"[generated] {args.generated} images ready in {time.perf_counter() - start:.1f} s (cached in {folder})")
        compare(f"generated {args.generated}", [folder], args.distance, args.jobs, args.skip_baseline)
    return 0


if __name__ == "__main__":
    sys.exit(main())
