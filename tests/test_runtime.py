"""maskdetect.runtime: the exit codes of run_cli, the process pool, the core count, silencing native stderr."""

from __future__ import annotations

import errno
import logging
import os
import signal
import sys
import threading

import pytest

from maskdetect import runtime

pytestmark = pytest.mark.unit  # no TensorFlow: see conftest.py

_initialised: list[int] = []


def _square_where(number: int) -> tuple[int, int]:
    """``number`` squared, and the process that squared it (module level: the pool pickles it by reference)."""
    return number * number, os.getpid()


def _sigint_ignored(_: object) -> bool:
    return signal.getsignal(signal.SIGINT) == signal.SIG_IGN


def _remember(value: int) -> None:
    _initialised.append(value)


def test_run_cli_returns_the_body_s_exit_code():
    assert runtime.run_cli(lambda: runtime.EXIT_OK, "stopped") == 0
    assert runtime.run_cli(lambda: runtime.EXIT_FAILURE, "stopped") == 1


def test_a_value_error_is_one_line_and_exit_2(capsys):
    def body() -> int:
        raise ValueError("--epochs must be at least 1")

    assert runtime.run_cli(body, "stopped") == runtime.EXIT_USAGE == 2
    captured = capsys.readouterr()
    assert captured.err == "error: --epochs must be at least 1\n" and captured.out == ""


def test_ctrl_c_prints_the_message_and_exits_130(capsys):
    def body() -> int:
        raise KeyboardInterrupt

    assert runtime.run_cli(body, "train: interrupted") == runtime.EXIT_INTERRUPTED == 130
    assert capsys.readouterr().err == "train: interrupted\n"


def test_sigterm_is_handled_as_ctrl_c_and_the_handler_is_given_back(capsys):
    before = signal.getsignal(signal.SIGTERM)

    def body() -> int:
        os.kill(os.getpid(), signal.SIGTERM)
        return runtime.EXIT_OK  # not reached: the handler raises KeyboardInterrupt at the kill

    assert runtime.run_cli(body, "killed politely") == 130
    assert "killed politely" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) == before


def test_other_errors_are_not_swallowed():
    def body() -> int:
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        runtime.run_cli(body, "stopped")


@pytest.mark.parametrize("error, words", [
    (PermissionError(errno.EACCES, "Permission denied", "/data/out/summary.json"),
     "/data/out/summary.json: Permission denied; make it writable"),
    (OSError(errno.ENOSPC, "No space left on device", "/data/out/a.jpg"), "/data/out/a.jpg: No space left on device; "
     "the disk is full"),
    (NotADirectoryError(errno.ENOTDIR, "Not a directory", "/data/file/x"), "a file is where a folder is expected"),
    (OSError(errno.EROFS, "Read-only file system", "/mnt/x", None, "/mnt/y"), "/mnt/x -> /mnt/y: Read-only file"),
], ids=["permission", "disk full", "file in the way", "two paths"])
def test_an_os_error_about_a_path_is_one_line_naming_it_and_what_to_do_exit_1(capsys, error, words):
    def body() -> int:
        raise error

    assert runtime.run_cli(body, "stopped") == runtime.EXIT_FAILURE
    err = capsys.readouterr().err
    assert err.startswith("error: ") and words in err and err.count("\n") == 1


def test_an_os_error_about_no_path_is_not_swallowed():
    def body() -> int:
        raise OSError("the machine")

    with pytest.raises(OSError, match="the machine"):
        runtime.run_cli(body, "stopped")


def test_check_writable_refuses_a_file_in_the_way_or_a_folder_it_cannot_write(tmp_path, monkeypatch):
    runtime.check_writable(tmp_path / "new" / "deeper", "--output")  # absent: created later, nothing made now
    assert not (tmp_path / "new").exists()
    (tmp_path / "file").write_text("mine")
    with pytest.raises(ValueError, match=r"file is a file, not a folder: .*give another --output"):
        runtime.check_writable(tmp_path / "file" / "out", "--output")
    with pytest.raises(ValueError, match=r"file is a file, not a folder"):
        runtime.check_writable(tmp_path / "file", "--logs")
    # permission bits mean nothing to root: the refusal is checked through what os.access answers
    monkeypatch.setattr(runtime.os, "access", lambda path, mode: False)
    with pytest.raises(ValueError, match=rf"cannot write in {tmp_path} .*give another --logs"):
        runtime.check_writable(tmp_path / "logs", "--logs")


