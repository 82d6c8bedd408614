"""The training log, ``<logs>/training_log.csv``: its columns, how a row is appended, what makes two rows the
same trial, and how completed runs are ranked.

``train_a_model.py`` and ``auto_train.py`` write the log; the sweep's resume, ``detect_mask.py``'s default model
and the report read it. Those readers share the ranking (:func:`leaderboard`) and the reproduce command from
here, so none of them imports the sweep or the training stage. Pure Python: no TensorFlow, no Keras.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import shlex
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

from maskdetect import __version__, records
from maskdetect.records import finite_number
from maskdetect.settings import GRID_KEYS, HYPERPARAMETERS, MOBILENET_KEYS, Settings

log = logging.getLogger(__name__)

LOG_NAME = "training_log.csv"
LOG_FIELDS = [
    "time", "run_id", "sweep_id", "status", "model", "epochs", "batch_size", "image_size", "kernel_size",
    "optimizer", "learning_rate", "augmentation", "seed", "val_split", "test_split", "weights", "data", "data_size",
    "data_hash", "classes", "train_size", "val_size", "test_size", "skipped_crops", "epochs_run", "best_epoch",
    "stopped_early", "train_seconds", "images_per_second", "train_accuracy", "val_accuracy", "val_loss",
    "test_accuracy", "test_loss", "roc_auc", "per_class", "model_path", "run_dir", "notes", "code_version",
    "error", "alpha", "warmup_epochs", "rank_on", "rank_on_accuracy", "rank_on_per_class",
]
# A sweep's folder beside the log: its trials' output and its plots.
SWEEP_DIR = "sweeps"
# The statuses of a run that finished: trained to the end, or stopped by a sweep's median rule.
COMPLETED = ("ok", "pruned")
# What makes two runs the same trial, together with the data set hash: a rerun skips a completed one.
KEY_FIELDS = (*GRID_KEYS, "val_split", "test_split")


def code_version() -> str:
    """The package version and, inside a git checkout, the commit (``+<hash>[-dirty]``) a run was trained with."""
    try:
        commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, timeout=10)
        if commit.returncode == 0 and commit.stdout.strip():
            return f"{__version__}+{commit.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    return __version__


# The columns every version of the log has had: a CSV without them is another file, not an older log.
IDENTITY_FIELDS = ("time", "run_id", "status", "model", "val_accuracy")


def check_log(path: str | Path, what_to_do: str = "move it aside or give another --logs folder") -> list[str] | None:
    """The header of the training log at ``path`` (None when absent or empty).

    Raises:
        ValueError: ``path`` is a folder, or a file that is not a training log (a CSV of other columns, a
            README): one line naming it and what to do.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not a training log; give the training_log.csv file")
    try:
        header = records.read_header(path)
    except csv.Error:  # not text: NUL bytes
        header = []
    if header is not None and not set(IDENTITY_FIELDS) <= set(header):
        raise ValueError(f"{path} is not a training log (it has no {', '.join(IDENTITY_FIELDS)} columns): "
                         f"{what_to_do}")
    return header


def append_log(logs: str | Path, row: dict) -> None:
    """One row in ``<logs>/training_log.csv``. A log begun by an older version keeps its columns:
    columns it lacks are left out with a warning, never a lost run. A file there that is not a training log
    is refused (ValueError, :func:`check_log`) and left as it was."""
    path = Path(logs) / LOG_NAME
    header = check_log(path) or LOG_FIELDS
    missing = [key for key in LOG_FIELDS if key not in header]
    if missing:
        log.warning("%s has no column(s) %s (an older log); they are left out of this row. Move the file "
                    "aside to start a log with every column.", path, ", ".join(missing))
    records.append_rows(path, header, [{key: row.get(key, "") for key in header}])


# ---------------------------------------------------------------- the identity of a trial

def normalised(value: object) -> str:
    """A log cell as it compares: numbers to six significant digits (``0.001`` and ``1e-3`` are one value),
    empty for None."""
    if value is None or value == "":
        return ""
    try:
        return format(float(value), ".6g")
    except (TypeError, ValueError):
        return str(value)


def trial_key(values: Mapping[str, object], data_hash: str) -> str:
    """The identity of a trial: its settings and the data set, as the log records them."""
    return "|".join([*(f"{key}={normalised(values.get(key))}" for key in KEY_FIELDS), f"data={data_hash}"])


def settings_key(settings: Settings, data_hash: str) -> str:
    """The key of a run of ``settings`` on the data set ``data_hash`` (see :func:`trial_key`)."""
    # the log records the learning rate actually used, so the optimizer's default counts as given
    return trial_key({**dataclasses.asdict(settings), "learning_rate": settings.rate}, data_hash)


def completed_keys(rows: Iterable[Mapping[str, str]]) -> set[str]:
    """Keys of the log's runs that finished (ok, or stopped by the median rule)."""
    return {trial_key(row, row.get("data_hash", "")) for row in rows if row.get("status") in COMPLETED}


# ---------------------------------------------------------------- ranking

def folder_key(folder: str | Path) -> str:
    """The folder as the log records it: an absolute path, so that rows compare whatever the working folder."""
    return str(Path(folder).expanduser().resolve())


def scored_on(row: Mapping[str, str], folder: str | Path | None) -> float | None:
    """The row's balanced accuracy on the labelled ``folder`` (see maskdetect.evaluate), None when it was not
    scored on that folder."""
    if not folder or not row.get("rank_on") or folder_key(row["rank_on"]) != folder_key(folder):
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
