"""Video without a model: the per-person vote and schedule, the count line, and tracks that follow a moving face."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import picture

from maskdetect.face import Face
from maskdetect.inference.countline import CountLine, check_inside, parse_line
from maskdetect.inference.people import People, VerdictSettings
from maskdetect.inference.tracking import FaceTracker, TrackingSettings, follow_boxes

pytestmark = pytest.mark.unit  # no TensorFlow: see conftest.py

NAMES = ["mask", "without_mask"]


def test_one_flickering_frame_does_not_change_a_persons_label():
    people = People(NAMES, None, VerdictSettings(confirm=2, window=5))
    person = people.seen(0, track=7, detections=1, confidence=0.99)
    for frame, p in enumerate([0.9, 0.8, 0.2, 0.85]):  # one frame says no mask
        people.classified(person, frame * 10, np.array([p, 1 - p]), side=60, sharp=100)
    assert person.label == "mask" and person.changes == []


def test_taking_the_mask_off_is_one_label_change_with_its_frame():
    people = People(NAMES, None, VerdictSettings(confirm=2, window=3))
    person = people.seen(0, track=1, detections=1, confidence=0.99)
    people.seen(10, track=1, detections=2, confidence=0.95)
    for frame, p in [(0, 0.95), (10, 0.9), (20, 0.9), (30, 0.05), (40, 0.05), (50, 0.02), (60, 0.02)]:
        people.classified(person, frame, np.array([p, 1 - p]), side=60, sharp=100)
    assert person.label == "without_mask"
    assert len(person.changes) == 1 and person.changes[0][1:] == ("mask", "without_mask")
    assert 30 < person.changes[0][0] <= 60
    assert people.counts() == {"without_mask": 1}  # still one person
    row = people.row("door.mp4", person, "people/door/person_1.jpg")
    assert row["label"] == "without_mask" and row["label_changes"].endswith(":mask>without_mask")


def test_the_vote_decides_with_the_models_decision_weights():
    # p(without_mask) 0.3 on average: argmax says mask, weights that call without_mask from 0.2 say without_mask
    for weights, expected in ((None, "mask"), ([1.0, 4.0], "without_mask")):
        people = People(NAMES, weights)
        person = people.seen(0, 1, 1, 0.99)
        people.classified(person, 0, np.array([0.7, 0.3]), side=50, sharp=100)
        assert person.label == expected


def test_a_track_is_classified_on_a_schedule():
    settings = VerdictSettings(min_face=32, min_sharpness=20, patience=15, reclassify=10, grow=1.25)
    people = People(NAMES, None, settings)
    person = people.seen(0, 1, 1, 0.99)
    assert not people.due(person, 0, side=20, sharp=100)  # too small
    assert not people.due(person, 1, side=40, sharp=5)  # too blurred
    assert people.due(person, 2, side=40, sharp=50)
    people.classified(person, 2, np.array([0.9, 0.1]), side=40, sharp=50)
    assert not people.due(person, 5, side=40, sharp=50)
    assert people.due(person, 6, side=51, sharp=50)  # it grew
    assert people.due(person, 12, side=40, sharp=50)  # every 10 frames
    never_sharp = people.seen(0, 2, 1, 0.99)
    assert not people.due(never_sharp, 14, side=20, sharp=1) and people.due(never_sharp, 15, side=20, sharp=1)
    # a track found once is not a person; found twice and labelled, it is
    assert not person.counted(settings)
    people.seen(10, 1, 2, 0.5)
    assert person.counted(settings)


def test_a_track_the_face_stage_was_never_sure_of_is_not_a_person():
    settings = VerdictSettings(min_detections=2, min_confidence=0.9)
    people = People(NAMES, None, settings)
    doubtful = people.seen(0, 1, 1, 0.6)
    people.classified(doubtful, 0, np.array([0.2, 0.8]), side=40, sharp=50)
    for frame in range(1, 30):
        people.seen(frame, 1, 3, 0.85)
    assert doubtful.confidence == 0.85 and not doubtful.counted(settings) and people.counts() == {}
    people.seen(30, 1, 4, 0.93)  # sure of it once: a person, whatever the later detections say
    people.seen(31, 1, 5, 0.4)
    assert doubtful.confidence == 0.93 and people.counts() == {"without_mask": 1}
    assert people.row("door.mp4", doubtful, "")["confidence"] == 0.93
    with pytest.raises(ValueError, match="min_confidence"):
        VerdictSettings(min_confidence=1.5)


def test_the_running_counts_match_a_recount_as_people_come_and_change():
    """The overlay reads the counts on every frame; they are kept as people change, and must equal counting the
    tracks that count by their labels at every step."""
    settings = VerdictSettings(confirm=2, window=3, min_detections=2, min_confidence=0.9)
    people = People(NAMES, None, settings)
    rng = np.random.default_rng(0)
    detections: dict[int, int] = {}
    for frame in range(400):
        track = int(rng.integers(1, 25))
        detections[track] = detections.get(track, 0) + int(rng.random() < 0.5)
        person = people.seen(frame, track, detections[track], float(rng.uniform(0.5, 1.0)))
        if rng.random() < 0.6:
            p = float(rng.random() < 0.5) * 0.9 + 0.05  # a person's mask comes and goes
            people.classified(person, frame, np.array([p, 1 - p]), side=50, sharp=100)
        recount = {name: n for name, n in
                   ((name, sum(1 for q in people.people.values() if q.counted(settings) and q.label == name))
                    for name in NAMES) if n}
        assert people.counts() == recount
    assert sum(people.counts().values()) == len(people.counted()) > 5
    assert any(person.changes for person in people.people.values())


@pytest.mark.parametrize("text", ["1,2,3", "a,b,c,d", "1,2,3,4,5", "", "nan,1,2,3", "5,5,5,5"])
def test_a_malformed_count_line_is_refused(text):
    with pytest.raises(ValueError, match="--count-line"):
        parse_line(text)


def test_a_count_line_outside_the_picture_is_refused():
    check_inside(parse_line("320,0,320,480"), 640, 480, "a.mp4")
    with pytest.raises(ValueError, match="outside the 640x480 picture of a.mp4"):
        check_inside(parse_line("320,0,320,900"), 640, 480, "a.mp4")


def test_the_count_line_counts_each_direction_per_class():
    line = CountLine(parse_line("100,0,100,200"))  # drawn top to bottom: left to right is in
    for frame, x in enumerate(range(40, 170, 10)):
        line.update(frame, [1, 2], [(x - 5, 50, x + 5, 60), (200 - x - 5, 120, 200 - x + 5, 130)])
    counts = line.counts({1: "mask", 2: None}, NAMES)
    assert counts["in"] == 1 and counts["out"] == 1
    assert counts["in_per_class"] == {"mask": 1, "without_mask": 0}
    assert counts["out_per_class"] == {"mask": 0, "without_mask": 0, "unlabelled": 1}


def _scene(shift: int) -> np.ndarray:
    """A textured 640 x 480 frame whose content (the astronaut) has moved ``shift`` px right."""
    base = np.asarray(picture("astronaut").resize((400, 400)).convert("L"))
    frame = np.full((480, 640), 40, np.uint8)
    frame[40:440, 20 + shift:420 + shift] = base
    return frame


def test_optical_flow_follows_a_moving_box():
    moved = follow_boxes(_scene(0), _scene(6), np.array([[150.0, 80.0, 250.0, 200.0]]))
    assert moved[0] is not None
    assert np.allclose(moved[0], [156, 80, 256, 200], atol=1.5)


def test_a_face_keeps_its_track_between_detections_and_a_cut_ends_it():
    tracker = FaceTracker(TrackingSettings(every=5))
    tracks, lefts = set(), []
    for index in range(12):
        gray = _scene(4 * index)
        detect = tracker.wants_detection(gray)
        assert detect == (index % 5 == 0)
        faces = [Face(150 + 4 * index, 80, 250 + 4 * index, 200, 0.99)] if detect else None
        found = tracker.update(gray, faces)
        if index:  # a new track gets its identity on its second frame
            assert len(found) == 1
            tracks.add(found[0].track)
            lefts.append(found[0].box[0])
            assert found[0].detected == detect
            # its first detection (frame 0, before it had an identity) counts
            assert found[0].first_frame == 0 and found[0].detections == 1 + index // 5
    assert len(tracks) == 1
    assert np.allclose(np.diff(lefts), 4, atol=1.5)  # followed boxes move with the face
    cut = np.full((480, 640), 200, np.uint8)
    assert tracker.wants_detection(cut)  # a new shot: the face stage runs at once
    assert tracker.update(cut, []) == [] and tracker.cuts == 1


def test_detecting_on_every_frame_counts_a_tracks_first_detection():
    """At --every 1 a face is detected on back-to-back frames: the track, named on its second frame, counts both
    detections and starts on the first frame."""
    tracker = FaceTracker(TrackingSettings(every=1))
    for index in range(3):
        gray = _scene(4 * index)
        assert tracker.wants_detection(gray)
        found = tracker.update(gray, [Face(150 + 4 * index, 80, 250 + 4 * index, 200, 0.99)])
        if index:
            assert len(found) == 1 and found[0].detected
            assert found[0].first_frame == 0 and found[0].detections == index + 1


def test_a_persons_best_crop_is_the_largest_sharp_view_not_the_largest_blurred_one():
    people = People(NAMES, None, VerdictSettings(min_sharpness=20))
    person = people.seen(0, 1, 2, 0.99)
    sharp_crop, blurred_crop = np.full((8, 8, 3), 1, np.uint8), np.full((8, 8, 3), 2, np.uint8)
    people.classified(person, 0, np.array([0.9, 0.1]), side=55, sharp=100, crop=sharp_crop)
    people.classified(person, 10, np.array([0.9, 0.1]), side=60, sharp=2, crop=blurred_crop)  # moving: blurred
    assert person.crop is sharp_crop
