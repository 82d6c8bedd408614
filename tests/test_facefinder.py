"""The face stage's own face finder: targets and decoding agree, augmentation moves boxes with the pixels, a real
training on labelled photos saves a file that loads and finds the faces it was shown, bad input is one line, and
the shipped file finds masked faces in real street photos."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from helpers import ASTRONAUT_FACE, PYTHON, REPO, make_labelled_folder, shared_data

from maskdetect import annotations, detectors, facefinder


def test_targets_decode_back_to_the_labelled_boxes():
    boxes = np.array([[79, 105, 109, 142], [185, 100, 226, 144], [325.5, 90, 360, 141], [10, 10, 14, 14]])
    target = facefinder.targets(boxes, 512)
    assert target.shape == (64, 64, facefinder.OUTPUTS + 1)
    assert target[..., 5].sum() == 3  # the 4 px face is under a cell: left out
    rows = facefinder.decode(target[..., :5], scale=2.0, min_score=0.99)
    found = rows[np.argsort(rows[:, 0])]
    np.testing.assert_allclose(found[:, :4], boxes[:3] / 2.0, atol=1e-3)
    assert (found[:, 4] == 1.0).all()
    # a peak is a local maximum: the Gaussian around each centre adds no faces at a lower score
    assert len(facefinder.decode(target[..., :5], 1.0, min_score=0.05)) == 3


def test_letterbox_and_augmentation_keep_boxes_on_their_pixels():
    rgb = np.zeros((300, 400, 3), np.uint8)
    rgb[100:150, 200:260] = 255  # a white "face"
    canvas, scale = facefinder.letterbox(rgb, 512)
    assert canvas.shape == (512, 512, 3) and scale == pytest.approx(512 / 400)
    assert canvas[384:].max() == 0  # padded below the photo
    sample = facefinder.Sample(canvas, np.array([[200, 100, 260, 150]]) * scale, "white.jpg")
    rng = np.random.default_rng(0)
    for _ in range(20):
        view, boxes = facefinder.augment(sample, rng)
        assert view.shape == canvas.shape and len(boxes) <= 1
        for x1, y1, x2, y2 in boxes.round().astype(int):
            inner = view[y1 + 3:y2 - 3, x1 + 3:x2 - 3].astype(int)
            assert inner.size == 0 or inner.mean() > view.astype(int).mean() + 40


def test_held_out_photos_are_chosen_by_name():
    names = [f"photo_{index}.jpg" for index in range(1000)]
    chosen = [name for name in names if facefinder.held_out(name, 0.2)]
    assert 150 < len(chosen) < 250
    assert chosen == [name for name in names if facefinder.held_out(name, 0.2)]


def test_bad_files_and_flags_are_one_line(tmp_path, capsys):
    with pytest.raises(ValueError, match="does not exist"):
        facefinder.read_meta(tmp_path / "none.keras")
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a face detector saved by train_face_detector.py"):
        facefinder.read_meta(tmp_path / "junk.keras")
    with pytest.raises(ValueError, match="face_model"):
        detectors.DetectorSettings(face_model=3)
    assert facefinder.main(["--annotations", str(tmp_path / "absent")]) == 2
    assert "do not exist" in capsys.readouterr().err
    labelled = make_labelled_folder(tmp_path / "labelled")
    assert facefinder.main(["--annotations", str(labelled), "--output", str(tmp_path / "out"),
                            "--holdout", "1.5"]) == 2
    assert "held-out share" in capsys.readouterr().err


def test_a_short_real_training_saves_a_finder_that_finds_the_face_it_was_shown(tmp_path):
    """Three labelled photos (the astronaut masked and bare, a coffee cup), side 128, ImageNet trunk from the
    Keras cache: the command trains, saves, and the loaded finder puts its best boxes on the labelled faces."""
    labelled = make_labelled_folder(tmp_path / "labelled")
    output = tmp_path / "detector"
    finished = subprocess.run(
        [PYTHON, str(REPO / "train_face_detector.py"), "--annotations", str(labelled), "--output", str(output),
         "--side", "128", "--epochs", "25", "--batch-size", "1", "--holdout", "0.34", "--learning-rate", "3e-3"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "face detector: 3 photos in" in finished.stdout
    meta = facefinder.read_meta(output / "facefinder.keras")
    assert meta["side"] == 128 and meta["trained_on"] + meta["held_out"] == 3
    finder = facefinder.FaceFinder.load(output / "facefinder.keras")
    photo = np.asarray(annotations.images.load_rgb(labelled / "images" / "bare.jpg"))
    rows = finder(photo, 0.01)
    # its two labelled faces of 32 px or more (the astronaut's face and an incorrect_mask box) are among the
    # three best boxes
    labelled_faces = np.array([ASTRONAUT_FACE, (300, 250, 400, 350)], float)
    assert (detectors.iou(labelled_faces, rows[:3, :4]).max(axis=1) > 0.3).all(), rows[:3]


def test_the_shipped_finder_finds_masked_street_faces():
    """On 10 labelled photos of the evaluation set (never trained on), the shipped finder alone finds most
    masked faces of 32 px or more at its proposal score."""
    detection = shared_data("detection")
    from benchmarks.common import load_photo, load_truth, matches, photo_sizes

    truth, sizes = load_truth(detection), photo_sizes(detection)
    finder = facefinder.FaceFinder.load(facefinder.SHIPPED_MODEL)
    found = counted = 0
    for photo in sorted(truth)[:40]:
        rgb = load_photo(detection / "images" / photo, *sizes[photo])
        rows = finder(rgb, 0.1)
        for label, _, best in matches(truth[photo], rows[:, :4]):
            if label == "mask":
                counted += 1
                found += best is not None
    assert counted >= 20 and found / counted >= 0.8, (found, counted)
