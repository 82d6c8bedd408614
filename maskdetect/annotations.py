"""Labelled photos as a training source: read the boxes that labelling tools export, cut each face.

Street and crowd photos with a box and a label per face teach the classifier the faces cameras see
(small, turned, blurred, in crowds), which the usual close-up collections lack. Three formats are read:

- PASCAL VOC (LabelImg, CVAT, Roboflow): a folder with ``annotations/*.xml`` (CVAT: ``Annotations/``), or
  the XML files themselves, one ``<object>`` per face whose ``<name>`` is the label; the photo is the XML's
  ``<filename>``, looked for in ``images/`` (CVAT: ``JPEGImages/``) beside the XML folder, then beside the
  XML, then at ``<path>`` (a relative one from the XML's folder).
- CSV: a file (or a folder holding ``boxes.csv``) with the columns ``image, label, xmin, ymin, xmax,
  ymax`` (``width, height`` may follow); ``image`` is relative to ``images/`` beside the file, or to the file.
- YOLO: a folder with ``labels/**/*.txt`` (``class cx cy w h``, normalised) beside ``images/`` (the same
  subfolders, or any with the same stem) and a class list in ``classes.txt`` (or ``obj.names``, or
  ``names:`` in ``data.yaml`` in the folder or the one above it, as Roboflow exports a split).

Boxes are taken to refer to the photo as it is shown, with its EXIF orientation applied: that is the
picture :func:`maskdetect.images.load_rgb` gives, the one CVAT and Roboflow (auto-orient) label and
export, and the one YOLO trainers read. Where a file says what size the boxes were drawn on (VOC's
``<size>``, the CSV's ``width, height``) and the photo as shown differs, the photo is reported and left
alone: a tool that drew on the unrotated pixels (older LabelImg on a phone photo) or a resized photo would
otherwise give crops beside the faces.

Reading is planning: :func:`read` returns every labelled photo and a one-line problem for each file or box
it cannot use. :func:`crop` then cuts the faces with the face stage's own geometry into
``<output>/<label>/`` with a ``faces.csv`` row each (kind ``annotated``, the source photo and its sha256,
so the grouped split keeps a photo's faces on one side). A photo is finished once its ``sources.csv`` row
is written, so a rerun skips it, and a photo's crops and rows are written only after all its boxes passed.
"""

from __future__ import annotations

import csv
import logging
import math
import xml.etree.ElementTree as ElementTree
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from maskdetect import facecrops, images, records

log = logging.getLogger(__name__)

CSV_COLUMNS = ("image", "label", "xmin", "ymin", "xmax", "ymax")
# The Kaggle face-mask set (and the shared wild set) use the first, CVAT the second; LabelImg and Roboflow
# put the XML files beside the photos, a folder of *.xml.
VOC_FOLDERS = ("annotations", "Annotations")
VOC_IMAGE_FOLDERS = ("images", "JPEGImages")
YOLO_CLASS_FILES = ("classes.txt", "obj.names")
EXIF_ORIENTATION = 0x0112
DROP = "-"  # --label-map OLD=- drops the label
# Faces whose short side is below this are counted and skipped: below 20 px a 256 px crop is mostly blur, and
# 16 px taught the classifier no more than 20 px, while 32 px drops the small faces cameras see and cost
# accuracy on street photos (docs/benchmarks.md).
DEFAULT_MIN_FACE = 20
# A label with fewer usable faces than this (counting the faces its class folder already has from photo
# folders) is left out unless --label-map or --classes names it: the wild set's ~60 usable masks worn wrongly,
# learnt as a third class, got 20 % of their own faces right and cost the other classes accuracy
# (docs/benchmarks.md), and run_pipeline.sh leaves them out by name.
MIN_LABEL_FACES = 200


@dataclass(frozen=True)
class LabelledFace:
    label: str
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in the photo's pixels


@dataclass
class LabelledPhoto:
    image: Path
    faces: list[LabelledFace] = field(default_factory=list)
    origin: str = ""  # the annotation file (and line), for messages
    drawn_size: tuple[int, int] | None = None  # width, height the file says the boxes were drawn on


