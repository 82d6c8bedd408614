"""Suspects: crops whose label the out-of-fold models dispute, lowest label probability first."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import make_crop_dataset, shared_data
from PIL import Image

from maskdetect import facecrops, records, suspects


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
