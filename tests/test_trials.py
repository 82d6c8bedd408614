"""A sweep's trials (maskdetect.trials), the parts without TensorFlow: median stopping, rows, children, executors."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from maskdetect import records, runlog, runtime, sweep, trials
from maskdetect.settings import Settings

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]
SPEC = {"settings": {"model": "small", "epochs": 2, "image_size": 32, "data": "processed_data"}, "threads": 3}


def ended(command: str) -> subprocess.Popen:
    """A real process that has ended the way ``command`` ends it (an exit code, or a signal)."""
    process = subprocess.Popen([sys.executable, "-c", command])
    process.wait(30)
    return process


def test_best_so_far_is_the_running_maximum_of_a_validation_curve():
    assert trials.best_so_far([0.5, 0.7, 0.6, 0.8, 0.75]) == [0.5, 0.7, 0.7, 0.8, 0.8]
    assert trials.best_so_far([0.9]) == [0.9]
    assert trials.best_so_far([]) == []


def test_the_median_curve_is_per_epoch_over_the_trials_that_reached_it_and_none_where_too_few_did():
    curves = [[0.5, 0.6, 0.7], [0.6, 0.55, 0.9, 0.95], [0.7, 0.8], [], [0.4, 0.9, 0.5, 0.6]]
    # best so far: [.5 .6 .7] [.6 .6 .9 .95] [.7 .8] [.4 .9 .9 .9]; the empty curve is no trial
    assert trials.median_curve(curves, min_trials=3) == [pytest.approx(0.55), pytest.approx(0.7),
                                                         pytest.approx(0.9), None]
    assert trials.median_curve(curves, min_trials=2) == pytest.approx([0.55, 0.7, 0.9, 0.925])
    assert trials.median_curve(curves[:2], min_trials=3) == [None, None, None, None]
    assert trials.median_curve([], min_trials=1) == []


def test_median_stopping_waits_out_the_grace_epochs_and_stops_only_a_trial_below_the_median():
    medians = [0.6, 0.7, None, 0.8]
    assert not trials.should_stop([0.1], medians, grace=2)  # within the grace epochs
    assert trials.should_stop([0.1, 0.65], medians, grace=2)
    assert not trials.should_stop([0.1, 0.7], medians, grace=2)  # at the median is not below it
    assert not trials.should_stop([0.75, 0.1], medians, grace=2)  # its best so far counts, not its last epoch
    assert not trials.should_stop([0.1, 0.1, 0.1], medians, grace=2)  # too few trials reached epoch 3
    assert trials.should_stop([0.1, 0.1, 0.1, 0.79], medians, grace=2)
    assert not trials.should_stop([0.1] * 5, medians, grace=2)  # past what completed trials reached


def test_a_finished_runs_curve_is_its_validation_accuracy_per_epoch_from_its_run_folder(tmp_path):
    records.append_rows(tmp_path / "history.csv", ["epoch", "accuracy", "val_accuracy"], [
        {"epoch": 0, "accuracy": 0.6, "val_accuracy": 0.55}, {"epoch": 1, "accuracy": 0.7, "val_accuracy": ""},
        {"epoch": 2, "accuracy": 0.8, "val_accuracy": 0.75}])
    assert trials.history_curve({"run_dir": str(tmp_path)}) == [0.55, 0.75]
    assert trials.history_curve({"run_dir": str(tmp_path / "deleted")}) == []
    assert trials.history_curve({"run_dir": ""}) == trials.history_curve({}) == []


def test_a_trial_is_labelled_by_its_settings_or_by_its_grid_values_when_they_are_invalid():
    settings = Settings(model="small", epochs=3, image_size=64, optimizer="sgd")
    assert trials.Trial(1, {"epochs": 3}, settings).label() == (
        "model=small epochs=3 batch_size=32 image_size=64 kernel_size=3 optimizer=sgd augmentation=light seed=42")
    assert trials.Trial(2, {"learning_rate": None}, settings).label().endswith("seed=42 learning_rate=0.01")
    assert trials.Trial(3, {"kernel_size": 4, "epochs": 2}, None, "--kernel-size must be 3, 5 or 7").label() == (
        "kernel_size=4 epochs=2")


def test_the_row_a_trial_wrote_is_its_result_whatever_its_exit(tmp_path):
    result = tmp_path / "result.json"
    row = {"status": "ok", "val_accuracy": 0.9, "curve": [0.8, 0.9]}
    result.write_text(json.dumps(row))
    for process in (ended("pass"), ended("raise SystemExit(1)")):
        assert trials.child_result(process, result, SPEC, tmp_path / "trial.log") == row
        assert trials.child_result(process, result, SPEC, tmp_path / "trial.log", stopped=True) == row


@pytest.mark.parametrize("command, stopped, status, words", [
    ("raise SystemExit(3)", False, "failed", "exited with code 3 without a result; see "),
    ("import os, signal; os.kill(os.getpid(), signal.SIGTERM)", False, "failed", "killed by signal 15; see "),
    ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", False, "failed", "signal 9 (out of memory?)"),
    (f"raise SystemExit({runtime.EXIT_INTERRUPTED})", False, "interrupted", "stopped by Ctrl-C"),
    ("pass", True, "interrupted", "ended (exit code 0) without writing its row; see "),
    ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", True, "interrupted", "ended (signal 9)"),
], ids=["exit code", "terminated", "killed", "interrupted itself", "stopped, exited", "stopped, killed"])
def test_a_trial_that_ended_without_its_row_gets_one_saying_how_it_ended(tmp_path, command, stopped, status, words):
    result, output = tmp_path / "result.json", tmp_path / "trial_0001.log"
    if status == "failed":
        result.write_text('{"status": "ok", "val_acc')  # half a row, as a kill mid-write would leave: not a row
    row = trials.child_result(ended(command), result, SPEC, output, stopped=stopped)
    assert row == {**SPEC["settings"], "status": status, "error": row["error"]}
    assert words in row["error"] and "\n" not in row["error"]
    if "see " in words:
        assert row["error"].endswith(f"see {output}")
    if "out of memory" not in words:
        assert "out of memory" not in row["error"]


@pytest.mark.skipif(not Path("/proc/self/environ").is_file(), reason="reads the child's environment from /proc")
def test_a_child_runs_this_package_on_its_spec_with_its_share_of_the_cores(tmp_path):
    workdir, output = tmp_path / "work" / "trial_0001", tmp_path / "sweeps" / "s" / "trial_0001.log"
    output.parent.mkdir(parents=True)
    output.write_text("an earlier attempt\n")
    workdir.mkdir(parents=True)
    (workdir / "result.json").write_text('{"status": "ok"}')  # an earlier attempt's row is not this one's
    process, result = trials.start_child(SPEC, workdir, output)
    try:
        environment = dict(item.split("=", 1) for item in
                           Path(f"/proc/{process.pid}/environ").read_text().split("\0") if "=" in item)
    finally:
        process.kill()  # before the trial gets to import TensorFlow
        process.wait(30)
    assert process.args == [sys.executable, "-m", "maskdetect.trials", str(workdir / "spec.json"), str(result)]
    assert result == workdir / "result.json" and not result.exists()
    assert json.loads((workdir / "spec.json").read_text()) == SPEC
    assert (environment["TF_NUM_INTRAOP_THREADS"], environment["TF_NUM_INTEROP_THREADS"],
            environment["OMP_NUM_THREADS"]) == ("3", "2", "3")
    assert environment["PYTHONUNBUFFERED"] == "1" and environment["TF_CPP_MIN_LOG_LEVEL"] == "2"
    assert environment["PYTHONPATH"].split(os.pathsep)[0] == str(REPO)
    assert output.read_text().startswith("an earlier attempt\n")  # the trial's output is appended


def submit(executor: trials.LocalExecutor, number: int, output: Path) -> trials.Trial:
    trial = trials.Trial(number, {"epochs": 2}, Settings(**SPEC["settings"]))
    executor.submit(trial, {**SPEC, "threads": 1}, output)
    executor.running[-1].process.kill()  # ended before it gets to import TensorFlow
    return trial


def test_a_local_executor_hands_back_an_ended_trial_once_with_its_row_and_keeps_only_its_log(tmp_path):
    executor = trials.LocalExecutor(jobs=2, workdir=tmp_path / "work")
    assert executor.free() == 2
    start = time.monotonic()
    assert executor.finished(timeout=5) == []  # nothing running: no wait
    assert time.monotonic() - start < 1
    trial = submit(executor, 7, tmp_path / "logs" / "trial_0007.log")
    assert executor.free() == 1 and (tmp_path / "work" / "trial_0007" / "spec.json").is_file()
    ((done, row),) = executor.finished(timeout=30)
    assert done is trial and row["status"] == "failed" and "signal 9" in row["error"]
    assert executor.free() == 2 and executor.running == []
    assert not (tmp_path / "work" / "trial_0007").exists() and (tmp_path / "logs" / "trial_0007.log").is_file()
    assert executor.finished(timeout=0.1) == []


def test_stopping_a_local_executor_hands_back_every_running_trial_as_interrupted(tmp_path):
    executor = trials.LocalExecutor(jobs=2, workdir=tmp_path / "work")
    first, second = (submit(executor, number, tmp_path / f"trial_{number}.log") for number in (1, 2))
    assert executor.free() == 0
    stopped = executor.stop()
    assert [trial for trial, _ in stopped] == [first, second]
    assert all(row["status"] == "interrupted" and "stopped by Ctrl-C" in row["error"] for _, row in stopped)
    assert executor.running == [] and executor.free() == 2


def test_a_sweep_skips_what_the_log_completed_and_logs_an_invalid_combination_as_failed_without_a_child(tmp_path):
    logs = tmp_path / "logs"
    base = {"model": "small", "data": str(tmp_path / "processed_data"), "logs": str(logs), "image_size": 32}
    planned = sweep.plan(sweep.expand({"epochs": [1, 2], "kernel_size": [3, 4]}), base, "hash")
    valid = [trial for trial in planned if trial.settings is not None]
    invalid = [trial for trial in planned if trial.settings is None]
    assert len(valid) == len(invalid) == 2 and "--kernel-size" in invalid[0].error
    # the valid ones ran before, in another sweep: ok and pruned rows, as train.run logs them
    for trial, status in zip(valid, ("ok", "pruned"), strict=True):
        settings = trial.settings
        runlog.append_log(logs, {**dataclasses.asdict(settings), "learning_rate": settings.rate, "data_hash": "hash",
                                 "status": status, "sweep_id": "earlier", "val_accuracy": 0.8})
    previous = records.read_rows(logs / runlog.LOG_NAME)

    outcome = trials.run_sweep(planned, logs, "s1", trials.LocalExecutor(jobs=1, workdir=tmp_path / "work"), 1,
                               previous=previous, median_grace=1)
    assert (outcome.skipped, outcome.interrupted) == (2, False)
    assert [(row["status"], row["sweep_id"], row["kernel_size"]) for row in outcome.rows] == [
        ("failed", "s1", 4), ("failed", "s1", 4)]
    assert all("--kernel-size" in row["error"] for row in outcome.rows)
    rows = records.read_rows(logs / runlog.LOG_NAME)
    assert [(row["status"], row["sweep_id"]) for row in rows[2:]] == [("failed", "s1"), ("failed", "s1")]
    assert not (tmp_path / "work").exists() and not (logs / runlog.SWEEP_DIR).exists()  # no child was started
