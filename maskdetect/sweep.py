"""Hyperparameter sweeps: many trainings over a grid, unattended, resumable, on one machine or a Ray cluster.

Plan first, act second. :func:`expand` turns flags or a grid file into trials; :func:`completed_keys`
reads the training log, so that a rerun of the same command runs only the trials it lacks; then each
trial runs :func:`maskdetect.train.run` in a child process of its own (memory goes back to the system
after every trial, and a crash or an out-of-memory kill ends only that trial). The driver alone appends
rows to ``<logs>/training_log.csv``, the same log ``train_a_model.py`` writes, whether the trials run
here (``--jobs N`` at once) or as Ray tasks on other machines.

The driver imports neither TensorFlow nor Ray unless ``--ray`` asks for it; the child does the training.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import itertools
import json
import logging
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from maskdetect import evaluate, records, runtime, train
from maskdetect.records import finite_number

log = logging.getLogger(__name__)

HYPERPARAMETERS = train.HYPERPARAMETERS
# mobilenetv2's start (imagenet, none or a file) and width sweep too; other networks ignore them
MOBILENET_KEYS = ("weights", "alpha")
GRID_KEYS = (*HYPERPARAMETERS, "learning_rate", "seed", *MOBILENET_KEYS)
# What makes two runs the same trial, together with the data set hash: a rerun skips a completed one.
KEY_FIELDS = (*GRID_KEYS, "val_split", "test_split")
COMPLETED = ("ok", "pruned")
# Without flags or a grid file: 16 trials worth a night on a laptop CPU; the pretrained network (the default)
# against the best small one, at the two sizes bench_street measured.
DEFAULT_GRID = {"model": ["mobilenetv2", "small"], "image_size": [96, 128], "optimizer": ["adam", "sgd"],
                "augmentation": ["light", "heavy"]}
SWEEP_DIR = "sweeps"
_TYPES = {"model": str, "epochs": int, "batch_size": int, "image_size": int, "kernel_size": int, "optimizer": str,
          "augmentation": str, "learning_rate": float, "seed": int, "weights": str, "alpha": float}
# How long an interrupted trial gets to write its row before it is killed.
_STOP_GRACE_SECONDS = 60


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


def _normalised(value: object) -> str:
    if value is None or value == "":
        return ""
    try:
        return format(float(value), ".6g")
    except (TypeError, ValueError):
        return str(value)


def trial_key(values: Mapping[str, object], data_hash: str) -> str:
    """The identity of a trial: its settings and the data set, as the log records them."""
    return "|".join([*(f"{key}={_normalised(values.get(key))}" for key in KEY_FIELDS), f"data={data_hash}"])


def settings_key(settings: train.Settings, data_hash: str) -> str:
    # the log records the learning rate actually used, so the optimizer's default counts as given
    return trial_key({**dataclasses.asdict(settings), "learning_rate": settings.rate}, data_hash)


def completed_keys(rows: Iterable[Mapping[str, str]]) -> set[str]:
    """Keys of the log's runs that finished (ok, or stopped by the median rule)."""
    return {trial_key(row, row.get("data_hash", "")) for row in rows if row.get("status") in COMPLETED}


@dataclass
class Trial:
    """One planned training: its grid values, its settings (None when they are invalid) and its key."""

    number: int
    values: dict
    settings: train.Settings | None
    error: str = ""
    key: str = ""

    def label(self) -> str:
        shown = self.values if self.settings is None else {
            key: getattr(self.settings, key) for key in (*HYPERPARAMETERS, "seed")} | (
            {"learning_rate": self.settings.rate} if "learning_rate" in self.values else {})
        return " ".join(f"{key}={value}" for key, value in shown.items())


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
            settings, error = train.Settings(**combined), ""
        except (ValueError, TypeError) as problem:
            settings, error = None, str(problem)
        key = settings_key(settings, data_hash) if settings else trial_key(combined, data_hash)
        if key in planned:  # e.g. a small network under two --alpha values: one trial
            continue
        planned.add(key)
        trials.append(Trial(len(trials) + 1, values, settings, error, key))
    return trials


def sweep_id_for(trials: Sequence[Trial], data_hash: str) -> str:
    """The same command on the same data gets the same id, so a resumed sweep stays one sweep."""
    digest = hashlib.sha256("\n".join([data_hash, *(trial.key for trial in trials)]).encode())
    return digest.hexdigest()[:8]


# ---------------------------------------------------------------- median stopping

