"""Listing, checking and decoding image files.

Files are judged by decoding them, never by their extension: a PNG named ``.jpg`` is a PNG,
a text file named ``.jpg`` is not an image, and a JPEG cut short is corrupt.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Why a file was set aside; each is also the folder name under ``<input>/_rejected/``.
NOT_IMAGE = "not_image"
EMPTY = "empty"
CORRUPT = "corrupt"
TOO_SMALL = "too_small"
TOO_LARGE = "too_large"
UNREADABLE = "unreadable"
SYMLINK = "symlink"
DUPLICATE = "duplicate"
LABEL_CONFLICT = "label_conflict"

DEFAULT_MIN_SIZE = 32
# Pillow's own decompression-bomb limit (about 9459 x 9459 pixels); every command that decodes photos takes
# --max-pixels to raise it.
DEFAULT_MAX_PIXELS = 89_478_485
MAX_PIXELS_HELP = ("refuse pictures with more pixels than this, before decoding them: a decompression bomb takes "
                   f"gigabytes (default {DEFAULT_MAX_PIXELS}; a picture's decoded bytes may be 4 per pixel)")

# The extension each decodable format is renamed to. MPO is what some cameras write:
# a JPEG with extra frames that every JPEG reader opens.
FORMAT_EXTENSIONS = {
    "JPEG": ".jpg",
    "MPO": ".jpg",
    "PNG": ".png",
    "WEBP": ".webp",
    "BMP": ".bmp",
    "TIFF": ".tif",
    "GIF": ".gif",
}

# Extensions of the image files the stages look for (crops, photos to detect in).
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})

# What Pillow raises on a file it cannot decode (truncated, damaged, a bomb): caught wherever a stage
# decodes a photo, so one bad file is one line and the stage goes on.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)

# Folders that the pipeline itself makes next to the class folders start with one of these.
RESERVED_PREFIXES = ("_", ".")

_CHUNK = 1 << 20

# Bytes a decoded sample of these modes takes; 1 for the others.
_SAMPLE_BYTES = {"I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2, "I": 4, "F": 4}


class ImageTooLarge(ValueError):
    """A picture above the pixel limit, refused from its header before it is decoded (one of ``DECODE_ERRORS``).

    Attributes:
        size: the picture's size in words (``13000x13000 pixels (161 MiB decoded)``), for a command that gives
            other advice than :func:`too_large`'s.
    """

    def __init__(self, reason: str, size: str = "") -> None:
        super().__init__(reason)
        self.size = size


def _size_words(image: Image.Image) -> tuple[str, int, int]:
    """An opened picture's size in words, its pixels and its decoded bytes."""
    width, height = image.size
    decoded = width * height * len(image.getbands()) * _SAMPLE_BYTES.get(image.mode, 1)
    return f"{width}x{height} pixels ({decoded / 2**20:.0f} MiB decoded)", width * height, decoded


def too_large(image: Image.Image, max_pixels: int = DEFAULT_MAX_PIXELS) -> str | None:
    """Why an opened (not yet decoded) picture is too large to decode, or None: more than ``max_pixels`` pixels,
    or more decoded bytes than ``max_pixels`` pixels of 4 bytes (wide samples, many bands). The same words in
    every command."""
    size, pixels, decoded = _size_words(image)
    if pixels > max_pixels or decoded > 4 * max_pixels:
        return f"{size} is above the limit of {max_pixels} pixels; raise --max-pixels to read it"
    return None


def open_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open ``path`` (its header only: nothing is decoded yet) and refuse a picture above the limit.

    Pillow's own bomb check is replaced by :func:`too_large` with the caller's limit, so ``--max-pixels`` can
    raise it as well as lower it.

    Raises:
        ImageTooLarge: the picture is above the limit (the file is closed).
        OSError and the rest of ``DECODE_ERRORS``: not a picture Pillow can open.
    """
    previous = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        Image.MAX_IMAGE_PIXELS = None
        try:
            image = Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = previous
    reason = too_large(image, max_pixels)
    if reason:
        size = _size_words(image)[0]
        image.close()
        raise ImageTooLarge(reason, size)
    return image


def inside(path: str | os.PathLike, folders: Iterable[str | os.PathLike]) -> bool:
    """Whether ``path``, with ``..`` and links resolved, lies inside one of ``folders`` (resolved too): how a
    path read from a file the user was given (a label file, a CSV of boxes) is kept to the folders meant."""
    resolved = Path(path).resolve()
    return any(resolved.is_relative_to(Path(folder).resolve()) for folder in folders)


def sha256_file(path: str | os.PathLike) -> str:
    """The sha256 of a file, read in 1 MiB chunks so any file size fits in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def extension_for(image_format: str) -> str:
    """The extension a file of this Pillow format is given."""
    if image_format in FORMAT_EXTENSIONS:
        return FORMAT_EXTENSIONS[image_format]
    for extension, name in sorted(Image.registered_extensions().items()):
        if name == image_format:
            return extension
    return "." + image_format.lower()


