"""The in-place organise step: every kind of file ends where it should, and everything can be undone."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from helpers import build_messy_tree, distinct_pictures, encoded, tree_digest

from maskdetect import images, moves, organize, records

pytestmark = pytest.mark.unit  # no TensorFlow: see conftest.py


@pytest.fixture
def messy(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    root = tmp_path / "original data"
    expected = build_messy_tree(root)
    return root, tmp_path / "logs", expected


def test_each_file_gets_the_right_verdict(messy):
    root, _, expected = messy
    checks = organize.scan(root)
    found = {moves.relative(check.path, root): check.reason for c in checks.values() for check in c}
    assert found == expected


def test_organise_sets_aside_renames_and_keeps_every_byte(messy):
    root, logs, expected = messy
    before = Counter(tree_digest(root).values())
    assert organize.main(["--input", str(root), "--logs", str(logs)]) == 0

    after = tree_digest(root)
    assert Counter(after.values()) == before, "a file was lost, duplicated or changed"
    for name, reason in expected.items():
        if reason:
            assert f"_rejected/{reason}/{name}" in after, name
    kept = sorted(name for name in after if not name.startswith("_rejected/"))
    assert len(kept) == sum(1 for reason in expected.values() if not reason)
    for name in kept:
        class_name, file_name = name.split("/")
        check = images.check_file(root / name)
        assert file_name == organize.organised_name(class_name, check), name
    # the extension follows the real format, not the old name
    assert any(name.endswith(".png") for name in kept if name.startswith("mask/"))
    assert not any(name.lower().endswith((".jpeg", ".tiff")) for name in kept)

    journal = records.read_rows(moves.journal_path(logs))
    assert {row["action"] for row in journal} == {moves.RENAME, moves.SET_ASIDE}
    aside = {row["original"]: row for row in journal if row["action"] == moves.SET_ASIDE}
    assert aside["mask/notes.jpg"]["reason"] == images.NOT_IMAGE
    assert aside["mask/notes.jpg"]["size"] == str(len(b"these are my notes, not a photo\n" * 20))
    assert len(aside["mask/zero.jpg"]["sha256"]) == 64


def test_second_run_changes_nothing_and_undo_restores_exactly(messy):
    root, logs, _ = messy
    original = tree_digest(root)
    assert organize.main(["--input", str(root), "--logs", str(logs)]) == 0
    organised = tree_digest(root)
    journal_rows = len(records.read_rows(moves.journal_path(logs)))

    assert organize.main(["--input", str(root), "--logs", str(logs)]) == 0
    assert tree_digest(root) == organised
    assert len(records.read_rows(moves.journal_path(logs))) == journal_rows

    assert organize.main(["--input", str(root), "--logs", str(logs), "--undo"]) == 0
    assert tree_digest(root) == original
    assert sorted(p.name for p in root.iterdir()) == ["mask", "without_mask"]
    # an undo that has been done is not done twice
    assert organize.main(["--input", str(root), "--logs", str(logs), "--undo"]) == 0
    assert tree_digest(root) == original


def test_new_names_never_land_on_existing_files(tmp_path):
    root = tmp_path / "data"
    (root / "mask").mkdir(parents=True)
    first, second = distinct_pictures(2)
    first_bytes, second_bytes = encoded(first, "JPEG"), encoded(second, "JPEG")
    # the file named like the second picture's new name holds the first picture, and vice versa
    second_name = organize.organised_name("mask", images.FileCheck(Path(), 1, hashlib.sha256(second_bytes).hexdigest(),
                                                                 image_format="JPEG"))
    first_name = organize.organised_name("mask", images.FileCheck(Path(), 1, hashlib.sha256(first_bytes).hexdigest(),
                                                                image_format="JPEG"))
    (root / "mask" / second_name).write_bytes(first_bytes)
    (root / "mask" / first_name).write_bytes(second_bytes)
    (root / "mask" / "copy.jpg").write_bytes(first_bytes)
    before = Counter(tree_digest(root).values())

    assert organize.main(["--input", str(root), "--logs", str(tmp_path / "logs")]) == 0
    assert Counter(tree_digest(root).values()) == before
    assert organize.main(["--input", str(root), "--logs", str(tmp_path / "logs")]) == 0  # settles
    settled = tree_digest(root)
    assert organize.main(["--input", str(root), "--logs", str(tmp_path / "logs")]) == 0
    assert tree_digest(root) == settled


def test_dry_run_prints_the_plan_and_changes_nothing(messy, capsys):
    root, logs, _ = messy
    original = tree_digest(root)
    assert organize.main(["--input", str(root), "--logs", str(logs), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "set aside   'mask/notes.jpg'" in out and "would be renamed" in out
    assert tree_digest(root) == original
    assert not moves.journal_path(logs).exists()


def test_delete_removes_rejects_for_good_and_says_so(messy):
    root, logs, expected = messy
    assert organize.main(["--input", str(root), "--logs", str(logs), "--delete"]) == 0
    remaining = tree_digest(root)
    assert not any(name.startswith("_rejected") for name in remaining)
    assert len(remaining) == sum(1 for reason in expected.values() if not reason)
    deleted = [row for row in records.read_rows(moves.journal_path(logs)) if row["action"] == moves.DELETE]
    assert {row["original"] for row in deleted} == {name for name, reason in expected.items() if reason}


def test_unreadable_file_is_set_aside_with_its_reason(tmp_path, monkeypatch):
    path = tmp_path / "secret.jpg"
    path.write_bytes(b"x")

    def refuse(_path):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(images, "sha256_file", refuse)
    check = images.check_file(path)
    assert check.reason == images.UNREADABLE and "Permission denied" in check.detail


def test_decoded_pixels_are_8_bit_rgb(messy):
    root, _, _ = messy
    for name in ("mask/rgba.png", "mask/gray.png", "mask/cmyk.jpg", "mask/deep16.png", "without_mask/anim.gif"):
        array = images.load_rgb(root / name)
        assert array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3, name
    deep = images.load_rgb(root / "mask/deep16.png")
    assert deep.max() > 128, "16-bit values were clipped instead of scaled"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--input", "/nonexistent/photos"], "does not exist"),
        (["--min-size", "0"], "at least 1"),
        (["--undo", "--delete"], "cannot be combined"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(tmp_path, capsys, monkeypatch, argv, message):
    (tmp_path / "original_data" / "mask").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert organize.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_no_class_folders_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "loose.jpg").write_bytes(b"")
    assert organize.main(["--input", str(tmp_path), "--logs", str(tmp_path / "logs")]) == 2
    assert "no class folders" in capsys.readouterr().err


def test_a_class_folder_that_cannot_be_written_is_refused_before_any_file_moves(messy, capsys, monkeypatch):
    root, logs, _ = messy
    before = tree_digest(root)
    locked = sorted(images.class_dirs(root))[-1].resolve()
    # permission bits mean nothing to root: the folder is made read-only through what os.access answers
    real_access = moves.os.access
    monkeypatch.setattr(moves.os, "access", lambda path, mode: Path(path) != locked and real_access(path, mode))
    assert organize.main(["--input", str(root), "--logs", str(logs)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"error: cannot move files in {locked}: it is not writable; make it writable (chmod u+w) or "
                       "copy the photos somewhere you can write, then run again (nothing was moved)")
    assert tree_digest(root) == before and not moves.journal_path(logs).exists()


def test_an_os_error_while_moving_is_one_line_naming_the_file_and_the_journal_lets_undo_finish(messy, capsys,
                                                                                              monkeypatch):
    root, logs, _ = messy
    before = tree_digest(root)
    real_rename, calls = moves.os.rename, []

    def rename(source, target):  # the third move meets a folder made read-only while the stage runs
        calls.append(source)
        if len(calls) == 3:
            raise PermissionError(13, "Permission denied", str(source), None, str(target))
        real_rename(source, target)

    monkeypatch.setattr(moves.os, "rename", rename)
    assert organize.main(["--input", str(root), "--logs", str(logs)]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()[-1:]
    assert line.startswith(f"error: {calls[2]} -> ") and "Permission denied; make it writable" in line
    monkeypatch.setattr(moves.os, "rename", real_rename)
    assert organize.main(["--input", str(root), "--logs", str(logs), "--undo"]) == 0
    assert tree_digest(root) == before


def test_undo_without_a_journal_of_that_folder_says_so_and_exits_2(messy, capsys):
    root, logs, _ = messy
    assert organize.main(["--input", str(root), "--logs", str(logs), "--undo"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothing to undo; give the --input and --logs of the run to undo" in err[0]
