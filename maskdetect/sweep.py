"""Hyperparameter sweeps: many trainings over a grid, unattended, resumable, on one machine or a Ray cluster
(``auto_train.py``).

Plan first, act second. :func:`expand` turns flags or a grid file into trials; the training log's completed
keys (:func:`maskdetect.runlog.completed_keys`) tell which are done, so that a rerun of the same command runs
only the trials it lacks; then :func:`maskdetect.trials.run_sweep` runs each trial, :func:`maskdetect.train.run`
in a child process of its own, here (``--jobs N`` at once) or as Ray tasks on other machines. The driver
alone appends rows to ``<logs>/training_log.csv``, the same log ``train_a_model.py`` writes. This module is
the planning, the leaderboard report with its plot, and the command line (``python -m maskdetect.sweep`` is
``auto_train.py``).

The driver imports neither TensorFlow nor Ray unless ``--ray`` asks for it (or ``--report --rank-on`` scores
earlier runs); the child does the training.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import logging
import random
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from maskdetect import data, evaluate, records, runlog, runtime
from maskdetect.records import finite_number
from maskdetect.runlog import COMPLETED, LOG_NAME, SWEEP_DIR, leaderboard, scored_on
from maskdetect.settings import (
    ALPHAS,
    AUGMENTATIONS,
    DEFAULT_ALPHA,
    GRID_KEYS,
    HYPERPARAMETERS,
    MOBILENET_KEYS,
    NETWORKS,
    OPTIMIZERS,
    Settings,
)
from maskdetect.trials import LocalExecutor, RayExecutor, Trial, run_sweep

log = logging.getLogger(__name__)

# Without flags or a grid file: 16 trials worth a night on a laptop CPU; the pretrained network (the default)
# against the best small one, at the two sizes experiments/street_recipes.py measured.
DEFAULT_GRID = {"model": ["mobilenetv2", "small"], "image_size": [96, 128], "optimizer": ["adam", "sgd"],
                "augmentation": ["light", "heavy"]}
_TYPES = {"model": str, "epochs": int, "batch_size": int, "image_size": int, "kernel_size": int, "optimizer": str,
          "augmentation": str, "learning_rate": float, "seed": int, "weights": str, "alpha": float}


# ---------------------------------------------------------------- plan

def read_grid_file(path: str | Path) -> dict[str, list]:
    """A grid file: a JSON or YAML mapping of hyperparameter to one value or a list of values."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"grid file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            content = yaml.safe_load(text)
        else:
            content = json.loads(text)
    except Exception as error:  # YAML's and JSON's own errors say where the file is wrong
        raise ValueError(f"grid file {path} cannot be read: {error}".replace("\n", " ")) from None
    if not isinstance(content, dict):
        raise ValueError(f"grid file {path} must be a mapping of hyperparameter to values, e.g. "
                         "{\"model\": [\"small\", \"deep\"], \"batch_size\": [16, 32]}")
    return {str(key).replace("-", "_"): value for key, value in content.items()}


def normalise_grid(grid: Mapping[str, object]) -> dict[str, list]:
    """Every value a non-empty list of the right type; unknown names are a one-line error."""
    result = {}
    for key, values in grid.items():
        key = key.replace("-", "_")
        if key == "seeds":
            key = "seed"
        if key not in _TYPES:
            raise ValueError(f"unknown hyperparameter {key!r} in the grid; known: {', '.join(GRID_KEYS)}")
        values = values if isinstance(values, list) else [values]
        if not values:
            raise ValueError(f"the grid gives no value for {key}")
        converted = [_convert(key, value) for value in values]
        result[key] = list(dict.fromkeys(converted))  # a value given twice is one trial, not two
    return result


def _convert(key: str, value: object):
    kind = _TYPES[key]
    try:
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        return kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} value {value!r} in the grid is not {'an' if kind is int else 'a'} "
                         f"{kind.__name__}") from None


def expand(grid: Mapping[str, list], max_trials: int | None = None, sample_seed: int = 0) -> list[dict]:
    """The Cartesian product of ``grid`` in a stable order; ``max_trials`` picks a seeded random subset
    (the same subset on every rerun, so resuming works), kept in grid order."""
    keys = [key for key in GRID_KEYS if key in grid]
    trials = [dict(zip(keys, values, strict=True)) for values in itertools.product(*(grid[key] for key in keys))]
    if max_trials is not None:
        if max_trials < 1:
            raise ValueError(f"--max-trials must be at least 1, not {max_trials}")
        if max_trials < len(trials):
            chosen = sorted(random.Random(sample_seed).sample(range(len(trials)), max_trials))
            trials = [trials[index] for index in chosen]
    return trials


