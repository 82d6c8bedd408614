"""Suspects: crops whose label the out-of-fold models dispute, lowest label probability first."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import make_crop_dataset, render_page, shared_data
from PIL import Image

from maskdetect import facecrops, records, review, suspects


@pytest.fixture(autouse=True)
def imagenet_weights(keras_home):
    if keras_home is None:
        pytest.skip("the shared MobileNetV2 ImageNet weights are absent (suspects use Keras's ImageNet file)")


def real_faces(root: Path, per_class: int = 40) -> Path:
    """``per_class`` real photos of each class of the shared faces_dataset, as 128 px crops."""
    source = shared_data("faces_dataset")
    for name in ("mask", "without_mask"):
        (root / name).mkdir(parents=True)
        for path in sorted((source / name).iterdir())[:per_class]:
            Image.open(path).convert("RGB").resize((128, 128)).save(root / name / f"{path.stem}.jpg")
    return root


@pytest.mark.slow
def test_planted_label_flips_come_first_on_real_faces(tmp_path):
    root = real_faces(tmp_path / "processed_data")
    planted = sorted((root / "without_mask").iterdir())[:4]
    for path in planted:
        os.rename(path, root / "mask" / path.name)
    scores = suspects.score(root, folds=4)
    path, counts = suspects.write(scores, root)
    table = records.read_rows(path)
    assert list(table[0]) == suspects.FIELDS
    lowest = {row["crop"] for row in table[:8]}
    assert len(lowest & {f"mask/{p.name}" for p in planted}) >= 3, table[:8]
    first = table[0]
    assert first["class"] == "mask" and first["suggested"] == "without_mask" and first["reason"] == suspects.DISPUTED
    probabilities = [float(row["label_probability"]) for row in table]
    assert probabilities == sorted(probabilities) and 0 <= probabilities[0] < 0.5
    assert counts["agreed"] + counts.get(suspects.DISPUTED, 0) == len(table) == len(list(root.glob("*/*.jpg")))


def test_a_disputed_face_in_a_photo_of_several_faces_is_a_bystander(tmp_path):
    """Two crops from one photo of the mask class (faces.csv says so): the unmasked one is flagged as such."""
    root = make_crop_dataset(tmp_path / "processed_data", per_class=24, size=96)
    bystander = root / "mask" / "bystander.jpg"
    Image.open(root / "without_mask" / "without_mask_000.jpg").save(bystander)
    companion = root / "mask" / "mask_000.jpg"
    rows = [{"crop": str(crop.resolve()), "source": "original_data/mask/group.jpg", "source_sha256": "group",
             "class": "mask", "face_index": index, "kind": "auto"} for index, crop in enumerate((companion, bystander))]
    records.append_rows(root / facecrops.MANIFEST, facecrops.FACE_FIELDS, rows)
    table = suspects.rows(suspects.score(root, folds=3), root)
    by_crop = {row["crop"]: row for row in table}
    assert by_crop["mask/bystander.jpg"]["reason"] == suspects.BYSTANDER
    assert by_crop["mask/bystander.jpg"]["faces_in_photo"] == 2
    assert by_crop["mask/bystander.jpg"]["source"] == "original_data/mask/group.jpg"
    assert by_crop["mask/mask_000.jpg"]["reason"] == ""
    assert table[0]["crop"] == "mask/bystander.jpg"


@pytest.mark.parametrize("case", ["one class", "empty class", "too few for the folds", "one fold"])
def test_data_that_cannot_be_scored_is_one_line(tmp_path, case):
    root = make_crop_dataset(tmp_path / "processed_data", per_class=3, size=32)
    folds = 2
    if case == "one class":
        for path in (root / "without_mask").iterdir():
            path.unlink()
        (root / "without_mask").rmdir()
    elif case == "empty class":
        for path in (root / "without_mask").iterdir():
            path.unlink()
    elif case == "too few for the folds":
        folds = 5
    else:
        folds = 1
    with pytest.raises(ValueError) as error:
        suspects.score(root, folds=folds)
    assert "\n" not in str(error.value)


def manifest_for(root: Path) -> None:
    """faces.csv rows for every crop of ``root``, one source photo each, as the face stage writes them."""
    rows = [{"crop": str(crop.resolve()), "source": f"original_data/{crop.parent.name}/{crop.stem}.jpg",
             "source_sha256": crop.stem, "class": crop.parent.name, "face_index": 0, "kind": "auto",
             "confidence": "0.99", "detector": "mtcnn"} for crop in sorted(root.glob("*/*.jpg"))]
    records.append_rows(root / facecrops.MANIFEST, facecrops.FACE_FIELDS, rows)


@pytest.mark.slow
def test_suspects_lead_the_review_sheet_and_a_move_to_another_class_is_journaled_and_undone(tmp_path, capsys):
    from maskdetect import faces, moves

    root = make_crop_dataset(tmp_path / "processed_data", per_class=24, size=96)
    flipped = root / "mask" / "flipped.jpg"
    os.rename(root / "without_mask" / "without_mask_005.jpg", flipped)
    other = root / "without_mask" / "masked.jpg"
    os.rename(root / "mask" / "mask_008.jpg", other)
    manifest_for(root)
    logs = tmp_path / "logs"
    assert faces.main(["--output", str(root), "--logs", str(logs), "--suspects", "--folds", "3", "--jobs", "1"]) == 0
    summary = capsys.readouterr().out
    assert "process_faces: suspects: 48 crops scored in 3 folds" in summary and "disputed" in summary
    table = records.read_rows(root / facecrops.SUSPECTS)
    assert {row["crop"] for row in table[:2]} == {"mask/flipped.jpg", "without_mask/masked.jpg"}
    page = (logs / "review" / "mask.html").read_text()
    # the page's script runs in a real browser: it marks itself ready at its end
    dom = render_page(logs / "review" / "mask.html", tmp_path / "chromium", tmp_path / "mask.png", size="1000,800")
    assert 'data-ready="yes"' in dom and 'class="move"' in dom
    suspects_at = page.index('id="suspects"')
    assert suspects_at < page.index("Faces, lowest confidence first")
    assert page.index('data-crop="flipped.jpg"') > suspects_at and '<option value="without_mask">' in page

    verdicts = tmp_path / "review_mask.txt"
    verdicts.write_text("move flipped.jpg => without_mask\nmove gone.jpg => without_mask\n")
    assert faces.main(["--output", str(root), "--logs", str(logs), "--apply-review", str(verdicts)]) == 0
    assert "1 moved to another class (1 no longer there)" in capsys.readouterr().out
    assert (root / "without_mask" / "flipped.jpg").is_file() and not flipped.exists()
    row = next(r for r in records.read_rows(root / facecrops.MANIFEST) if r["crop"].endswith("flipped.jpg"))
    assert row["class"] == "without_mask" and Path(row["crop"]).parent.name == "without_mask"
    journal = records.read_rows(moves.journal_path(logs))
    assert [(r["action"], r["original"], r["new"]) for r in journal] == [
        (moves.RELABEL, "mask/flipped.jpg", "without_mask/flipped.jpg")]
    # the moved crop is no longer a suspect of mask; one removed by hand is left out, counted
    assert 'data-crop="flipped.jpg"' not in (logs / "review" / "mask.html").read_text()
    assert 'data-crop="masked.jpg"' in (logs / "review" / "without_mask.html").read_text()
    other.unlink()
    assert faces.main(["--output", str(root), "--logs", str(logs), "--review"]) == 0
    assert 'data-crop="masked.jpg"' not in (logs / "review" / "without_mask.html").read_text()
    assert review.suspects_by_class(root)[1] == 2  # the moved crop and the removed one

    assert faces.main(["--output", str(root), "--logs", str(logs), "--undo-review"]) == 0
    assert "1 crops moved back" in capsys.readouterr().out
    assert flipped.is_file() and not (root / "without_mask" / "flipped.jpg").exists()
    row = next(r for r in records.read_rows(root / facecrops.MANIFEST) if r["crop"].endswith("flipped.jpg"))
    assert row["class"] == "mask" and Path(row["crop"]) == flipped.resolve()


def test_the_command_line_refuses_data_it_cannot_score_in_one_line(tmp_path, capsys):
    from maskdetect import faces

    root = make_crop_dataset(tmp_path / "processed_data", per_class=6, size=32, classes=("mask",))
    assert faces.main(["--output", str(root), "--logs", str(tmp_path / "logs"), "--suspects"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "two class folders" in error[0], error
