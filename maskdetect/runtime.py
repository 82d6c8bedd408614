"""What every command shares: logging set-up for entry points, exit codes, a parallel map."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
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


def run_cli(body: Callable[[], int], interrupted: str) -> int:
    """Run a command's body: a ValueError is the user's mistake (one line, exit 2), Ctrl-C exits 130.

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
