"""Every entry point in a hostile environment, run as the user runs it (a child process): folders it cannot write
(as another user: permission bits do not stop root), a file where a folder belongs, a full disk (a tiny tmpfs, and
a wrapper that makes every write under a folder fail as a full disk does) and two runs at once. Each ends in exit 0,
or in exit 1 or 2 with one ``error:`` line naming the path and what to do, never a traceback; no input photo and
no earlier output changes, no half-written file is left, and records hold whole rows only.

None of these loads TensorFlow: the commands that would (a training, a detection) are run only where they refuse
before loading it."""

from __future__ import annotations

import contextlib
import csv
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from helpers import PYTHON, REPO, distinct_pictures, make_labelled_folder, tree_digest

from maskdetect import facecrops, moves

pytestmark = pytest.mark.unit  # every command runs in a child process; this one loads no TensorFlow

AS_ROOT = os.geteuid() == 0
NOBODY = 65534
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
LABEL_MAP = ["--label-map", "mask=mask", "without_mask=without_mask"]
# Loaded by every Python child when MASKDETECT_TEST_FULL names a folder: each file opened for writing below it
# fails on its first write as on a full disk (ENOSPC, which the kernel reports without a file name).
FULL_DISK_HOOK = '''
import builtins, errno, io, os
_full = os.environ.get("MASKDETECT_TEST_FULL")
if _full:
    _full = os.path.realpath(_full) + os.sep
    _open = builtins.open

    class _Full:
        def __init__(self, handle):
            self._handle = handle
        def __getattr__(self, name):
            return getattr(self._handle, name)
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            self._handle.close()
        def __iter__(self):
            return iter(self._handle)
        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        writelines = write

    def _open_full(file, mode="r", *args, **kwargs):
        handle = _open(file, mode, *args, **kwargs)
        writes = any(flag in mode for flag in "wax+")
        if writes and isinstance(file, (str, bytes, os.PathLike)) and \\
                os.path.realpath(os.fsdecode(file)).startswith(_full):
            return _Full(handle)
        return handle

    builtins.open = io.open = _open_full
'''


def lines(text: str) -> list[str]:
    return [line for line in re.split(r"[\r\n]", text) if line.strip()]


def check_one_line(result: subprocess.CompletedProcess, codes=(1, 2)) -> str:
    """The run failed with one of ``codes`` and one ``error:`` line, no traceback; returns the line."""
    assert result.returncode in codes, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in lines(result.stderr) if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def check_records_whole(folder: Path) -> None:
    """No temporary or partial file is left under ``folder``, and each CSV has whole rows only."""
    for path in folder.rglob("*"):
        assert not re.search(r"\.(tmp|partial|rewrite)$", path.name), path
        if path.suffix == ".csv" and path.is_file():
            text = path.read_text(encoding="utf-8", errors="surrogateescape")
            assert text == "" or text.endswith("\n"), path
            rows = list(csv.reader(text.splitlines()))
            assert all(len(row) == len(rows[0]) for row in rows), path


@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> Path:
    """Photos in two class folders (three exact copies among them) and a PASCAL VOC folder of labelled faces."""
    root = tmp_path_factory.mktemp("originals")
    for index, image in enumerate(distinct_pictures(8, 64)):
        folder = root / "photos" / ("mask" if index % 2 else "without_mask")
        folder.mkdir(parents=True, exist_ok=True)
        image.save(folder / f"photo{index}.jpg", quality=90)
    for index in range(3):
        shutil.copy(root / "photos" / "mask" / "photo1.jpg", root / "photos" / "mask" / f"copy{index}.jpg")
    make_labelled_folder(root / "voc")
    return root


@pytest.fixture
def place(originals):
    """A fresh copy of the originals in a folder every user can read (pytest's own is root's alone)."""
    root = Path(tempfile.mkdtemp(prefix="maskdetect-hostile-"))
    root.chmod(0o755)
    shutil.copytree(originals, root, dirs_exist_ok=True)
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    yield root
    for path in [root, *root.rglob("*")]:  # make it removable again
        with contextlib.suppress(OSError):
            path.chmod(0o755 if path.is_dir() else 0o644)
    shutil.rmtree(root, ignore_errors=True)


