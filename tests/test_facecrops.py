"""Face crops (maskdetect.facecrops): the output layout, the crop geometry, safe writes and the manifest."""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from helpers import picture
from PIL import Image

from maskdetect import facecrops, images, records
from maskdetect.face.boxes import Face

pytestmark = pytest.mark.unit

SMALL = facecrops.CropSettings(size=64, margin=0.2)


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("photos") / "astronaut.jpg"
    picture("astronaut").save(path, quality=95)
    return path


def test_the_square_grows_the_box_by_the_margin_of_its_long_side_on_each_side_around_its_centre():
    # a 20 x 40 box centred on (50, 70): the square's side is 40 * (1 + 2 * 0.25) = 60
    assert facecrops.square_region((40, 50, 60, 90), 0.25, 200, 200) == (20, 40, 80, 100)
    assert facecrops.square_region((40, 50, 60, 90), 0.0, 200, 200) == (30, 50, 70, 90)
    assert facecrops.square_region((40.4, 50.2, 59.6, 89.9), 0.0, 200, 200) == (30, 50, 70, 90)
    for region in (facecrops.square_region((3, 7, 41, 29), margin, 123, 77) for margin in (0, 0.2, 0.5, 1, 2)):
        left, top, right, bottom = region
        assert right - left == bottom - top and all(isinstance(value, int) for value in region)


@pytest.mark.parametrize("box, width, height, expected", [
    ((0, 0, 20, 20), 100, 80, (0, 0, 40, 40)),  # the top-left corner: shifted right and down
    ((90, 70, 100, 80), 100, 80, (80, 60, 100, 80)),  # the bottom-right corner: shifted left and up
    ((-10, 30, 10, 50), 100, 80, (0, 20, 40, 60)),  # a box partly outside the photo
    ((0, 0, 300, 100), 300, 100, (100, 0, 200, 100)),  # larger than the short side: shrunk to it
    ((5, 10, 25, 30), 30, 500, (0, 5, 30, 35)),  # a margin that outgrows a narrow photo: as wide as the photo
], ids=["top-left", "bottom-right", "partly outside", "whole photo", "narrow photo"])
def test_a_square_that_would_cross_an_edge_is_moved_inside_the_photo_never_padded(box, width, height, expected):
    region = facecrops.square_region(box, 0.5, width, height)
    assert region == expected
    left, top, right, bottom = region
    assert 0 <= left < right <= width and 0 <= top < bottom <= height


@pytest.mark.parametrize("box, width, height, words", [
    ((10, 10, 10, 30), 100, 100, "is empty"),
    ((30, 10, 20, 40), 100, 100, "is empty"),
    ((10, float("nan"), 40, 40), 100, 100, "not finite"),
    ((10, 10, float("inf"), 40), 100, 100, "not finite"),
    ((100, 10, 140, 40), 100, 100, "lies outside"),
    ((-40, -40, 0, 0), 100, 100, "lies outside"),
    ((10, 10, 20, 20), 0, 100, "is empty"),
])
def test_boxes_that_are_empty_not_finite_or_outside_the_photo_are_refused(box, width, height, words):
    with pytest.raises(ValueError, match=words):
        facecrops.square_region(box, 0.2, width, height)


def test_a_crop_of_a_real_photo_is_a_size_square_of_the_region_pixels(astronaut):
    rgb = images.load_rgb(astronaut)
    box = (180, 60, 300, 200)  # the astronaut's face: 120 x 140, a 140 px square without a margin
    left, top, right, bottom = facecrops.square_region(box, 0.0, rgb.shape[1], rgb.shape[0])
    exact = facecrops.crop_face(rgb, box, 0.0, 140)
    assert exact.dtype == np.uint8 and np.array_equal(exact, rgb[top:bottom, left:right])
    for size in (64, 256):  # shrunk and enlarged
        crop = facecrops.crop_face(rgb, box, 0.2, size)
        assert crop.shape == (size, size, 3) and crop.dtype == np.uint8
        region = facecrops.square_region(box, 0.2, rgb.shape[1], rgb.shape[0])
        expected = np.asarray(Image.fromarray(rgb).crop(region).resize((size, size), Image.BILINEAR), dtype=float)
        assert np.abs(crop.astype(float) - expected).mean() < 6


@pytest.mark.parametrize("array", [np.zeros((40, 40), np.uint8), np.zeros((40, 40, 4), np.uint8),
                                   np.zeros((40, 40, 3), np.float32)], ids=["grey", "rgba", "float"])
def test_a_crop_needs_an_rgb_uint8_photo(array):
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        facecrops.crop_face(array, (5, 5, 30, 30), 0.2, 32)