@dataclass
class Labels:
    """What a set of annotation files says: the photos with their faces, and what could not be used."""

    photos: list[LabelledPhoto] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def extend(self, other: Labels) -> None:
        self.photos.extend(other.photos)
        self.problems.extend(other.problems)


# ---------------------------------------------------------------------------------------------
# Reading


def read_all(paths: Sequence[str | Path]) -> Labels:
    """Every labelled photo under each of ``paths`` (see :func:`read`), for the commands that train on them: each
    problem is one warning line; no labelled photo at all is a ValueError."""
    labels = Labels()
    for path in paths:
        labels.extend(read(path))
    for problem in labels.problems:
        log.warning("%s", problem)
    if not labels.photos:
        raise ValueError(f"no labelled photos in {', '.join(map(str, paths))}")
    return labels


def read(path: str | Path, max_pixels: int = images.DEFAULT_MAX_PIXELS) -> Labels:
    """Every labelled photo under ``path`` (a VOC folder, a CSV file or folder, or a YOLO folder); a YOLO photo
    above ``max_pixels`` (whose size scales its boxes) is a problem line."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"annotations {path} do not exist")
    if path.is_file():
        if path.suffix.lower() == ".csv":
            return read_csv(path)
        if path.suffix.lower() == ".xml":
            return read_voc([path], path.parent)
        raise ValueError(f"annotations {path}: expected a .csv or .xml file, or a folder of VOC, CSV or YOLO labels")
    for folder in VOC_FOLDERS:
        if (path / folder).is_dir():
            return read_voc(sorted((path / folder).glob("*.xml")), path)
    if (path / "labels").is_dir():
        return read_yolo(path, max_pixels)
    if (path / "boxes.csv").is_file():
        return read_csv(path / "boxes.csv")
    xml_files = sorted(path.glob("*.xml"))
    if xml_files:
        return read_voc(xml_files, path)
    raise ValueError(f"annotations {path}: no annotations/*.xml (VOC), labels/*.txt (YOLO), boxes.csv or *.xml in it")


def _find_photo(name: str, candidates: Sequence[Path], allowed: Sequence[Path]) -> tuple[Path | None, bool]:
    """The photo ``name`` in the first of ``candidates`` that holds it, and whether a candidate was passed over
    because it lies outside the ``allowed`` folders (an absolute name, ``..``, a link out): those are never read."""
    refused = False
    for folder in candidates:
        photo = folder / name
        if not images.inside(photo, allowed):
            refused = True
        elif photo.is_file():
            return photo, refused
    return None, refused


def _outside(origin: object, name: str, root: Path) -> str:
    """The one line for a photo a label file names outside its folder."""
    return (f"{origin}: its photo {name} lies outside {root}, so it is not read (labelled photos are read only "
            f"from the folder given); put the photo in {root / 'images'} and name it from there")


def _drawn_size(width: str | None, height: str | None) -> tuple[int, int] | None:
    """The size a file says its boxes were drawn on; None where it says nothing usable (some tools write 0)."""
    try:
        size = int(float(width)), int(float(height))
    except (TypeError, ValueError):
        return None
    return size if min(size) > 0 else None


def shown_size(photo: Path, max_pixels: int = images.DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """Width and height of ``photo`` as shown: EXIF orientations 5 to 8 turn it by a quarter. A picture above
    ``max_pixels`` is refused from its header (:class:`maskdetect.images.ImageTooLarge`)."""
    with images.open_image(photo, max_pixels) as image:
        width, height = image.size
        orientation = image.getexif().get(EXIF_ORIENTATION, 1)
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def read_voc(xml_files: Sequence[Path], root: Path) -> Labels:
    labels = Labels()
    for xml_file in xml_files:
        try:
            tree = ElementTree.parse(xml_file)
        except (ElementTree.ParseError, OSError) as error:
            labels.problems.append(f"{xml_file}: not a readable VOC XML file ({error})")
            continue
        annotation = tree.getroot()
        name = (annotation.findtext("filename") or "").strip()
        written_path = (annotation.findtext("path") or "").strip()
        folders = [root / folder for folder in VOC_IMAGE_FOLDERS] + [xml_file.parent, root]
        photo, refused = _find_photo(name, folders, folders) if name else (None, False)
        shown = name
        if photo is None and written_path:
            # LabelImg writes the absolute path it labelled; a relative one is read from the XML's folder
            photo, refused_path = _find_photo(written_path, [xml_file.parent], folders)
            shown = name if refused else written_path
            refused = refused or refused_path
        if photo is None and refused:
            labels.problems.append(_outside(xml_file, shown, root))
            continue
        if photo is None:
            labels.problems.append(f"{xml_file}: its photo {name or written_path or '(no <filename>)'} is missing")
            continue
        entry = LabelledPhoto(photo, origin=str(xml_file),
                              drawn_size=_drawn_size(annotation.findtext("size/width"),
                                                     annotation.findtext("size/height")))
        for number, item in enumerate(annotation.iter("object"), 1):
            label = (item.findtext("name") or "").strip()
            box = item.find("bndbox")
            try:
                values = tuple(float(box.findtext(key)) for key in ("xmin", "ymin", "xmax", "ymax"))
            except (AttributeError, TypeError, ValueError):
                labels.problems.append(f"{xml_file}: object {number} has no numeric <bndbox>")
                continue
            entry.faces.append(LabelledFace(label, values))
        labels.photos.append(entry)
    return labels


def read_csv(csv_file: Path) -> Labels:
    labels = Labels()
    by_photo: dict[str, LabelledPhoto] = {}
    try:
        # utf-8-sig: a spreadsheet's CSV often starts with a byte-order mark, which would hide the first column
        with open(csv_file, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            missing = [column for column in CSV_COLUMNS if column not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"annotations {csv_file} lack the column(s) {', '.join(missing)}; "
                                 f"expected {', '.join(CSV_COLUMNS)}")
            for number, row in enumerate(reader, 2):
                name = (row["image"] or "").strip()
                try:
                    box = tuple(float(row[key]) for key in ("xmin", "ymin", "xmax", "ymax"))
                except (TypeError, ValueError):
                    labels.problems.append(f"{csv_file}:{number}: the box is not four numbers")
                    continue
                if name not in by_photo:
                    folders = (csv_file.parent / "images", csv_file.parent)
                    photo, refused = _find_photo(name, folders, folders)
                    if photo is None and refused:
                        labels.problems.append(_outside(f"{csv_file}:{number}", name, csv_file.parent))
                        by_photo[name] = None
                        continue
                    if photo is None:
                        labels.problems.append(f"{csv_file}:{number}: its photo {name} is missing")
                        by_photo[name] = None
                        continue
                    by_photo[name] = LabelledPhoto(photo, origin=str(csv_file),
                                                   drawn_size=_drawn_size(row.get("width"), row.get("height")))
                if by_photo[name] is not None:
                    by_photo[name].faces.append(LabelledFace((row["label"] or "").strip(), box))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ValueError(f"annotations {csv_file} cannot be read: {error}") from None
    labels.photos = [photo for photo in by_photo.values() if photo is not None]
    return labels


def yolo_classes(root: Path) -> list[str]:
    """The class names of a YOLO folder, by index: a names file, else ``names:`` of a data.yaml."""
    for name in YOLO_CLASS_FILES:
        for folder in (root, root / "labels"):
            if (folder / name).is_file():
                return [line.strip() for line in (folder / name).read_text(encoding="utf-8").splitlines()
                        if line.strip()]
    # Roboflow puts data.yaml above its train/, valid/ and test/ folders, each of which is a YOLO folder.
    for data_yaml in (root / "data.yaml", root.parent / "data.yaml"):
        if not data_yaml.is_file():
            continue
        import yaml

        try:
            content = yaml.safe_load(data_yaml.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            raise ValueError(f"{data_yaml} is not readable YAML: {error}") from None
        names = content.get("names") if isinstance(content, dict) else None
        if isinstance(names, dict):
            return [str(names[key]) for key in sorted(names)]
        if isinstance(names, list):
            return [str(name) for name in names]
    raise ValueError(f"YOLO labels in {root}: no class list ({', '.join(YOLO_CLASS_FILES)} or names: in data.yaml)")


def read_yolo(root: Path, max_pixels: int = images.DEFAULT_MAX_PIXELS) -> Labels:
    classes = yolo_classes(root)
    labels = Labels()
    # A label file names its photo by stem and by place: labels/train/a.txt is images/train/a.*
    # (Ultralytics' layout); failing that, any photo of that stem under images/.
    photos: dict[tuple[str, str], Path] = {}
    by_stem: dict[str, Path] = {}
    if (root / "images").is_dir():
        for path in images.walk_files(root / "images"):
            if path.suffix.lower() in images.IMAGE_EXTENSIONS and not images.inside(path, [root / "images"]):
                labels.problems.append(_outside(path, f"(a link to {path.resolve()})", root))
            elif path.suffix.lower() in images.IMAGE_EXTENSIONS:
                photos[(str(path.parent.relative_to(root / "images")), path.stem)] = path
                by_stem.setdefault(path.stem, path)
    for text_file in sorted((root / "labels").rglob("*.txt")):
        if text_file.name in YOLO_CLASS_FILES:
            continue
        place = str(text_file.parent.relative_to(root / "labels"))
        photo = photos.get((place, text_file.stem)) or by_stem.get(text_file.stem)
        if photo is None:
            labels.problems.append(f"{text_file}: no photo named {text_file.stem}.* in {root / 'images'}")
            continue
        try:
            # normalised boxes are shares of the photo as shown (Ultralytics measures it so too)
            width, height = shown_size(photo, max_pixels)
        except images.DECODE_ERRORS as error:
            labels.problems.append(f"{photo}: cannot be read ({error})")
            continue
        try:
            lines = text_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            labels.problems.append(f"{text_file}: cannot be read ({error})")
            continue
        entry = LabelledPhoto(photo, origin=str(text_file))
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            parts = line.split()
            try:
                index, cx, cy, w, h = int(parts[0]), *(float(value) for value in parts[1:5])
            except (ValueError, IndexError, TypeError):
                labels.problems.append(f"{text_file}:{number}: expected 'class cx cy w h'")
                continue
            if not 0 <= index < len(classes):
                labels.problems.append(f"{text_file}:{number}: class {index} is not in the class list "
                                       f"({len(classes)} classes)")
                continue
            entry.faces.append(LabelledFace(classes[index], ((cx - w / 2) * width, (cy - h / 2) * height,
                                                             (cx + w / 2) * width, (cy + h / 2) * height)))
        labels.photos.append(entry)
    return labels


def parse_label_map(pairs: Sequence[str] | None) -> dict[str, str]:
    """``OLD=NEW`` pairs as a mapping; ``OLD=-`` drops the label."""
    mapping = {}
    for pair in pairs or ():
        old, separator, new = pair.partition("=")
        if not separator or not old.strip() or not new.strip():
            raise ValueError(f"--label-map takes OLD=NEW (or OLD=- to drop a label), not {pair!r}")
        mapping[old.strip()] = new.strip()
    return mapping


def valid_label(label: str) -> bool:
    """A label that can be a class folder: not empty, no path separators, not one of the pipeline's own names."""
    return bool(label) and "/" not in label and "\\" not in label and not label.startswith(images.RESERVED_PREFIXES)