def run(command: list[str], env: dict | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHON": PYTHON, **(env or {})})


def python(script: str, *args) -> list[str]:
    return [PYTHON, *(["-m", script] if script.startswith("maskdetect.") else [str(REPO / script)]), *map(str, args)]


# Each entry point with its inputs in ``root`` and the folder it writes given by ``where``, a flag of its own.
def entry_points(root: Path, out: Path, logs: Path) -> dict[str, list[str]]:
    photos, voc = root / "photos", root / "voc"
    return {
        "preprocess.sh": [str(REPO / "preprocess.sh"), "--input", str(photos), "--output", str(out), "--logs",
                          str(logs), "--jobs", "1", "--skip-faces"],
        "organize": python("maskdetect.organize", "--input", photos, "--logs", logs, "--jobs", "1"),
        "remove_duplicates.py": python("remove_duplicates.py", "--input", photos, "--logs", logs, "--jobs", "1"),
        "process_faces.py --annotations": python("process_faces.py", "--annotations", voc, "--output", out,
                                                 "--logs", logs, "--jobs", "1", *LABEL_MAP),
        "report": python("maskdetect.report", "--logs", logs, "--data", photos, "--processed", out),
        "train_a_model.py": python("train_a_model.py", "--data", photos, "--logs", logs, "--model", "small"),
        "auto_train.py": python("auto_train.py", "--data", photos, "--logs", logs),
        "detect_mask.py": python("detect_mask.py", photos, "--output", out, "--logs", logs),
    }


# --- a file where a folder belongs -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(entry_points(Path(), Path(), Path())))
@pytest.mark.parametrize("flag", ["--logs", "--output"])
def test_a_file_where_the_output_or_logs_folder_belongs_is_one_line_and_changes_nothing(place, name, flag):
    blocker = place / "blocker"
    blocker.write_text("the user's notes\n")
    out, logs = (blocker, place / "logs") if flag == "--output" else (place / "out", blocker)
    command = entry_points(place, out, logs)[name]
    if flag not in command:
        pytest.skip(f"{name} has no {flag}")
    if name == "preprocess.sh" and flag == "--output":
        command.remove("--skip-faces")  # it writes to --output only in its face step
    if name == "detect_mask.py" and flag == "--logs":  # its output goes under --logs when none is given
        del command[command.index("--output"):command.index("--output") + 2]
    before = tree_digest(place / "photos"), tree_digest(place / "voc")
    line = check_one_line(run(command))
    assert str(blocker) in line, line
    assert blocker.read_text() == "the user's notes\n"
    assert (tree_digest(place / "photos"), tree_digest(place / "voc")) == before


@pytest.mark.skip(reason="run_pipeline.sh takes no folder flags and installs requirements.txt into .venv before its "
                         "first step; its steps are the entry points tested here one by one")
def test_run_pipeline_sh():
    pass


# --- folders the user cannot write -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def other_user() -> list[str]:
    """The prefix that runs a command as a user that permission bits stop: none when not root, else ``setpriv``
    to nobody, where that user can run this Python and read the project."""
    if not AS_ROOT:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root, and setpriv (util-linux) is missing to run the commands as another user")
    probe = subprocess.run([*AS_NOBODY, PYTHON, "-c", "import maskdetect.dedup"], cwd=REPO, capture_output=True,
                           text=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"running as root, and the user nobody cannot run {PYTHON} on the project: "
                    f"{lines(probe.stderr)[-1:] or probe.returncode}")
    return AS_NOBODY


def as_user(prefix: list[str], command: list[str], home: Path) -> subprocess.CompletedProcess:
    return run([*prefix, *command], env={"HOME": str(home), "MPLCONFIGDIR": str(home)})


@pytest.mark.parametrize("name, read_only, words", [
    ("organize", "photos", "it is not writable"),
    ("remove_duplicates.py", "photos", "it is not writable"),
    ("process_faces.py --annotations", "out", "cannot write in"),
    ("process_faces.py --annotations", "logs", "cannot write in"),
    ("report", "logs", "cannot write in"),
    ("train_a_model.py", "logs", "cannot write in"),
    ("auto_train.py", "logs", "cannot write in"),
    ("detect_mask.py", "out", "cannot write in"),
])
def test_a_folder_the_user_cannot_write_is_one_line_and_nothing_moves(place, other_user, name, read_only, words):
    writable = place / "writable"
    writable.mkdir(mode=0o777)
    writable.chmod(0o777)
    folders = {"out": writable / "out", "logs": writable / "logs"}
    folders[read_only] = place / read_only
    (place / "logs").mkdir()
    (place / "logs" / "report.html").write_text("an earlier report")
    (place / "out").mkdir()
    for path in [place / "photos", *(place / "photos").iterdir(), place / "out", place / "logs"]:
        path.chmod(0o555)
    before = {folder: tree_digest(place / folder) for folder in ("photos", "voc", "logs")}
    command = entry_points(place, folders["out"], folders["logs"])[name]
    if name == "detect_mask.py":
        command.remove("--logs")
        command.remove(str(folders["logs"]))
    line = check_one_line(as_user(other_user, command, writable), codes=(2,))
    assert words in line and str(place / read_only) in line, line
    assert {folder: tree_digest(place / folder) for folder in before} == before
    assert not any((place / "out").iterdir())


def test_preprocess_sh_as_a_user_who_cannot_write_the_photos_moves_nothing(place, other_user):
    probe = run([*other_user, "bash", "-c", '"$PYTHON" -c pass'])
    if probe.returncode != 0:
        pytest.skip(f"the user nobody can run {PYTHON} only when started by setpriv itself, not from bash "
                    f"(a folder on its path is root's alone): {lines(probe.stderr)[-1:]}")
    writable = place / "writable"
    writable.mkdir(mode=0o777)
    writable.chmod(0o777)
    for path in [place / "photos", *(place / "photos").iterdir()]:
        path.chmod(0o555)
    before = tree_digest(place / "photos")
    command = entry_points(place, writable / "out", writable / "logs")["preprocess.sh"]
    line = check_one_line(as_user(other_user, command, writable), codes=(2,))
    assert "it is not writable" in line
    assert tree_digest(place / "photos") == before


# --- a full disk ---------------------------------------------------------------------------------------------------


@pytest.fixture(params=["tmpfs", "injected"])
def full_disk(request, place, tmp_path):
    """A folder where every write fails as on a full disk, and the environment of the commands to run there:
    a tiny tmpfs filled up (needs the right to mount one), or the wrapper above on any system."""
    full = place / "full"
    full.mkdir()
    env: dict[str, str] = {}
    if request.param == "tmpfs":
        if shutil.which("mount") is None:
            pytest.skip("no mount command to make a tiny tmpfs; the injected full disk covers the case")
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(full)],
                                 capture_output=True, text=True, timeout=30)
        if mounted.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip() or mounted.returncode}); the injected "
                        "full disk covers the case")
        request.addfinalizer(lambda: subprocess.run(["umount", "-l", str(full)], capture_output=True, timeout=30))
    else:
        hook = tmp_path / "hook"
        hook.mkdir()
        (hook / "sitecustomize.py").write_text(FULL_DISK_HOOK)
        env = {"MASKDETECT_TEST_FULL": str(full),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(hook), os.environ.get("PYTHONPATH")]))}
    # earlier outputs, written before the disk filled up; the journal fills its 4 KiB page, as a row appended to
    # a page with room left would still fit on a full tmpfs
    (full / "logs" / "preprocess").mkdir(parents=True)
    journal = ",".join(moves.JOURNAL_FIELDS) + "\n2024-01-01T00:00:00,earlier,organise,/x,rename,a.jpg,b.jpg,,{},,0\n"
    journal = journal.format("x" * (4096 - len(journal) + 2))
    earlier = {"logs/report.html": "an earlier report\n", "logs/preprocess/renames.csv": journal}
    for name, text in earlier.items():
        (full / name).write_text(text)
    if request.param == "tmpfs":
        filler = os.open(full / "filler", os.O_WRONLY | os.O_CREAT)
        with contextlib.suppress(OSError):
            while os.write(filler, b"\0" * 4096):
                pass
        os.close(filler)
    return full, env, earlier


