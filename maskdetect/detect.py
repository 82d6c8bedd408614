"""Inference: find every face in photos, folders, videos or a webcam, classify it with a trained model, and
write annotated copies, ``detections.csv`` and ``summary.json``; export a model to TFLite or a SavedModel.

Faces are found by the face stage's own detector and settings (``facecrops.CropSettings()`` defaults through
``maskdetect.face.from_crop_settings`` and ``maskdetect.face.detect_faces``, the padded retry included), and cut
with its geometry (``facecrops.crop_face``) at the margin and crop size the model's training crops had (recorded in
the model's metadata; margin 0.2 and 256 px, the face stage's defaults, for a model saved before they were
recorded), then resized to the model's size by ``artifact.classifier_input``, the resize of training's ``tf.data``
pipeline (``tf.image.resize`` with antialiasing, rounded to uint8). So the classifier
(:class:`maskdetect.artifact.Classifier`) sees faces as it saw them in training. All faces of a frame go to the
model in one batch. The default model is the best of the training log (``runlog.leaderboard``).

Output (``--output``, default ``<logs>/detect/<time>/``)::

    detections.csv      one row per face: source, frame, face, box x1 y1 x2 y2 (the source's pixels, EXIF
                        orientation applied), label, probability, detector confidence, detector, carried
    summary.json        per source and in all: frames, faces per class, mask-wearing rate, speed
    <name>              each image annotated, under the name of its source (folders keep their layout)
    <stem>.mp4          each video annotated (.avi with MJPG where this OpenCV cannot write mp4)

Only :func:`main` configures logging; TensorFlow, Keras and OpenCV are imported when a model or a detector
is built, not when this module is imported.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import json
import logging
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maskdetect import export, images, moves, records, runtime
from maskdetect.artifact import Classifier, load_classifier
from maskdetect.classes import mask_worn_wrong, no_mask, wears_mask
from maskdetect.face import detect_faces, from_crop_settings
from maskdetect.face import settings as face_settings
from maskdetect.facecrops import CropSettings, crop_face
from maskdetect.runlog import LOG_NAME, leaderboard, ranking_folder

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"}
DETECTIONS = "detections.csv"
SUMMARY = "summary.json"
DETECTION_FIELDS = ["source", "frame", "face", "x1", "y1", "x2", "y2", "label", "probability", "confidence",
                    "detector", "carried"]
# The face stage's settings: the same detector and thresholds as process_faces.py's defaults. The crop geometry
# (margin, size) is replaced by the classifier's own (see MaskDetector).
CROP = CropSettings()
# Detection every 5th frame of a video: the detector takes ~0.2 s a 640x480 frame on two cores, the classifier
# ~7 ms, so detecting every frame gives ~5 frames/s and every 5th ~20 (benchmarks/bench_detect.py).
DEFAULT_VIDEO_EVERY = 5
# A video or webcam whose rate OpenCV cannot tell is written at this rate.
FALLBACK_FPS = 25.0
_WINDOW = "detect_mask"

# Colours (RGB) by class: green for a worn mask, red for none, orange for a mask worn wrong (under the nose, on
# the chin), then distinct colours for other classes. None of the others is orange, green or red, so the three
# mask classes never share a colour with another class.
_GREEN, _RED, _ORANGE = (0, 200, 0), (230, 30, 30), (255, 140, 0)
_OTHER_COLOURS = ((0, 140, 255), (200, 0, 200), (0, 200, 200), (255, 230, 0), (140, 90, 40), (160, 160, 160))
def class_colours(class_names: Sequence[str]) -> dict[str, tuple[int, int, int]]:
    """A colour per class: green for a worn mask, red for no mask, orange for a mask worn wrong, others distinct."""
    colours, others = {}, iter(_OTHER_COLOURS * (len(class_names) // len(_OTHER_COLOURS) + 1))
    for name in class_names:
        colours[name] = (_GREEN if wears_mask(name) else _RED if no_mask(name)
                         else _ORANGE if mask_worn_wrong(name) else next(others))
    return colours


# ---------------------------------------------------------------------------------------------
# The model


def best_model(logs: str | Path) -> Path:
    """The model of the best ``ok`` run in ``<logs>/training_log.csv`` whose model file still exists, ranked
    as auto_train.py ranks: by the balanced accuracy on labelled photos when runs were scored with
    ``--rank-on`` (on the folder of the latest scored run; unscored runs come after the scored ones), else
    by validation accuracy."""
    log_path = Path(logs) / LOG_NAME
    usable = [row for row in records.read_rows(log_path)
              if row.get("status") == "ok" and row.get("model_path") and Path(row["model_path"]).is_file()]
    ranked = leaderboard(usable, ranking_folder(usable))
    if not ranked:
        where = f"{log_path} has no finished run whose model file exists" if log_path.is_file() else \
            f"there is no training log {log_path}"
        raise ValueError(f"no model to use: {where}; train one with train_a_model.py or give --model PATH")
    return Path(ranked[0]["model_path"])


# ---------------------------------------------------------------------------------------------
# Faces in a frame


@dataclass(frozen=True)
class Detection:
    """One classified face, in the frame's pixels."""

    box: tuple[float, float, float, float]
    label: str
    probability: float
    confidence: float
    detector: str
    carried: bool = False