# ---------------------------------------------------------------------------------------------
# Cutting


class _BoxFace:
    """A labelled box, shaped like a detector's face for the manifest."""

    def __init__(self, box: Sequence[float]) -> None:
        self.x1, self.y1, self.x2, self.y2 = (float(value) for value in box)
        self.confidence, self.landmarks, self.detector = 1.0, None, facecrops.ANNOTATED


def _plan_faces(photo: LabelledPhoto, width: int, height: int, label_map: Mapping[str, str], min_face: int,
                classes: Sequence[str] | None, counts: Counter, problems: list[str],
                rare: Iterable[str] = ()) -> list[tuple[int, str, tuple]]:
    """(index in the file, class, box) of each face to cut; the others are counted and, if bad, reported."""
    chosen = []
    for index, face in enumerate(photo.faces):
        label = label_map.get(face.label, face.label)
        x1, y1, x2, y2 = face.box
        # The box as cut: a pixel of slack past each edge is clamped, since tools differ on whether xmax is
        # the last pixel or one past it (the wild set has boxes ending at 401 in 400 px photos).
        clamped = (max(x1, 0.0), max(y1, 0.0), min(x2, float(width)), min(y2, float(height)))
        where = f"{photo.origin}: face {index} of {photo.image.name}"
        if label == DROP:
            counts["dropped"] += 1
        elif label in rare:
            counts["rare"] += 1
        elif not valid_label(label) or (classes and label not in classes):
            counts["bad_label"] += 1
            problems.append(f"{where} has the unknown label {label!r}"
                            + (f" (not one of --classes {' '.join(classes)})" if classes else ""))
        elif not all(math.isfinite(value) for value in face.box):
            counts["bad_box"] += 1
            problems.append(f"{where}: box {face.box} is not four finite numbers")
        elif x2 <= x1 or y2 <= y1:
            counts["bad_box"] += 1
            problems.append(f"{where} has an empty box {face.box}")
        elif x1 < -1 or y1 < -1 or x2 > width + 1 or y2 > height + 1 or clamped[2] <= clamped[0] \
                or clamped[3] <= clamped[1]:
            counts["bad_box"] += 1
            problems.append(f"{where}: box {face.box} lies outside the {width}x{height} photo")
        elif min(clamped[2] - clamped[0], clamped[3] - clamped[1]) < min_face:
            counts["too_small"] += 1
        else:
            chosen.append((index, label, clamped))
    return chosen


