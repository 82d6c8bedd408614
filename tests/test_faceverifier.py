"""The face verifier: crops are centred on their boxes, a real short training saves a file that loads and scores,
bad files and flags are one line, the shipped file tells a real face from the sky beside it, and the face stage
keeps what the fusion rejects only where the verifier is sure of it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from helpers import ASTRONAUT_FACE, BEFORE_PRESETS, picture, shared_data

from maskdetect import annotations, facecrops, images
from maskdetect.face import (
    DetectorSettings,
    FaceDetector,
    FaceKind,
    faceverifier,
    faceverifier_train,
    from_crop_settings,
    iou,
)


def test_crops_are_squares_around_their_boxes_black_outside_the_photo():
    rgb = np.zeros((200, 300, 3), np.uint8)
    rgb[50:100, 100:150] = 255  # a white "face"
    out = faceverifier.crops(rgb, np.array([[100, 50, 150, 100], [-30, -30, 10, 10]]), detail=None)
    assert out.shape == (2, faceverifier.SIDE, faceverifier.SIDE, 3) and out.dtype == np.uint8
    # context 1.5: the white square fills the middle two thirds of the first crop, the rest is dark
    middle = slice(faceverifier.SIDE // 6 + 2, faceverifier.SIDE * 5 // 6 - 2)
    assert out[0, middle, middle].min() == 255 and out[0, :10].max() == 0
    # a box off the photo's corner: black where the photo is not
    assert out[1].max() == 0
    assert faceverifier.crops(rgb, np.zeros((0, 4))).shape == (0, faceverifier.SIDE, faceverifier.SIDE, 3)


def test_a_large_crop_is_shrunk_to_the_detail_of_a_small_face_first():
    import cv2

    rgb = np.asarray(picture("astronaut"))
    box = np.array([ASTRONAUT_FACE], float)  # its 1.5x square is over 64 px
    crop, _, _ = images.square_crop(rgb, box[0], faceverifier.CONTEXT)
    assert crop.shape[0] > faceverifier.DETAIL
    shrunk = cv2.resize(crop, (faceverifier.DETAIL,) * 2, interpolation=cv2.INTER_AREA)
    expected = cv2.resize(shrunk, (faceverifier.SIDE,) * 2, interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(faceverifier.crops(rgb, box)[0], expected)
    sharp = faceverifier.crops(rgb, box, detail=None)[0]
    # the shrunk crop keeps less fine detail: a smaller difference between neighbouring pixels
    assert np.abs(np.diff(expected.astype(int), axis=1)).mean() < np.abs(np.diff(sharp.astype(int), axis=1)).mean()


def test_background_patches_hold_no_face_and_come_in_every_size():
    rng = np.random.default_rng(0)
    truth = np.array([[100, 100, 140, 150], [300, 40, 320, 64]], float)
    patches = np.array(faceverifier_train.background_patches(rng, truth, 400, 600, 400))
    assert 100 < len(patches) < 400  # those on a face are dropped
    sides = patches[:, 2] - patches[:, 0]
    assert sides.min() >= 12 and sides.max() <= 400 and np.median(sides) < 100 < sides.max()
    centres = (truth[:, :2] + truth[:, 2:]) / 2
    for patch in patches:
        inside = ((centres > patch[:2]) & (centres < patch[2:])).all(axis=1)
        assert not inside.any() and iou(patch[None], truth).max() < 0.2
    assert len(faceverifier_train.background_patches(rng, np.zeros((0, 4)), 50, 50, 5)) == 5  # no faces: all kept


def test_bad_files_settings_and_flags_are_one_line(tmp_path, capsys):
    with pytest.raises(ValueError, match="face verifier file .* does not exist"):
        faceverifier.read_meta(tmp_path / "none.keras")
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="is not a face verifier"):
        faceverifier.read_meta(tmp_path / "junk.keras")
    from maskdetect.face import facefinder

    with pytest.raises(ValueError, match="is not a face verifier"):  # another kind of model file
        faceverifier.read_meta(facefinder.SHIPPED_MODEL)
    for wrong in (-0.1, 1.5, "high", True):
        with pytest.raises(ValueError, match="verifier_threshold"):
            DetectorSettings(verifier_threshold=wrong)
    with pytest.raises(ValueError, match="verifier_model"):
        DetectorSettings(verifier_model=3)
    assert DetectorSettings(verifier_threshold=None).verifier_threshold is None
    labelled = tmp_path / "labelled"
    labelled.mkdir()
    assert faceverifier_train.main(["--annotations", str(labelled), "--output", str(tmp_path / "v.h5")]) == 2
    assert "--output must end in .keras" in capsys.readouterr().err
    from maskdetect.face import facefinder_train

    assert facefinder_train.main(["--annotations", str(labelled), "--verifier-epochs", "-1"]) == 2
    assert "--verifier-epochs must be 0 or more" in capsys.readouterr().err


@pytest.mark.slow  # a real training, ~20 s; the quick tier checks the trainer's patches and flags
def test_a_short_real_training_saves_a_verifier_that_loads_and_scores(tmp_path):
    """Eight labelled street photos of wild/ (no ImageNet file needed: the trunk starts from scratch), one
    epoch: the examples hold faces and not faces, the file keeps its settings, and the loaded verifier scores
    each box of a photo with a probability."""
    labels = annotations.read(shared_data("wild"))
    photos = sorted(labels.photos, key=lambda photo: photo.image.name)[:8]
    output = tmp_path / "verifier.keras"
    meta = faceverifier_train.train(photos, output, epochs=1, weights="none", progress=False)
    assert meta["side"] == faceverifier.SIDE and meta["context"] == faceverifier.CONTEXT
    assert 0 < meta["face_crops"] < meta["crops"] and meta["trained_on"] <= 8
    assert meta["detail"] == faceverifier.DETAIL and meta["hard_negatives"] >= 0
    assert faceverifier.read_meta(output)["crops"] == meta["crops"]
    assert "face verifier: " in faceverifier_train.summary_line(meta, output)
    verifier = faceverifier.FaceVerifier.load(output)
    rgb = np.asarray(picture("astronaut"))
    scores = verifier(rgb, np.array([ASTRONAUT_FACE, (0, 0, 60, 60)], float))
    assert scores.shape == (2,) and ((scores >= 0) & (scores <= 1)).all()
    assert verifier(rgb, np.zeros((0, 4))).shape == (0,)


def test_the_shipped_verifier_tells_a_real_face_from_the_sky_beside_it():
    verifier = faceverifier.FaceVerifier.load(faceverifier.SHIPPED_MODEL)
    rgb = np.asarray(picture("astronaut"))
    face, corner = verifier(rgb, np.array([ASTRONAUT_FACE, (440, 20, 500, 80)], float))
    assert face >= 0.9 and corner < 0.1, (face, corner)


def test_the_shipped_verifier_does_not_take_a_cup_seen_from_above_for_a_face():
    # the previous verifier, trained without large background patches, scored it 0.994
    rgb = np.asarray(picture("coffee"))
    # the settings before the presets: those of accurate keep the cup, which the face finder scores 0.67
    detector = FaceDetector(num_threads=1, verifier_threshold=0.9, **BEFORE_PRESETS)
    groups = detector.proposal_groups(rgb)
    assert groups, "the cup no longer gets a proposal group: this test checks nothing"
    _, scores, _ = detector.verify(rgb, np.array([box for box, _ in groups]))
    assert scores.max() < 0.9, scores
    assert detector.detect(rgb) == []


def test_a_box_scores_the_lowest_of_its_three_views():
    # a stand-in model whose score is a crop's mean brightness: the views differ, the lowest one counts
    def brightness(batch):
        class Scores:
            def numpy(self):
                return np.asarray(batch, float).mean(axis=(1, 2, 3))[:, None] / 255

        return Scores()

    rgb = np.zeros((200, 300, 3), np.uint8)
    rgb[:, :150] = 200  # the left half bright: a mirror image does not change the mean, more context does
    box = np.array([[120, 80, 160, 120]], float)
    verifier = faceverifier.FaceVerifier(faceverifier.SHIPPED_MODEL, faceverifier.SIDE, faceverifier.CONTEXT, {},
                                         brightness, None)
    views = [faceverifier.crops(rgb, box, faceverifier.SIDE, faceverifier.CONTEXT * scale, None).mean() / 255
             for scale, _ in faceverifier.VIEWS]
    assert verifier(rgb, box)[0] == pytest.approx(min(views)) and len(set(np.round(views, 6))) > 1


def test_the_verifier_vetoes_only_a_weak_fused_face_that_none_of_its_views_sees():
    """On the real astronaut photo: no view of the shipped verifier sees a face in the weak proposal group on her
    hair, every view sees her face. The fusion's faces under 0.5 are vetoed on the highest view's score, those of
    0.5 or more never; with no veto, or no score, nothing is."""
    rgb = np.asarray(picture("astronaut"))
    detector = FaceDetector(num_threads=1, **BEFORE_PRESETS)  # which proposes a group on her hair
    veto = detector.settings.verifier_veto
    group_box, _ = detector.proposal_groups(rgb)[0]
    _, lowest, highest = detector.verify(rgb, np.array([group_box, ASTRONAUT_FACE], float))
    assert highest[0] < veto <= 0.01 and lowest[1] >= 0.9, (highest, lowest)
    assert (lowest <= highest).all()
    assert detector.rule.confidence(0.45, lowest[0], highest[0]) is None
    assert detector.rule.confidence(0.45, 0.0, veto) == 0.45  # a view at the veto or more: kept
    assert detector.rule.confidence(0.5, 0.0, 0.0) == 0.5  # the fusion thinks it likelier than not
    assert detector.rule.confidence(0.45, 0.0) == 0.45  # no score, no veto
    assert detector.rule.confidence(0.3, 0.0, 0.0) is None  # under the second-stage threshold anyway
    lenient = dataclasses.replace(detector.rule, verifier_veto=None)
    assert lenient.confidence(0.45, lowest[0], highest[0]) == 0.45
    with pytest.raises(ValueError, match="verifier_veto"):
        DetectorSettings(verifier_veto=1.5)


def test_a_box_is_looked_at_on_the_other_views_only_when_asked():
    """On the real astronaut photo, her face and the sky: asked for the face only, the sky keeps its first view's
    score and NaN on the others, and the face the scores it gets when every box is looked at."""
    verifier = faceverifier.FaceVerifier.load(faceverifier.SHIPPED_MODEL)
    rgb = np.asarray(picture("astronaut"))
    boxes = np.array([ASTRONAUT_FACE, (440, 20, 500, 80)], float)
    placed, views = verifier.placed(rgb, boxes)
    asked = []
    lazy_placed, lazy = verifier.placed(rgb, boxes, lambda first: asked.append(first) or first > 0.5)
    assert np.allclose(asked[0], views[0]) and np.array_equal(placed, lazy_placed)
    assert np.allclose(lazy[:, 0], views[:, 0]) and lazy[0, 1] == pytest.approx(views[0, 1])
    assert np.isnan(lazy[1:, 1]).all()


def test_the_verifier_adds_faces_the_fusion_rejects_and_a_trained_folder_chooses_it(tmp_path):
    """On the real astronaut photo: with a verifier that accepts everything, the weak proposal group above her
    head (rejected by the fusion) is kept with its verifier score; with none it is not; the faces the fusion keeps
    stay. A --face-detector folder runs its own verifier, or none when it has no file for one."""
    rgb = np.asarray(picture("astronaut"))
    without = FaceDetector(num_threads=1, verifier_threshold=None, **BEFORE_PRESETS)  # a group above her head
    boxes, scores, highest = without.verify(rgb, np.array([ASTRONAUT_FACE], float))
    assert np.isnan(scores).all() and np.isnan(highest).all() and np.array_equal(boxes, [ASTRONAUT_FACE])
    group_box, features = without.proposal_groups(rgb)[0]
    probability = without.fused_probability(features)
    assert probability < without.settings.second_stage_threshold
    assert without.rule.confidence(probability, np.nan) is None
    eager = FaceDetector(num_threads=1, verifier_threshold=1e-9, **BEFORE_PRESETS)
    score = float(eager.verify(rgb, np.asarray(group_box)[None])[1][0])
    assert eager.rule.confidence(probability, score) == max(probability, score)
    # a group the fusion keeps keeps its probability when the verifier is unsure; without one, a score is ignored
    assert eager.rule.confidence(0.95, 0.0) == 0.95 == without.rule.confidence(0.95, 0.0)
    assert without.rule.confidence(0.1, 0.99) is None
    kept_without = [face for face in without.detect(rgb) if face.detector == FaceKind.SECOND_STAGE]
    kept_eager = [face for face in eager.detect(rgb) if face.detector == FaceKind.SECOND_STAGE]
    assert len(kept_eager) > len(kept_without)
    mtcnn = [face.int_box() for face in without.detect(rgb) if face.detector == FaceKind.MTCNN]
    assert mtcnn == [face.int_box() for face in eager.detect(rgb) if face.detector == FaceKind.MTCNN]
    # --face-detector DIR: its verifier file when there is one, else no verifier
    folder = tmp_path / "detector"
    folder.mkdir()
    for name in facecrops.FACE_DETECTOR_FILES:
        (folder / name).write_bytes(b"")
    assert from_crop_settings(facecrops.CropSettings(face_detector=str(folder))).verifier_model is None
    (folder / facecrops.FACE_VERIFIER_FILE).write_bytes(b"")
    settings = from_crop_settings(facecrops.CropSettings(face_detector=str(folder)))
    assert settings.verifier_model == str(folder / facecrops.FACE_VERIFIER_FILE)
    assert settings.verifier_threshold == DetectorSettings().verifier_threshold
    off = from_crop_settings(facecrops.CropSettings(face_detector=str(folder), verifier=False))
    assert off.verifier_threshold is None
    asked = from_crop_settings(facecrops.CropSettings(face_detector=str(folder), verifier_threshold=0.95))
    assert asked.verifier_threshold == 0.95 and asked.verifier_model == settings.verifier_model


def test_a_box_above_a_real_face_is_scored_moved_down_onto_it():
    """The proposal sources often box a masked face's eyes and forehead: the verifier scores such a box where it
    scores best among PLACEMENTS. On the astronaut photo, a box raised 0.3 of its height off her face scores
    nothing where it is, and is placed back onto the face; a box on the face stays where it is."""
    verifier = faceverifier.FaceVerifier.load(faceverifier.SHIPPED_MODEL)
    rgb = np.asarray(picture("astronaut"))
    face = np.array(ASTRONAUT_FACE, float)
    raised = face - np.array([0, 1, 0, 1]) * 0.3 * (face[3] - face[1])
    assert faceverifier.PLACEMENTS[0] == 0 and 0.3 in faceverifier.PLACEMENTS
    assert verifier(rgb, raised[None])[0] < 0.1
    placed, views = verifier.placed(rgb, np.array([raised, face]))
    assert np.allclose(placed, [face, face]) and (views.min(axis=0) >= 0.9).all(), (placed, views)
    assert np.allclose(views, verifier.view_scores(rgb, placed))
    empty, none = verifier.placed(rgb, np.zeros((0, 4)))
    assert empty.shape == (0, 4) and none.shape == (len(faceverifier.VIEWS), 0)
