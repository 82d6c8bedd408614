"""Test helpers: small real pictures (shipped inside scikit-image) and the optional shared data set."""

from __future__ import annotations

import hashlib
import html.parser
import io
import os
import shutil
import struct
import subprocess
import sys
import urllib.parse
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maskdetect import images

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MASKDETECT_SHARED_DATA", REPO.parent / "shared" / "data"))
PYTHON = sys.executable


def shared_data(*parts: str) -> Path:
    """A folder of the shared real-photo data set, or a skip with the reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared real-photo data set is not part of the project)")
    return path


def picture(name: str, size: int | None = None) -> Image.Image:
    """A real photo shipped with scikit-image (astronaut, coffee, chelsea, rocket, camera, ...)."""
    import skimage.data

    array = getattr(skimage.data, name)()
    image = Image.fromarray(array)
    if size:
        image = image.resize((size, size * image.height // image.width))
    return image


def distinct_pictures(count: int, size: int = 96) -> list[Image.Image]:
    """``count`` pictures that are not near-duplicates of one another: crops of several real photos."""
    sources = [picture(name) for name in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")]
    result = []
    rng = np.random.default_rng(0)
    while len(result) < count:
        source = sources[len(result) % len(sources)]
        crop = int(rng.integers(120, min(source.size)))
        left = int(rng.integers(0, source.width - crop + 1))
        top = int(rng.integers(0, source.height - crop + 1))
        result.append(source.crop((left, top, left + crop, top + crop)).resize((size, size)))
    return result


def tree_digest(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``root`` (symlinks by their target text)."""
    digests = {}
    for directory, _, files in os.walk(root):
        for name in files:
            path = Path(directory, name)
            data = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
            digests[str(path.relative_to(root))] = hashlib.sha256(data).hexdigest()
    return digests


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels, with almost no data behind it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(
        b"IEND", b""
    )