def rare_labels(labels: Labels, output: Path, label_map: Mapping[str, str], min_face: int,
                classes: Sequence[str] | None, min_label_faces: int, max_pixels: int) -> dict[str, int]:
    """The labels (as ``label_map`` renames them) with fewer than ``min_label_faces`` usable faces, and their
    usable faces: those :func:`crop` would cut (photo sizes read from the headers) plus the crops the class
    folder of ``output`` already has from photo folders (``faces.csv`` rows not of kind annotated). A label
    that ``label_map`` maps onto, or one of ``classes``, is never rare."""
    named = {*label_map.values(), *(classes or ())} - {DROP}
    usable = Counter(row["class"] for row in records.read_rows(output / facecrops.MANIFEST)
                     if row.get("kind") != facecrops.ANNOTATED)
    cut: Counter = Counter()
    for photo in labels.photos:
        try:
            width, height = shown_size(photo.image, max_pixels)
        except images.DECODE_ERRORS:
            continue  # crop() reports it
        cut.update(label for _, label, _ in _plan_faces(photo, width, height, label_map, min_face, classes,
                                                        Counter(), []))
    return {label: cut[label] + usable[label] for label in sorted(cut)
            if label not in named and cut[label] + usable[label] < min_label_faces}


def crop(labels: Labels, output: Path, settings: facecrops.CropSettings, label_map: Mapping[str, str] | None = None,
         min_face: int = DEFAULT_MIN_FACE, classes: Sequence[str] | None = None, progress: bool = True,
         min_label_faces: int | None = None) -> Counter:
    """Cut every labelled face of photos not done yet into ``<output>/<label>/``; returns the counts.

    Problems (a missing photo, a bad box, an unknown label: one that cannot be a folder name, or one outside
    ``classes`` when given) are logged one line each and counted; the other faces and photos go on. A label
    :func:`rare_labels` finds (fewer than ``min_label_faces`` usable faces, by default :data:`MIN_LABEL_FACES`;
    0 keeps every label) is left out,
    with one line naming ``--label-map`` to keep it, and its faces are counted as ``rare``.
    """
    from tqdm import tqdm

    if min_face < 1:
        raise ValueError(f"--min-face must be at least 1 pixel, not {min_face}")
    label_map = dict(label_map or {})
    output.mkdir(parents=True, exist_ok=True)
    for stale in output.rglob(".*.tmp"):  # our own half-written crops from a killed run
        stale.unlink()
    finished = facecrops.done_sources(output)
    counts: Counter = Counter(photos=len(labels.photos), problems=len(labels.problems))
    for problem in labels.problems:
        log.warning("%s", problem)
    min_label_faces = MIN_LABEL_FACES if min_label_faces is None else min_label_faces
    rare = rare_labels(labels, output, label_map, min_face, classes, min_label_faces, settings.max_pixels)
    for label, usable in rare.items():
        log.warning("the label %r has %d usable faces, fewer than %d: left out, as too few to learn as a class; to "
                    "keep it, pass --label-map %s=%s, or map it onto another class (--label-map %s=CLASS)", label,
                    usable, min_label_faces, label, label, label)
    seen = set(finished)
    for photo in tqdm(labels.photos, desc="annotated faces", unit="photo", disable=not progress):
        problems: list[str] = []
        sha256 = images.sha256_file(photo.image)
        if sha256 in seen:
            counts["skipped"] += 1
            continue
        seen.add(sha256)
        base = {"source": str(photo.image.resolve()), "source_sha256": sha256, "class": facecrops.ANNOTATED}
        try:
            rgb = images.load_rgb(photo.image, settings.max_pixels)
        except images.DECODE_ERRORS as error:
            log.warning("%s: cannot be read (%s)", photo.image, error)
            counts["unreadable"] += 1
            records.append_rows(output / facecrops.SOURCES, facecrops.SOURCE_FIELDS,
                                [{**base, "status": "unreadable", "faces": 0, "low_confidence": 0,
                                  "detail": str(error), "time": facecrops.now()}])
            continue
        height, width = rgb.shape[:2]
        if photo.drawn_size and photo.drawn_size != (width, height):
            # Not recorded as done: once the labels are fixed, a rerun cuts this photo.
            log.warning("%s: the boxes of %s were drawn on a %dx%d picture, but the photo is %dx%d as shown (EXIF "
                        "orientation applied); left alone", photo.origin, photo.image.name, *photo.drawn_size,
                        width, height)
            counts["problems"] += 1
            seen.discard(sha256)
            continue
        chosen = _plan_faces(photo, width, height, label_map, min_face, classes, counts, problems, rare)
        for problem in problems:
            log.warning("%s", problem)
        # Every crop is cut before any is written: a box the geometry refuses stops the run before this
        # photo has written anything.
        stem = facecrops.crop_stem(photo.image, sha256)
        cut = [(index, label, box, facecrops.crop_face(rgb, box, settings.margin, settings.size))
               for index, label, box in chosen]
        rows = []
        for index, label, box, pixels in cut:
            crop_path = (output / label / f"{stem}_face{index}{facecrops.CROP_EXTENSION}").resolve()
            facecrops.atomic_write_image(pixels, crop_path)
            rows.append(facecrops.face_row(crop_path, photo.image.resolve(), sha256, label, index, facecrops.ANNOTATED,
                                       _BoxFace(box), settings))
            counts[f"class:{label}"] += 1
        records.append_rows(output / facecrops.MANIFEST, facecrops.FACE_FIELDS, rows)
        records.append_rows(output / facecrops.SOURCES, facecrops.SOURCE_FIELDS,
                            [{**base, "status": "annotated", "faces": len(rows), "low_confidence": 0,
                              "detail": f"{len(photo.faces) - len(rows)} labelled faces not cut" if
                              len(rows) < len(photo.faces) else "", "time": facecrops.now()}])
        counts["faces"] += len(rows)
        counts["done"] += 1
    return counts


def held_out(name: str, share: float) -> bool:
    """Whether a labelled photo is held out of the face finder's and face verifier's training (for validation
    and the fusion fit): by a hash of its name, so that a rerun, or a resumed run, holds out the same photos."""
    return zlib.crc32(name.encode()) % 1000 < round(share * 1000)