def test_run_cli_outside_the_main_thread_runs_without_signal_handlers():
    # signal.signal raises ValueError off the main thread; run_cli must not mistake that for the body's
    results = []
    thread = threading.Thread(target=lambda: results.append(runtime.run_cli(lambda: 0, "stopped")))
    thread.start()
    thread.join(30)
    assert results == [0]


def test_default_jobs_is_the_cores_this_process_may_use(monkeypatch):
    assert runtime.default_jobs() == len(os.sched_getaffinity(0)) >= 1

    def not_on_linux(_):
        raise AttributeError

    monkeypatch.setattr(os, "sched_getaffinity", not_on_linux)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert runtime.default_jobs() == 6
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert runtime.default_jobs() == 1


def test_native_stderr_is_silenced_then_given_back(capfd):
    os.write(2, b"before\n")
    with runtime.native_stderr_silenced():
        os.write(2, b"from C++\n")  # what TensorFlow's native code writes goes straight to file descriptor 2
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "before\nafter\n"


def test_an_error_inside_the_silenced_block_still_surfaces_and_stderr_comes_back(capfd):
    with pytest.raises(OSError, match="broken"), runtime.native_stderr_silenced():
        raise OSError("broken")
    os.write(2, b"visible\n")
    assert capfd.readouterr().err == "visible\n"


def test_parallel_map_below_the_pool_size_runs_here_in_order():
    _initialised.clear()
    items = list(range(10))
    results = list(runtime.parallel_map(_square_where, items, jobs=2, description="squares",
                                        initializer=_remember, initargs=(7,)))
    assert [square for square, _ in results] == [n * n for n in items]
    assert {pid for _, pid in results} == {os.getpid()}
    assert _initialised == [7]  # the initializer ran once, in this process


def test_parallel_map_uses_worker_processes_and_keeps_the_order():
    items = list(range(100))
    results = list(runtime.parallel_map(_square_where, items, jobs=2, description="squares"))
    assert [square for square, _ in results] == [n * n for n in items]
    assert os.getpid() not in {pid for _, pid in results}


def test_heavy_items_use_the_pool_even_when_few_and_workers_ignore_ctrl_c():
    before = signal.getsignal(signal.SIGINT)
    results = list(runtime.parallel_map(_sigint_ignored, ["a", "b"], jobs=2, description="heavy", heavy=True))
    assert results == [True, True]  # Ctrl-C reaches the whole process group; only the parent acts on it
    assert signal.getsignal(signal.SIGINT) == before  # and the parent's own handling is left as it was


def test_parallel_map_of_nothing_runs_no_initializer():
    _initialised.clear()
    assert list(runtime.parallel_map(_square_where, [], jobs=4, description="none", initializer=_remember,
                                     initargs=(1,))) == []
    assert _initialised == []


@pytest.fixture
def root_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


def test_configure_logging_writes_one_line_messages_on_stderr(root_logging, capsys):
    runtime.configure_logging()
    logging.getLogger("maskdetect.somewhere").info("12 crops skipped")
    logging.getLogger("maskdetect.somewhere").debug("not shown")
    assert capsys.readouterr().err == "INFO: 12 crops skipped\n"
    runtime.configure_logging(verbose=True)
    logging.getLogger("maskdetect.somewhere").debug("shown")
    assert capsys.readouterr().err == "DEBUG: shown\n"
    assert root_logging.handlers[0].stream is sys.stderr


def test_new_folder_never_hands_out_a_name_that_exists(tmp_path):
    base = tmp_path / "detect" / "20250101-120000"
    made = [runtime.new_folder(base) for _ in range(3)]
    assert made == [base, base.with_name(f"{base.name}-2"), base.with_name(f"{base.name}-3")]
    assert all(folder.is_dir() and not any(folder.iterdir()) for folder in made)
    (tmp_path / "detect" / "20250101-120000-4").write_text("a file of that name")
    assert runtime.new_folder(base).name == "20250101-120000-5"


def test_new_folders_made_at_once_in_many_threads_are_all_different(tmp_path):
    base = tmp_path / "run"
    made: list = []
    threads = [threading.Thread(target=lambda: made.append(runtime.new_folder(base))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(made) == len(set(made)) == 8