def test_writes_go_through_a_temporary_name_and_leave_only_the_whole_file(tmp_path, astronaut):
    rgb = images.load_rgb(astronaut)
    target = tmp_path / "new" / "folder" / "crop.jpg"
    facecrops.atomic_write_image(rgb[:64, :64].copy(), target)
    facecrops.atomic_write_image(rgb[100:200, 100:200].copy(), target)  # a rewrite replaces it
    assert os.listdir(target.parent) == ["crop.jpg"]
    with Image.open(target) as image:
        assert image.format == "JPEG" and image.size == (100, 100)
    with pytest.raises(OSError):  # a write that fails leaves neither the file nor its temporary
        facecrops.atomic_write_image(np.zeros((8, 8, 4), np.uint8), tmp_path / "failed" / "crop.jpg")
    assert os.listdir(tmp_path / "failed") == []

    copy = facecrops.atomic_no_face_copy(astronaut, "without_mask", tmp_path / "out")
    assert copy == tmp_path / "out" / facecrops.NO_FACE_DIR / "without_mask" / "astronaut.jpg"
    assert copy.read_bytes() == astronaut.read_bytes() and os.listdir(copy.parent) == ["astronaut.jpg"]


def test_crops_are_named_after_their_source_and_its_hash_keeps_sources_of_one_stem_apart():
    jpeg_hash, png_hash = "ab" * 32, "cd" * 32
    assert facecrops.crop_stem(Path("mask/a.jpg"), jpeg_hash) == "a_abababab"
    assert facecrops.crop_stem(Path("mask/a.png"), png_hash) == "a_cdcdcdcd"
    # an organised name already holds the hash: it is not added twice
    organised = Path(f"mask/photo_{jpeg_hash[:12]}.jpg")
    assert facecrops.crop_stem(organised, jpeg_hash) == organised.stem


def test_each_face_is_saved_where_its_kind_says_with_a_manifest_row_of_its_box_and_settings(tmp_path, astronaut):
    rgb = images.load_rgb(astronaut)
    sha256 = images.sha256_file(astronaut)
    landmarks = ((210.04, 120.0), (260.0, 121.0), (235.0, 150.0), (215.0, 175.0), (255.0, 176.0))
    faces = [Face(180.04, 60.0, 300.0, 200.0, 0.99876, landmarks), Face(20, 300, 80, 370, 0.8, None, "mtcnn_low"),
             Face(300, 300, 400, 400, 1.0, None, "manual")]
    kinds = [facecrops.AUTO, facecrops.LOW_CONFIDENCE, facecrops.MANUAL]
    output = tmp_path / "processed_data"
    rows = facecrops.save_faces(rgb, faces, astronaut, sha256, "mask", output, SMALL,
                                lambda face: kinds[faces.index(face)])
    stem = f"astronaut_{sha256[:8]}"
    assert [Path(row["crop"]) for row in rows] == [
        (output / "mask" / f"{stem}_face0.jpg").resolve(),
        (output / facecrops.LOW_CONFIDENCE_DIR / "mask" / f"{stem}_face1.jpg").resolve(),
        (output / "mask" / f"{stem}_manual_face2.jpg").resolve()]
    for row, face, kind in zip(rows, faces, kinds, strict=True):
        assert set(row) <= set(facecrops.FACE_FIELDS)
        assert Image.open(row["crop"]).size == (64, 64)
        assert (row["kind"], row["class"], row["source"], row["source_sha256"]) == (kind, "mask", str(astronaut),
                                                                                    sha256)
        assert row["detector"] == face.detector and json.loads(row["settings"]) == asdict(SMALL)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", row["time"])
    first = rows[0]
    assert (first["face_index"], first["x1"], first["y2"], first["confidence"]) == (0, 180.0, 200.0, 0.9988)
    assert (first["left_eye_x"], first["mouth_right_y"]) == (210.0, 176.0)
    assert "left_eye_x" not in rows[1]
    records.append_rows(output / facecrops.MANIFEST, facecrops.FACE_FIELDS, rows)
    assert records.read_header(output / facecrops.MANIFEST) == facecrops.FACE_FIELDS


def face_rows(sha256: str, kinds: list[str]) -> list[dict]:
    return [{"crop": f"/out/mask/{sha256}_face{index}.jpg", "source": f"/in/{sha256}.jpg", "source_sha256": sha256,
             "class": "mask", "face_index": index, "kind": kind} for index, kind in enumerate(kinds)]