def encoded(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()


def build_messy_tree(root: Path) -> dict[str, str]:
    """A class tree with one file of every awkward kind. Returns relative path -> expected reason ('' = kept)."""
    pics = distinct_pictures(12)
    jpeg = encoded(pics[0], "JPEG", quality=90)
    deep = (np.asarray(pics[5].convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    files: dict[str, bytes] = {
        "mask/photo one.jpg": jpeg,
        "mask/UPPER.JPEG": encoded(pics[1], "JPEG"),
        "mask/rgba.png": encoded(pics[2].convert("RGBA"), "PNG"),
        "mask/gray.png": encoded(pics[3].convert("L"), "PNG"),
        "mask/cmyk.jpg": encoded(pics[4].convert("CMYK"), "JPEG"),
        "mask/deep16.png": encoded(Image.fromarray(deep), "PNG"),
        "mask/really a png.jpg": encoded(pics[6], "PNG"),
        "mask/nested/deeper/ünïcødé 名前.webp": encoded(pics[7], "WEBP"),
        "mask/-leading dash.jpg": encoded(pics[8], "JPEG"),
        "mask/new\nline.jpg": encoded(pics[9], "JPEG"),
        "without_mask/a picture.bmp": encoded(pics[10], "BMP"),
        "without_mask/scan.tiff": encoded(pics[11], "TIFF"),
        "without_mask/anim.gif": encoded(picture("camera", 64), "GIF"),
        "mask/truncated.jpg": jpeg[: len(jpeg) // 2],
        "mask/zero.jpg": b"",
        "mask/notes.jpg": b"these are my notes, not a photo\n" * 20,
        "mask/bomb.png": _png_claiming(100_000, 100_000),
        "without_mask/tiny.png": encoded(pics[0].resize((12, 12)), "PNG"),
    }
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    os.symlink("photo one.jpg", root / "mask" / "link.jpg")
    expected = {name: "" for name in files}
    expected.update({
        "mask/truncated.jpg": images.CORRUPT,
        "mask/zero.jpg": images.EMPTY,
        "mask/notes.jpg": images.NOT_IMAGE,
        "mask/bomb.png": images.TOO_LARGE,
        "without_mask/tiny.png": images.TOO_SMALL,
        "mask/link.jpg": images.SYMLINK,
    })
    return expected


def make_crop_dataset(root: Path, per_class: int = 24, size: int = 64, classes=("mask", "without_mask")) -> Path:
    """A small crop data set from a real face: the astronaut's face, moved, scaled, mirrored and lit
    differently; in the first class a coloured mask covers the lower half of the face."""
    from PIL import ImageDraw, ImageEnhance, ImageOps

    base = picture("astronaut")
    rng = np.random.default_rng(3)
    for class_index, class_name in enumerate(classes):
        folder = root / class_name
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            side = int(rng.integers(130, 190))
            left, top = int(rng.integers(140, 200)), int(rng.integers(40, 90))
            crop = base.crop((left, top, left + side, top + side)).resize((size, size))
            if index % 2:
                crop = ImageOps.mirror(crop)
            crop = ImageEnhance.Brightness(crop).enhance(float(rng.uniform(0.7, 1.3)))
            if class_index == 0:
                colour = tuple(int(c) for c in rng.integers(0, 255, size=3))
                ImageDraw.Draw(crop).rectangle((size * 0.2, size * 0.55, size * 0.85, size * 0.95), fill=colour)
            elif class_index > 1:
                crop = ImageOps.grayscale(crop).convert("RGB")
            crop.save(folder / f"{class_name}_{index:03d}.jpg", quality=90)
    return root


class PageTargets(html.parser.HTMLParser):
    """The images and the links (other than #anchors) of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img" and attrs.get("src"):
            self.images.append(attrs["src"])
        if tag == "a" and attrs.get("href") and not attrs["href"].startswith("#"):
            self.links.append(attrs["href"])


def page_targets(page: Path) -> PageTargets:
    """Every image and link of ``page``, each checked to be a relative path to a file that exists."""
    parser = PageTargets()
    parser.feed(page.read_text(encoding="utf-8"))
    for target in parser.images + parser.links:
        assert not urllib.parse.urlparse(target).scheme and not target.startswith("/"), f"not relative: {target}"
        assert (page.parent / urllib.parse.unquote(target)).exists(), target
    return parser


def chromium() -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing in CI: .ci/run installs it")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    return browser


def render_page(page: Path, profile: Path, shot: Path, size: str = "1280,3800") -> str:
    """``page`` in headless Chromium: its DOM after its scripts ran, and a screenshot (checked not blank)."""
    flags = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--virtual-time-budget=5000", f"--user-data-dir={profile}"]
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    subprocess.run([*flags, f"--window-size={size}", "--hide-scrollbars", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.std() > 10, "the screenshot is blank"
    return dom.stdout


# The astronaut's face in skimage's astronaut photo (x1, y1, x2, y2), and a green "mask" over its lower half.
ASTRONAUT_FACE = (180, 60, 300, 200)
GREEN_MASK = (200, 140, 290, 200)


def make_labelled_folder(root: Path) -> Path:
    """A small PASCAL VOC folder (images/ + annotations/) of real photos with labelled face boxes:

    - masked.jpg: the astronaut with a green mask over the lower face, labelled ``mask``;
    - bare.jpg: the astronaut as she is, ``without_mask``; also a 20 px face (too small to score) and an
      ``incorrect_mask`` box (no class of a two-class model);
    - green.jpg: the coffee photo with a green square, its box labelled ``without_mask`` (a model that calls
      green faces masked gets it wrong).
    """
    from PIL import ImageDraw

    masked = picture("astronaut")
    ImageDraw.Draw(masked).rectangle(GREEN_MASK, fill=(0, 255, 0))
    green = picture("coffee")
    ImageDraw.Draw(green).rectangle((100, 100, 250, 250), fill=(0, 255, 0))
    photos = {
        "masked.jpg": (masked, [("mask", ASTRONAUT_FACE)]),
        "bare.jpg": (picture("astronaut"), [("without_mask", ASTRONAUT_FACE), ("without_mask", (10, 10, 30, 30)),
                                            ("incorrect_mask", (300, 250, 400, 350))]),
        "green.jpg": (green, [("without_mask", (120, 120, 230, 230))]),
    }
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(exist_ok=True)
    for name, (image, boxes) in photos.items():
        image.save(root / "images" / name, quality=95)
        objects = "".join(
            f"<object><name>{label}</name><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax>"
            f"<ymax>{y2}</ymax></bndbox></object>" for label, (x1, y1, x2, y2) in boxes)
        (root / "annotations" / f"{Path(name).stem}.xml").write_text(
            f"<annotation><folder>images</folder><filename>{name}</filename><size><width>{image.width}</width>"
            f"<height>{image.height}</height><depth>3</depth></size>{objects}</annotation>")
    return root


def sigint_as_in_a_terminal() -> None:
    """``preexec_fn`` for a child that a test interrupts: Ctrl-C's default action, as in a terminal. A shell
    starts background jobs with SIGINT ignored, and Python then installs no KeyboardInterrupt handler, so a
    test suite run in the background would see its Ctrl-C tests fail."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


# The face stage's settings before its presets (the res10 SSD at 640 px, BlazeFace's tiles pass, the fusion fitted for
# them): tests of the verifier and the benchmarks that need its weak proposal groups on the astronaut photo.
BEFORE_PRESETS = {"ssd_size": 640, "blazeface_passes": ("photo", "mirror", "tiles"),
                  "fusion": str(REPO / "benchmarks" / "fusion_before_presets.json")}
