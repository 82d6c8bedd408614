"""Duplicate removal: exact and near copies within a class, label conflicts across classes."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from helpers import distinct_pictures, tree_digest
from PIL import Image, ImageOps

from maskdetect import dedup, images, moves, organize, records

pytestmark = pytest.mark.unit  # no TensorFlow: see conftest.py


def _save(image: Image.Image, path: Path, image_format: str = "JPEG", **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, image_format, **options)
    return path


def _recompressed(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue()))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    pics = distinct_pictures(8, size=160)
    original = _save(pics[0], root / "mask" / "original.jpg", quality=95)
    (root / "mask" / "exact copy.jpg").write_bytes(original.read_bytes())
    _save(pics[0].resize((80, 80)), root / "mask" / "small.jpg")
    _save(_recompressed(pics[0], 30), root / "mask" / "recompressed.png", "PNG")
    _save(ImageOps.mirror(pics[1]), root / "mask" / "mirrored.jpg")  # a mirror is a different picture here
    for index in range(1, 5):
        _save(pics[index], root / "mask" / f"distinct {index}.jpg")
    # one picture under both labels
    _save(pics[5], root / "mask" / "shared.jpg")
    _save(pics[5].resize((120, 120)), root / "without_mask" / "shared too.jpg")
    for index in range(6, 8):
        _save(pics[index], root / "without_mask" / f"other {index}.jpg")
    return root


def _groups(root: Path, distance: int = dedup.DEFAULT_HASH_DISTANCE) -> list[dedup.Group]:
    return dedup.find_duplicates(dedup.hash_classes(images.class_dirs(root), jobs=1), distance)


def _names(root: Path, items) -> set[str]:
    return {moves.relative(item.path, root) for item in items}


def test_exact_and_near_copies_group_and_the_largest_is_kept(tree):
    groups = _groups(tree)
    within = [group for group in groups if group.kept is not None]
    conflicts = [group for group in groups if group.kept is None]
    assert len(within) == 1 and len(conflicts) == 1
    group = within[0]
    assert group.kind == "near"
    assert _names(tree, group.members) == {
        "mask/original.jpg", "mask/exact copy.jpg", "mask/small.jpg", "mask/recompressed.png",
    }
    # ties in resolution go to the first name: "exact copy.jpg" sorts before "original.jpg"
    assert _names(tree, [group.kept]) == {"mask/exact copy.jpg"}
    assert _names(tree, conflicts[0].members) == {"mask/shared.jpg", "without_mask/shared too.jpg"}


def test_distance_zero_finds_exact_copies_only(tree):
    groups = _groups(tree, distance=0)
    assert [(_names(tree, g.members), g.kind) for g in groups] == [
        ({"mask/original.jpg", "mask/exact copy.jpg"}, "exact")
    ]


def test_vectorised_pairs_match_a_brute_force_search():
    rng = np.random.default_rng(1)
    base = rng.integers(0, 2**63, size=300, dtype=np.uint64)
    # plant near copies: flip 1..6 random bits of some hashes
    planted = base[:60].copy()
    for index in range(60):
        for bit in rng.choice(64, size=index % 6 + 1, replace=False):
            planted[index] ^= np.uint64(1) << np.uint64(bit)
    hashes = np.concatenate([base, planted])
    found = {tuple(pair) for pair in dedup.near_pairs(hashes, 4).tolist()}
    expected = {
        (i, j)
        for i in range(len(hashes))
        for j in range(i + 1, len(hashes))
        if bin(int(hashes[i]) ^ int(hashes[j])).count("1") <= 4
    }
    assert found == expected and len(expected) >= 40


def test_remove_duplicates_sets_aside_with_a_record_and_undo_restores(tree, tmp_path, capsys):
    logs = tmp_path / "logs"
    original = tree_digest(tree)
    assert dedup.main(["--input", str(tree), "--logs", str(logs)]) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("remove_duplicates: 13 files read; 0 exact groups, 1 near groups, 1 label conflicts")

    after = tree_digest(tree)
    assert Counter(after.values()) == Counter(original.values())
    aside = sorted(name for name in after if name.startswith("_rejected/"))
    assert aside == [
        "_rejected/duplicate/mask/original.jpg",
        "_rejected/duplicate/mask/recompressed.png",
        "_rejected/duplicate/mask/small.jpg",
        "_rejected/label_conflict/mask/shared.jpg",
        "_rejected/label_conflict/without_mask/shared too.jpg",
    ]
    rows = {row["original"]: row for row in records.read_rows(moves.journal_path(logs))}
    assert rows["mask/small.jpg"]["detail"] == "near duplicate of mask/exact copy.jpg"
    assert "mask, without_mask" in rows["mask/shared.jpg"]["detail"]

    # nothing left to find on a second run
    assert dedup.main(["--input", str(tree), "--logs", str(logs)]) == 0
    assert tree_digest(tree) == after
    assert organize.main(["--input", str(tree), "--logs", str(logs), "--undo"]) == 0
    assert tree_digest(tree) == original


def test_dry_run_lists_groups_and_changes_nothing(tree, tmp_path, capsys):
    original = tree_digest(tree)
    assert dedup.main([str(tree / "mask"), str(tree / "without_mask"), "--dry-run",
                       "--logs", str(tmp_path / "logs")]) == 0
    out = capsys.readouterr().out
    assert "near group (mask): keep 'mask/exact copy.jpg' (160x160)" in out
    assert "label conflict (mask, without_mask)" in out
    assert tree_digest(tree) == original


def test_an_undecodable_file_still_gets_exact_matching(tmp_path):
    root = tmp_path / "data"
    (root / "mask").mkdir(parents=True)
    (root / "mask" / "a.jpg").write_bytes(b"not an image")
    (root / "mask" / "b.jpg").write_bytes(b"not an image")
    groups = _groups(root)
    assert len(groups) == 1 and groups[0].kind == "exact"


@pytest.mark.parametrize(("argv", "message"), [(["--hash-distance", "65"], "between 0 and 64"),
                                                (["--input", "/nonexistent"], "is not a folder")])
def test_bad_arguments_give_one_line_and_exit_2(argv, message, capsys):
    assert dedup.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
