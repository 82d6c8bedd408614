"""What the report shows, read from a pipeline's folders: detection outputs, training runs, sweeps, data counts.

Every reader tolerates missing or damaged inputs: it returns nothing (None, {} or []) rather than raising, so the
page can say which stage has not run. Nothing here imports a stage, so nothing loads TensorFlow.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter, defaultdict
from pathlib import Path

from maskdetect import facecrops, images, moves, records
from maskdetect.runlog import LOG_NAME, leaderboard

log = logging.getLogger(__name__)

LEADERBOARD_SIZE = 20
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"})  # what a browser shows


def json_or_empty(path: Path) -> dict:
    """The JSON object in ``path``; {} when the file is missing, unreadable, not JSON or not an object."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def rows_or_empty(path: Path) -> list[dict[str, str]]:
    """The rows of the CSV record ``path`` (``records.read_rows``): [] when it is absent, and [] with a warning when
    it cannot be read or decoded."""
    try:
        return records.read_rows(path)
    except (OSError, UnicodeError, ValueError) as error:  # a damaged record: the section says so, the page stays
        log.warning("cannot read %s: %s", path, error)
        return []


# ---------------------------------------------------------------------------------------------
# detections


def newest_detection_folder(logs: Path) -> Path | None:
    """The most recently modified folder under ``<logs>/detect/`` (detect_mask.py's default output), or None."""
    top = Path(logs) / "detect"
    folders = [entry for entry in top.iterdir() if entry.is_dir()] if top.is_dir() else []
    return max(folders, key=lambda folder: folder.stat().st_mtime, default=None)


def _annotated(folder: Path, output: str) -> Path:
    # summary.json names each annotated file relative to the folder, or as detect_mask.py was given it
    path = Path(output)
    candidates = [path] if path.is_absolute() else [folder / path, path]
    return next((candidate for candidate in candidates if candidate.is_file()), candidates[0])


def detection_outputs(folder: Path, summary: dict) -> list[tuple[str, str, Path]]:
    """The annotated files of a detect_mask.py output folder.

    Args:
        folder: the output folder.
        summary: its summary.json ({} when absent).

    Returns:
        (source, kind, annotated file) per source: the sources summary.json lists whose annotated file exists
        inside ``folder``; when it lists none, every image in ``folder`` (outside hidden folders) as its own
        source, of kind ``image``.
    """
    listed = summary.get("sources") if isinstance(summary.get("sources"), list) else []
    found = [(str(item.get("source", "")), str(item.get("kind", "image")), _annotated(folder, str(item["output"])))
             for item in listed if isinstance(item, dict) and item.get("output")]
    if found:
        return [(source, kind, path) for source, kind, path in found
                if path.is_file() and path.resolve().is_relative_to(folder.resolve())]
    return [(path.name, "image", path) for path in sorted(folder.rglob("*"))
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
            and not any(part.startswith(".") for part in path.relative_to(folder).parts)]


# ---------------------------------------------------------------------------------------------
# training and sweeps


def _run_dir(row: dict, logs: Path) -> Path | None:
    for candidate in (logs / "runs" / row.get("run_id", ""), Path(row.get("run_dir") or "")):
        if row.get("run_id") and candidate.is_dir():
            return candidate
    return None


def latest_run(logs: Path) -> tuple[dict, Path] | None:
    """The newest successful training run.

    Returns:
        The newest ``ok`` row of ``<logs>/training_log.csv`` whose run folder exists, and that folder; without
        such a row, the newest folder under ``<logs>/runs/`` with a metrics.json, and its config.json ({} when
        unreadable) in place of the row; None when there is neither.
    """
    logs = Path(logs)
    for row in reversed(rows_or_empty(logs / LOG_NAME)):
        folder = _run_dir(row, logs)
        if row.get("status") == "ok" and folder is not None:
            return row, folder
    # no log: the newest run folder with metrics (folder names start with the time)
    runs = logs / "runs"
    folders = sorted((entry for entry in runs.iterdir() if (entry / "metrics.json").is_file()),
                     key=lambda entry: entry.name) if runs.is_dir() else []
    if folders:
        return json_or_empty(folders[-1] / "config.json"), folders[-1]
    return None


def sweep_leaderboard(logs: Path, size: int = LEADERBOARD_SIZE) -> tuple[str, list[dict], Counter]:
    """The newest sweep in ``<logs>/training_log.csv``, ranked as auto_train.py ranks it.

    Test accuracy rides along in the rows; it never ranks.

    Returns:
        The sweep's id, its best ``size`` completed runs by validation accuracy (ties: lower validation loss),
        and the count of its rows by status; ``("", [], Counter())`` when the log has no sweep.
    """
    rows = [row for row in rows_or_empty(Path(logs) / LOG_NAME) if row.get("sweep_id")]
    if not rows:
        return "", [], Counter()
    sweep = rows[-1]["sweep_id"]
    trials = [row for row in rows if row["sweep_id"] == sweep]
    return sweep, leaderboard(trials)[:size], Counter(row.get("status", "") for row in trials)


# ---------------------------------------------------------------------------------------------
# data set counts


def _files_in(folder: Path) -> int:
    count = 0
    for _directory, subdirs, files in os.walk(folder):
        subdirs[:] = [name for name in subdirs if not name.startswith(images.RESERVED_PREFIXES)]
        count += sum(1 for name in files if not name.startswith("."))
    return count


def data_counts(data: Path, processed: Path, logs: Path) -> dict:
    """The data set's counts per class after each stage.

    Args:
        data: the photos, one folder per class.
        processed: the face stage's output (faces.csv, sources.csv, rejected crops).
        logs: where the organise step's journal is.

    Returns:
        ``classes`` (sorted), and per class: ``kept`` (files in ``data`` now), ``aside`` (files set aside or
        deleted, by reason, from the journal since its last undo), ``sources`` (photos the face stage read, by
        status) and ``crops`` (crops by kind, plus ``rejected`` in review); ``journal`` and ``faces_run`` say
        whether the organise step and the face stage left records.
    """
    data, processed = Path(data), Path(processed)
    kept = {folder.name: _files_in(folder) for folder in images.class_dirs(data)} if data.is_dir() else {}
    journal = rows_or_empty(moves.journal_path(logs))
    ours = [row for row in journal if row.get("input") == str(data.resolve())]
    journal = ours or journal  # a journal written from another place: count it all
    aside: dict[str, Counter] = defaultdict(Counter)
    seen = set()
    for row in moves.since_last_undo(journal):
        key = (row.get("original"), row.get("reason"))
        if row.get("action") in (moves.SET_ASIDE, moves.DELETE) and key not in seen:
            seen.add(key)  # a rerun after a kill journals the unfinished moves again
            aside[row.get("original", "").split("/", 1)[0]][row.get("reason") or "?"] += 1
    sources: dict[str, Counter] = defaultdict(Counter)
    for row in rows_or_empty(processed / facecrops.SOURCES):
        sources[row.get("class", "")][row.get("status", "")] += 1
    crops: dict[str, Counter] = defaultdict(Counter)
    for row in rows_or_empty(processed / facecrops.MANIFEST):
        crops[row.get("class", "")][row.get("kind", "")] += 1
    for row in rows_or_empty(processed / facecrops.REJECTED_DIR / facecrops.REJECTED_RECORD):
        crops[row.get("class", "")]["rejected"] += 1
    classes = sorted(set(kept) | set(aside) | set(sources) | set(crops))
    return {"classes": classes, "kept": kept, "aside": aside, "sources": sources, "crops": crops,
            "journal": bool(journal), "faces_run": bool(sources or crops)}
