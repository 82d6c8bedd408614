"""preprocess.sh end to end: awkward names, a second run, undo, Ctrl-C, and the real faces data set."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from helpers import PYTHON, REPO, build_messy_tree, shared_data, sigint_as_in_a_terminal, tree_digest
from PIL import Image

from maskdetect import moves


def run_preprocess(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(REPO / "preprocess.sh"), *args],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, "PYTHON": PYTHON},
    )


def summaries(output: str) -> dict[str, str]:
    return {line.split(":")[0]: line for line in output.splitlines() if line.startswith(("organise:", "remove_dup"))}


@pytest.mark.slow
def test_awkward_names_second_run_and_undo(tmp_path):
    # a leading dash, a space and non-ASCII in the folder names themselves
    root = tmp_path / "-my photos ü"
    build_messy_tree(root)
    original = tree_digest(root)
    logs, output = tmp_path / "-logs", tmp_path / "out"

    first = run_preprocess("--input", str(root), "--output", str(output), "--logs", str(logs))
    assert first.returncode == 0, first.stderr
    lines = summaries(first.stdout)
    assert "6 set aside" in lines["organise"] and "preprocess: done" in first.stdout
    assert "remove_duplicates" in lines
    organised = tree_digest(root)
    assert Counter(organised.values()) == Counter(original.values())

    second = run_preprocess("--input", str(root), "--output", str(output), "--logs", str(logs))
    assert second.returncode == 0, second.stderr
    assert "(0 renamed" in summaries(second.stdout)["organise"]
    assert "0 set aside" in summaries(second.stdout)["remove_duplicates"]
    assert tree_digest(root) == organised

    undo = run_preprocess("--input", str(root), "--logs", str(logs), "--undo")
    assert undo.returncode == 0, undo.stderr
    assert tree_digest(root) == original


def test_bad_flags_and_missing_input_are_one_line_errors(tmp_path):
    for args, message in [(["--bogus"], "unknown option"), (["--input"], "needs a value"),
                          (["--input", str(tmp_path / "absent")], "does not exist")]:
        result = run_preprocess(*args)
        assert result.returncode == 2
        assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr


def _small_tree(root: Path) -> None:
    for index, name in enumerate(("mask", "without_mask", "mask", "without_mask")):
        (root / name).mkdir(parents=True, exist_ok=True)
        pixels = np.random.default_rng(index).integers(0, 256, size=(48, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / name / f"photo {index}.png")


@pytest.mark.parametrize("args, words", [
    (["--hash-distance", "99"], "--hash-distance must be between 0 and 64, not 99"),
    (["--min-size", "0"], "--min-size must be at least 1, not 0"),
    (["--jobs", "0"], "--jobs must be at least 1, not 0"),
    (["--", "--margin", "5"], "--margin must be between 0 and 2"),
    (["--", "--label-map", "a=b"], "--label-map is for --annotations"),
], ids=["hash distance", "min size", "jobs", "process_faces flag", "label map alone"])
def test_every_flag_is_checked_before_step_1_renames_anything(tmp_path, args, words):
    root, logs = tmp_path / "photos", tmp_path / "logs"
    _small_tree(root)
    before = tree_digest(root)
    result = run_preprocess("--input", str(root), "--logs", str(logs), *args)
    assert result.returncode == 2 and words in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "== 1/3" not in result.stdout
    assert tree_digest(root) == before and sorted(path.name for path in root.iterdir()) == ["mask", "without_mask"]
    assert not logs.exists()


def test_the_undo_hint_names_the_logs_an_undo_without_a_journal_says_so_and_class_folders_are_checked(tmp_path):
    root, logs = tmp_path / "photos", tmp_path / "my logs"
    _small_tree(root)
    (root / "empty class").mkdir()
    done = run_preprocess("--input", str(root), "--logs", str(logs), "--skip-faces")
    assert done.returncode == 0, done.stderr
    assert f"(undo: ./preprocess.sh --input {root} --logs {logs} --undo)" in done.stdout
    assert f"WARNING: class folder {root.resolve()}/empty class is empty" in done.stderr

    lost = run_preprocess("--input", str(root), "--logs", str(tmp_path / "other logs"), "--undo")
    assert lost.returncode == 2 and lost.stderr.count("\n") == 1, lost.stderr
    assert "nothing to undo; give the --input and --logs of the run to undo" in lost.stderr

    single = tmp_path / "single"
    (single / "mask").mkdir(parents=True)
    Image.new("RGB", (48, 48), "red").save(single / "mask" / "a.png")
    one = run_preprocess("--input", str(single), "--logs", str(logs), "--skip-faces", "--dry-run")
    assert one.returncode == 0 and "1 class folder(s) with photos in" in one.stderr
    assert "training needs two or more" in one.stderr


def _noise_tree(root: Path, count: int) -> None:
    rng = np.random.default_rng(7)
    for index in range(count):
        folder = root / ("mask" if index % 2 else "without_mask") / f"batch {index % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img {index}.png")


def test_ctrl_c_mid_run_loses_nothing_and_a_rerun_completes(tmp_path):
    root, logs = tmp_path / "data", tmp_path / "logs"
    _noise_tree(root, 2000)
    original = tree_digest(root)
    journal = moves.journal_path(logs)
    interrupted = False
    for _ in range(5):  # the move phase is short; retry until the signal lands inside it
        process = subprocess.Popen(
            [str(REPO / "preprocess.sh"), "--input", str(root), "--logs", str(logs), "--skip-faces"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
            env={**os.environ, "PYTHON": PYTHON}, preexec_fn=sigint_as_in_a_terminal,
        )
        size = journal.stat().st_size if journal.exists() else 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if journal.exists() and journal.stat().st_size > size:
                os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
                break
            time.sleep(0.002)
        _, err = process.communicate(timeout=120)
        assert Counter(tree_digest(root).values()) == Counter(original.values()), "a file was lost"
        if process.returncode != 0:
            assert "interrupted" in err
            interrupted = True
            break
        # finished before the signal landed: start from the original tree again
        assert run_preprocess("--input", str(root), "--logs", str(logs), "--undo").returncode == 0
    assert interrupted, "could not interrupt the run mid-way"

    rerun = run_preprocess("--input", str(root), "--logs", str(logs), "--skip-faces")
    assert rerun.returncode == 0, rerun.stderr
    names = [name for name in tree_digest(root) if not name.startswith("_rejected")]
    assert all(Path(name).name.startswith(("mask_", "without_mask_")) for name in names)
    assert run_preprocess("--input", str(root), "--logs", str(logs), "--undo").returncode == 0
    assert tree_digest(root) == original


@pytest.mark.slow
def test_faces_dataset_end_to_end(tmp_path):
    source = shared_data("faces_dataset")
    root, logs = tmp_path / "original_data", tmp_path / "logs"
    shutil.copytree(source, root)
    for directory, _, files in os.walk(root):  # the shared copy is read-only
        os.chmod(directory, 0o755)
        for name in files:
            os.chmod(os.path.join(directory, name), 0o644)
    original = tree_digest(root)

    first = run_preprocess("--input", str(root), "--logs", str(logs), "--skip-faces")
    assert first.returncode == 0, first.stderr
    lines = summaries(first.stdout)
    print(lines["organise"], lines["remove_duplicates"], sep="\n")
    assert Counter(tree_digest(root).values()) == Counter(original.values())
    kept = [p for c in ("mask", "without_mask") for p in (root / c).iterdir()]
    assert len(kept) > 3500

    second = run_preprocess("--input", str(root), "--logs", str(logs), "--skip-faces")
    assert second.returncode == 0, second.stderr
    assert "(0 renamed" in summaries(second.stdout)["organise"]
    assert " 0 set aside" in summaries(second.stdout)["remove_duplicates"]

    undo = run_preprocess("--input", str(root), "--logs", str(logs), "--undo")
    assert undo.returncode == 0, undo.stderr
    assert tree_digest(root) == original
    assert sorted(p.name for p in root.iterdir()) == ["mask", "without_mask"]
