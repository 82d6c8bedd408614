"""Listing, checking and decoding image files.

Files are judged by decoding them, never by their extension: a PNG named ``.jpg`` is a PNG,
a text file named ``.jpg`` is not an image, and a JPEG cut short is corrupt.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Iterator
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
# Pillow's own decompression-bomb limit (about 9459 x 9459 pixels).
DEFAULT_MAX_PIXELS = 89_478_485

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
            with Image.open(path) as image:
                image_format, (width, height) = image.format or "", image.size
                if width * height > max_pixels:
                    return FileCheck(
                        path, size, digest, TOO_LARGE,
                        f"{width}x{height} pixels is above the limit of {max_pixels}",
                        image_format, width, height,
                    )
                image.load()
    except Image.DecompressionBombError as error:
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


def to_rgb8(image: Image.Image) -> Image.Image:
    """An 8-bit RGB copy of any Pillow image (grayscale, 16-bit, RGBA, CMYK, palette)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit and 32-bit integer images: scale to 8 bits instead of clipping at 255.
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        array = np.clip(array * (255.0 / peak), 0, 255).astype(np.uint8)
        return Image.fromarray(array).convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent pixels become white rather than whatever colour they hide.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_rgb(path: str | os.PathLike) -> np.ndarray:
    """Decode ``path`` to an HxWx3 uint8 RGB array with its EXIF orientation applied."""
    with Image.open(path) as image:
        image.load()
        oriented = ImageOps.exif_transpose(image)
        return np.asarray(to_rgb8(oriented))