def class_dirs(root: str | os.PathLike) -> list[Path]:
    """The class folders under ``root``: its subfolders, less the pipeline's own ``_x``/``.x`` ones."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder")
    return sorted(
        entry
        for entry in root.iterdir()
        if entry.is_dir() and not entry.is_symlink() and not entry.name.startswith(RESERVED_PREFIXES)
    )


def walk_files(folder: str | os.PathLike) -> Iterator[Path]:
    """Every non-folder entry below ``folder`` (symlinks included, never followed), in sorted order."""
    for directory, subdirs, files in os.walk(folder, followlinks=False):
        subdirs.sort()
        # os.walk lists a symlink to a folder among the folders; it is a file-like entry to us.
        links = [name for name in subdirs if os.path.islink(os.path.join(directory, name))]
        subdirs[:] = [name for name in subdirs if name not in links]
        for name in sorted(files + links):
            yield Path(directory, name)


@dataclass(frozen=True)
class FileCheck:
    """What decoding one file found. ``reason`` is empty when the file is a usable image."""

    path: Path
    size: int
    sha256: str
    reason: str = ""
    detail: str = ""
    image_format: str = ""
    width: int = 0
    height: int = 0

    @property
    def ok(self) -> bool:
        return not self.reason


def check_file(
    path: str | os.PathLike,
    min_size: int = DEFAULT_MIN_SIZE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> FileCheck:
    """Decode ``path`` fully and say whether it is a usable image, and if not, why."""
    path = Path(path)
    if path.is_symlink():
        return FileCheck(path, 0, "", SYMLINK, f"symbolic link to {os.readlink(path)}; links are not followed")
    try:
        size = path.stat().st_size
        digest = sha256_file(path)
    except PermissionError as error:
        return FileCheck(path, 0, "", UNREADABLE, f"cannot be read: {error.strerror}")
    except OSError as error:
        return FileCheck(path, 0, "", UNREADABLE, f"cannot be read: {error}")
    if size == 0:
        return FileCheck(path, 0, digest, EMPTY, "zero-byte file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with open_image(path, max_pixels) as image:
                image_format, (width, height) = image.format or "", image.size
                image.load()
                # the conversion every stage makes: a picture in a mode it cannot take is not usable
                to_8bit(image)
    except (ImageTooLarge, Image.DecompressionBombError) as error:
        return FileCheck(path, size, digest, TOO_LARGE, str(error))
    except UnidentifiedImageError:
        return FileCheck(path, size, digest, NOT_IMAGE, "not an image format that can be decoded")
    except PermissionError as error:
        return FileCheck(path, size, digest, UNREADABLE, f"cannot be read: {error.strerror}")
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as error:
        # Pillow reports truncated and malformed data through all of these.
        return FileCheck(path, size, digest, CORRUPT, f"cannot be decoded: {error}".strip())
    if min(width, height) < min_size:
        return FileCheck(
            path, size, digest, TOO_SMALL,
            f"{width}x{height} is below the minimum side of {min_size} px",
            image_format, width, height,
        )
    return FileCheck(path, size, digest, "", "", image_format, width, height)


# Pillow modes whose pixels are wider than 8 bits: 16-bit greyscale (PNG, TIFF, PGM), 32-bit integer and float
# greyscale (TIFF). Pillow's own convert() clips them at 255, so nearly every such picture turns white.
DEEP_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})

# What transparent pixels are laid on: white, as a viewer or a web page shows a transparent picture (and as the
# plain backdrop of an ID photo). Every stage composites the same way, so a picture with and without an alpha
# channel decodes alike wherever it is opaque.
BACKGROUND = (255, 255, 255)


def _stretch(array: np.ndarray, mode: str, opaque: np.ndarray | None = None) -> np.ndarray:
    """An 8-bit copy of a deep greyscale array: its lowest value black, its highest white.

    The picture's own range, not the type's: the mode says nothing reliable about the range a picture uses.
    Cameras and scanners write 10-, 12- or 14-bit data into 16-bit files, some programs write 8-bit values
    into them, and 32-bit integer and float images come in any scale (0..1, 0..255, negative). Scaled by the
    type's range those would come out black, or as a handful of grey levels that the face detector cannot see
    into and that hash alike. A contrast stretch costs nothing that matters here: the perceptual hash compares
    DCT coefficients with their median, which a gain and an offset leave alone, so the same picture at 8 and
    at 16 bits still hashes alike. (A single hot pixel does flatten the rest; a picture is not worth a
    percentile pass for that.) Only ``opaque`` pixels, where given, set the range.

    A constant picture has no range of its own: it is placed in the type's nominal range instead (0..65535 for
    the integer modes, 0..1 for float), so a blank white 16-bit picture stays white, and nothing is divided by
    zero. Non-finite floats are clipped: NaN and -inf to black, +inf to white.
    """
    values = np.array(array, dtype=np.float32)  # a copy: the arithmetic below is done in place
    finite = np.isfinite(values)
    ranged = finite if opaque is None else finite & opaque
    low, high = (float(values[ranged].min()), float(values[ranged].max())) if ranged.any() else (0.0, 0.0)
    if not finite.all():
        np.nan_to_num(values, copy=False, nan=low, posinf=high, neginf=low)
    if high > low:
        values -= low
        values *= 255.0 / (high - low)
    else:
        peak = 1.0 if mode == "F" else 65535.0
        values.fill(255.0 * min(max(low / peak, 0.0), 1.0))
    np.rint(values, out=values)
    np.clip(values, 0, 255, out=values)
    return values.astype(np.uint8)


def _composite(image: Image.Image) -> Image.Image:
    """RGB of a picture with transparency (alpha channel or a transparency key), laid on ``BACKGROUND``."""
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def to_8bit(image: Image.Image) -> Image.Image:
    """The one conversion of a decoded picture to 8 bits: mode ``L`` (greyscale) or ``RGB``, never anything else.

    Every stage that looks at pixels goes through here (``load_rgb`` for the face stage, detection, review and
    the annotated photos; the perceptual hash of ``dedup``; ``check_file`` of ``organize``), so a picture is seen
    alike everywhere whatever mode it was saved in:

    * ``L`` and ``RGB`` as they are (no copy);
    * 16-bit and 32-bit greyscale (``I;16``, ``I;16B``, ``I``, ``F``) stretched from their own range (see
      ``_stretch``), with a transparency key (a 16-bit PNG's tRNS) painted ``BACKGROUND``;
    * anything transparent (``RGBA``, ``LA``, ``PA``, ``RGBa``, and ``P``, ``L`` or ``RGB`` with a
      transparency key) composited on ``BACKGROUND``;
    * 1-bit, palette, CMYK, YCbCr, LAB, HSV by Pillow's own conversion to RGB (1-bit: 0 and 255; CMYK: Pillow's
      plain formula, without the ICC profile).

    A mode Pillow cannot convert raises ValueError, one of ``DECODE_ERRORS``.
    """
    mode, transparency = image.mode, image.info.get("transparency")
    if mode in ("L", "RGB") and transparency is None:
        return image
    if mode in DEEP_MODES:
        array = np.asarray(image)
        if array.ndim != 2:
            raise ValueError(f"mode {mode} with shape {array.shape} is not a greyscale picture")
        keyed = array == transparency if isinstance(transparency, int | float) else None
        opaque = None if keyed is None or keyed.all() else ~keyed
        grey = _stretch(array, mode, opaque)
        if keyed is not None:
            grey[keyed] = round(sum(BACKGROUND) / 3)
        return Image.fromarray(grey, "L")
    if mode in ("RGBA", "LA", "PA", "RGBa") or transparency is not None:
        return _composite(image)
    return image.convert("RGB")


def to_rgb8(image: Image.Image) -> Image.Image:
    """An 8-bit RGB copy of any Pillow image: :func:`to_8bit`, greyscale repeated in the three channels."""
    image = to_8bit(image)
    return image if image.mode == "RGB" else image.convert("RGB")


# The EXIF tag that says how a photo is turned for showing.
EXIF_ORIENTATION = 0x0112


def decodes_plainly(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> bool:
    """Whether a decoder that knows no modes, transparency or EXIF (TensorFlow's ``decode_image``) sees
    ``path`` as :func:`load_rgb` does: 8-bit greyscale, RGB or an opaque palette, with no turn to apply.

    TensorFlow takes the high byte of 16-bit pixels (an 8-bit-in-16 picture is black), drops alpha instead of
    compositing it, and ignores the EXIF orientation. Reads the header only, and refuses a picture above
    ``max_pixels`` as every decoder does (:class:`ImageTooLarge`).
    """
    with open_image(path, max_pixels) as image:
        return (image.mode in ("L", "RGB", "P") and "transparency" not in image.info
                and image.getexif().get(EXIF_ORIENTATION, 1) == 1)


def load_rgb(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode ``path`` to an HxWx3 uint8 RGB array with its EXIF orientation applied; a picture above
    ``max_pixels`` is refused from its header (:class:`ImageTooLarge`), before it is decoded."""
    with open_image(path, max_pixels) as image:
        image.load()
        oriented = ImageOps.exif_transpose(image)
        return np.asarray(to_rgb8(oriented))


def square_crop(rgb: np.ndarray, box: np.ndarray, context: float) -> tuple[np.ndarray, int, int]:
    """Square crop centred on ``box``, ``context`` times its long side, black outside the image.

    Returns the crop and the image coordinates of its top-left corner.
    """
    centre_x, centre_y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = max(2, int(round(context * max(box[2] - box[0], box[3] - box[1]))))
    left, top = int(round(centre_x - side / 2)), int(round(centre_y - side / 2))
    height, width = rgb.shape[:2]
    crop = np.zeros((side, side, 3), np.uint8)
    inside_left, inside_top = max(0, left), max(0, top)
    inside_right, inside_bottom = min(width, left + side), min(height, top + side)
    if inside_right > inside_left and inside_bottom > inside_top:
        crop[inside_top - top:inside_bottom - top, inside_left - left:inside_right - left] = \
            rgb[inside_top:inside_bottom, inside_left:inside_right]
    return crop, left, top
