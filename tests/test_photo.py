"""A photo shrunk once for the face stage's networks: the sizes asked for, close to shrinking the photo itself,
crops of large boxes cut from a smaller copy that map back onto the photo, and the same answers in any order."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import picture

from maskdetect import images
from maskdetect.face.photo import Photo

pytestmark = pytest.mark.unit  # no TensorFlow: see conftest.py


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.asarray(picture("astronaut").resize((1000, 1000)))[:900]  # 1000 x 900, not a square


def test_a_shrunk_photo_is_the_size_asked_and_close_to_shrinking_the_photo_itself(astronaut):
    import cv2

    photo = Photo(astronaut, base_side=640)
    for width, height in ((640, 576), (512, 461), (300, 270), (192, 173)):
        shrunk = photo.resized(width, height)
        direct = cv2.resize(astronaut, (width, height), interpolation=cv2.INTER_AREA)
        assert shrunk.shape == (height, width, 3) and shrunk.dtype == np.uint8
        assert np.abs(shrunk.astype(int) - direct).mean() < 2.0
    # the base itself is exactly the photo shrunk once; a size above it comes from the photo
    assert np.array_equal(photo.resized(640, 576), cv2.resize(astronaut, (640, 576), interpolation=cv2.INTER_AREA))
    assert np.array_equal(photo.resized(800, 720), cv2.resize(astronaut, (800, 720), interpolation=cv2.INTER_AREA))
    # no base, or a photo no larger than it: the photo serves every request, as before
    for plain in (Photo(astronaut), Photo(astronaut, base_side=2000)):
        assert np.array_equal(plain.resized(300, 270), cv2.resize(astronaut, (300, 270), interpolation=cv2.INTER_AREA))
    assert Photo.of(photo) is photo and Photo.of(astronaut).rgb is astronaut


def test_the_crop_of_a_large_box_comes_from_a_halving_and_maps_back_onto_the_photo(astronaut):
    photo = Photo(astronaut)
    small_box = np.array([400.0, 100.0, 460.0, 170.0])
    crop, left, top, scale_x, scale_y = photo.square_crop(small_box, 2.0, 192)
    expected, expected_left, expected_top = images.square_crop(astronaut, small_box, 2.0)
    assert np.array_equal(crop, expected) and (left, top, scale_x, scale_y) == (expected_left, expected_top, 1, 1)

    large_box = np.array([300.0, 50.0, 700.0, 500.0])  # 3 x 450 px of context: 1350 px, a quarter is still 337
    crop, left, top, scale_x, scale_y = photo.square_crop(large_box, 3.0, 192)
    assert crop.shape[0] >= 192
    assert scale_x == pytest.approx(0.25, abs=0.01) and scale_y == pytest.approx(0.25, abs=0.01)
    full, full_left, full_top = images.square_crop(astronaut, large_box, 3.0)
    assert left == pytest.approx(full_left, abs=4) and top == pytest.approx(full_top, abs=4)
    # the same picture as cutting the photo and shrinking the cut
    import cv2

    shrunk = cv2.resize(full, crop.shape[1::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(shrunk.astype(int) - crop).mean() < 3.0
    # a point of the crop maps back to the same point of the photo: the crop's centre onto the box's
    centre = crop.shape[0] // 2
    photo_x, photo_y = left + centre / scale_x, top + centre / scale_y
    assert photo_x == pytest.approx(500, abs=4) and photo_y == pytest.approx(275, abs=4)
    block = astronaut[round(photo_y) - 2:round(photo_y) + 2, round(photo_x) - 2:round(photo_x) + 2]
    np.testing.assert_allclose(crop[centre, centre], block.reshape(-1, 3).mean(axis=0), atol=25)


def test_a_photo_answers_the_same_in_any_order(astronaut):
    box = np.array([300.0, 50.0, 700.0, 500.0])
    first = Photo(astronaut, base_side=640)
    a = (first.square_crop(box, 3.0, 192)[0], first.resized(300, 270))
    second = Photo(astronaut, base_side=640)
    b = (second.resized(300, 270), second.square_crop(box, 2.0, 128), second.square_crop(box, 3.0, 192)[0])
    assert np.array_equal(a[0], b[2]) and np.array_equal(a[1], b[0])
