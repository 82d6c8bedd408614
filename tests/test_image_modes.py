"""Images of every mode: 16/32-bit and float greyscale, 1-bit, palettes with transparency, alpha, CMYK.

Every stage decodes through ``images.to_8bit``, so a picture hashes, checks and crops alike in whatever mode it
was saved. Built from real photos shipped with scikit-image (astronaut, camera).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from helpers import picture
from PIL import Image

from maskdetect import dedup, images

SIZE = 128
BORDER = 16  # the transparent frame of the pictures with transparency


def _grey(rgb: Image.Image) -> np.ndarray:
    return np.asarray(rgb.convert("L"), dtype=np.int64)


def _opaque_inside(rgb: Image.Image) -> np.ndarray:
    """The alpha of a picture whose frame is transparent."""
    alpha = np.zeros((rgb.height, rgb.width), np.uint8)
    alpha[BORDER:-BORDER, BORDER:-BORDER] = 255
    return alpha


def _with_alpha(rgb: Image.Image, mode: str) -> Image.Image:
    """``rgb`` with a transparent frame, in ``mode``; the colour under the frame is black, to be hidden."""
    pixels = np.asarray(rgb).copy()
    pixels[_opaque_inside(rgb) == 0] = 0
    rgba = Image.fromarray(pixels).convert("RGBA")
    rgba.putalpha(Image.fromarray(_opaque_inside(rgb)))
    if mode == "PA":
        palette = Image.fromarray(pixels).quantize(256)
        mode_image = palette.convert("PA")
        mode_image.putalpha(Image.fromarray(_opaque_inside(rgb)))
        return mode_image
    return rgba.convert(mode)


def _palette_keyed(rgb: Image.Image) -> Image.Image:
    """A palette picture whose frame is palette entry 255, the transparency key."""
    indices = np.asarray(rgb.quantize(255)).copy()
    indices[_opaque_inside(rgb) == 0] = 255
    keyed = Image.fromarray(indices, "P")
    palette = rgb.quantize(255).getpalette()[: 255 * 3] + [0, 0, 0]  # the key's colour: black, hidden
    keyed.putpalette(palette)
    keyed.info["transparency"] = 255
    return keyed


def _framed_white(rgb: Image.Image) -> Image.Image:
    """What a picture with a transparent frame looks like on the white background."""
    pixels = np.asarray(rgb).copy()
    pixels[_opaque_inside(rgb) == 0] = 255
    return Image.fromarray(pixels)


# mode -> (how the picture is put in that mode, file format, extension, what the picture looks like in RGB)
MODES: dict[str, tuple[Callable[[Image.Image], Image.Image], str, str, Callable[[Image.Image], Image.Image]]] = {
    "L": (lambda rgb: rgb.convert("L"), "PNG", ".png", lambda rgb: rgb),
    # a 16-bit picture that does not use the type's whole range, as most 16-bit photos
    "I;16": (lambda rgb: Image.fromarray((_grey(rgb) * 200 + 3000).astype(np.uint16)), "PNG", ".png",
             lambda rgb: rgb),
    "I;16 full range": (lambda rgb: Image.fromarray((_grey(rgb) * 257).astype(np.uint16)), "PNG", ".png",
                        lambda rgb: rgb),
    "I;16B": (lambda rgb: Image.fromarray((_grey(rgb) * 100 + 20).astype(">u2")), "TIFF", ".tif", lambda rgb: rgb),
    "I": (lambda rgb: Image.fromarray((_grey(rgb) * 100_000 - 9_000_000).astype(np.int32)), "TIFF", ".tif",
          lambda rgb: rgb),
    "F": (lambda rgb: Image.fromarray((_grey(rgb) / 127.5 - 1).astype(np.float32)), "TIFF", ".tif",
          lambda rgb: rgb),
    "1": (lambda rgb: rgb.convert("1"), "PNG", ".png", lambda rgb: rgb),
    "P": (lambda rgb: rgb.quantize(256), "PNG", ".png", lambda rgb: rgb),
    "P with a transparency key": (_palette_keyed, "PNG", ".png", _framed_white),
    "PA": (lambda rgb: _with_alpha(rgb, "PA"), "TIFF", ".tif", _framed_white),
    "LA": (lambda rgb: _with_alpha(rgb, "LA"), "PNG", ".png", _framed_white),
    "RGBA": (lambda rgb: _with_alpha(rgb, "RGBA"), "PNG", ".png", _framed_white),
    "CMYK": (lambda rgb: rgb.convert("CMYK"), "JPEG", ".jpg", lambda rgb: rgb),
    "CMYK TIFF": (lambda rgb: rgb.convert("CMYK"), "TIFF", ".tif", lambda rgb: rgb),
}


def _photos() -> tuple[Image.Image, Image.Image]:
    return picture("astronaut", SIZE), picture("camera", SIZE).convert("RGB")


def _save(mode: str, rgb: Image.Image, path: Path) -> Path:
    make, image_format, extension, _ = MODES[mode]
    image = make(rgb)
    path = path.with_suffix(extension)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, image_format, **({"transparency": 255} if "transparency" in image.info else {}))
    with Image.open(path) as saved:
        assert saved.mode == mode.split()[0], f"{path} was saved as mode {saved.mode}, not {mode}"
    return path


def _groups(root: Path) -> list[dedup.Group]:
    return dedup.find_duplicates(dedup.hash_classes(images.class_dirs(root), jobs=1))


@pytest.mark.parametrize("mode", MODES)
def test_two_pictures_in_one_mode_are_not_duplicates(mode, tmp_path):
    astronaut, camera = _photos()
    _save(mode, astronaut, tmp_path / "mask" / "astronaut")
    _save(mode, camera, tmp_path / "without_mask" / "camera")
    assert _groups(tmp_path) == []


@pytest.mark.parametrize("mode", MODES)
def test_one_picture_in_rgb_and_in_a_mode_is_a_near_duplicate(mode, tmp_path):
    astronaut, camera = _photos()
    shown = MODES[mode][3]
    shown(astronaut).save(tmp_path / "rgb.jpg", quality=90)
    (tmp_path / "mask").mkdir()
    (tmp_path / "rgb.jpg").rename(tmp_path / "mask" / "astronaut rgb.jpg")
    _save(mode, astronaut, tmp_path / "mask" / "astronaut in mode")
    _save("RGBA" if mode == "RGBA" else "L", camera, tmp_path / "mask" / "camera")  # a bystander: no group
    groups = _groups(tmp_path)
    assert len(groups) == 1 and groups[0].kind == "near" and groups[0].kept is not None
    assert {member.path.stem for member in groups[0].members} == {"astronaut rgb", "astronaut in mode"}


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_decodes_to_8bit_rgb_like_the_picture(mode, tmp_path):
    astronaut, _ = _photos()
    path = _save(mode, astronaut, tmp_path / "astronaut")
    assert images.check_file(path).ok
    rgb = images.load_rgb(path)
    assert rgb.dtype == np.uint8 and rgb.shape == (SIZE, SIZE, 3)
    expected = np.asarray(MODES[mode][3](astronaut).convert("L"), dtype=float)
    grey = np.asarray(Image.fromarray(rgb).convert("L"), dtype=float)
    # the same picture: close where the 8-bit original was (1-bit is dithered: compare it blurred)
    if mode == "1":
        grey, expected = (np.asarray(Image.fromarray(a.astype(np.uint8)).resize((16, 16), Image.Resampling.BOX),
                                     dtype=float) for a in (grey, expected))
    assert np.corrcoef(grey.ravel(), expected.ravel())[0, 1] > 0.95
    assert np.abs(grey - expected).mean() < (25 if mode == "1" else 6)


def test_a_16bit_grey_png_in_each_class_is_no_label_conflict(tmp_path, capsys):
    """The issue as a new user met it: each 16-bit picture hashed 0x8000000000000000, so both were set aside."""
    astronaut, camera = _photos()
    first = _save("I;16", astronaut, tmp_path / "data" / "mask" / "astronaut")
    second = _save("I;16", camera, tmp_path / "data" / "without_mask" / "camera")
    hashes = {dedup.hash_file((path, "x")).phash for path in (first, second)}
    assert len(hashes) == 2 and 0x8000000000000000 not in hashes
    assert dedup.main(["--input", str(tmp_path / "data"), "--logs", str(tmp_path / "logs"), "--dry-run"]) == 0
    assert "0 exact groups, 0 near groups, 0 label conflicts" in capsys.readouterr().out


def test_a_16bit_png_decodes_for_the_face_stage_to_a_full_8bit_range(tmp_path):
    astronaut, _ = _photos()
    path = _save("I;16", astronaut, tmp_path / "astronaut")
    rgb = images.load_rgb(path)  # what faces.process_source (and detection, review) decode photos with
    assert rgb.dtype == np.uint8 and rgb.shape == (SIZE, SIZE, 3)
    assert rgb.min() == 0 and rgb.max() == 255 and 60 < rgb.mean() < 200
    assert np.abs(rgb[..., 0].astype(int) - _grey(astronaut)).max() <= 6  # the grey picture, stretched back


def test_transparent_pixels_are_white_whatever_colour_they_hide(tmp_path):
    astronaut, _ = _photos()
    for mode in ("RGBA", "LA", "PA", "P with a transparency key"):
        rgb = images.load_rgb(_save(mode, astronaut, tmp_path / mode))
        frame = _opaque_inside(astronaut) == 0
        assert (rgb[frame] == 255).all(), mode
        assert rgb[~frame].mean() < 200, mode


def test_a_16bit_transparency_key_is_white_and_sets_no_range():
    grey = np.full((40, 40), 1000, np.uint16)
    grey[10:30, 10:30] = np.linspace(2000, 3000, 20, dtype=np.uint16)[None, :]
    grey[0, :] = 0  # the key
    image = Image.fromarray(grey)
    image.info["transparency"] = 0
    pixels = np.asarray(images.to_8bit(image))
    assert (pixels[0] == 255).all()
    assert pixels[5, 5] == 0 and pixels[20, 29] == 255  # 1000..3000 is the range, not 0..3000


@pytest.mark.parametrize(("array", "value"), [
    (np.zeros((40, 40), np.uint16), 0),
    (np.full((40, 40), 65535, np.uint16), 255),
    (np.full((40, 40), 7, np.int32), 0),
    (np.full((40, 40), 0.5, np.float32), 128),
    (np.full((40, 40), np.nan, np.float32), 0),
])
def test_a_constant_deep_picture_converts_without_dividing_by_zero(array, value, tmp_path):
    image = Image.fromarray(array)
    assert np.all(np.asarray(images.to_8bit(image)) == value)
    path = tmp_path / "flat.tif"
    image.save(path)
    assert images.check_file(path).ok and dedup.hash_file((path, "x")).phash is not None


def test_non_finite_floats_are_clipped_and_set_no_range():
    values = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    values[0, :3] = np.nan, np.inf, -np.inf
    pixels = np.asarray(images.to_8bit(Image.fromarray(values)))
    assert pixels[0, :3].tolist() == [0, 255, 0]
    low = values[0, 3]  # the lowest finite value
    assert pixels[0, 3] == 0 and pixels[-1, -1] == 255
    assert pixels[32, 32] == round(float((values[32, 32] - low) / (1 - low) * 255))


def test_a_mode_that_cannot_be_converted_is_set_aside_as_corrupt(tmp_path, monkeypatch):
    path = tmp_path / "a.png"
    picture("astronaut", 64).save(path)

    def refuse(image):
        raise ValueError("conversion from La to L not supported")

    monkeypatch.setattr(images, "to_8bit", refuse)
    check = images.check_file(path)
    assert check.reason == images.CORRUPT and "La to L" in check.detail


def test_training_reads_crops_of_every_mode_as_the_face_stage_decodes_them(tmp_path):
    """TensorFlow's decoder takes the high byte of 16-bit pixels (8-bit values in a 16-bit file: black) and drops
    alpha; crops like that (added by hand) are decoded by images.load_rgb instead."""
    from maskdetect import data

    astronaut, camera = _photos()
    low16 = tmp_path / "low16.png"
    Image.fromarray(_grey(astronaut).astype(np.uint16)).save(low16)  # 8-bit values in a 16-bit file
    rgba = _save("RGBA", camera, tmp_path / "rgba")
    plain = tmp_path / "plain.jpg"
    astronaut.save(plain, quality=95)
    assert [images.decodes_plainly(path) for path in (low16, rgba, plain)] == [False, False, True]
    paths = [str(low16), str(rgba), str(plain)]
    dataset = data.make_dataset(paths, np.array([0, 1, 0]), SIZE, 3, shuffle=False, seed=0)
    pixels, labels = next(iter(dataset))
    assert labels.numpy().tolist() == [0, 1, 0]
    # the JPEG is TensorFlow's to decode, as before: its decoder differs from Pillow's by a level or two
    for decoded, path, tolerance in zip(pixels.numpy(), paths, (0.5, 0.5, 3), strict=True):
        expected = images.load_rgb(path).astype(int)
        assert np.abs(decoded.astype(int) - expected).mean() < tolerance, path
    assert pixels.numpy()[0].max() == 255  # not black
