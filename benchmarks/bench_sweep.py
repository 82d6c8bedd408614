"""Sweep throughput: trials/hour with ``auto_train.py --jobs 1`` against ``--jobs 2``, in one run.

Both sides sweep the same grid (by default 4 trials: batch size 32 and 64, kernel size 3 and 5, the
``small`` network at 64 px, 3 epochs, no early stop in 3 epochs) on the same crops, each into a fresh
log folder, one after the other; ``--repeats N`` alternates them N times and keeps each side's best.
``--jobs 1`` gives its one trial all the cores (TensorFlow threads = cores); ``--jobs 2`` gives each of
its two trials half of them. Trials/hour counts completed trials over the whole sweep's wall time,
start-up of each child (TensorFlow import, crop check) included, as a user experiences it.

    .venv/bin/python -m benchmarks.bench_sweep --data processed_data
    .venv/bin/python -m benchmarks.bench_sweep --data processed_data --per-class 600 --epochs 2
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import REPO
from maskdetect import images, records, runlog, sweep


def subset(data: Path, per_class: int, target: Path) -> Path:
    """The first ``per_class`` crops of each class, copied (with faces.csv, for the grouped split)."""
    for folder in images.class_dirs(data):
        (target / folder.name).mkdir(parents=True)
        for path in sorted(folder.iterdir())[:per_class]:
            if path.is_file():
                shutil.copy2(path, target / folder.name / path.name)
    manifest = data / "faces.csv"
    if manifest.is_file():
        rows = [row for row in records.read_rows(manifest)
                if (target / Path(row.get("crop", "")).parent.name / Path(row.get("crop", "")).name).is_file()]
        for row in rows:
            row["crop"] = str((target / Path(row["crop"]).parent.name / Path(row["crop"]).name).resolve())
        if rows:
            records.append_rows(target / "faces.csv", list(rows[0]), rows)
    return target


def one_sweep(data: Path, jobs: int, grid: list[str], scratch: Path) -> tuple[float, int, list[dict]]:
    logs = scratch / f"logs_jobs{jobs}_{time.monotonic_ns()}"
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = sweep.main(["--data", str(data), "--logs", str(logs), "--jobs", str(jobs), *grid])
    seconds = time.perf_counter() - start
    rows = records.read_rows(logs / runlog.LOG_NAME)
    completed = [row for row in rows if row.get("status") in runlog.COMPLETED]
    if code != 0 or len(completed) != len(rows):
        raise SystemExit(f"the --jobs {jobs} sweep failed (exit {code}); see {logs}")
    return seconds, len(completed), completed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO / "processed_data")
    parser.add_argument("--per-class", type=int, default=0, help="use only the first N crops of each class")
    parser.add_argument("--epochs", default="3")
    parser.add_argument("--image-size", default="64")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    grid = ["--model", "small", "--epochs", args.epochs, "--image-size", args.image_size,
            "--batch-size", "32", "64", "--kernel-size", "3", "5"]
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as scratch_text:
        scratch = Path(scratch_text)
        data = subset(args.data, args.per_class, scratch / "crops") if args.per_class else args.data
        crops = sum(1 for folder in images.class_dirs(data) for path in folder.iterdir() if path.is_file())
        best: dict[int, tuple[float, int, list[dict]]] = {}
        for repeat in range(args.repeats):
            for jobs in (1, 2):
                result = one_sweep(data, jobs, grid, scratch)
                print(f"[repeat {repeat + 1}] --jobs {jobs}: {result[1]} trials in {result[0]:.1f} s = "
                      f"{result[1] / result[0] * 3600:.1f} trials/hour", flush=True)
                if jobs not in best or result[0] < best[jobs][0]:
                    best[jobs] = result
    print(f"grid: {' '.join(grid)}; {crops} crops; {sweep.runtime.default_jobs()} cores")
    for jobs, (seconds, trials, rows) in best.items():
        mean_train = sum(float(row["train_seconds"]) for row in rows) / len(rows)
        accuracy = ", ".join(f"{float(row['val_accuracy']):.4f}" for row in rows)
        print(f"--jobs {jobs}: {trials} trials in {seconds:6.1f} s = {trials / seconds * 3600:6.1f} trials/hour "
              f"(fit {mean_train:.1f} s per trial on average; validation accuracy {accuracy})")
    ratio = best[1][0] / best[2][0]
    print(f"--jobs 2 against --jobs 1: {ratio:.2f}x the trials/hour")
    return 0


if __name__ == "__main__":
    sys.exit(main())