@functools.lru_cache(maxsize=1)
def _face_detector(settings):
    """The face detector for ``settings`` (``maskdetect.face.DetectorSettings``), built once per process: loading the
    detectors' models takes seconds. Keyed on the detector's settings alone, so classifiers whose crops differ
    in margin or size share one detector."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with runtime.native_stderr_silenced():
        from maskdetect.face.detector import FaceDetector

        detector = FaceDetector(settings)
        detector.detect(np.zeros((64, 64, 3), np.uint8))  # the first call builds the graphs, which log
    return detector


class MaskDetector:
    """The face stage's detector followed by the classifier (None: find and cut faces only).

    Faces are found with ``settings`` (the face stage's defaults) and cut at the classifier's crop margin and
    size, whatever ``settings`` says about them: a model trained on crops with margin 0.3 must see faces cut
    with margin 0.3. Without a classifier, faces are cut as ``settings`` says.
    """

    def __init__(self, classifier: Classifier | None, settings: CropSettings = CROP) -> None:
        self.classifier = classifier
        if classifier is not None:
            settings = dataclasses.replace(settings, margin=classifier.crop_margin, size=classifier.crop_size)
        self.settings = settings
        self.detector = _face_detector(from_crop_settings(settings))

    def faces(self, rgb: np.ndarray) -> list:
        """The faces the face stage would keep (its low-confidence review faces are not faces)."""
        found, _ = detect_faces(self.detector, rgb, self.settings)
        return [face for face in found if not face.low_confidence]

    def crops(self, rgb: np.ndarray, found: Sequence) -> tuple[list[np.ndarray], list]:
        """The face stage's crops of ``found`` faces, and the faces they are of."""
        crops, kept = [], []
        for face in found:
            try:
                crops.append(crop_face(rgb, (face.x1, face.y1, face.x2, face.y2), self.settings.margin,
                                             self.settings.size))
                kept.append(face)
            except ValueError:  # a box carried onto a smaller frame, or empty: nothing to classify
                continue
        return crops, kept

    def classify(self, rgb: np.ndarray, found: Sequence, carried: bool = False) -> list[Detection]:
        """Classify ``found`` faces of ``rgb`` in one batch."""
        crops, kept = self.crops(rgb, found)
        if not kept:
            return []
        probabilities = self.classifier.probabilities(np.stack(crops))
        names = self.classifier.class_names
        chosen = self.classifier.decide(probabilities)
        return [Detection((face.x1, face.y1, face.x2, face.y2), names[index], float(p[index]),
                          float(face.confidence), face.detector, carried)
                for face, p, index in zip(kept, probabilities, chosen, strict=True)]

    def image(self, rgb: np.ndarray) -> list[Detection]:
        return self.classify(rgb, self.faces(rgb))


def annotate(rgb: np.ndarray, detections: Sequence[Detection], class_names: Sequence[str]) -> np.ndarray:
    """A copy of ``rgb`` with each box coloured by class, its label and probability, and a count per class."""
    import cv2

    out = np.ascontiguousarray(rgb).copy()
    height, width = out.shape[:2]
    colours = class_colours(class_names)
    scale = max(0.4, min(1.2, max(height, width) / 1200))
    thickness = max(1, round(scale * 2))
    font = cv2.FONT_HERSHEY_SIMPLEX
    for detection in detections:
        x1, y1, x2, y2 = (int(round(value)) for value in detection.box)
        colour = colours.get(detection.label, _OTHER_COLOURS[0])
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thickness)
        text = f"{detection.label} {detection.probability:.0%}"
        (text_w, text_h), base = cv2.getTextSize(text, font, scale * 0.6, 1)
        # the label above the box, or below its top edge at the top of the picture; kept inside the picture
        top = y1 - text_h - base - 2 if y1 - text_h - base - 2 >= 0 else min(y2, height - text_h - base - 2)
        left = max(0, min(x1, width - text_w - 4))
        cv2.rectangle(out, (left, top), (left + text_w + 4, top + text_h + base + 2), colour, -1)
        cv2.putText(out, text, (left + 2, top + text_h + 1), font, scale * 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    # the count of every class, each in its box colour, so a mask worn wrong stands out from a worn one
    counts = Counter(detection.label for detection in detections)
    parts = [(f"{name}: {counts.get(name, 0)}", colours[name]) for name in class_names]
    gap = cv2.getTextSize("  ", font, scale * 0.7, thickness)[0][0]
    sizes = [cv2.getTextSize(text, font, scale * 0.7, thickness) for text, _ in parts]
    text_h = max(size[0][1] for size in sizes)
    base = max(size[1] for size in sizes)
    total_w = sum(size[0][0] for size in sizes) + gap * (len(parts) - 1)
    cv2.rectangle(out, (0, 0), (min(width, total_w + 10), text_h + base + 10), (0, 0, 0), -1)
    left = 5
    for (text, colour), ((text_w, _), _) in zip(parts, sizes, strict=True):
        cv2.putText(out, text, (left, text_h + 5), font, scale * 0.7, colour, thickness, cv2.LINE_AA)
        left += text_w + gap
    return out


# ---------------------------------------------------------------------------------------------
# Inputs


@dataclass
class Item:
    """One thing to process: an image, a video or a webcam, and where its annotated copy goes."""

    kind: str  # image, video, webcam
    source: str  # the path, or "webcam:<index>"
    output: str  # relative to the output folder


@dataclass
class Tally:
    """What one source gave, for summary.json."""

    source: str
    kind: str
    output: str = ""  # the annotated file, relative to the output folder
    frames: int = 0
    counts: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    every: int = 1

    def as_dict(self, class_names: Sequence[str]) -> dict:
        faces_total = sum(self.counts.values())
        result = {"source": self.source, "kind": self.kind, "output": self.output, "frames": self.frames,
                  "faces": faces_total, "faces_per_class": {name: self.counts.get(name, 0) for name in class_names},
                  "mask_wearing_rate": mask_rate(self.counts), "seconds": round(self.seconds, 3)}
        if self.kind != "image":
            result["detect_every"] = self.every
            result["frames_per_second"] = round(self.frames / self.seconds, 2) if self.seconds else None
            result["faces_per_frame"] = round(faces_total / self.frames, 3) if self.frames else None
        return result


def mask_rate(counts: Counter) -> float | None:
    """Share of faces whose class means a correctly worn mask (:func:`wears_mask`), over all faces: a mask
    worn wrong (``incorrect_mask``) counts in the faces, not in the masks. None without faces."""
    total = sum(counts.values())
    return round(sum(count for name, count in counts.items() if wears_mask(name)) / total, 4) if total else None


def _kind_of(path: Path) -> str:
    return "video" if path.suffix.lower() in VIDEO_EXTENSIONS else "image"


def plan_inputs(inputs: Sequence[str]) -> tuple[list[Item], list[str]]:
    """The items to process, and one message per input that gives none (missing, an empty folder)."""
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


# ---------------------------------------------------------------------------------------------
# Running


class Display:
    """``--show``: a window where there is a display; one clear line where there is none."""

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
        """Show one annotated frame; False when the user pressed q or Esc."""
        if not self.ok:
            return True
        import cv2

        cv2.imshow(_WINDOW, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        return cv2.waitKey(wait_ms) & 0xFF not in (ord("q"), 27)

    def close(self) -> None:
        if self.ok:
            import cv2

            cv2.destroyAllWindows()


def _row(source: str, frame: int, index: int, detection: Detection) -> dict:
    x1, y1, x2, y2 = detection.box
    return {"source": source, "frame": frame, "face": index, "x1": round(x1, 1), "y1": round(y1, 1),
            "x2": round(x2, 1), "y2": round(y2, 1), "label": detection.label,
            "probability": round(detection.probability, 4), "confidence": round(detection.confidence, 4),
            "detector": detection.detector, "carried": int(detection.carried)}


def save_image(rgb: np.ndarray, path: Path) -> Path:
    """Save under ``path``'s name and format; formats Pillow cannot write by that name become JPEG."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(rgb)
    try:
        image.save(path, quality=95) if path.suffix.lower() in (".jpg", ".jpeg") else image.save(path)
    except (ValueError, OSError):
        path = path.with_name(path.name + ".jpg")
        image.save(path, quality=95)
    return path


def open_video_writer(path: Path, fps: float, width: int, height: int):
    """An mp4 (mp4v) writer, or an avi (MJPG) one where this OpenCV build cannot write mp4."""
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
    """A cv2.VideoCapture that has opened, or OSError with the reason."""
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


def run_video(pipeline: MaskDetector, capture, item: Item, output: Path, every: int, writer_rows,
              display: Display, max_frames: int = 0) -> Tally:
    """Detect every ``every`` frames, carry the boxes in between, classify every frame; write the annotated
    video and a row per face per frame. Ctrl-C ends a webcam cleanly (the video so far is kept)."""
    import cv2

    tally = Tally(item.source, item.kind, every=every)
    fps = capture.get(cv2.CAP_PROP_FPS)
    fps = fps if fps and math.isfinite(fps) and 1 <= fps <= 240 else FALLBACK_FPS
    writer, carried = None, []
    if item.kind == "webcam" and not max_frames:
        log.info("%s: running until Ctrl-C%s", item.source, " or q in the window" if display.ok else "")
    start = time.perf_counter()
    try:
        while not max_frames or tally.frames < max_frames:
            ok, bgr = capture.read()
            if not ok or bgr is None:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            fresh = tally.frames % every == 0
            if fresh:
                carried = pipeline.faces(rgb)
            detections = pipeline.classify(rgb, carried, carried=not fresh)
            annotated = annotate(rgb, detections, pipeline.classifier.class_names)
            if writer is None:
                writer, target = open_video_writer(output / item.output, fps, rgb.shape[1], rgb.shape[0])
                tally.output = str(target.relative_to(output))
            writer.write(cv2.cvtColor(annotated, cv2.COLOR_RGB2BGR))
            writer_rows([_row(item.source, tally.frames, index, d) for index, d in enumerate(detections)])
            tally.counts.update(d.label for d in detections)
            tally.frames += 1
            if not display.frame(annotated, 1):
                break
    except KeyboardInterrupt:
        if item.kind != "webcam":
            raise
        log.info("webcam stopped by Ctrl-C after %d frames", tally.frames)
    finally:
        tally.seconds = time.perf_counter() - start
        if writer is not None:
            writer.release()
        capture.release()
    if not tally.frames:
        raise OSError(f"cannot read video {item.source}: no frame could be decoded")
    return tally


def run_image(pipeline: MaskDetector, item: Item, output: Path, writer_rows, display: Display) -> Tally:
    start = time.perf_counter()
    try:
        rgb = images.load_rgb(item.source)
    except images.DECODE_ERRORS as error:
        raise OSError(f"cannot read image {item.source}: {error}") from None
    detections = pipeline.image(rgb)
    annotated = annotate(rgb, detections, pipeline.classifier.class_names)
    target = save_image(annotated, output / item.output)
    writer_rows([_row(item.source, 0, index, d) for index, d in enumerate(detections)])
    tally = Tally(item.source, "image", str(target.relative_to(output)), frames=1, seconds=time.perf_counter() - start)
    tally.counts.update(d.label for d in detections)
    display.frame(annotated, 0)
    return tally


def _describe(tally: Tally) -> str:
    faces_text = ", ".join(f"{name} {count}" for name, count in sorted(tally.counts.items())) or "no face"
    if tally.kind == "image":
        return f"{tally.source}: {faces_text}"
    rate = tally.frames / tally.seconds if tally.seconds else float("nan")
    share = mask_rate(tally.counts)
    return (f"{tally.source}: {tally.frames} frames in {tally.seconds:.1f} s ({rate:.1f} frames/s, detection every "
            f"{tally.every}); face-frames: {faces_text}"
            + (f"; mask-wearing rate {share:.1%}" if share is not None else ""))


def process(pipeline: MaskDetector, items: Sequence[Item], output: Path, every: int | None = None,
            show: bool = False, max_frames: int = 0, problems: Sequence[str] = ()) -> dict:
    """Run every item, writing detections.csv, the annotated files and summary.json; returns the summary.
    An item that fails is reported in one line and recorded; the others go on."""
    output.mkdir(parents=True, exist_ok=True)
    display = Display(show, output)
    tallies: list[Tally] = []
    failures = [{"source": "", "error": problem} for problem in problems]
    started = time.perf_counter()
    with open(output / DETECTIONS, "w", newline="", encoding="utf-8", errors="surrogateescape") as handle:
        writer = csv.DictWriter(handle, fieldnames=DETECTION_FIELDS, lineterminator="\n")
        writer.writeheader()

        try:
            for item in items:
                try:
                    if item.kind == "image":
                        tally = run_image(pipeline, item, output, writer.writerows, display)
                    else:
                        capture = open_capture(item)
                        tally = run_video(pipeline, capture, item, output,
                                          every or DEFAULT_VIDEO_EVERY, writer.writerows, display, max_frames)
                except OSError as error:
                    print(f"error: {error}", file=sys.stderr)
                    failures.append({"source": item.source, "error": str(error)})
                    continue
                finally:
                    handle.flush()
                tallies.append(tally)
                print(_describe(tally), flush=True)
        finally:
            display.close()
            summary = _summary(pipeline, tallies, failures, output, every, time.perf_counter() - started)
            (output / SUMMARY).write_text(json.dumps(summary, indent=2))
    return summary


def _summary(pipeline: MaskDetector, tallies: list[Tally], failures: list[dict], output: Path, every: int | None,
             seconds: float) -> dict:
    class_names = pipeline.classifier.class_names
    used = from_crop_settings(pipeline.settings)
    counts: Counter = Counter()
    for tally in tallies:
        counts.update(tally.counts)
    return {
        "model": str(pipeline.classifier.path), "class_names": class_names,
        "image_size": pipeline.classifier.image_size,
        "detect_every": every or DEFAULT_VIDEO_EVERY if any(t.kind != "image" for t in tallies) else 1,
        "detector_settings": {**{key: getattr(pipeline.settings, key) for key in
                                 ("threshold", "detect_size", "second_stage", "pad_retry", "margin", "size",
                                  "face_detector")},
                              # the values used, defaults included (None: no verifier, so no veto either)
                              **{key: getattr(used, key) for key in ("second_stage_threshold", "verifier_threshold")},
                              "verifier_veto": used.verifier_veto if used.verifier_threshold is not None else None},
        # the model's crop geometry and where it came from (default: a model saved before it was recorded)
        "crop": {"margin": pipeline.settings.margin, "crop_size": pipeline.settings.size,
                 "source": pipeline.classifier.crop_source},
        # the classes the mask-wearing rate counts as worn; every other class counts as a face without one
        "worn_mask_classes": [name for name in class_names if wears_mask(name)],
        "totals": {"images": sum(t.kind == "image" for t in tallies),
                   "videos": sum(t.kind != "image" for t in tallies), "frames": sum(t.frames for t in tallies),
                   "faces": sum(counts.values()),
                   "faces_per_class": {name: counts.get(name, 0) for name in class_names},
                   "mask_wearing_rate": mask_rate(counts), "failed": len(failures), "seconds": round(seconds, 2)},
        "sources": [tally.as_dict(class_names) for tally in tallies],
        "failed": failures,
        "detections": str(output / DETECTIONS),
    }


# ---------------------------------------------------------------------------------------------
# Command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="detect_mask.py",
        description="Find the faces in images, folders, videos or a webcam and classify each with a trained model "
        "(mask / without_mask / ...): annotated copies, detections.csv and summary.json. The face detector and its "
        "settings are process_faces.py's defaults.",
    )
    parser.add_argument("inputs", nargs="*", metavar="INPUT",
                        help="an image, a folder (searched recursively for images and videos), a video file "
                        f"({', '.join(sorted(VIDEO_EXTENSIONS))}) or a webcam index (0, 1, ...)")
    parser.add_argument("--model", type=Path,
                        help="a model.keras from train_a_model.py (default: the best run in LOGS/training_log.csv "
                        "by validation accuracy)")
    parser.add_argument("--logs", type=Path, default=Path("logs"),
                        help="where the training log is (default %(default)s)")
    parser.add_argument("--output", type=Path,
                        help="folder for detections.csv, summary.json and the annotated files "
                        "(default LOGS/detect/<time>)")
    parser.add_argument("--every", type=int, default=None, metavar="K",
                        help=f"on video and webcam, detect faces every K frames and carry the boxes in between "
                        f"(classification runs on every frame); default {DEFAULT_VIDEO_EVERY}, 1 detects on every "
                        "frame")
    parser.add_argument("--max-frames", type=int, default=0, metavar="N",
                        help="stop each video or webcam after N frames (default: all; a webcam runs until q or Ctrl-C)")
    parser.add_argument("--show", action="store_true",
                        help="show the annotated frames in a window (needs a display and an OpenCV with windows): "
                        "an image waits for a key, q or Esc stops a video")
    parser.add_argument("--export", metavar="FORMAT",
                        help=f"also write the model as {' or '.join(export.FORMATS)}, to run without this code")
    parser.add_argument("--export-path", type=Path,
                        help="where --export writes (default: beside the model: model.tflite, model_savedmodel/)")
    parser.add_argument("--face-detector", metavar="DIR",
                        help="a face detector you trained with train_face_detector.py (default: the shipped one)")
    parser.add_argument("--second-stage-threshold", type=float, default=None, metavar="P",
                        help=face_settings.second_stage_threshold_help())
    parser.add_argument("--verifier-threshold", type=float, default=None, metavar="P",
                        help=face_settings.verifier_threshold_help())
    parser.add_argument("--no-verifier", action="store_true", help=face_settings.NO_VERIFIER_HELP)
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    runtime.configure_logging(args.verbose)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return runtime.run_cli(lambda: _main(args), "detect_mask: interrupted; what was processed is in the output folder.")


def _main(args) -> int:
    if not args.inputs and not args.export:
        raise ValueError("give at least one INPUT (image, folder, video or webcam index), or --export FORMAT")
    if args.export is not None and args.export not in export.FORMATS:
        raise ValueError(f"--export must be one of {', '.join(export.FORMATS)}, not {args.export!r}")
    if args.export_path and not args.export:
        raise ValueError("--export-path needs --export")
    if args.every is not None and args.every < 1:
        raise ValueError(f"--every must be at least 1, not {args.every}")
    if args.max_frames < 0:
        raise ValueError(f"--max-frames must be 0 (all) or more, not {args.max_frames}")
    # checked before any model loads
    settings = dataclasses.replace(CROP, face_detector=args.face_detector,
                                   second_stage_threshold=args.second_stage_threshold,
                                   verifier_threshold=args.verifier_threshold, verifier=not args.no_verifier)
    items, problems = plan_inputs(args.inputs)
    if args.inputs and not items:
        raise ValueError("; ".join(problems) if problems else "nothing to process")
    model_path = args.model or best_model(args.logs)
    classifier = load_classifier(model_path)
    log.info("model %s: classes %s, %d px; faces cut with margin %g at %d px (%s)", model_path,
             ", ".join(classifier.class_names), classifier.image_size, classifier.crop_margin, classifier.crop_size,
             classifier.crop_source)
    if args.export:
        target = args.export_path or export.default_path(model_path, args.export)
        meta_file = export.export(classifier.model, classifier.meta, args.export, target, model_path)
        print(f"detect_mask: exported {args.export} model to {target} (classes {', '.join(classifier.class_names)}, "
              f"input {classifier.image_size} px RGB 0-255); class names and crop geometry in {meta_file}")
    if not items:
        return runtime.EXIT_OK
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    output = args.output or args.logs / "detect" / time.strftime("%Y%m%d-%H%M%S")
    _refuse_to_overwrite_sources(items, output)
    pipeline = MaskDetector(classifier, settings)
    summary = process(pipeline, items, output, args.every, args.show, args.max_frames, problems)
    totals = summary["totals"]
    per_class = ", ".join(f"{name} {count}" for name, count in totals["faces_per_class"].items())
    rate = totals["mask_wearing_rate"]
    print(f"detect_mask: {totals['images']} image(s) and {totals['videos']} video(s) ({totals['frames']} frames) read, "
          f"{totals['failed']} failed; faces: {per_class}"
          + (f"; mask-wearing rate {rate:.1%}" if rate is not None else "")
          + f"; written to {output} ({DETECTIONS}, {SUMMARY}, annotated copies)")
    return runtime.EXIT_FAILURE if summary["failed"] else runtime.EXIT_OK


def _refuse_to_overwrite_sources(items: Sequence[Item], output: Path) -> None:
    """An annotated copy must never land on a photo or video it was made from (``--output`` = the photos' folder)."""
    sources = {Path(item.source).resolve() for item in items if item.kind != "webcam"}
    for item in items:
        target = output / item.output
        # a video goes to .mp4, or .avi where this OpenCV cannot write mp4
        targets = [target] if item.kind == "image" else [target.with_suffix(".mp4"), target.with_suffix(".avi")]
        for candidate in targets:
            if candidate.resolve() in sources:
                raise ValueError(f"--output {output} would overwrite {candidate} with its annotated copy; "
                                 "choose another folder")


def iter_frames(path: str | Path) -> Iterator[np.ndarray]:
    """RGB frames of a video file (tests and benchmarks read annotated videos back with it)."""
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