def best_so_far(curve: Sequence[float]) -> list[float]:
    return list(np.maximum.accumulate(np.asarray(curve, dtype=float))) if len(curve) else []


def median_curve(curves: Iterable[Sequence[float]], min_trials: int) -> list[float | None]:
    """Per epoch, the median over completed trials of their best validation accuracy so far; None where
    fewer than ``min_trials`` trials reached that epoch (too few to judge)."""
    running = [best_so_far(curve) for curve in curves if len(curve)]
    length = max((len(curve) for curve in running), default=0)
    result: list[float | None] = []
    for epoch in range(length):
        values = [curve[epoch] for curve in running if len(curve) > epoch]
        result.append(float(np.median(values)) if len(values) >= min_trials else None)
    return result


def should_stop(history: Sequence[float], medians: Sequence[float | None], grace: int) -> bool:
    """The median stopping rule: after ``grace`` epochs, stop when this trial's best validation accuracy
    so far is below the median of completed trials at the same epoch."""
    epoch = len(history)
    if epoch < grace or epoch > len(medians) or medians[epoch - 1] is None:
        return False
    return max(history) < medians[epoch - 1]


def _median_callback(medians: Sequence[float | None], grace: int):
    import keras

    class MedianStopping(keras.callbacks.Callback):
        """Stops a hopeless trial; ``pruned`` tells train.run to log it as such."""

        def __init__(self) -> None:
            super().__init__()
            self.pruned = False
            self.history: list[float] = []

        def on_epoch_end(self, epoch, logs=None):
            self.history.append(float((logs or {}).get("val_accuracy", 0.0)))
            if should_stop(self.history, medians, grace):
                print(f"median stopping: best validation accuracy {max(self.history):.4f} after epoch {epoch + 1} "
                      f"is below the median {medians[epoch]:.4f} of completed trials", flush=True)
                self.pruned = True
                self.model.stop_training = True

    return MedianStopping()


def _history_curve(row: Mapping[str, str]) -> list[float]:
    path = Path(row.get("run_dir", "")) / "history.csv"
    if not row.get("run_dir") or not path.is_file():
        return []
    return [float(item["val_accuracy"]) for item in records.read_rows(path) if item.get("val_accuracy")]


# ---------------------------------------------------------------- one trial, in a child process

def child_main(argv: Sequence[str]) -> int:
    """``python -m maskdetect.sweep SPEC RESULT``: run one trial, write its log row to RESULT (JSON)."""
    spec_path, result_path = Path(argv[0]), Path(argv[1])
    spec = json.loads(spec_path.read_text())
    runtime.configure_logging(False)
    threads = int(spec.get("threads") or 0)
    rank_on = spec.get("rank_on")

    def record(row: dict) -> None:
        if rank_on and row.get("status") in COMPLETED:
            # scored here, where TensorFlow and the model are at hand; the driver never loads TensorFlow
            row = {**row, **evaluate.scored_fields(row, rank_on["folder"], rank_on["min_face"])}
        # the validation curve travels with the row: on Ray the run folder is on another machine
        temporary = result_path.with_suffix(".partial")
        temporary.write_text(json.dumps({**row, "curve": _history_curve(row)}, default=str))
        os.replace(temporary, result_path)

    def interrupt(number, frame):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut short the row being written
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)

    def body() -> int:
        with runtime.native_stderr_silenced():
            import tensorflow as tf

            if threads:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
        settings = train.Settings(**spec["settings"])
        callbacks = []
        if spec.get("median"):
            callbacks.append(_median_callback(spec["median"]["curve"], spec["median"]["grace"]))
        try:
            train.run(settings, callbacks, record=record)
        except KeyboardInterrupt:
            raise
        except Exception as error:
            if not result_path.exists():  # failed before train.run made a row (e.g. unreadable data)
                record({**spec["settings"], "status": "failed", "error": f"{type(error).__name__}: {error}"[:500]})
            raise
        return runtime.EXIT_OK

    try:
        return runtime.run_cli(body, "trial interrupted")
    except Exception as error:  # logged in the row; the traceback goes to the trial's log file
        log.exception("trial failed: %s", error)
        return runtime.EXIT_FAILURE