def plan(grid_trials: Sequence[dict], base: Mapping[str, object], data_hash: str) -> list[Trial]:
    """Each grid point as settings; a bad combination keeps its error, to be logged as a failed trial."""
    trials, planned = [], set()
    for values in grid_trials:
        values = dict(values)
        combined = {**base, **values}
        if combined.get("model") != "mobilenetv2":
            for key in MOBILENET_KEYS:  # for the mobilenetv2 trials of a mixed grid only
                values.pop(key, None)
                combined[key] = None
        try:
            settings, error = Settings(**combined), ""
        except (ValueError, TypeError) as problem:
            settings, error = None, str(problem)
        key = runlog.settings_key(settings, data_hash) if settings else runlog.trial_key(combined, data_hash)
        if key in planned:  # e.g. a small network under two --alpha values: one trial
            continue
        planned.add(key)
        trials.append(Trial(len(trials) + 1, values, settings, error, key))
    return trials


def sweep_id_for(trials: Sequence[Trial], data_hash: str) -> str:
    """The same command on the same data gets the same id, so a resumed sweep stays one sweep."""
    digest = hashlib.sha256("\n".join([data_hash, *(trial.key for trial in trials)]).encode())
    return digest.hexdigest()[:8]


# ---------------------------------------------------------------- report

