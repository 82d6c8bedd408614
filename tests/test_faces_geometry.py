"""Crop geometry: square, margin, clamped inside the image, padded only past an edge it cannot avoid."""

from __future__ import annotations

import numpy as np
import pytest

from maskdetect.facecrops import CropSettings, crop_face, square_region

pytestmark = pytest.mark.unit  # no TensorFlow: see conftest.py


def test_square_is_centred_and_grown_by_the_margin():
    assert square_region((40, 50, 60, 90), 0.25, 200, 200) == (20, 40, 80, 100)


def test_square_shifts_inside_the_image_rather_than_padding():
    # a face at the top-left corner: the square moves right and down instead of going negative
    left, top, right, bottom = square_region((-5, -8, 30, 30), 0.2, 100, 100)
    assert (left, top) == (0, 0) and right - left == bottom - top
    left, top, right, bottom = square_region((90, 90, 110, 120), 0.2, 100, 100)
    assert (right, bottom) == (100, 100)


def test_square_larger_than_the_image_shrinks_to_it_never_padded():
    image = np.full((40, 60, 3), 200, np.uint8)
    image[:, :10] = 50
    assert square_region((0, 0, 60, 40), 0.5, 60, 40) == (10, 0, 50, 40)  # centred, the image's height
    crop = crop_face(image, (0, 0, 60, 40), 0.5, 32)
    assert crop.shape == (32, 32, 3) and crop.min() == 200  # real pixels only: no border of any colour
    assert square_region((2, 3, 28, 37), 0.2, 30, 40) == (0, 5, 30, 35)


def test_tiny_and_several_faces_all_give_full_size_crops():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, size=(300, 400, 3), dtype=np.uint8)
    for box in [(10, 10, 13, 14), (100, 100, 180, 200), (350, 250, 420, 330), (-40, -40, 20, 20)]:
        assert crop_face(image, box, 0.2, 256).shape == (256, 256, 3)


def test_the_crop_holds_the_face_pixels():
    image = np.zeros((100, 100, 3), np.uint8)
    image[40:60, 40:60] = 255
    crop = crop_face(image, (40, 40, 60, 60), 0.0, 20)
    assert crop.min() == 255


@pytest.mark.parametrize("box", [(10, 10, 10, 20), (10, 20, 30, 5), (float("nan"), 0, 5, 5)])
def test_degenerate_boxes_are_refused(box):
    with pytest.raises(ValueError):
        square_region(box, 0.2, 100, 100)


def test_boxes_entirely_outside_the_image_are_refused():
    with pytest.raises(ValueError, match="outside"):
        crop_face(np.zeros((50, 50, 3), np.uint8), (500, 500, 520, 520), 0.1, 32)


@pytest.mark.parametrize(
    "settings",
    [dict(size=8), dict(margin=-0.1), dict(threshold=0), dict(review_threshold=0.95, threshold=0.9),
     dict(detect_size=10)],
)
def test_settings_are_validated(settings):
    with pytest.raises(ValueError):
        CropSettings(**settings)