def _die_with_parent() -> None:
    # Linux: the kernel kills the trial when the driver dies, even by SIGKILL, so no orphan trains on.
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _child_environment(threads: int) -> dict[str, str]:
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    if threads:
        # each trial keeps to its share of the cores, so N trials at once do not fight over them
        environment.update(TF_NUM_INTRAOP_THREADS=str(threads), TF_NUM_INTEROP_THREADS=str(min(2, threads)),
                           OMP_NUM_THREADS=str(threads))
    package_root = str(Path(__file__).resolve().parents[1])
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, environment.get("PYTHONPATH")]))
    return environment


def start_child(spec: dict, workdir: Path, output: Path) -> tuple[subprocess.Popen, Path]:
    """Start one trial; its output goes to ``output``. Returns the process and where its row will be."""
    workdir.mkdir(parents=True, exist_ok=True)
    spec_path, result_path = workdir / "spec.json", workdir / "result.json"
    spec_path.write_text(json.dumps(spec, default=str))
    result_path.unlink(missing_ok=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "ab") as stream:
        process = subprocess.Popen(
            [sys.executable, "-m", "maskdetect.sweep", str(spec_path), str(result_path)],
            stdout=stream, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=_child_environment(int(spec.get("threads") or 0)),
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
    return process, result_path


def child_result(process: subprocess.Popen, result_path: Path, spec: dict, output: Path) -> dict:
    """The trial's row; when the child died without writing one (killed, out of memory), a failed row."""
    if result_path.is_file():
        try:
            return json.loads(result_path.read_text())
        except json.JSONDecodeError:
            pass
    code = process.returncode
    if code == runtime.EXIT_INTERRUPTED:  # stopped before training began: no row of its own
        return {**spec["settings"], "status": "interrupted", "error": "stopped by Ctrl-C"}
    if code is not None and code < 0:
        reason = f"the trial's process was killed by signal {-code}"
        if -code == signal.SIGKILL:
            reason += " (out of memory?)"
    else:
        reason = f"the trial's process exited with code {code} without a result"
    return {**spec["settings"], "status": "failed", "error": f"{reason}; see {output}"}


def run_trial_blocking(spec: dict, workdir: Path, output: Path) -> dict:
    """Run one trial to the end (a Ray task does this on its worker). Ctrl-C or a cancel stops the child
    politely, so it still writes an 'interrupted' row."""
    process, result_path = start_child(spec, workdir, output)
    try:
        process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(_STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return child_result(process, result_path, spec, output)


# ---------------------------------------------------------------- executors

@dataclass
class Running:
    trial: Trial
    spec: dict
    process: subprocess.Popen
    result: Path
    output: Path
    started: float = field(default_factory=time.monotonic)


class LocalExecutor:
    """Up to ``jobs`` child processes at once on this machine."""

    def __init__(self, jobs: int, workdir: Path) -> None:
        self.jobs, self.workdir = jobs, workdir
        self.running: list[Running] = []

    def free(self) -> int:
        return self.jobs - len(self.running)

    def submit(self, trial: Trial, spec: dict, output: Path) -> None:
        process, result = start_child(spec, self.workdir / f"trial_{trial.number:04d}", output)
        self.running.append(Running(trial, spec, process, result, output))

    def finished(self, timeout: float) -> list[tuple[Trial, dict]]:
        deadline = time.monotonic() + timeout
        while True:
            done = [item for item in self.running if item.process.poll() is not None]
            if done or time.monotonic() >= deadline or not self.running:
                break
            time.sleep(0.2)
        results = []
        for item in done:
            self.running.remove(item)
            results.append((item.trial, child_result(item.process, item.result, item.spec, item.output)))
            shutil.rmtree(item.result.parent, ignore_errors=True)  # the row is what counts; the output log stays
        return results

    def stop(self) -> list[tuple[Trial, dict]]:
        """Ask every running trial to stop (it logs itself as interrupted), then collect the rows."""
        for item in self.running:
            with contextlib.suppress(ProcessLookupError):
                item.process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + _STOP_GRACE_SECONDS
        for item in self.running:
            try:
                item.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                item.process.kill()
                item.process.wait()
        stopped = [(item.trial, child_result(item.process, item.result, item.spec, item.output))
                   for item in self.running]
        self.running.clear()
        return stopped

    def close(self) -> None:
        pass


class RayExecutor:
    """Trials as Ray tasks on an existing cluster; each task runs the same child process on its worker."""

    def __init__(self, address: str, jobs: int, threads: int) -> None:
        try:
            import ray
        except ImportError:
            raise ValueError("--ray needs Ray, an optional dependency: .venv/bin/pip install -r requirements-ray.txt "
                             "(on every machine of the cluster)") from None
        import maskdetect

        self.ray = ray
        try:
            # the package travels with the job, so the workers run this very code
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False,
                     runtime_env={"py_modules": [str(Path(maskdetect.__file__).parent)]})
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise ValueError(f"cannot join the Ray cluster at {address}: {error}".splitlines()[0]) from None
        cluster_cpus = int(ray.cluster_resources().get("CPU", 1))
        self.jobs = jobs or max(1, cluster_cpus // max(1, threads))
        self.remote = ray.remote(num_cpus=max(1, threads), max_retries=0)(_ray_trial)
        self.pending: dict = {}

    def free(self) -> int:
        return self.jobs - len(self.pending)

    def submit(self, trial: Trial, spec: dict, output: Path) -> None:
        self.pending[self.remote.remote(spec, str(output))] = (trial, spec, output)

    def _collect(self, references) -> list[tuple[Trial, dict]]:
        results = []
        for reference in references:
            trial, spec, output = self.pending.pop(reference)
            try:
                row = self.ray.get(reference)
            except Exception as error:  # the worker died, or the task was cancelled
                row = {**spec["settings"], "status": "failed",
                       "error": f"Ray task failed: {type(error).__name__}: {error}".splitlines()[0][:500]}
            results.append((trial, row))
        return results

    def finished(self, timeout: float) -> list[tuple[Trial, dict]]:
        if not self.pending:
            return []
        done, _ = self.ray.wait(list(self.pending), num_returns=1, timeout=timeout)
        return self._collect(done)

    def stop(self) -> list[tuple[Trial, dict]]:
        for reference in self.pending:
            with contextlib.suppress(Exception):
                self.ray.cancel(reference)  # a KeyboardInterrupt in the task: the child logs 'interrupted'
        return self._collect(list(self.pending))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ray.shutdown()


def _ray_trial(spec: dict, output: str) -> dict:
    # on a Ray worker: a fresh child per trial, as locally; its output stays on that machine
    with tempfile.TemporaryDirectory(prefix="maskdetect-trial-") as workdir:
        return run_trial_blocking(spec, Path(workdir), Path(output))


# ---------------------------------------------------------------- the sweep

@dataclass
class Outcome:
    rows: list[dict]
    skipped: int
    interrupted: bool = False


def _short(trial: Trial) -> str:
    s = trial.settings
    if s is None:
        return trial.label()
    return (f"{s.model} e{s.epochs} b{s.batch_size} i{s.image_size} k{s.kernel_size} {s.optimizer} "
            f"{s.augmentation} s{s.seed}")


def run_sweep(trials: Sequence[Trial], logs: Path, sweep_id: str, executor, threads: int,
              previous: Sequence[Mapping[str, str]] = (), median_grace: int | None = None,
              median_min_trials: int = 3, rank_on: Mapping | None = None) -> Outcome:
    """Run the trials that the ``previous`` log rows lack, appending one row per trial. With ``rank_on``
    (``{"folder": ..., "min_face": ...}``) each completed trial scores its model on that labelled folder."""
    done = completed_keys(previous)
    todo = [trial for trial in trials if trial.key not in done]
    skipped = len(trials) - len(todo)
    # trials finished earlier in this sweep feed the median rule and the best score from the start
    earlier = [row for row in previous if row.get("sweep_id") == sweep_id and row.get("status") in COMPLETED]
    curves = [_history_curve(row) for row in earlier]
    rows: list[dict] = []
    scores = [finite_number(row.get("val_accuracy")) for row in earlier]
    best = max((score for score in scores if score is not None), default=None)
    bar = tqdm(total=len(todo), desc=f"sweep {sweep_id}", unit="trial", dynamic_ncols=True)
    queue = list(todo)
    current: dict[int, str] = {}

    def show() -> None:
        best_text = "-" if best is None else f"{best:.4f}"
        bar.set_postfix_str(f"best val {best_text} | now: {'; '.join(current.values()) or '-'}")

    def record(trial: Trial, row: dict) -> None:
        nonlocal best
        curve = row.pop("curve", None)
        row = {**row, "sweep_id": sweep_id}
        train.append_log(logs, row)
        rows.append(row)
        current.pop(trial.number, None)
        if row.get("status") in COMPLETED:
            if curve:
                curves.append(curve)
            score = finite_number(row.get("val_accuracy"))
            if score is not None:
                best = score if best is None else max(best, score)
        if row.get("status") not in COMPLETED:
            tqdm.write(f"trial {trial.number} ({_short(trial)}) {row.get('status')}: {row.get('error', '')}")
        bar.update()
        show()

    show()
    try:
        while queue or executor.free() < executor.jobs:
            while queue and executor.free() > 0:
                trial = queue.pop(0)
                if trial.settings is None:  # a bad combination fails at once, with no child to start
                    record(trial, {**trial.values, "status": "failed", "error": trial.error,
                                   "time": time.strftime("%Y-%m-%dT%H:%M:%S")})
                    continue
                median = None
                if median_grace:
                    median = {"grace": median_grace, "curve": median_curve(curves, median_min_trials)}
                spec = {"settings": {**dataclasses.asdict(trial.settings), "sweep_id": sweep_id, "jobs": 1},
                        "threads": threads, "median": median, "rank_on": rank_on}
                output = logs / SWEEP_DIR / sweep_id / f"trial_{trial.number:04d}.log"
                executor.submit(trial, spec, output)
                current[trial.number] = f"#{trial.number} {_short(trial)}"
                show()
            for trial, row in executor.finished(timeout=1.0):
                record(trial, row)
    except KeyboardInterrupt:
        bar.close()
        print("auto_train: stopping; waiting for the running trial(s) to write their rows ...", file=sys.stderr)
        for trial, row in executor.stop():
            record(trial, row)
        return Outcome(rows, skipped, interrupted=True)
    finally:
        bar.close()
        executor.close()
    return Outcome(rows, skipped)


# ---------------------------------------------------------------- report

def scored_on(row: Mapping[str, str], folder: str | Path | None) -> float | None:
    """The row's balanced accuracy on the labelled ``folder`` (see maskdetect.evaluate), None when it was not
    scored on that folder."""
    if not folder or not row.get("rank_on") or evaluate.folder_key(row["rank_on"]) != evaluate.folder_key(folder):
        return None
    return finite_number(row.get("rank_on_accuracy"))


def ranking_folder(rows: Iterable[Mapping[str, str]]) -> str | None:
    """The labelled folder of the latest row scored on one (``--rank-on``), or None: what detect_mask.py's
    default model is ranked by. Scores on different folders are not comparable, so the latest choice wins."""
    folder = None
    for row in rows:
        if row.get("rank_on") and finite_number(row.get("rank_on_accuracy")) is not None:
            folder = row["rank_on"]
    return folder


def leaderboard(rows: Iterable[Mapping[str, str]], rank_on: str | Path | None = None) -> list[Mapping[str, str]]:
    """Completed runs, best first, by validation accuracy (test accuracy never ranks: it is the held-out check).

    With ``rank_on`` (a labelled folder), the runs scored on it come first, ranked by that score (validation
    accuracy breaks ties), and the runs not scored on it follow, ranked by validation accuracy.
    """
    usable = [row for row in rows
              if row.get("status") in COMPLETED and finite_number(row.get("val_accuracy")) is not None]

    def key(row):
        scored = scored_on(row, rank_on)
        return (scored is None, -(scored or 0.0), -finite_number(row["val_accuracy"]),
                finite_number(row.get("val_loss")) or 0.0)

    return sorted(usable, key=key)


def reproduce_command(row: Mapping[str, str]) -> str:
    """The train_a_model.py command line that trains this row's configuration again."""
    words = ["./train_a_model.py"]
    for key in (*HYPERPARAMETERS, "learning_rate", "seed", "val_split", "test_split", "data", *MOBILENET_KEYS,
                "warmup_epochs"):
        value = row.get(key)
        if value not in (None, ""):
            words += [f"--{key.replace('_', '-')}", str(value)]
    return shlex.join(words)


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
    if not log_path.is_file():
        raise ValueError(f"training log {log_path} does not exist; run train_a_model.py or auto_train.py first")
    all_rows = records.read_rows(log_path)
    if keys is not None:
        rows = [row for row in all_rows if trial_key(row, row.get("data_hash", "")) in keys
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
    by = (f"balanced accuracy on the labelled faces of {min_face} px or more in {evaluate.folder_key(rank_on)} "
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
            f"{_normalised(row.get('learning_rate')):>7} "
            f"{row.get('seed', ''):>4}  {row.get('run_id', '')}")
    best = ranked[0]
    lines += [f"best model: {best.get('model_path', '')}", f"reproduce:  {reproduce_command(best)}"]
    if plot:
        path = log_path.parent / SWEEP_DIR / f"{sweep_id or 'all'}_val_accuracy.png"
        plot_by_hyperparameter(ranked, path)
        lines.append(f"plot:       {path}")
    return "\n".join(lines)


# ---------------------------------------------------------------- command line

def build_parser() -> argparse.ArgumentParser:
    defaults = train.Settings()
    parser = argparse.ArgumentParser(
        prog="auto_train.py",
        description="Train many models over a grid of hyperparameters, unattended; rerun the same command to "
        "resume. Every trial appends a row to <logs>/training_log.csv, the log train_a_model.py writes. "
        f"With no grid flags and no --grid file the grid is {json.dumps(DEFAULT_GRID)} (16 trials).",
    )
    grid = parser.add_argument_group("the grid (each flag takes one or more values; the product is swept)")
    grid.add_argument("--grid", help="a JSON or YAML file mapping hyperparameters to values; flags override it")
    grid.add_argument("--model", nargs="+", help=f"networks: {', '.join(train.NETWORKS)}")
    grid.add_argument("--epochs", nargs="+", help=f"most epochs (default {defaults.epochs})")
    grid.add_argument("--batch-size", nargs="+", help=f"(default {defaults.batch_size})")
    grid.add_argument("--image-size", nargs="+", help=f"(default {defaults.image_size})")
    grid.add_argument("--kernel-size", nargs="+", help=f"3, 5 or 7 (default {defaults.kernel_size})")
    grid.add_argument("--optimizer", nargs="+", help=f"{', '.join(train.OPTIMIZERS)} (default {defaults.optimizer})")
    grid.add_argument("--augmentation", nargs="+",
                      help=f"{', '.join(train.AUGMENTATIONS)} (default {defaults.augmentation})")
    grid.add_argument("--learning-rate", nargs="+", help="(default: the optimizer's own)")
    grid.add_argument("--seeds", nargs="+", help=f"repeat every configuration with each seed (default {defaults.seed})")
    grid.add_argument("--weights", nargs="+", help="mobilenetv2's start: imagenet, none or a local weights file "
                      "(default imagenet)")
    grid.add_argument("--alpha", nargs="+", help=f"mobilenetv2's width: {', '.join(map(str, train.ALPHAS))} "
                      f"(default {train.DEFAULT_ALPHA})")
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
        rank_on = {"folder": evaluate.folder_key(args.rank_on), "min_face": evaluate.RANK_MIN_FACE}
        print(f"auto_train: ranking by balanced accuracy on {rank_on['folder']}: "
              + ", ".join(f"{label} {count}" for label, count in sorted(counts.items()))
              + f" labelled faces of {evaluate.RANK_MIN_FACE} px or more")
    if args.report is not None:
        print(report(Path(args.report) if args.report else logs / train.LOG_NAME, args.sweep_id, args.top,
                     rank_on=args.rank_on))
        return runtime.EXIT_OK

    grid = grid_from(args)
    grid_trials = expand(grid, args.max_trials)
    from maskdetect import data

    crops = data.find_crops(args.data, runtime.default_jobs())  # once here; a data error stops the sweep at once
    data_hash = crops.digest()
    base = {"data": args.data, "logs": args.logs, "val_split": args.val_split, "test_split": args.test_split}
    trials = plan(grid_trials, base, data_hash)
    sweep_id = sweep_id_for(trials, data_hash)
    if args.restart:
        sweep_id += time.strftime("-%Y%m%d%H%M%S")
    # --restart: as if the log were empty
    previous = [] if args.restart else records.read_rows(logs / train.LOG_NAME)
    done = completed_keys(previous)
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
    print(report(logs / train.LOG_NAME, sweep_id, args.top, keys={trial.key for trial in trials},
                 rank_on=args.rank_on))
    trained = counts["ok"] + counts["pruned"]
    rate = f"; {trained / hours:.1f} trials/hour" if trained and hours > 0 else ""
    ran = ", ".join(f"{count} {status}" for status, count in counts.items())
    print(f"auto_train: {len(trials)} trials: {len(outcome.rows)} run ({ran}), "
          f"{outcome.skipped} already done (skipped){rate}; log {logs / train.LOG_NAME}")
    if outcome.interrupted:
        raise KeyboardInterrupt
    return runtime.EXIT_FAILURE if counts["failed"] else runtime.EXIT_OK


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