def plot_by_hyperparameter(rows: Sequence[Mapping[str, str]], path: Path) -> None:
    """Validation accuracy against each hyperparameter: one panel each, every run a dot, medians as bars."""
    import matplotlib.pyplot as plt

    from maskdetect import plots

    # every hyperparameter gets a panel, also one the sweep held fixed: the plot reads the same every time
    keys = [*HYPERPARAMETERS, "learning_rate"]
    columns = min(4, len(keys))
    figure, axes = plt.subplots((len(keys) + columns - 1) // columns, columns, figsize=(3.6 * columns, 3.2 *
                                ((len(keys) + columns - 1) // columns)), squeeze=False)
    rng = np.random.default_rng(0)
    for axis, key in zip(axes.flat, keys, strict=False):
        values = sorted({row.get(key, "") for row in rows}, key=lambda value: (finite_number(value) is None,
                                                                               finite_number(value) or 0, value))
        for position, value in enumerate(values):
            group = [row for row in rows if row.get(key, "") == value]
            for status, face in (("ok", "tab:blue"), ("pruned", "none")):
                scores = [finite_number(row["val_accuracy"]) for row in group if row.get("status") == status]
                axis.scatter(position + rng.uniform(-0.12, 0.12, len(scores)), scores, s=22, alpha=0.8,
                             facecolors=face, edgecolors="tab:blue", label=status if position == 0 else None)
            axis.hlines(np.median([finite_number(row["val_accuracy"]) for row in group]),
                        position - 0.3, position + 0.3, colors="black", linewidth=1.5,
                        label="median" if position == 0 else None)
        axis.set_xticks(range(len(values)), values, rotation=30 if len(values) > 3 else 0)
        axis.set_title(key.replace("_", " "))
        axis.set_ylabel("validation accuracy")
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(keys):]:
        axis.axis("off")
    axes.flat[0].legend(fontsize="small", title="pruned: stopped early", title_fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    plots.save(figure, path)


def score_missing(rows: Sequence[Mapping[str, str]], folder: str | Path,
                  min_face: int = evaluate.RANK_MIN_FACE) -> list[Mapping[str, str]]:
    """The rows, those completed but not scored on ``folder`` scored now when their model file exists (this
    loads TensorFlow); the scores live in the returned rows only, the log is append-only."""
    result = []
    for row in rows:
        if row.get("status") in COMPLETED and scored_on(row, folder) is None:
            fields = evaluate.scored_fields(row, folder, min_face)
            row = {**row, **fields} if fields else row
        result.append(row)
    return result


def report(log_path: Path, sweep_id: str | None = None, top: int = 20, plot: bool = True,
           keys: set[str] | None = None, rank_on: str | Path | None = None,
           min_face: int = evaluate.RANK_MIN_FACE) -> str:
    """The leaderboard as text (and a plot beside the log): all runs in the log, one sweep's, or the runs of
    the given trial ``keys`` (a sweep's trials, also those an earlier run or train_a_model.py completed).
    With ``rank_on`` the runs are ranked by their balanced accuracy on that labelled folder; runs not scored
    on it are scored now when their model file exists, else listed below the scored ones."""
    if not log_path.exists():
        raise ValueError(f"training log {log_path} does not exist; run train_a_model.py or auto_train.py first")
    runlog.check_log(log_path, "give the training_log.csv that train_a_model.py and auto_train.py write")
    all_rows = records.read_rows(log_path)
    if keys is not None:
        rows = [row for row in all_rows if runlog.trial_key(row, row.get("data_hash", "")) in keys
                or (sweep_id and row.get("sweep_id") == sweep_id)]
    else:
        rows = [row for row in all_rows if sweep_id is None or row.get("sweep_id") == sweep_id]
    if sweep_id is not None and keys is None and not rows:
        raise ValueError(f"no run of sweep {sweep_id} in {log_path}")
    if rank_on:
        rows = score_missing(rows, rank_on, min_face)
    ranked = leaderboard(rows, rank_on)
    failed = sum(row.get("status") == "failed" for row in rows)
    scope = f"sweep {sweep_id}" if sweep_id else f"all runs in {log_path}"
    scored = sum(scored_on(row, rank_on) is not None for row in ranked)
    by = (f"balanced accuracy on the labelled faces of {min_face} px or more in {runlog.folder_key(rank_on)} "
          f"({scored} runs scored; those not scored, for want of a model file, below them by validation accuracy)"
          if rank_on else "validation accuracy")
    lines = [f"leaderboard, {scope}: {len(ranked)} completed, {failed} failed, "
             f"{len(rows) - len(ranked) - failed} other (interrupted); ranked by {by}"]
    if not ranked:
        return "\n".join([*lines, "no completed run yet"])
    rank_column = f"{'rank-on':>7} " if rank_on else ""
    header = (f"{'#':>3} {rank_column}{'val acc':>7} {'test acc':>8}  {'status':<6} {'model':<11} {'ep':>3} "
              f"{'batch':>5} {'size':>4} {'kern':>4} {'optimizer':<9} {'augment':<7} {'lr':>7} {'seed':>4}  run")
    lines.append(header)
    for rank, row in enumerate(ranked[:top], 1):
        on = scored_on(row, rank_on)
        rank_text = ((f"{on:>7.4f} " if on is not None else f"{'-':>7} ") if rank_on else "")
        lines.append(
            f"{rank:>3} {rank_text}{finite_number(row['val_accuracy']):>7.4f} "
            f"{finite_number(row.get('test_accuracy')) or 0:>8.4f}  "
            f"{row.get('status', ''):<6} {row.get('model', ''):<11} {row.get('epochs_run', ''):>3} "
            f"{row.get('batch_size', ''):>5} {row.get('image_size', ''):>4} {row.get('kernel_size', ''):>4} "
            f"{row.get('optimizer', ''):<9} {row.get('augmentation', ''):<7} "
            f"{runlog.normalised(row.get('learning_rate')):>7} "
            f"{row.get('seed', ''):>4}  {row.get('run_id', '')}")
    best = ranked[0]
    lines += [f"best model: {best.get('model_path', '')}", f"reproduce:  {runlog.reproduce_command(best)}"]
    if plot:
        path = log_path.parent / SWEEP_DIR / f"{sweep_id or 'all'}_val_accuracy.png"
        plot_by_hyperparameter(ranked, path)
        lines.append(f"plot:       {path}")
    return "\n".join(lines)


# ---------------------------------------------------------------- command line

def build_parser() -> argparse.ArgumentParser:
    defaults = Settings()
    parser = argparse.ArgumentParser(
        prog="auto_train.py",
        description="Train many models over a grid of hyperparameters, unattended; rerun the same command to "
        "resume. Every trial appends a row to <logs>/training_log.csv, the log train_a_model.py writes. "
        f"With no grid flags and no --grid file the grid is {json.dumps(DEFAULT_GRID)} (16 trials).",
    )
    grid = parser.add_argument_group("the grid (each flag takes one or more values; the product is swept)")
    grid.add_argument("--grid", help="a JSON or YAML file mapping hyperparameters to values; flags override it")
    grid.add_argument("--model", nargs="+", help=f"networks: {', '.join(NETWORKS)}")
    grid.add_argument("--epochs", nargs="+", help=f"most epochs (default {defaults.epochs})")
    grid.add_argument("--batch-size", nargs="+", help=f"(default {defaults.batch_size})")
    grid.add_argument("--image-size", nargs="+", help=f"(default {defaults.image_size})")
    grid.add_argument("--kernel-size", nargs="+", help=f"3, 5 or 7 (default {defaults.kernel_size})")
    grid.add_argument("--optimizer", nargs="+", help=f"{', '.join(OPTIMIZERS)} (default {defaults.optimizer})")
    grid.add_argument("--augmentation", nargs="+",
                      help=f"{', '.join(AUGMENTATIONS)} (default {defaults.augmentation})")
    grid.add_argument("--learning-rate", nargs="+", help="(default: the optimizer's own)")
    grid.add_argument("--seeds", nargs="+", help=f"repeat every configuration with each seed (default {defaults.seed})")
    grid.add_argument("--weights", nargs="+", help="mobilenetv2's start: imagenet, none or a local weights file "
                      "(default imagenet)")
    grid.add_argument("--alpha", nargs="+", help=f"mobilenetv2's width: {', '.join(map(str, ALPHAS))} "
                      f"(default {DEFAULT_ALPHA})")
    grid.add_argument("--max-trials", type=int, help="run a random subset of this many grid points (the same subset "
                      "on every rerun)")
    parser.add_argument("--data", default=defaults.data, help="folder of <class>/ crops (default %(default)s)")
    parser.add_argument("--logs", default=defaults.logs, help="run folders and training_log.csv (default %(default)s)")
    parser.add_argument("--val-split", type=float, default=defaults.val_split, help="(default %(default)s)")
    parser.add_argument("--test-split", type=float, default=defaults.test_split, help="(default %(default)s)")
    parser.add_argument("--jobs", type=int,
                        help="trials at once on this machine, the cores shared between them (default 1); "
                        "with --ray: trials at once on the cluster (default: its CPUs / --threads)")
    parser.add_argument("--threads", type=int, default=0,
                        help="TensorFlow threads per trial (default: this machine's cores / --jobs)")
    parser.add_argument("--ray", metavar="ADDRESS",
                        help="run the trials on the Ray cluster at ADDRESS (host:port of `ray start --head`)")
    parser.add_argument("--median-stop", type=int, metavar="K",
                        help="stop a trial whose best validation accuracy after K or more epochs is below the median "
                        "of completed trials at the same epoch (logged as 'pruned')")
    parser.add_argument("--median-min-trials", type=int, default=3,
                        help="completed trials needed before the median rule judges (default %(default)s)")
    parser.add_argument("--rank-on", metavar="DIR",
                        help="rank the models by their balanced accuracy on the labelled photos of DIR (a VOC, CSV or "
                        "YOLO folder, as process_faces.py --annotations reads; faces of 32 px or more), not by "
                        "validation accuracy: each trial scores its model; with --report, runs not scored on DIR "
                        "are scored then")
    parser.add_argument("--restart", action="store_true", help="run every trial again, ignoring the log")
    parser.add_argument("--dry-run", action="store_true", help="print the planned trials and stop")
    parser.add_argument("--report", nargs="?", const="", metavar="LOG",
                        help="print the leaderboard of LOG (default <logs>/training_log.csv) and plot it; no training")
    parser.add_argument("--sweep-id", help="with --report: only this sweep")
    parser.add_argument("--top", type=int, default=20, help="rows in the leaderboard (default %(default)s)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def grid_from(args: argparse.Namespace) -> dict[str, list]:
    grid: dict[str, object] = read_grid_file(args.grid) if args.grid else {}
    flags = {key: getattr(args, key) for key in (*HYPERPARAMETERS, "learning_rate", *MOBILENET_KEYS)}
    flags["seed"] = args.seeds
    given = {key: value for key, value in flags.items() if value is not None}
    if not args.grid and not given:
        grid = dict(DEFAULT_GRID)
    grid = normalise_grid({**grid, **given})
    return grid


def _validate(args: argparse.Namespace) -> None:
    if args.jobs is not None and args.jobs < 1:
        raise ValueError(f"--jobs must be at least 1, not {args.jobs}")
    if args.threads < 0:
        raise ValueError(f"--threads must be 0 (automatic) or more, not {args.threads}")
    if args.median_stop is not None and args.median_stop < 1:
        raise ValueError(f"--median-stop must be at least 1 epoch, not {args.median_stop}")
    if args.median_min_trials < 1:
        raise ValueError(f"--median-min-trials must be at least 1, not {args.median_min_trials}")
    if args.top < 1:
        raise ValueError(f"--top must be at least 1, not {args.top}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    runtime.configure_logging(args.verbose)
    return runtime.run_cli(lambda: _main(args), "auto_train: interrupted.")


def _main(args: argparse.Namespace) -> int:
    _validate(args)
    logs = Path(args.logs)
    rank_on = None
    if args.rank_on:
        # a wrong folder is one line now, not a surprise after hours of training
        counts = evaluate.check_folder(args.rank_on)
        rank_on = {"folder": runlog.folder_key(args.rank_on), "min_face": evaluate.RANK_MIN_FACE}
        print(f"auto_train: ranking by balanced accuracy on {rank_on['folder']}: "
              + ", ".join(f"{label} {count}" for label, count in sorted(counts.items()))
              + f" labelled faces of {evaluate.RANK_MIN_FACE} px or more")
    if args.report is not None:
        print(report(Path(args.report) if args.report else logs / LOG_NAME, args.sweep_id, args.top,
                     rank_on=args.rank_on))
        return runtime.EXIT_OK

    runtime.check_writable(logs, "--logs")  # before hours of trials, not after the first
    runlog.check_log(logs / LOG_NAME)
    grid = grid_from(args)
    grid_trials = expand(grid, args.max_trials)
    crops = data.find_crops(args.data, runtime.default_jobs())  # once here; a data error stops the sweep at once
    data_hash = crops.digest()
    base = {"data": args.data, "logs": args.logs, "val_split": args.val_split, "test_split": args.test_split}
    trials = plan(grid_trials, base, data_hash)
    sweep_id = sweep_id_for(trials, data_hash)
    if args.restart:
        sweep_id += time.strftime("-%Y%m%d%H%M%S")
    # --restart: as if the log were empty
    previous = [] if args.restart else records.read_rows(logs / LOG_NAME)
    done = runlog.completed_keys(previous)
    todo = sum(trial.key not in done for trial in trials)
    print(f"auto_train: sweep {sweep_id}: {len(trials)} trials over {', '.join(grid)} on {len(crops.paths)} crops "
          f"(data {data_hash}); {len(trials) - todo} already done, {todo} to run")
    if args.dry_run:
        for trial in trials:
            state = "done" if trial.key in done else ("invalid: " + trial.error if trial.error else "to run")
            print(f"  #{trial.number:<4} {trial.label()}  [{state}]")
        return runtime.EXIT_OK

    cores = runtime.default_jobs()
    if args.ray:
        threads = args.threads or 1
        executor = RayExecutor(args.ray, args.jobs or 0, threads)
    else:
        jobs = args.jobs or 1
        threads = args.threads or max(1, cores // jobs)
        executor = LocalExecutor(jobs, logs / SWEEP_DIR / sweep_id / "work")
    start = time.monotonic()
    outcome = run_sweep(trials, logs, sweep_id, executor, threads, previous, args.median_stop,
                        args.median_min_trials, rank_on)
    hours = (time.monotonic() - start) / 3600
    counts = {status: sum(row.get("status") == status for row in outcome.rows)
              for status in ("ok", "pruned", "failed", "interrupted")}
    print()
    print(report(logs / LOG_NAME, sweep_id, args.top, keys={trial.key for trial in trials},
                 rank_on=args.rank_on))
    trained = counts["ok"] + counts["pruned"]
    rate = f"; {trained / hours:.1f} trials/hour" if trained and hours > 0 else ""
    ran = ", ".join(f"{count} {status}" for status, count in counts.items())
    print(f"auto_train: {len(trials)} trials: {len(outcome.rows)} run ({ran}), "
          f"{outcome.skipped} already done (skipped){rate}; log {logs / LOG_NAME}")
    if outcome.interrupted:
        raise KeyboardInterrupt
    return runtime.EXIT_FAILURE if counts["failed"] else runtime.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
