"""A sweep's trials: each in a child process of its own, here or on a Ray cluster, stopped early by the median rule.

:func:`run_sweep` hands planned :class:`Trial` objects to an executor, :class:`LocalExecutor` (``--jobs N``
child processes on this machine) or :class:`RayExecutor` (Ray tasks, each starting the same child on its
worker), and appends each trial's row to the training log as it comes; the driver alone writes the log. A
trial is ``python -m maskdetect.trials SPEC RESULT`` (:func:`child_main`): it runs
:func:`maskdetect.train.run`, so memory goes back to the system after every trial, and a crash or an
out-of-memory kill ends only that trial. Planning the trials, the leaderboard and the command line are
:mod:`maskdetect.sweep`'s.

Only the child imports TensorFlow; the driver imports Ray only for :class:`RayExecutor`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
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

from maskdetect import evaluate, records, runlog, runtime, train
from maskdetect.records import finite_number
from maskdetect.runlog import COMPLETED, SWEEP_DIR
from maskdetect.settings import HYPERPARAMETERS, Settings

log = logging.getLogger(__name__)

# How long an interrupted trial gets to write its row before it is killed.
_STOP_GRACE_SECONDS = 60


@dataclass
class Trial:
    """One planned training: its grid values, its settings (None when they are invalid) and its key."""

    number: int
    values: dict
    settings: Settings | None
    error: str = ""
    key: str = ""

    def label(self) -> str:
        shown = self.values if self.settings is None else {
            key: getattr(self.settings, key) for key in (*HYPERPARAMETERS, "seed")} | (
            {"learning_rate": self.settings.rate} if "learning_rate" in self.values else {})
        return " ".join(f"{key}={value}" for key, value in shown.items())


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


def history_curve(row: Mapping[str, str]) -> list[float]:
    """A finished run's validation accuracy per epoch, from its history.csv; empty when the file is gone."""
    path = Path(row.get("run_dir", "")) / "history.csv"
    if not row.get("run_dir") or not path.is_file():
        return []
    return [float(item["val_accuracy"]) for item in records.read_rows(path) if item.get("val_accuracy")]


# ---------------------------------------------------------------- one trial, in a child process

def child_main(argv: Sequence[str]) -> int:
    """``python -m maskdetect.trials SPEC RESULT``: run one trial, write its log row to RESULT (JSON)."""
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
        temporary.write_text(json.dumps({**row, "curve": history_curve(row)}, default=str))
        os.replace(temporary, result_path)

    def interrupt(number, frame):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut short the row being written
        runtime.note_interrupt()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)

    def body() -> int:
        with runtime.native_stderr_silenced():
            import tensorflow as tf

            if threads:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(min(2, threads))
        settings = Settings(**spec["settings"])
        callbacks = []
        if spec.get("median"):
            callbacks.append(_median_callback(spec["median"]["curve"], spec["median"]["grace"]))
        try:
            train.run(settings, callbacks, record=record)
        except KeyboardInterrupt:
            raise
        except Exception as error:
            if runtime.interrupt_requested():
                raise KeyboardInterrupt from error  # no row of its own: the driver logs it as interrupted
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
            [sys.executable, "-m", "maskdetect.trials", str(spec_path), str(result_path)],
            stdout=stream, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=_child_environment(int(spec.get("threads") or 0)),
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
    return process, result_path


def child_result(process: subprocess.Popen, result_path: Path, spec: dict, output: Path,
                 stopped: bool = False) -> dict:
    """The trial's row; when the child died without writing one (killed, out of memory), a failed row, or an
    interrupted one when ``stopped`` (the driver asked it to stop, and killed it if it took too long)."""
    if result_path.is_file():
        try:
            return json.loads(result_path.read_text())
        except json.JSONDecodeError:
            pass
    code = process.returncode
    if code == runtime.EXIT_INTERRUPTED:  # stopped before training began: no row of its own
        return {**spec["settings"], "status": "interrupted", "error": "stopped by Ctrl-C"}
    if stopped:
        how = f"exit code {code}" if code is None or code >= 0 else f"signal {-code}"
        return {**spec["settings"], "status": "interrupted",
                "error": f"stopped by Ctrl-C; ended ({how}) without writing its row; see {output}"}
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
    stopped = False
    try:
        process.wait()
    except KeyboardInterrupt:
        stopped = True
        process.send_signal(signal.SIGINT)
        try:
            process.wait(_STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return child_result(process, result_path, spec, output, stopped)


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
        stopped = [(item.trial, child_result(item.process, item.result, item.spec, item.output, stopped=True))
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
    done = runlog.completed_keys(previous)
    todo = [trial for trial in trials if trial.key not in done]
    skipped = len(trials) - len(todo)
    # trials finished earlier in this sweep feed the median rule and the best score from the start
    earlier = [row for row in previous if row.get("sweep_id") == sweep_id and row.get("status") in COMPLETED]
    curves = [history_curve(row) for row in earlier]
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
        runlog.append_log(logs, row)
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


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
