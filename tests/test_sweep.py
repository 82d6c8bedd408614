"""auto_train.py: the grid, real tiny sweeps in child processes, kill and resume, failures, the report, Ray."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import make_crop_dataset, make_labelled_folder, sigint_as_in_a_terminal

from maskdetect import records, runlog, sweep, train, trials

REPO = Path(__file__).resolve().parents[1]
TINY = ["--model", "small", "--epochs", "2", "--image-size", "32"]


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> Path:
    return make_crop_dataset(tmp_path_factory.mktemp("sweep") / "processed_data", per_class=24)


def auto_train(*argv: str, **options) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "auto_train.py"), *argv], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=sigint_as_in_a_terminal,
                            **options)


def log_rows(logs: Path) -> list[dict]:
    path = logs / runlog.LOG_NAME
    if not path.exists():
        return []
    with open(path, newline="") as stream:  # the csv module itself must read the file whole and valid
        return list(csv.DictReader(stream))


def trial_children(parent: int) -> list[int]:
    """Processes whose parent is ``parent`` and that run a trial."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(fields[1]) == parent and "maskdetect.trials" in command:
            found.append(int(entry.name))
    return found


def wait_for(condition, timeout: float = 120.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# ---------------------------------------------------------------- the plan

def test_flags_grid_files_max_trials_and_seeds(tmp_path):
    parser = sweep.build_parser()
    args = parser.parse_args(["--model", "small", "deep", "--batch-size", "16", "32", "64", "--seeds", "1", "2"])
    grid = sweep.grid_from(args)
    assert grid == {"model": ["small", "deep"], "batch_size": [16, 32, 64], "seed": [1, 2]}
    assert len(sweep.expand(grid)) == 12
    subset = sweep.expand(grid, max_trials=5)
    assert len(subset) == 5 and subset == sweep.expand(grid, max_trials=5)  # the same subset on a rerun

    (tmp_path / "grid.yaml").write_text("model: [small, deep]\nkernel-size: [3, 5]\nepochs: 4\n")
    (tmp_path / "grid.json").write_text(json.dumps({"optimizer": ["adam", "sgd"], "image_size": [48, 64]}))
    from_yaml = sweep.grid_from(parser.parse_args(["--grid", str(tmp_path / "grid.yaml"), "--epochs", "2", "3"]))
    assert from_yaml == {"model": ["small", "deep"], "kernel_size": [3, 5], "epochs": [2, 3]}  # flags win
    assert len(sweep.expand(sweep.grid_from(parser.parse_args(["--grid", str(tmp_path / "grid.json")])))) == 4
    assert sweep.grid_from(parser.parse_args([])) == sweep.DEFAULT_GRID

    (tmp_path / "bad.yaml").write_text("colour: [red]\n")
    with pytest.raises(ValueError, match="unknown hyperparameter 'colour'"):
        sweep.grid_from(parser.parse_args(["--grid", str(tmp_path / "bad.yaml")]))
    with pytest.raises(ValueError, match="batch_size value 'big' in the grid is not an int"):
        sweep.grid_from(parser.parse_args(["--batch-size", "big"]))


def test_the_median_stopping_rule():
    completed = [[0.6, 0.7, 0.8], [0.5, 0.9, 0.85], [0.7, 0.75, 0.9]]
    medians = trials.median_curve(completed, min_trials=3)
    assert medians == pytest.approx([0.6, 0.75, 0.9])  # of each trial's best so far
    assert trials.median_curve(completed[:2], min_trials=3) == [None, None, None]  # too few to judge
    assert not trials.should_stop([0.55], medians, grace=2)  # within the grace epochs
    assert trials.should_stop([0.55, 0.6], medians, grace=2)
    assert not trials.should_stop([0.55, 0.8], medians, grace=2)
    assert not trials.should_stop([0.5, 0.5, 0.5, 0.5], medians, grace=2)  # past what completed trials reached


def test_bad_flags_and_a_missing_ray_are_one_line(crops, tmp_path, capsys, monkeypatch):
    assert sweep.main(["--data", str(crops), "--logs", str(tmp_path), "--jobs", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --jobs must be at least 1, not 0"
    assert sweep.main(["--data", str(tmp_path / "nothing"), "--logs", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)
    assert sweep.main(["--data", str(crops), "--logs", str(tmp_path), *TINY, "--ray", "127.0.0.1:1"]) == 2
    assert "pip install -r requirements-ray.txt" in capsys.readouterr().err


# ---------------------------------------------------------------- real sweeps

@pytest.mark.slow
@pytest.mark.timeout(1200)  # two sweeps of real trials: 2 min on 2 busy cores
def test_four_trials_survive_a_sigkill_and_resume_only_the_missing_ones(crops, tmp_path):
    logs = tmp_path / "logs"
    argv = ["--data", str(crops), "--logs", str(logs), *TINY, "--batch-size", "8", "16", "--kernel-size", "3", "5"]
    driver = auto_train(*argv)
    wait_for(lambda: len(log_rows(logs)) >= 1, what="the first trial's row")
    children = wait_for(lambda: trial_children(driver.pid), what="the second trial to start")
    driver.kill()  # SIGKILL: no handler runs
    driver.communicate()
    # the kernel takes the running trial down with the driver: nothing trains on unseen
    wait_for(lambda: not any(alive(pid) for pid in children), timeout=10, what="the orphaned trial to die")
    before = log_rows(logs)
    assert 1 <= len(before) < 4 and all(row["status"] == "ok" for row in before)

    rerun = auto_train(*argv)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert f"{len(before)} already done (skipped)" in out
    rows = log_rows(logs)
    assert len(rows) == 4 and all(row["status"] == "ok" for row in rows)
    assert len({(row["batch_size"], row["kernel_size"]) for row in rows}) == 4  # each trial once
    assert len({row["sweep_id"] for row in rows}) == 1 and rows[0]["sweep_id"]
    assert all(Path(row["model_path"]).is_file() for row in rows)
    assert "leaderboard" in out and "reproduce:  ./train_a_model.py" in out

    again = auto_train(*argv)
    out, _ = again.communicate(timeout=120)
    assert again.returncode == 0 and "4 already done (skipped)" in out and len(log_rows(logs)) == 4
    restarted = auto_train(*argv, "--restart", "--max-trials", "1")
    restarted.communicate(timeout=120)
    assert restarted.returncode == 0 and len(log_rows(logs)) == 5


@pytest.mark.slow
def test_a_failing_trial_does_not_stop_the_others(crops, tmp_path):
    logs = tmp_path / "logs"
    # two trials at once: one of them is killed as the out-of-memory killer would, the other trains;
    # the other two are bad combinations
    driver = auto_train("--data", str(crops), "--logs", str(logs), *TINY, "--batch-size", "8", "16",
                        "--learning-rate", "0.001", "50", "--jobs", "2")
    child = wait_for(lambda: trial_children(driver.pid), what="the first trial")[0]
    os.kill(child, signal.SIGKILL)
    out, err = driver.communicate(timeout=300)
    assert driver.returncode == 1, err
    rows = log_rows(logs)
    assert [row["status"] for row in rows].count("ok") == 1 and len(rows) == 4
    failed = [row for row in rows if row["status"] == "failed"]
    assert any("killed by signal 9 (out of memory?)" in row["error"] for row in failed)
    assert sum("--learning-rate must be between 0 and 10" in row["error"] for row in failed) == 2
    assert "1 ok, 0 pruned, 3 failed" in out


@pytest.mark.slow
def test_ctrl_c_stops_the_running_trial_and_prints_the_leaderboard(crops, tmp_path):
    logs = tmp_path / "logs"
    # The second trial works on 160 px images, each epoch about 25 times the first trial's work, and early
    # stopping needs 7 epochs at least: signalled as its first epoch starts, it cannot have finished.
    driver = auto_train("--data", str(crops), "--logs", str(logs), "--model", "small", "--epochs", "40", "--image-size",
                        "32", "160",
                        "--batch-size", "8", start_new_session=True)

    def second_trial_training() -> bool:
        return any("Epoch 1/" in path.read_text(errors="replace")
                   for path in (logs / runlog.SWEEP_DIR).glob("*/trial_0002.log"))

    wait_for(lambda: len(log_rows(logs)) >= 1 and second_trial_training(), timeout=240,
             what="the second trial's first epoch")
    os.killpg(driver.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole group gets it
    out, err = driver.communicate(timeout=120)
    assert driver.returncode == 130, err
    assert "leaderboard" in out and "auto_train: interrupted." in err
    rows = log_rows(logs)
    trial_logs = "\n".join(path.read_text(errors="replace")[-3000:]
                           for path in (logs / runlog.SWEEP_DIR).glob("*/trial_0002.log"))
    assert rows[0]["status"] in runlog.COMPLETED, rows[0]
    assert rows[-1]["status"] == "interrupted", (rows[-1].get("error"), trial_logs)


def test_a_trial_killed_after_the_driver_asked_it_to_stop_is_interrupted_not_failed(tmp_path):
    # a trial gets a grace period to write its own row after Ctrl-C; past it, it is killed: the user stopped it
    spec = {"settings": {"model": "small"}}
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    process.kill()
    process.wait()
    missing = tmp_path / "result.json"
    stopped = trials.child_result(process, missing, spec, tmp_path / "trial.log", stopped=True)
    assert stopped["status"] == "interrupted" and "signal 9" in stopped["error"], stopped
    died = trials.child_result(process, missing, spec, tmp_path / "trial.log")
    assert died["status"] == "failed" and "out of memory?" in died["error"], died


@pytest.mark.slow  # a sweep of real trainings; test_trials checks the stopping rule
def test_median_stopping_prunes_a_hopeless_trial(crops, tmp_path):
    settings = train.Settings(model="small", data=str(crops), logs=str(tmp_path / "logs"), epochs=5, image_size=32,
                              batch_size=16,
                              jobs=1)
    import dataclasses

    spec = {"settings": dataclasses.asdict(settings), "threads": 1,
            "median": {"grace": 1, "curve": [1.01] * 5}}  # completed trials that no real trial can reach
    row = trials.run_trial_blocking(spec, tmp_path / "work", tmp_path / "trial.log")
    assert row["status"] == "pruned" and row["epochs_run"] == 1, (tmp_path / "trial.log").read_text()
    assert row["curve"] and Path(row["model_path"]).is_file()


def test_report_ranks_by_validation_accuracy_never_test(tmp_path, capsys):
    logs = tmp_path / "logs"
    base = {"model": "small", "epochs": 30, "batch_size": 32, "image_size": 64, "kernel_size": 3,
            "optimizer": "adam", "learning_rate": 0.001, "augmentation": "light", "seed": 42, "data": "processed_data",
            "val_split": 0.15, "test_split": 0.15, "sweep_id": "s1"}
    for run_id, size, val, test, status in [("a", 48, 0.91, 0.99, "ok"), ("b", 64, 0.97, 0.90, "ok"),
                                             ("c", 96, 0.95, 0.95, "pruned"), ("d", 128, "", "", "failed")]:
        runlog.append_log(logs, {**base, "run_id": run_id, "image_size": size, "val_accuracy": val,
                                "test_accuracy": test, "status": status, "model_path": f"/runs/{run_id}/model.keras"})
    assert sweep.main(["--report", str(logs / runlog.LOG_NAME)]) == 0
    out = capsys.readouterr().out
    ranked = [line.split()[-1] for line in out.splitlines() if line[:3].strip().isdigit()]
    assert ranked == ["b", "c", "a"]
    assert "3 completed, 1 failed" in out
    assert "best model: /runs/b/model.keras" in out
    assert "--image-size 64" in out.split("reproduce:")[1]
    assert (logs / runlog.SWEEP_DIR / "all_val_accuracy.png").stat().st_size > 10_000
    assert sweep.main(["--logs", str(logs), "--report", "--sweep-id", "nope"]) == 2


def test_report_on_a_file_that_is_not_a_training_log_is_one_line_and_exit_2(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# maskdetect: face-mask detection\n\nFinds the faces in photos.\n")
    assert sweep.main(["--report", str(readme)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {readme} is not a training log (it has no {', '.join(runlog.IDENTITY_FIELDS)} columns): " \
                  "give the training_log.csv that train_a_model.py and auto_train.py write\n"
    assert not (tmp_path / runlog.SWEEP_DIR).exists()


def test_rank_on_ranks_scored_runs_first_and_best_model_follows(tmp_path, capsys):
    from maskdetect.inference import best_model

    labelled = make_labelled_folder(tmp_path / "street")
    logs = tmp_path / "logs"
    base = {"model": "small", "epochs": 30, "batch_size": 32, "image_size": 64, "kernel_size": 3,
            "optimizer": "adam", "learning_rate": 0.001, "augmentation": "light", "seed": 42, "data": "processed_data",
            "val_split": 0.15, "test_split": 0.15, "sweep_id": "s1", "status": "ok"}
    elsewhere = str(tmp_path / "another_folder")
    for run_id, val, folder, score in [("a", 0.99, str(labelled), 0.70), ("b", 0.95, str(labelled), 0.85),
                                       ("c", 0.97, "", ""), ("d", 0.90, elsewhere, 0.99)]:
        model = tmp_path / run_id / "model.keras"  # c's model file is gone: it cannot be scored
        if run_id != "c":
            model.parent.mkdir()
            model.write_bytes(b"not looked at")
        runlog.append_log(logs, {**base, "run_id": run_id, "val_accuracy": val, "model_path": str(model),
                                "rank_on": folder, "rank_on_accuracy": score})
    rows = records.read_rows(logs / runlog.LOG_NAME)
    assert [row["run_id"] for row in runlog.leaderboard(rows)] == ["a", "c", "b", "d"]  # validation accuracy
    assert [row["run_id"] for row in runlog.leaderboard(rows, labelled)] == ["b", "a", "c", "d"]
    # detect_mask.py's default model: ranked on the folder of the latest scored run (d's), with a model file
    assert best_model(logs) == tmp_path / "d" / "model.keras"
    assert runlog.ranking_folder(rows[:3]) == str(labelled)

    assert sweep.main(["--logs", str(logs), "--report", "--rank-on", str(labelled), "--top", "3"]) == 0
    out = capsys.readouterr().out
    ranked = [line.split() for line in out.splitlines() if line[:3].strip().isdigit()]
    assert [line[-1] for line in ranked] == ["b", "a", "c"]
    assert [line[1:3] for line in ranked] == [["0.8500", "0.9500"], ["0.7000", "0.9900"], ["-", "0.9700"]]
    assert "ranked by balanced accuracy" in out and "best model: " + str(tmp_path / "b" / "model.keras") in out


def test_a_bad_rank_on_folder_is_one_line_before_any_training(crops, tmp_path, capsys):
    logs = tmp_path / "logs"
    assert sweep.main(["--data", str(crops), "--logs", str(logs), *TINY, "--rank-on", str(tmp_path / "no")]) == 2
    assert capsys.readouterr().err.strip() == f"error: --rank-on {tmp_path / 'no'} does not exist"
    (tmp_path / "unlabelled").mkdir()
    assert sweep.main(["--data", str(crops), "--logs", str(logs), *TINY, "--rank-on",
                       str(tmp_path / "unlabelled")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: --rank-on: annotations") and "\n" not in error
    assert not logs.exists()


@pytest.mark.slow
def test_a_sweep_scores_each_trial_on_the_labelled_folder(crops, tmp_path):
    logs = tmp_path / "logs"
    labelled = make_labelled_folder(tmp_path / "street")
    driver = auto_train("--data", str(crops), "--logs", str(logs), *TINY, "--rank-on", str(labelled))
    out, err = driver.communicate(timeout=300)
    assert driver.returncode == 0, err[-3000:]
    (row,) = log_rows(logs)
    assert row["status"] == "ok" and row["rank_on"] == str(labelled.resolve())
    assert 0 <= float(row["rank_on_accuracy"]) <= 1
    per_class = json.loads(row["rank_on_per_class"])
    assert per_class["mask"]["faces"] == 1 and per_class["without_mask"]["faces"] == 2
    assert per_class["not a class of the model"] == {"faces": 1}
    assert "ranked by balanced accuracy" in out and f"{float(row['rank_on_accuracy']):.4f}" in out


# ---------------------------------------------------------------- Ray

def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def ray_head(tmp_path):
    pytest.importorskip("ray", reason="Ray is optional: pip install -r requirements-ray.txt")
    ray = shutil.which("ray", path=str(Path(sys.executable).parent))
    if ray is None:
        pytest.skip("the ray command is not installed beside this Python")
    port = _free_port()
    # a short temp dir: Ray's socket paths must stay under the 107-character limit
    temp = Path("/tmp") / f"ray-{port}"
    environment = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    started = subprocess.run([ray, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1",
                              "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats",
                              f"--temp-dir={temp}"], capture_output=True, text=True, env=environment, timeout=180)
    assert started.returncode == 0, started.stderr[-2000:]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True, env=environment, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
def test_a_sweep_on_a_local_ray_head(crops, tmp_path, ray_head):
    logs = tmp_path / "logs"
    driver = auto_train("--data", str(crops), "--logs", str(logs), *TINY, "--batch-size", "8", "16",
                        "--ray", ray_head)
    out, err = driver.communicate(timeout=400)
    assert driver.returncode == 0, err[-3000:]
    rows = log_rows(logs)
    assert len(rows) == 2 and all(row["status"] == "ok" for row in rows)
    assert {row["batch_size"] for row in rows} == {"8", "16"}
    assert "leaderboard" in out and all(Path(row["model_path"]).is_file() for row in rows)
    assert records.read_header(logs / runlog.LOG_NAME) == runlog.LOG_FIELDS


def test_weights_and_alpha_sweep_for_mobilenetv2_only():
    grid = sweep.normalise_grid({"model": ["small", "mobilenetv2"], "weights": ["imagenet", "none"],
                                 "alpha": [0.35, 0.5]})
    trials = sweep.plan(sweep.expand(grid), {"data": "processed_data"}, "hash")
    shown = sorted((trial.settings.model, trial.settings.weights, trial.settings.alpha) for trial in trials)
    # the small network once, whatever the weights and width; mobilenetv2 in all four combinations
    assert shown == [("mobilenetv2", "imagenet", 0.35), ("mobilenetv2", "imagenet", 0.5),
                     ("mobilenetv2", "none", 0.35), ("mobilenetv2", "none", 0.5), ("small", None, None)]
    assert [trial.number for trial in trials] == [1, 2, 3, 4, 5]
    assert "--weights none --alpha 0.5" in runlog.reproduce_command(
        {"model": "mobilenetv2", "weights": "none", "alpha": "0.5"})
