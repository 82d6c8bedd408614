"""What every command shares: logging set-up for entry points, exit codes, one-line errors about paths, a
parallel map."""

from __future__ import annotations

import contextlib
import errno
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

from tqdm import tqdm

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

T = TypeVar("T")
R = TypeVar("R")

# Below this many items a process pool costs more than it saves.
_POOL_MIN_ITEMS = 64


def configure_logging(verbose: bool = False) -> None:
    """One-line messages on stderr; called by entry points only, never on import."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


_interrupt_requested = False


def note_interrupt() -> None:
    """Record that Ctrl-C (or a polite kill) reached this process; a signal handler calls it."""
    global _interrupt_requested
    _interrupt_requested = True


def interrupt_requested() -> bool:
    """Whether Ctrl-C or a polite kill reached this process. A library can turn the KeyboardInterrupt raised in
    its callbacks into an error of its own (TensorFlow does while it traces a function): such an error, raised
    after this, is the interruption, not a failure."""
    return _interrupt_requested


def _interrupt(number, frame):
    note_interrupt()
    raise KeyboardInterrupt


# What to do about an OSError on one of the user's paths, by errno.
_OS_ADVICE = {
    errno.EACCES: "make it writable (or readable) for you, or give another path",
    errno.EPERM: "make it writable (or readable) for you, or give another path",
    errno.EROFS: "it is on a read-only file system; give a path elsewhere",
    errno.ENOSPC: "the disk is full; free some space or give a path on another disk",
    errno.EDQUOT: "the disk quota is used up; free some space or give a path elsewhere",
    errno.ENOTDIR: "a file is where a folder is expected; move the file aside or give another path",
    errno.EISDIR: "a folder is where a file is expected; move the folder aside or give another path",
    errno.EEXIST: "something of that name is there already; move it aside or give another path",
    errno.ENOENT: "it does not exist (or was removed while this ran); check the path",
    errno.ENAMETOOLONG: "the name is too long for this file system; give a shorter path",
}


def os_error_line(error: OSError) -> str:
    """One line for an OSError about a path: the path, what went wrong and what to do (no traceback)."""
    where = f"{error.filename}" + (f" -> {error.filename2}" if error.filename2 else "")
    reason = error.strerror or str(error)
    advice = _OS_ADVICE.get(error.errno, "check the path and its permissions")
    return f"{where}: {reason}; {advice}"


def nearest_existing(path: str | os.PathLike, stop: str | os.PathLike | None = None) -> Path:
    """``path`` itself when it exists, else the nearest of its parents that does (or ``stop``, where the walk up
    ends): the folder whose permissions decide whether ``path`` can be created."""
    path = Path(path)
    while not path.exists() and path != path.parent and (stop is None or path != Path(stop)):
        path = path.parent
    return path


def check_writable(folder: str | os.PathLike, flag: str) -> None:
    """Refuse, before any long work, a ``folder`` that cannot be created or written: a file in the way, or a
    folder (the nearest that exists) the user cannot write. ``flag`` is the option that chooses it.

    Raises:
        ValueError: one line naming the path and what to do.
    """
    path = Path(folder)
    existing = nearest_existing(path)
    if not existing.is_dir():
        raise ValueError(f"{existing} is a file, not a folder: cannot write {path} there; move the file aside or "
                         f"give another {flag}")
    # os.access also answers for a read-only file system (EROFS); as root it grants every permission bit
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write in {existing} (permission denied or read-only): make it writable or give "
                         f"another {flag}")


def new_folder(path: str | os.PathLike) -> Path:
    """Create a folder no other run shares: ``path``, or ``path-2``, ``path-3``, ... when that name is taken.

    Each try is one ``mkdir`` that fails when the name exists, so two runs started in the same second get two
    folders, never one. Its parents are created as needed. Returns the folder created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    number = 1
    while True:
        candidate = path if number == 1 else path.with_name(f"{path.name}-{number}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            number += 1


def run_cli(body: Callable[[], int], interrupted: str) -> int:
    """Run a command's body: a ValueError is the user's mistake (one line, exit 2), Ctrl-C exits 130, an OSError
    about a path (a read-only folder, a full disk, a file where a folder should be) is one line naming the path
    and what to do, exit 1.

    A polite kill (SIGTERM) is handled like Ctrl-C, so it too leaves whole records behind. Either is noted
    (:func:`interrupt_requested`); a SIGINT handler the caller installed stays, and notes it itself.
    """
    previous = previous_int = None
    with contextlib.suppress(ValueError):  # not the main thread: no signal handlers there
        previous = signal.signal(signal.SIGTERM, _interrupt)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            previous_int = signal.signal(signal.SIGINT, _interrupt)
    try:
        return body()
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as error:
        if error.filename is None:
            if error.errno in (errno.ENOSPC, errno.EDQUOT):  # a write that did not say where: still one line
                print(f"error: {error.strerror}; {_OS_ADVICE[error.errno]}", file=sys.stderr)
                return EXIT_FAILURE
            raise  # not about a path: a bug or the machine, the traceback tells more
        print(f"error: {os_error_line(error)}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if previous_int is not None:
            signal.signal(signal.SIGINT, previous_int)


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Silence what C++ libraries write to stderr (TensorFlow's start-up lines, which no setting
    turns off in 2.21) while a block runs; Python exceptions still surface after it."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _init_worker(initializer: Callable[..., None] | None, initargs: tuple) -> None:
    # Ctrl-C reaches the whole process group; only the parent should act on it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if initializer is not None:
        initializer(*initargs)


def parallel_map(
    function: Callable[[T], R],
    items: Iterable[T],
    jobs: int,
    description: str,
    unit: str = "file",
    initializer: Callable[..., None] | None = None,
    initargs: tuple = (),
    heavy: bool = False,
) -> Iterator[R]:
    """``map(function, items)`` over ``jobs`` processes, in order, with a progress bar.

    ``function`` and ``initializer`` must be module-level functions (they are pickled by
    reference); ``initializer(*initargs)`` runs once in each worker, or here when there is none.
    ``heavy`` items (seconds each) go to workers one at a time and always use the pool.
    """
    items = list(items)
    bar = tqdm(total=len(items), desc=description, unit=unit, dynamic_ncols=True, leave=False)
    try:
        if jobs <= 1 or len(items) < (2 if heavy else _POOL_MIN_ITEMS):
            if initializer is not None and items:
                initializer(*initargs)
            for item in items:
                yield function(item)
                bar.update()
            return
        # forkserver, not fork: a fork of a process that has started TensorFlow's threads can hang.
        context = multiprocessing.get_context("forkserver")
        chunksize = 1 if heavy else max(1, min(32, len(items) // (jobs * 8)))
        with context.Pool(
            min(jobs, len(items)), initializer=_init_worker, initargs=(initializer, initargs)
        ) as pool:
            for result in pool.imap(function, items, chunksize=chunksize):
                yield result
                bar.update()
    finally:
        bar.close()