@pytest.mark.parametrize("name", ["preprocess.sh", "organize", "remove_duplicates.py",
                                  "process_faces.py --annotations", "report"])
def test_a_full_disk_is_one_line_naming_the_path_and_leaves_no_half_file(place, full_disk, name):
    full, env, earlier = full_disk
    command = entry_points(place, full / "out", full / "logs")[name]
    before = tree_digest(place / "photos"), tree_digest(place / "voc")
    line = check_one_line(run(command, env), codes=(1,))
    assert "the disk is full" in line and f"error: {full}/" in line, line
    assert (tree_digest(place / "photos"), tree_digest(place / "voc")) == before
    assert all((full / name).read_text() == text for name, text in earlier.items())
    check_records_whole(full)


def test_run_cli_says_the_disk_is_full_in_one_line_when_the_error_names_no_path(capsys):
    import errno

    from maskdetect import runtime

    def body():
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    assert runtime.run_cli(body, "interrupted") == 1
    assert capsys.readouterr().err == f"error: {os.strerror(errno.ENOSPC)}; the disk is full; free some space or " \
                                      "give a path on another disk\n"


def test_a_record_cut_short_by_a_full_disk_keeps_whole_rows(tmp_path, monkeypatch):
    import builtins
    import errno

    from maskdetect import records

    path = tmp_path / "record.csv"
    records.append_rows(path, ["a", "b"], [{"a": 1, "b": 2}])
    real_open = builtins.open

    class HalfWritten:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            self.handle.write(data[: len(data) // 2])
            self.handle.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(builtins, "open", lambda file, mode="r", *args, **kwargs: HalfWritten(
        real_open(file, mode, *args, **kwargs)) if "a" in mode else real_open(file, mode, *args, **kwargs))
    with pytest.raises(OSError) as raised:
        records.append_rows(path, ["a", "b"], [{"a": "long value " * 20, "b": 3}])
    monkeypatch.undo()
    assert raised.value.filename == str(path)
    assert path.read_text() == "a,b\n1,2\n"


# --- two runs at once ----------------------------------------------------------------------------------------------


def run_twice(command: list[str]) -> list[subprocess.CompletedProcess]:
    started = [subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHON": PYTHON}) for _ in range(2)]
    results = []
    for process in started:
        out, err = process.communicate(timeout=180)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return results


def check_both(results: list[subprocess.CompletedProcess]) -> None:
    """Both finished, or one refused in one line; neither with a traceback."""
    for result in results:
        if result.returncode != 0:
            check_one_line(result)
        assert "Traceback" not in result.stderr, result.stderr
    assert any(result.returncode == 0 for result in results), [result.stderr for result in results]


def check_no_photo_lost(photos: Path, before: dict[str, str], logs: Path) -> None:
    """Every photo is still there by content, in its class folder or set aside under _rejected/ with a journal
    row saying where it went."""
    after = tree_digest(photos)
    assert sorted(before.values()) == sorted(after.values())
    journal = {row["new"]: row for row in csv.DictReader(moves.journal_path(logs).open(encoding="utf-8"))}
    for name in after:
        if name.startswith(moves.REJECTED_DIR + "/"):
            assert name in journal and journal[name]["action"] == moves.SET_ASIDE, name
    check_records_whole(logs)


@pytest.mark.parametrize("name", ["remove_duplicates.py", "preprocess.sh"])
def test_two_runs_on_the_same_photos_at_once_lose_no_photo(place, name):
    logs = place / "logs"
    before = tree_digest(place / "photos")
    check_both(run_twice(entry_points(place, place / "out", logs)[name]))
    check_no_photo_lost(place / "photos", before, logs)
    assert len(list((place / "photos" / moves.REJECTED_DIR).rglob("*.jpg"))) == 3  # the three copies, once each


def test_two_runs_cropping_labelled_faces_into_one_folder_at_once_leave_whole_crops_and_records(place):
    out = place / "out"
    check_both(run_twice(entry_points(place, out, place / "logs")["process_faces.py --annotations"]))
    check_records_whole(out)
    check_records_whole(place / "logs")
    from PIL import Image

    rows = list(csv.DictReader((out / facecrops.MANIFEST).open(encoding="utf-8")))
    assert rows and all(Path(row["crop"]).is_file() for row in rows)
    for crop in out.rglob("*.jpg"):
        with Image.open(crop) as image:
            image.load()  # whole JPEGs only
