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
