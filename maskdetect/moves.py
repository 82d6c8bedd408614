"""Moving the user's files, recorded so that every change can be undone.

The only stages that touch ``original_data/`` in place (organise and duplicate removal) plan a list
of :class:`Move` first and hand it to :func:`apply_moves`. Each move is written to the journal
(``<logs>/preprocess/renames.csv``) *before* it happens, so a run killed at any moment leaves a
journal that covers every file it moved; :func:`undo` walks the journal backwards.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from maskdetect import records, runtime

log = logging.getLogger(__name__)

RENAME = "rename"
SET_ASIDE = "set_aside"
RELABEL = "relabel"  # a crop moved to another class folder in review
DELETE = "delete"
UNDO = "undo"

REJECTED_DIR = "_rejected"
JOURNAL_FIELDS = [
    "time", "run", "stage", "input", "action", "original", "new", "reason", "detail", "sha256", "size",
]
# Journal rows are written and flushed in batches ahead of the moves they describe.
_BATCH = 256


@dataclass(frozen=True)
class Move:
    """One planned change. Paths are POSIX paths relative to the input folder."""

    original: str
    new: str
    action: str
    reason: str = ""
    detail: str = ""
    sha256: str = ""
    size: int = 0


def journal_path(logs: str | os.PathLike) -> Path:
    return Path(logs) / "preprocess" / "renames.csv"


def relative(path: Path, root: Path) -> str:
    return PurePosixPath(path.relative_to(root)).as_posix()


def free_name(wanted: str, taken: set[str]) -> str:
    """``wanted``, or ``stem_1.ext``, ``stem_2.ext``... whichever is not in ``taken``; then taken."""
    candidate, number = wanted, 0
    stem, dot, extension = wanted.rpartition(".")
    if not stem:  # no extension
        stem, dot, extension = wanted, "", ""
    while candidate in taken:
        number += 1
        candidate = f"{stem}_{number}{dot}{extension}"
    taken.add(candidate)
    return candidate


def set_aside_moves(
    root: Path, entries: Sequence[tuple[str, str, str, str, int]], delete: bool
) -> list[Move]:
    """Moves that put each ``(relative path, reason, detail, sha256, size)`` under ``_rejected/<reason>/``.

    The relative path is kept below the reason folder, so the user sees where a file came from;
    a name already taken there gets a numbered suffix instead of overwriting anything.
    """
    taken: set[str] = set()
    moves = []
    for original, reason, detail, digest, size in entries:
        if delete:
            moves.append(Move(original, "", DELETE, reason, detail, digest, size))
            continue
        wanted = f"{REJECTED_DIR}/{reason}/{original}"
        folder = (root / wanted).parent
        if folder.is_dir():
            taken.update(relative(entry, root) for entry in folder.iterdir())
        moves.append(Move(original, free_name(wanted, taken), SET_ASIDE, reason, detail, digest, size))
    return moves


@contextmanager
def _interrupt_after() -> Iterator[None]:
    """Hold back Ctrl-C (and SIGTERM) until the block is done, so a move and its record never come apart."""
    caught: list[int] = []
    try:
        previous = {number: signal.signal(number, lambda number, frame: caught.append(number))
                    for number in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: signals cannot be handled here anyway
        yield
        return
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        if caught:
            raise KeyboardInterrupt


def _row(move: Move, run: str, stage: str, root: Path) -> dict:
    row = asdict(move)
    row.update(time=time.strftime("%Y-%m-%dT%H:%M:%S"), run=run, stage=stage, input=str(root))
    return row


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def apply_moves(
    root: Path, moves: Sequence[Move], logs: str | os.PathLike, stage: str, run: str | None = None
) -> Counter:
    """Carry out ``moves`` under ``root``, journaled; never overwrites a file. Counts by action."""
    root = Path(root).resolve()
    _check_writable(root, moves)
    journal = journal_path(logs)
    run = run or new_run_id()
    done: Counter = Counter()
    bar = tqdm(total=len(moves), desc=f"{stage}: moving", unit="file", dynamic_ncols=True, leave=False)
    try:
        for start in range(0, len(moves), _BATCH):
            batch = moves[start : start + _BATCH]
            with _interrupt_after():
                records.append_rows(journal, JOURNAL_FIELDS, [_row(move, run, stage, root) for move in batch])
            for move in batch:
                with _interrupt_after():
                    done[_apply_one(root, move)] += 1
                bar.update()
    finally:
        bar.close()
    return done


def _check_writable(root: Path, moves: Sequence[Move]) -> None:
    """Refuse before the first move when a folder a file leaves or enters cannot be written: a read-only class
    folder would otherwise stop the stage partway, some files renamed and some not."""
    folders = {(root / move.original).parent for move in moves}
    # a folder the stage creates needs its nearest existing parent writable
    folders |= {runtime.nearest_existing((root / move.new).parent, stop=root) for move in moves
                if move.action != DELETE}
    for folder in sorted(folders):
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ValueError(f"cannot move files in {folder}: it is not writable; make it writable (chmod u+w) or "
                             "copy the photos somewhere you can write, then run again (nothing was moved)")


def _apply_one(root: Path, move: Move) -> str:
    source = root / move.original
    if move.action == DELETE:
        source.unlink()
        return DELETE
    target = root / move.new
    # The plan picked a free name; a file appearing there since would be overwritten by rename.
    if target.exists() or target.is_symlink():
        log.error("not moving %s: %s already exists", move.original, move.new)
        return "skipped"
    target.parent.mkdir(parents=True, exist_ok=True)
    os.rename(source, target)
    return move.action


def since_last_undo(rows: Sequence[Mapping[str, str]]) -> list:
    """The journal rows still in effect: those after the last undo."""
    last_undo = max((i for i, row in enumerate(rows) if row.get("action") == UNDO), default=-1)
    return list(rows[last_undo + 1 :])


def undo(root: str | os.PathLike, logs: str | os.PathLike) -> Counter:
    """Put back every file the journal says was renamed or set aside under ``root``, newest first."""
    root = Path(root).resolve()
    journal = journal_path(logs)
    rows = [row for row in records.read_rows(journal) if row["input"] == str(root)]
    pending = since_last_undo(rows)
    counts: Counter = Counter()
    for row in tqdm(list(reversed(pending)), desc="undo", unit="file", dynamic_ncols=True, leave=False):
        original, new = root / row["original"], root / row["new"]
        if row["action"] == DELETE:
            log.warning("cannot restore %s: it was deleted for good (--delete)", row["original"])
            counts["deleted"] += 1
            continue
        new_there = new.exists() or new.is_symlink()
        original_there = original.exists() or original.is_symlink()
        if not new_there:
            # A run killed between writing its journal and moving leaves rows for moves never made.
            if not original_there:
                log.warning("cannot restore %s: %s is gone", row["original"], row["new"])
                counts["missing"] += 1
            continue
        if original_there:
            log.warning("not restoring %s: a file of that name exists again", row["original"])
            counts["conflict"] += 1
            continue
        with _interrupt_after():
            original.parent.mkdir(parents=True, exist_ok=True)
            os.rename(new, original)
        counts["restored"] += 1
    _remove_empty_dirs(root / REJECTED_DIR)
    if pending:
        records.append_rows(
            journal, JOURNAL_FIELDS, [_row(Move("", "", UNDO), new_run_id(), UNDO, root)]
        )
    return counts


def _remove_empty_dirs(top: Path) -> None:
    """Remove ``top`` and the folders below it that are empty; the pipeline made them."""
    if not top.is_dir():
        return
    for directory, _, _ in sorted(os.walk(top), key=lambda entry: -len(entry[0])):
        with contextlib.suppress(OSError):  # not empty: it holds files the user put there
            os.rmdir(directory)
