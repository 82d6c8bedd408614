"""The face stage's own face finder: targets and decoding agree, augmentation moves boxes with the pixels, a real
training on labelled photos saves a file that loads and finds the faces it was shown, bad input is one line, and
the shipped file finds masked faces in real street photos."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from helpers import ASTRONAUT_FACE, PYTHON, REPO, SHARED_DATA, make_labelled_folder, picture, shared_data

from maskdetect import annotations, facecrops, faces, images
from maskdetect.face import DetectorSettings, FaceDetector, facefinder, facefinder_train, from_crop_settings, iou


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
    fitted, fitted_scale = facefinder.letterbox(rgb, 512, square=False)  # detection's: rounded up to 32 px
    assert fitted.shape == (384, 512, 3) and fitted_scale == scale and (fitted == canvas[:384]).all()
    sample = facefinder_train.Sample(canvas, np.array([[200, 100, 260, 150]]) * scale, "white.jpg")
    rng = np.random.default_rng(0)
    for _ in range(20):
        view, boxes = facefinder_train.augment(sample, rng)
        assert view.shape == canvas.shape and len(boxes) <= 1
        for x1, y1, x2, y2 in boxes.round().astype(int):
            inner = view[y1 + 3:y2 - 3, x1 + 3:x2 - 3].astype(int)
            assert inner.size == 0 or inner.mean() > view.astype(int).mean() + 40


def test_held_out_photos_are_chosen_by_name():
    names = [f"photo_{index}.jpg" for index in range(1000)]
    chosen = [name for name in names if facefinder_train.held_out(name, 0.2)]
    assert 150 < len(chosen) < 250
    assert chosen == [name for name in names if facefinder_train.held_out(name, 0.2)]


def test_bad_files_and_flags_are_one_line(tmp_path, capsys):
    with pytest.raises(ValueError, match="does not exist"):
        facefinder.read_meta(tmp_path / "none.keras")
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a face detector saved by train_face_detector.py"):
        facefinder.read_meta(tmp_path / "junk.keras")
    with pytest.raises(ValueError, match="face_model"):
        DetectorSettings(face_model=3)
    assert facefinder_train.main(["--annotations", str(tmp_path / "absent")]) == 2
    assert "do not exist" in capsys.readouterr().err
    labelled = make_labelled_folder(tmp_path / "labelled")
    assert facefinder_train.main(["--annotations", str(labelled), "--output", str(tmp_path / "out"),
                            "--holdout", "1.5"]) == 2
    assert "held-out share" in capsys.readouterr().err


@pytest.fixture
def imagenet_weights(keras_home):
    if keras_home is None:
        pytest.skip("the shared MobileNetV2 ImageNet weights are absent (the finder's trunk starts from Keras's file)")


@pytest.mark.slow  # a real training, ~50 s; the quick tier checks the trainer's targets, augmentation and flags
def test_a_short_real_training_saves_a_finder_that_finds_the_face_it_was_shown(tmp_path, imagenet_weights):
    """Three labelled photos (the astronaut masked and bare, a coffee cup), side 128, ImageNet trunk from the
    Keras cache: the command trains, saves, and the loaded finder puts its best boxes on the labelled faces. Its
    two held-out photos are too few to fit the fusion weights: one line says so."""
    labelled = make_labelled_folder(tmp_path / "labelled")
    output = tmp_path / "detector"
    finished = subprocess.run(
        [PYTHON, str(REPO / "train_face_detector.py"), "--annotations", str(labelled), "--output", str(output),
         "--side", "128", "--epochs", "40", "--batch-size", "1", "--holdout", "0.34", "--learning-rate", "3e-3"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert finished.returncode == 2, finished.stderr[-2000:]
    assert "too few of both kinds to fit the fusion weights; label more photos" in finished.stderr
    meta = facefinder.read_meta(output / "facefinder.keras")
    assert meta["side"] == 128 and meta["trained_on"] + meta["held_out"] == 3
    assert not (output / "fusion.json").exists()
    finder = facefinder.FaceFinder.load(output / "facefinder.keras")
    photo = np.asarray(annotations.images.load_rgb(labelled / "images" / "bare.jpg"))
    rows = finder(photo, 0.01)
    # it learnt: the loss fell (one augmented photo per epoch: noisy, so ten epochs against ten), and one of its
    # five best boxes is on a labelled face of 32 px or more (the astronaut's face, an incorrect_mask box)
    losses = [float(row.split(",")[1]) for row in (output / "history.csv").read_text().splitlines()[1:]]
    assert len(losses) == 40 and np.mean(losses[-10:]) < 0.8 * np.mean(losses[:10]), losses
    labelled_faces = np.array([ASTRONAUT_FACE, (300, 250, 400, 350)], float)
    assert iou(labelled_faces, rows[:5, :4]).max() > 0.3, rows[:5]
    # a folder without fusion weights is not a face detector the face stage takes
    with pytest.raises(ValueError, match="has no fusion.json"):
        facecrops.CropSettings(face_detector=str(output))


@pytest.mark.slow
def test_the_command_on_real_street_photos_gives_a_detector_the_face_stage_uses(tmp_path, imagenet_weights):
    """40 labelled street photos of wild/, 1 epoch at 128 px: the finder and fusion weights fitted on its
    held-out photos, a face verifier trained for 1 epoch on its training photos, and process_faces.py's detector
    settings built from the folder run on a photo."""
    wild = shared_data("wild")
    labels = annotations.read(wild)
    subset = tmp_path / "subset"
    (subset / "images").mkdir(parents=True)
    names = sorted(photo.image.name for photo in labels.photos)[:40]
    rows = [line for line in (wild / "boxes.csv").read_text().splitlines()[1:] if line.split(",")[0] in names]
    (subset / "boxes.csv").write_text((wild / "boxes.csv").read_text().splitlines()[0] + "\n" + "\n".join(rows))
    for name in names:  # copies: a labelled folder's links to photos elsewhere are not read
        shutil.copy(wild / "images" / name, subset / "images" / name)
    output = tmp_path / "detector"
    finished = subprocess.run(
        [PYTHON, str(REPO / "train_face_detector.py"), "--annotations", str(subset), "--output", str(output),
         "--side", "128", "--epochs", "1", "--verifier-epochs", "1"], capture_output=True, text=True, timeout=1200,
        cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "fusion weights: fitted on" in finished.stdout and f"--face-detector {output}" in finished.stdout
    # a fusion per preset, or a line saying why the fast one could not be fitted (a finder this weak proposes little)
    assert (output / "fusion_fast.json").is_file() or "works with --face-stage accurate only" in finished.stderr
    # what each second-stage threshold keeps of the held-out groups, and how to choose another
    assert "second-stage threshold (" in finished.stdout and "--second-stage-threshold" in finished.stdout
    table = (output / "thresholds.csv").read_text().splitlines()
    assert table[0].startswith("threshold,groups_kept,faces_kept,precision,recall,f1") and len(table) == 18
    settings = from_crop_settings(facecrops.CropSettings(face_detector=str(output)))
    assert settings.face_model == str(output / "facefinder.keras") and settings.fusion == str(output / "fusion.json")
    assert settings.second_stage_threshold == DetectorSettings().second_stage_threshold
    assert "face verifier: " in finished.stdout and settings.verifier_model == str(output / "faceverifier.keras")
    chosen = from_crop_settings(facecrops.CropSettings(face_detector=str(output), second_stage_threshold=0.25))
    assert chosen.second_stage_threshold == 0.25 and chosen.fusion == settings.fusion
    detector = FaceDetector(settings)
    photo = annotations.images.load_rgb(wild / "images" / names[0])
    assert isinstance(detector.detect(photo), list)


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


def test_the_fitted_canvas_keeps_the_boxes_of_the_square_one():
    """Detection runs the finder on a canvas only as large as the scaled photo (a quarter fewer pixels for 4:3);
    on real photos of several shapes it keeps the square canvas's boxes, at nearly the same scores."""
    finder = facefinder.FaceFinder.load(facefinder.SHIPPED_MODEL)
    photos = [np.asarray(picture(name).convert("RGB")) for name in ("astronaut", "chelsea", "coffee", "rocket")]
    detection = SHARED_DATA / "detection" / "images"
    if detection.is_dir():  # street crowds of other shapes, where there are
        photos += [images.load_rgb(path) for path in sorted(detection.glob("*.jpg"))[:12]]
    assert sum(facefinder.letterbox(rgb, 512, square=False)[0].shape[:2] != (512, 512) for rgb in photos) >= 3
    compared = 0
    for rgb in photos:
        canvas, scale = facefinder.letterbox(rgb, finder.side)
        square = facefinder.decode(finder._call(canvas[None]).numpy()[0], scale, 0.3)
        fitted = finder(rgb, 0.25)
        for row in square:
            compared += 1
            overlap = iou(row[None, :4], fitted[:, :4])[0] if len(fitted) else np.zeros(1)
            best = int(overlap.argmax())
            assert overlap[best] > 0.8 and abs(fitted[best, 4] - row[4]) < 0.1, (row, fitted)
    assert compared >= 3


def test_both_commands_refuse_a_folder_that_is_not_a_face_detector(tmp_path, capsys):
    from maskdetect import detect

    (tmp_path / "photo.jpg").write_bytes(b"")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "facefinder.keras").write_bytes(b"")  # a run stopped before the fusion fit
    for main, first in ((detect.main, [str(tmp_path / "photo.jpg")]),
                        (faces.main, ["--input", str(tmp_path / "none"), "--output", str(tmp_path / "out")])):
        assert main([*first, "--face-detector", str(tmp_path / "half")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"error: --face-detector {tmp_path / 'half'} has no fusion.json: give a folder that "
                       "train_face_detector.py finished"]