def test_done_sources_drops_the_face_rows_of_a_photo_left_half_done_but_keeps_drawn_boxes(tmp_path):
    output = tmp_path / "processed_data"
    records.append_rows(output / facecrops.SOURCES, facecrops.SOURCE_FIELDS, [
        {"source": "/in/done.jpg", "source_sha256": "done", "class": "mask", "status": "faces", "faces": 2},
        {"source": "/in/empty.jpg", "source_sha256": "empty", "class": "mask", "status": "no_face", "faces": 0}])
    done = face_rows("done", [facecrops.AUTO, facecrops.LOW_CONFIDENCE])
    torn = face_rows("torn", [facecrops.AUTO, facecrops.LOW_CONFIDENCE, facecrops.MANUAL])
    records.append_rows(output / facecrops.MANIFEST, facecrops.FACE_FIELDS, [*done[:1], *torn, *done[1:]])

    assert facecrops.done_sources(output) == {"done", "empty"}
    kept = [(row["source_sha256"], row["kind"]) for row in records.read_rows(output / facecrops.MANIFEST)]
    assert kept == [("done", "auto"), ("torn", "manual"), ("done", "low_confidence")]
    assert records.read_header(output / facecrops.MANIFEST) == facecrops.FACE_FIELDS
    # nothing torn now: a second resume leaves the manifest as it is
    before = (output / facecrops.MANIFEST).read_bytes()
    assert facecrops.done_sources(output) == {"done", "empty"}
    assert (output / facecrops.MANIFEST).read_bytes() == before


def test_an_output_folder_with_no_records_has_no_finished_sources_and_gets_no_files(tmp_path):
    assert facecrops.done_sources(tmp_path) == set()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("options, words", [
    ({"size": 15}, "--size"), ({"size": 4097}, "--size"), ({"margin": -0.1}, "--margin"),
    ({"margin": 2.5}, "--margin"), ({"threshold": 0}, "--threshold"), ({"threshold": 1.1}, "--threshold"),
    ({"threshold": 0.8, "review_threshold": 0.9}, "--review-threshold"),
    ({"review_threshold": 0}, "--review-threshold"),
    ({"detect_size": 63}, "--detect-size"), ({"second_stage_threshold": 0}, "--second-stage-threshold"),
    ({"verifier_threshold": 1.5}, "--verifier-threshold"),
    ({"verifier_threshold": 0.9, "verifier": False}, "do not go together"),
])
def test_crop_settings_refuse_a_value_out_of_range_in_one_line_naming_its_option(options, words):
    with pytest.raises(ValueError, match=words) as error:
        facecrops.CropSettings(**options)
    assert "\n" not in str(error.value)


def test_a_face_detector_folder_must_hold_what_train_face_detector_writes(tmp_path):
    with pytest.raises(ValueError, match="facefinder.keras or fusion.json"):
        facecrops.CropSettings(face_detector=str(tmp_path))
    (tmp_path / "facefinder.keras").write_bytes(b"not read here")
    with pytest.raises(ValueError, match="has no fusion.json"):
        facecrops.CropSettings(face_detector=str(tmp_path))
    (tmp_path / "fusion.json").write_text("{}")
    assert facecrops.CropSettings(face_detector=str(tmp_path)).face_detector == str(tmp_path)
    assert facecrops.CropSettings(size=16, margin=0, threshold=1, review_threshold=1, detect_size=64).size == 16


def test_the_pipeline_folders_and_records_in_the_output_are_never_taken_for_classes(tmp_path):
    assert (facecrops.MANIFEST, facecrops.SOURCES, facecrops.SUSPECTS) == ("faces.csv", "sources.csv", "suspects.csv")
    assert (facecrops.NO_FACE_DIR, facecrops.LOW_CONFIDENCE_DIR, facecrops.REJECTED_DIR) == (
        "_no_face", "_low_confidence", "_rejected")
    assert facecrops.CROP_EXTENSION == ".jpg" and facecrops.REJECTED_RECORD == "rejected.csv"
    assert facecrops.FACE_FIELDS[0] == "crop" and len(set(facecrops.FACE_FIELDS)) == len(facecrops.FACE_FIELDS)
    assert {"left_eye_x", "mouth_right_y", "settings"} <= set(facecrops.FACE_FIELDS)
    assert len({facecrops.AUTO, facecrops.LOW_CONFIDENCE, facecrops.MANUAL, facecrops.ANNOTATED}) == 4
    for folder in ("mask", "without_mask", facecrops.NO_FACE_DIR, facecrops.LOW_CONFIDENCE_DIR,
                   facecrops.REJECTED_DIR, f"{facecrops.LOW_CONFIDENCE_DIR}/mask"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / facecrops.MANIFEST).write_text("crop\n")
    assert [folder.name for folder in images.class_dirs(tmp_path)] == ["mask", "without_mask"]
