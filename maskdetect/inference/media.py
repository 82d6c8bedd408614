"""What inference reads and writes: the inputs to process, still images, video files and webcams, and a window.

OpenCV and Pillow are imported when a file, a camera or a window is opened, not on import.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskdetect import images, moves, runtime

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}
# A video or webcam whose rate OpenCV cannot tell is written at this rate.
FALLBACK_FPS = 25.0
_WINDOW = "detect_mask"


@dataclass
class Item:
    """One thing to process and where its annotated copy goes.

    Attributes:
        kind: ``image``, ``video`` or ``webcam``.
        source: the file's path, or ``webcam:<index>``.
        output: the annotated copy's path, relative to the output folder.
    """

    kind: str  # image, video, webcam
    source: str  # the path, or "webcam:<index>"
    output: str  # relative to the output folder


def _kind_of(path: Path) -> str:
    return "video" if path.suffix.lower() in VIDEO_EXTENSIONS else "image"


def plan_inputs(inputs: Sequence[str]) -> tuple[list[Item], list[str]]:
    """The items to process for the command line's inputs.

    A digit string is a webcam index; a folder gives its images and videos, searched recursively (hidden files
    and folders and symbolic links left out), each under the folder's name with its layout kept; a file gives
    itself. A video's annotated copy is named ``.mp4``. Output names are made unique.

    Args:
        inputs: images, videos, folders or webcam indexes, as given.

    Returns:
        The items, and one message per input that gives none (it does not exist, or an empty folder).
    """
    items, problems, taken = [], [], set()

    def unique(name: str) -> str:
        return moves.free_name(name, taken)

    for text in inputs:
        if text.isdigit():
            items.append(Item("webcam", f"webcam:{int(text)}", unique(f"webcam{int(text)}.mp4")))
            continue
        path = Path(text)
        if path.is_dir():
            found = [file for file in images.walk_files(path)
                     if file.suffix.lower() in images.IMAGE_EXTENSIONS | VIDEO_EXTENSIONS and not file.is_symlink()
                     and not any(part.startswith(".") for part in file.relative_to(path).parts)]
            if not found:
                problems.append(f"folder {path} has no images or videos (looked for "
                                f"{', '.join(sorted(images.IMAGE_EXTENSIONS | VIDEO_EXTENSIONS))})")
            for file in found:
                relative = Path(path.resolve().name or "input") / file.relative_to(path)
                name = str(relative.with_suffix(".mp4")) if _kind_of(file) == "video" else str(relative)
                items.append(Item(_kind_of(file), str(file), unique(name)))
        elif path.is_file():
            name = f"{path.stem}.mp4" if _kind_of(path) == "video" else path.name
            items.append(Item(_kind_of(path), str(path), unique(name)))
        else:
            problems.append(f"{text} does not exist (give an image, a video, a folder or a webcam index)")
    return items, problems


class Display:
    """The ``--show`` window.

    Where there is no display, or this OpenCV has no window support, one warning says so and every call
    does nothing.

    Args:
        wanted: whether ``--show`` was given.
        output: the output folder, named in the warning.

    Attributes:
        ok: whether a window is shown.
    """

    def __init__(self, wanted: bool, output: Path) -> None:
        self.ok = False
        if not wanted:
            return
        reason = self._unavailable()
        if reason:
            log.warning("--show: %s; the annotated files are written to %s instead", reason, output)
        else:
            self.ok = True

    @staticmethod
    def _unavailable() -> str:
        import cv2

        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            return "no display here (DISPLAY is not set)"
        try:
            cv2.namedWindow(_WINDOW, cv2.WINDOW_NORMAL)
        except cv2.error:
            return "this OpenCV has no window support (opencv-python-headless); install opencv-python to show one"
        return ""

    def frame(self, rgb: np.ndarray, wait_ms: int) -> bool:
        """Show one annotated frame and wait ``wait_ms`` for a key (0: until one is pressed).

        Returns:
            False when the user pressed q or Esc, else True (also without a window).
        """
        if not self.ok:
            return True
        import cv2

        cv2.imshow(_WINDOW, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        return cv2.waitKey(wait_ms) & 0xFF not in (ord("q"), 27)

    def close(self) -> None:
        """Close the window, if one is shown."""
        if self.ok:
            import cv2

            cv2.destroyAllWindows()


def save_image(rgb: np.ndarray, path: Path) -> Path:
    """Save an image under ``path``'s name and format, creating its folder.

    JPEGs are written at quality 95. A name whose format Pillow cannot write gets ``.jpg`` appended and is
    written as JPEG.

    Returns:
        The path written.

    Raises:
        OSError: the folder or the disk refused the file (its ``errno`` and ``filename`` set).
    """
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(rgb)
    try:
        image.save(path, quality=95) if path.suffix.lower() in (".jpg", ".jpeg") else image.save(path)
    except (ValueError, OSError) as error:
        if isinstance(error, OSError) and error.errno is not None:  # the folder or disk, not the format
            raise
        path = path.with_name(path.name + ".jpg")
        image.save(path, quality=95)
    return path


def open_video_writer(path: Path, fps: float, width: int, height: int):
    """An OpenCV video writer for ``path``'s folder and stem, creating the folder.

    Returns:
        The writer and the file it writes: ``.mp4`` (mp4v), or ``.avi`` (MJPG) where this OpenCV build cannot
        write mp4.

    Raises:
        OSError: this OpenCV can write neither.
    """
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix, codec in ((".mp4", "mp4v"), (".avi", "MJPG")):
        target = path.with_suffix(suffix)
        with runtime.native_stderr_silenced():  # FFmpeg's complaints about a codec it lacks
            writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*codec), fps, (width, height))
        if writer.isOpened():
            return writer, target
        writer.release()
    raise OSError(f"OpenCV cannot write a video to {path} (neither mp4v nor MJPG)")


def open_capture(item: Item):
    """An opened ``cv2.VideoCapture`` of a video or webcam item.

    Raises:
        OSError: the webcam or the video does not open; the message says which.
    """
    import cv2

    with runtime.native_stderr_silenced():  # OpenCV's own warnings; the reason is given below
        if item.kind == "webcam":
            index = int(item.source.split(":", 1)[1])
            capture = cv2.VideoCapture(index)
        else:
            capture = cv2.VideoCapture(item.source)
    if not capture.isOpened():
        capture.release()
        if item.kind == "webcam":
            raise OSError(f"webcam {index} does not open (no such camera, or it is in use)")
        raise OSError(f"cannot read video {item.source}: OpenCV cannot open it")
    return capture


def iter_frames(path: str | Path) -> Iterator[np.ndarray]:
    """The frames of a video file, in order, as RGB (H x W x 3 uint8); none when it cannot be read."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                return
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()
