"""Append-only CSV records that survive a kill at any moment and two writers at once.

Writers take turns on a lock held on the record file itself (``flock``), so no lock file is left in the user's
folders; a lock dies with its process, so a kill leaves none behind either."""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

# File names may hold bytes that are not UTF-8; surrogateescape carries them through unchanged.
_ENCODING = {"encoding": "utf-8", "errors": "surrogateescape"}


@contextlib.contextmanager
def naming(path: str | os.PathLike) -> Iterator[None]:
    """Name ``path`` in an OSError raised in the block that names no file: a write or flush to a full disk raises
    ENOSPC without one, and ``run_cli`` can then say which path could not be written."""
    try:
        yield
    except OSError as error:
        if error.filename is not None:
            raise
        raise OSError(error.errno, error.strerror or str(error), os.fspath(path)) from error


@contextlib.contextmanager
def replacing(path: str | os.PathLike, suffix: str = ".partial") -> Iterator[Path]:
    """A temporary name beside ``path`` for the block to write, renamed over ``path`` when the block ends: a full
    disk or a kill leaves the earlier file as it was, and a failed block leaves no temporary file behind. The
    name (``.<name>.<pid><suffix>``) is this process's own, so two writers never share it; an error that names
    no file names ``path`` (:func:`naming`)."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}{suffix}")
    try:
        with naming(path):
            yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_whole(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` by a rename (:func:`replacing`)."""
    with replacing(path) as partial:
        partial.write_text(text, encoding="utf-8")


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """Hold the record at ``path`` (created empty when absent) for this writer alone.

    The lock is on the file: a rewrite renames a new file over it, so a writer that waited on the old one
    finds, once it holds it, that it is no longer the record, and locks the new one instead.
    """
    while True:
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        except PermissionError:  # a record the user made read-only can still be replaced, as before
            if not os.path.lexists(path):  # no record, in a folder that cannot take one: say so, not "absent"
                raise
            descriptor = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            try:
                current = os.stat(path)
            except FileNotFoundError:
                continue
            if os.path.samestat(os.fstat(descriptor), current):
                # the lock file of earlier versions, should one be left beside the record
                with contextlib.suppress(OSError):
                    if os.stat(f"{path}.lock").st_size == 0:
                        os.unlink(f"{path}.lock")
                yield
                return
        finally:
            os.close(descriptor)  # and with it the lock


def append_rows(path: str | os.PathLike, fieldnames: Sequence[str], rows: Iterable[Mapping]) -> None:
    """Append ``rows`` to the CSV at ``path``, writing the header only when the file is new.

    The rows go out in one write under a file lock and are flushed to disk before this returns,
    so concurrent writers never interleave and a kill leaves whole rows only. A file that already
    exists keeps its own column order; a row with a column it lacks is an error.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _lock(path):
        header = _read_header(path)
        columns = list(header or fieldnames)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="raise", lineterminator="\n")
        if not header:
            writer.writeheader()
        for row in rows:
            unknown = set(row) - set(columns)
            if unknown:
                raise ValueError(f"{path} has no column(s) {sorted(unknown)}")
            writer.writerow(row)
        size = path.stat().st_size
        try:
            with naming(path), open(path, "a", newline="", **_ENCODING) as handle:
                handle.write(buffer.getvalue())
                handle.flush()
                os.fsync(handle.fileno())
        except OSError:
            # a full disk can take part of the rows: cut them off, so the record keeps whole rows only
            with contextlib.suppress(OSError):
                os.truncate(path, size)
            raise


def read_header(path: str | os.PathLike) -> list[str] | None:
    """The column names of an existing record, or None for an absent or empty file."""
    return _read_header(Path(path))


def _read_header(path: Path) -> list[str] | None:
    if not path.exists() or path.stat().st_size == 0:
        return None
    with open(path, newline="", **_ENCODING) as handle:
        return next(csv.reader(handle), None)


def read_rows(path: str | os.PathLike) -> list[dict[str, str]]:
    """Every row of a CSV record; an absent file has none."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="", **_ENCODING) as handle:
        return list(csv.DictReader(handle))


def finite_number(value: object) -> float | None:
    """A CSV field as a finite number; None for an empty, non-numeric or non-finite field."""
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


def replace_rows(path: str | os.PathLike, fieldnames: Sequence[str], rows: Iterable[Mapping]) -> None:
    """Rewrite a record whole, for the rare edit of an append-only record (a review, a resume).

    Written to a temporary file and renamed over the old one under the same lock as appends, so a
    reader sees the old or the new record, never a mix, and no concurrent append is lost.
    """
    path = Path(path)
    with _lock(path):
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(fieldnames), extrasaction="raise", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        # after a failed write the record is as it was
        with replacing(path, ".rewrite") as temporary, open(temporary, "w", newline="", **_ENCODING) as handle:
            handle.write(buffer.getvalue())
            handle.flush()
            os.fsync(handle.fileno())
