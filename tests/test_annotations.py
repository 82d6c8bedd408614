"""process_faces.py --annotations: labelled boxes from VOC, CSV and YOLO exports cut with the face stage's geometry.

The fixtures are real pictures (shipped with scikit-image) with boxes drawn on them by the tests; every crop
is checked pixel for pixel against :func:`maskdetect.facecrops.crop_face` on the same photo and box.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import time
import xml.sax.saxutils
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from helpers import encoded, picture, shared_data
from PIL import Image

from maskdetect import annotations, data, facecrops, faces, images, records

pytestmark = pytest.mark.unit  # no TensorFlow: see conftest.py

# The photos of the fixture and their labelled faces (label, x1, y1, x2, y2 in the photo's pixels). Box
# centres and sides are whole numbers, so YOLO's normalised boxes come back to the same square crops.
PHOTOS = {"street.jpg": ("astronaut", "JPEG"), "cat.png": ("chelsea", "PNG"), "coffee.jpg": ("coffee", "JPEG")}
BOXES = {
    "street.jpg": [("with_mask", (170, 40, 260, 180)), ("without_mask", (300, 200, 380, 290)),
                   ("mask_weared_incorrect", (20, 300, 100, 400))],
    "cat.png": [("without_mask", (120, 40, 260, 200))],
    # the second face is 10 px wide: under the default --min-face of 20
    "coffee.jpg": [("with_mask", (100, 100, 164, 170)), ("with_mask", (10, 10, 20, 22))],
}
CUT = {(name, index) for name, faces_of in BOXES.items() for index, (_, box) in enumerate(faces_of)
       if min(box[2] - box[0], box[3] - box[1]) >= annotations.DEFAULT_MIN_FACE}
SETTINGS = facecrops.CropSettings()


@pytest.fixture(autouse=True)
def every_label_kept(monkeypatch):
    """The fixture's labels have a face or two each, far below the default MIN_LABEL_FACES: these tests check
    reading and cutting with every label kept; the threshold has a test of its own."""
    monkeypatch.setattr(annotations, "MIN_LABEL_FACES", 0)


# ---------------------------------------------------------------------------------------------
# Fixtures: labelled photos in each export format


def save_photos(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, (source, image_format) in PHOTOS.items():
        image = picture(source).convert("RGB")
        image.save(folder / name, image_format, **({"quality": 90} if image_format == "JPEG" else {}))
        paths[name] = folder / name
    return paths


def voc_xml(filename: str, size: tuple[int, int] | None, boxes, path: str = "") -> str:
    """A PASCAL VOC annotation as LabelImg and CVAT write it."""
    objects = "".join(
        f"<object><name>{xml.sax.saxutils.escape(label)}</name><pose>Unspecified</pose><truncated>0</truncated>"
        f"<difficult>0</difficult><bndbox><xmin>{box[0]}</xmin><ymin>{box[1]}</ymin><xmax>{box[2]}</xmax>"
        f"<ymax>{box[3]}</ymax></bndbox></object>"
        for label, box in boxes)
    size_xml = f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>" if size else ""
    return (f"<annotation><folder>images</folder><filename>{filename}</filename><path>{path}</path>"
            f"{size_xml}<segmented>0</segmented>{objects}</annotation>")


def write_voc(root: Path, boxes=BOXES) -> Path:
    photos = save_photos(root / "images")
    (root / "annotations").mkdir(parents=True)
    for name, faces_of in boxes.items():
        size = Image.open(photos[name]).size
        (root / "annotations" / f"{Path(name).stem}.xml").write_text(voc_xml(name, size, faces_of))
    return root


def write_csv(csv_file: Path, boxes=BOXES) -> Path:
    """boxes.csv with the columns of the shared detection set, photos in images/ beside it."""
    photos = save_photos(csv_file.parent / "images")
    with open(csv_file, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "width", "height", "label", "xmin", "ymin", "xmax", "ymax"])
        for name, faces_of in boxes.items():
            width, height = Image.open(photos[name]).size
            for label, box in faces_of:
                writer.writerow([name, width, height, label, *box])
    return csv_file


def write_yolo(root: Path, class_list: str = "classes.txt", boxes=BOXES) -> Path:
    """A YOLO folder: labels/*.txt of 'class cx cy w h' (shares of the photo), images/, and a class list."""
    photos = save_photos(root / "images")
    classes = sorted({label for faces_of in boxes.values() for label, _ in faces_of})
    (root / "labels").mkdir(parents=True)
    for name, faces_of in boxes.items():
        width, height = Image.open(photos[name]).size
        lines = [f"{classes.index(label)} {(x1 + x2) / 2 / width!r} {(y1 + y2) / 2 / height!r} "
                 f"{(x2 - x1) / width!r} {(y2 - y1) / height!r}" for label, (x1, y1, x2, y2) in faces_of]
        (root / "labels" / f"{Path(name).stem}.txt").write_text("\n".join(lines) + "\n")
    if class_list == "classes.txt":
        (root / "classes.txt").write_text("\n".join(classes) + "\n")
    elif class_list == "data.yaml":  # Ultralytics' names as a mapping from index
        (root / "data.yaml").write_text("names:\n" + "".join(f"  {i}: {name}\n" for i, name in enumerate(classes)))
    elif class_list == "roboflow":  # Roboflow: data.yaml with a names list above train/, valid/, test/
        (root.parent / "data.yaml").write_text(f"train: train/images\nnc: {len(classes)}\nnames: {classes}\n")
    return root


def export(root: Path, kind: str) -> Path:
    """The path to give --annotations for an export of the fixture in the format ``kind``."""
    if kind == "voc":
        return write_voc(root)
    if kind == "csv_file":
        return write_csv(root / "my boxes.csv")
    if kind == "csv_folder":
        write_csv(root / "boxes.csv")
        return root
    if kind == "yolo_roboflow":
        return write_yolo(root / "export" / "train", "roboflow")
    if kind == "yolo_ultralytics":  # images/train/ and labels/train/, data.yaml beside them
        write_yolo(root, "data.yaml")
        for folder in ("images", "labels"):
            (root / folder).rename(root / "split")
            (root / folder).mkdir()
            (root / "split").rename(root / folder / "train")
        return root
    return write_yolo(root, {"yolo_classes": "classes.txt", "yolo_data_yaml": "data.yaml"}[kind])


# ---------------------------------------------------------------------------------------------
# Checks


def run_cli(capsys, *argv) -> tuple[int, str, list[str], str]:
    """Exit code, stdout, the warning/error lines, and all of stderr of one process_faces.py run."""
    code = faces.main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    # tqdm's bar shares stderr, drawn with carriage returns: the message lines are picked out of it
    lines = re.findall(r"(?:WARNING|ERROR|error): [^\r\n]*", captured.err)
    assert "Traceback" not in captured.err
    return code, captured.out, lines, captured.err


def summary_counts(out: str) -> dict[str, int]:
    """The numbers of the stage's summary line, by what they count."""
    line = next(line for line in out.splitlines() if line.startswith("process_faces: annotations:"))
    patterns = {"photos": r"(\d+) labelled photos", "done": r"(\d+) done now", "skipped": r"(\d+) skipped",
                "faces": r"(\d+) faces cut", "too_small": r"(\d+) too small", "dropped": r"(\d+) dropped",
                "rare": r"(\d+) of labels with too few faces",
                "bad_box": r"(\d+) bad boxes", "bad_label": r"(\d+) unknown labels",
                "unreadable": r"(\d+) unreadable", "problems": r"(\d+) unusable"}
    return {key: int(re.search(pattern, line).group(1)) for key, pattern in patterns.items()}


def expected_jpeg(rgb: np.ndarray, box) -> np.ndarray:
    """The crop the stage must write for ``box``: crop_face's pixels through the same JPEG encoder."""
    pixels = facecrops.crop_face(rgb, box, SETTINGS.margin, SETTINGS.size)
    return np.asarray(Image.open(io.BytesIO(encoded(Image.fromarray(pixels), "JPEG", quality=95))))


def check_output(output: Path, photos_dir: Path, boxes=BOXES, cut=CUT, label_of=lambda label: label) -> list[dict]:
    """Every crop is where its label says, equals crop_face on its photo and box, and has one faces.csv row."""
    rows = records.read_rows(output / facecrops.MANIFEST)
    assert len(rows) == len({row["crop"] for row in rows}) == len(cut), "a crop is missing or listed twice"
    on_disk = {path.resolve() for path in output.rglob(f"*{facecrops.CROP_EXTENSION}")}
    assert on_disk == {Path(row["crop"]) for row in rows}, "a crop file has no row, or a row no file"
    assert not list(output.rglob("*.tmp"))
    seen = set()
    for row in rows:
        photo = photos_dir / Path(row["source"]).name
        index = int(row["face_index"])
        label, box = boxes[photo.name][index]
        seen.add((photo.name, index))
        sha256 = images.sha256_file(photo)
        assert row["source"] == str(photo.resolve()) and row["source_sha256"] == sha256
        assert row["kind"] == facecrops.ANNOTATED and row["detector"] == facecrops.ANNOTATED
        assert row["class"] == label_of(label)
        crop = Path(row["crop"])
        assert crop.parent == (output / label_of(label)).resolve()
        assert crop.name == f"{photo.stem}_{sha256[:8]}_face{index}.jpg"
        assert [float(row[key]) for key in ("x1", "y1", "x2", "y2")] == pytest.approx(box, abs=0.05)
        np.testing.assert_array_equal(np.asarray(Image.open(crop)), expected_jpeg(images.load_rgb(photo), box))
    assert seen == cut
    sources = records.read_rows(output / facecrops.SOURCES)
    assert sorted(Path(row["source"]).name for row in sources) == sorted(boxes)
    assert {row["status"] for row in sources} == {"annotated"}
    cut_per_photo = Counter(name for name, _ in cut)
    assert {Path(row["source"]).name: int(row["faces"]) for row in sources} == {
        name: cut_per_photo[name] for name in boxes}
    return rows


def crop_files(output: Path) -> dict[str, bytes]:
    return {str(path.relative_to(output)): path.read_bytes() for path in sorted(output.rglob("*.jpg"))}


# ---------------------------------------------------------------------------------------------
# The formats


@pytest.mark.parametrize("kind", ["voc", "csv_file", "csv_folder", "yolo_classes", "yolo_data_yaml", "yolo_roboflow",
                                  "yolo_ultralytics"])
def test_each_format_gives_the_same_crops(kind, tmp_path, capsys):
    path = export(tmp_path / "export_root", kind)
    output = tmp_path / "processed_data"
    code, out, problems, _ = run_cli(capsys, "--annotations", path, "--output", output, "--logs", tmp_path / "logs")
    assert code == 0 and problems == []
    counts = summary_counts(out)
    assert counts == {"photos": 3, "done": 3, "skipped": 0, "faces": len(CUT), "too_small": 1, "dropped": 0,
                      "rare": 0, "bad_box": 0, "bad_label": 0, "unreadable": 0, "problems": 0}
    photos_dir = path.parent / "images" if path.is_file() else path / "images"
    if kind == "yolo_ultralytics":
        photos_dir = photos_dir / "train"
    check_output(output, photos_dir)
    assert sorted(crop_files(output)) == sorted(
        f"{BOXES[name][index][0]}/{Path(name).stem}_{images.sha256_file(photos_dir / name)[:8]}_face{index}.jpg"
        for name, index in CUT)


def test_the_formats_agree_byte_for_byte(tmp_path):
    """VOC, CSV and YOLO exports of the same boxes give the same crop files (read and crop, no CLI)."""
    results = []
    for kind in ("voc", "csv_file", "yolo_classes"):
        root = tmp_path / kind
        labels = annotations.read(export(root / "export", kind))
        counts = annotations.crop(labels, root / "out", SETTINGS, progress=False, min_label_faces=0)
        assert counts["faces"] == len(CUT)
        results.append(crop_files(root / "out"))
    assert results[0] == results[1] == results[2]


def test_label_map_renames_and_drops(tmp_path, capsys):
    root = write_voc(tmp_path / "voc")
    output = tmp_path / "renamed"
    code, out, problems, _ = run_cli(capsys, "--annotations", root, "--output", output, "--logs", tmp_path / "logs",
                                     "--label-map", "with_mask=mask", "mask_weared_incorrect=incorrect_mask")
    assert code == 0 and problems == []
    renames = {"with_mask": "mask", "mask_weared_incorrect": "incorrect_mask"}
    check_output(output, root / "images", label_of=lambda label: renames.get(label, label))
    assert sorted(path.name for path in output.iterdir() if path.is_dir()) == ["incorrect_mask", "mask",
                                                                                "without_mask"]

    output = tmp_path / "dropped"
    code, out, problems, _ = run_cli(capsys, "--annotations", root, "--output", output, "--logs", tmp_path / "logs",
                                     "--label-map", "mask_weared_incorrect=-")
    assert code == 0 and problems == []
    counts = summary_counts(out)
    assert counts["dropped"] == 1 and counts["faces"] == len(CUT) - 1
    assert "1 dropped by --label-map" in out
    assert not (output / "mask_weared_incorrect").exists() and not (output / "-").exists()


def test_a_label_with_too_few_usable_faces_is_left_out_unless_label_map_names_it(tmp_path, capsys, monkeypatch):
    # the fixture's usable faces: with_mask 2 (the 10 px one is too small), without_mask 2, mask_weared_incorrect 1
    monkeypatch.setattr(annotations, "MIN_LABEL_FACES", 2)
    root = write_voc(tmp_path / "voc")
    output = tmp_path / "default"
    code, out, problems, _ = run_cli(capsys, "--annotations", root, "--output", output, "--logs", tmp_path / "logs")
    assert code == 0
    assert problems == ["WARNING: the label 'mask_weared_incorrect' has 1 usable faces, fewer than 2: left out, as "
                        "too few to learn as a class; to keep it, pass --label-map "
                        "mask_weared_incorrect=mask_weared_incorrect, or map it onto another class (--label-map "
                        "mask_weared_incorrect=CLASS)"]
    counts = summary_counts(out)
    assert counts["rare"] == 1 and counts["faces"] == len(CUT) - 1 and counts["done"] == 3
    assert sorted(path.name for path in output.iterdir() if path.is_dir()) == ["with_mask", "without_mask"]
    # named by --label-map, kept as it is or folded into another class, whatever its count
    for mapping, folders in (("mask_weared_incorrect=mask_weared_incorrect",
                              ["mask_weared_incorrect", "with_mask", "without_mask"]),
                             ("mask_weared_incorrect=with_mask", ["with_mask", "without_mask"])):
        output = tmp_path / mapping.replace("=", "_")
        code, out, problems, _ = run_cli(capsys, "--annotations", root, "--output", output, "--logs",
                                         tmp_path / "logs", "--label-map", mapping)
        assert code == 0 and problems == [] and summary_counts(out)["faces"] == len(CUT)
        assert sorted(path.name for path in output.iterdir() if path.is_dir()) == folders
    # a label joining a class folder that already has faces from the photo folders counts those too
    monkeypatch.setattr(annotations, "MIN_LABEL_FACES", 3)
    output = tmp_path / "joined"
    records.append_rows(output / facecrops.MANIFEST, facecrops.FACE_FIELDS,
                        [{"crop": str(output / "with_mask" / "a_face0.jpg"), "class": "with_mask", "kind": "manual"}])
    code, out, problems, _ = run_cli(capsys, "--annotations", root, "--output", output, "--logs", tmp_path / "logs")
    assert code == 0 and [line.split("'")[1] for line in problems] == ["mask_weared_incorrect", "without_mask"]
    assert summary_counts(out)["rare"] == 3 and sorted(
        path.name for path in output.iterdir() if path.is_dir()) == ["with_mask"]


def test_min_face_counts_and_skips_small_faces(tmp_path, capsys):
    root = write_voc(tmp_path / "voc")
    output = tmp_path / "out"
    # 80 px: the 64 px face of coffee.jpg and the 10 px one go; the street's 80 px ones stay
    code, out, _, _ = run_cli(capsys, "--annotations", root, "--output", output, "--logs", tmp_path / "logs",
                              "--min-face", "80")
    assert code == 0
    cut = {(name, index) for name, index in CUT if name != "coffee.jpg"}
    check_output(output, root / "images", cut=cut)
    counts = summary_counts(out)
    assert counts["too_small"] == 2 and counts["faces"] == len(cut)
    code, _, problems, _ = run_cli(capsys, "--annotations", root, "--output", output, "--min-face", "0")
    assert code == 2 and len(problems) == 1 and "--min-face" in problems[0]


# ---------------------------------------------------------------------------------------------
# Rerun and resume


def test_a_rerun_skips_finished_photos_and_redoes_an_unfinished_one(tmp_path, capsys):
    root = write_voc(tmp_path / "voc")
    output = tmp_path / "out"
    argv = ["--annotations", root, "--output", output, "--logs", tmp_path / "logs"]
    assert run_cli(capsys, *argv)[0] == 0
    manifest, sources = (output / facecrops.MANIFEST).read_bytes(), (output / facecrops.SOURCES).read_bytes()
    crops = {path: path.stat().st_mtime_ns for path in output.rglob("*.jpg")}

    code, out, _, _ = run_cli(capsys, *argv)
    assert code == 0
    assert summary_counts(out) == {
        "photos": 3, "done": 0, "skipped": 3, "faces": 0, "too_small": 0, "dropped": 0, "rare": 0, "bad_box": 0,
        "bad_label": 0, "unreadable": 0, "problems": 0}
    assert (output / facecrops.MANIFEST).read_bytes() == manifest
    assert (output / facecrops.SOURCES).read_bytes() == sources
    assert {path: path.stat().st_mtime_ns for path in output.rglob("*.jpg")} == crops

    # A kill after street.jpg's crops and faces.csv rows, before its sources.csv row: it is not finished.
    rows = records.read_rows(output / facecrops.SOURCES)
    records.replace_rows(output / facecrops.SOURCES, facecrops.SOURCE_FIELDS,
                         [row for row in rows if Path(row["source"]).name != "street.jpg"])
    code, out, _, _ = run_cli(capsys, *argv)
    assert code == 0
    counts = summary_counts(out)
    assert (counts["done"], counts["skipped"], counts["faces"]) == (1, 2, 3)
    check_output(output, root / "images")  # no duplicate faces.csv rows, every crop listed once


# ---------------------------------------------------------------------------------------------
# Bad input


def test_bad_files_and_boxes_are_one_line_each_and_the_rest_goes_on(tmp_path, capsys):
    root = write_voc(tmp_path / "voc")
    width, height = Image.open(root / "images" / "street.jpg").size
    bad_boxes = [("with_mask", (170, 40, 260, 180)),  # good
                 ("with_mask", (600, 40, 700, 180)),  # outside the 512 px photo
                 ("with_mask", (100, 100, 100, 180)),  # zero width
                 ("a/b", (20, 20, 80, 80)),  # cannot be a folder
                 ("_low_confidence", (20, 20, 80, 80)),  # one of the pipeline's own folders
                 ("without_mask", (width - 59, 100, width + 1, 160)),  # one pixel past the edge: clamped, cut
                 ("with_mask", (width + 0.5, 10, width + 1, 50))]  # within the pixel of slack, nothing once clamped
    annotations_dir = root / "annotations"
    (annotations_dir / "street.xml").write_text(voc_xml("street.jpg", (width, height), bad_boxes))
    (annotations_dir / "broken.xml").write_text("<annotation><filename>x.jpg</filename>")
    (annotations_dir / "lost.xml").write_text(voc_xml("lost.jpg", (100, 100), [("with_mask", (1, 1, 50, 50))]))
    output = tmp_path / "out"
    code, out, problems, _ = run_cli(capsys, "--annotations", root, "--output", output, "--logs", tmp_path / "logs")
    assert code == 0
    counts = summary_counts(out)
    assert (counts["bad_box"], counts["bad_label"], counts["problems"]) == (3, 2, 2)
    assert counts["done"] == 3 and counts["faces"] == len(CUT) - 3 + 2
    assert len(problems) == 7 and all(line.startswith("WARNING: ") for line in problems)
    by_file = Counter(re.match(r"WARNING: (\S+?):", line).group(1) for line in problems)
    assert by_file == {str(annotations_dir / "street.xml"): 5, str(annotations_dir / "broken.xml"): 1,
                       str(annotations_dir / "lost.xml"): 1}
    assert any("lost.jpg is missing" in line for line in problems)
    assert sum("lies outside the 512x512 photo" in line for line in problems) == 2
    assert any("empty box" in line for line in problems)
    assert sum("unknown label" in line for line in problems) == 2
    street = {int(row["face_index"]): row for row in records.read_rows(output / facecrops.MANIFEST)
              if Path(row["source"]).name == "street.jpg"}
    assert sorted(street) == [0, 5]
    assert float(street[5]["x2"]) == width and street[5]["class"] == "without_mask"
    check_output(output, root / "images", boxes={**BOXES, "street.jpg": [
        *bad_boxes[:5], ("without_mask", (width - 59, 100, width, 160)), bad_boxes[6]]},
        cut={item for item in CUT if item[0] != "street.jpg"} | {("street.jpg", 0), ("street.jpg", 5)})


def test_a_label_outside_classes_is_unknown(tmp_path, capsys):
    root = write_voc(tmp_path / "voc")
    output = tmp_path / "out"
    code, out, problems, _ = run_cli(capsys, "--annotations", root, "--output", output, "--logs", tmp_path / "logs",
                                     "--label-map", "with_mask=mask", "--classes", "mask", "without_mask")
    assert code == 0
    assert summary_counts(out)["bad_label"] == 1
    assert problems == [f"WARNING: {root / 'annotations' / 'street.xml'}: face 2 of street.jpg has the unknown label "
                        "'mask_weared_incorrect' (not one of --classes mask without_mask)"]
    assert sorted(path.name for path in output.iterdir() if path.is_dir()) == ["mask", "without_mask"]


def test_bad_yolo_and_csv_lines_are_one_line_each(tmp_path, capsys):
    root = write_yolo(tmp_path / "yolo")
    with open(root / "labels" / "cat.txt", "a") as handle:
        handle.write("7 0.5 0.5 0.2 0.2\nnot a box\n")
    (root / "labels" / "nophoto.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    csv_file = write_csv(tmp_path / "csv" / "boxes.csv")
    with open(csv_file, "a") as handle:
        handle.write("cat.png,451,300,with_mask,nan,1,50,50\ncat.png,451,300,with_mask,1,1,fifty,50\n"
                     "gone.jpg,100,100,with_mask,1,1,50,50\n")
    output = tmp_path / "out"
    # the CSV's photos are the YOLO folder's photos byte for byte: the CSV's go first and are cut, the YOLO
    # folder's are skipped as identical, and its bad lines are reported as it is read
    code, out, problems, _ = run_cli(capsys, "--annotations", csv_file, root, "--output", output,
                                     "--logs", tmp_path / "logs")
    assert code == 0
    assert sorted(line.split(": ", 2)[1] for line in problems) == sorted([
        f"{root / 'labels' / 'cat.txt'}:2", f"{root / 'labels' / 'cat.txt'}:3", str(root / "labels" / "nophoto.txt"),
        f"{csv_file}:9", f"{csv_file}:10", str(csv_file)])
    assert any(f"{csv_file}: face 1 of cat.png: box (nan, 1.0, 50.0, 50.0)" in line for line in problems)
    assert any("class 7 is not in the class list (3 classes)" in line for line in problems)
    assert any("is not four finite numbers" in line for line in problems)
    counts = summary_counts(out)
    assert (counts["photos"], counts["done"], counts["skipped"]) == (6, 3, 3)
    assert (counts["problems"], counts["bad_box"]) == (5, 1)


def test_whole_input_errors_are_one_line_exit_2_and_write_nothing(tmp_path, capsys):
    csv_file = write_csv(tmp_path / "csv" / "boxes.csv")
    text = csv_file.read_text().replace("ymax", "bottom", 1)
    csv_file.write_text(text)
    voc = write_voc(tmp_path / "voc")
    output = tmp_path / "out"
    base = ["--output", output, "--logs", tmp_path / "logs"]
    cases = {
        "lack the column(s) ymax": ["--annotations", voc, csv_file],
        "do not exist": ["--annotations", tmp_path / "absent"],
        "takes OLD=NEW": ["--annotations", voc, "--label-map", "with_mask"],
        "--label-map is for --annotations": ["--label-map", "with_mask=mask", "--input", tmp_path / "absent"],
        "no annotations/*.xml": ["--annotations", tmp_path / "csv" / "images"],
        "no class list": ["--annotations", write_yolo(tmp_path / "yolo", class_list="none")],
    }
    for message, argv in cases.items():
        code, out, lines, err = run_cli(capsys, *argv, *base)
        assert code == 2, message
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (message, err)
        assert out == ""
    assert str(csv_file) in run_cli(capsys, "--annotations", csv_file, *base)[2][0]
    assert not output.exists()


# ---------------------------------------------------------------------------------------------
# Where the photo is, and which way up


def test_a_voc_photo_found_only_by_its_path(tmp_path, capsys):
    xml_folder = tmp_path / "labelimg"
    photos = save_photos(xml_folder / "pics")
    size = Image.open(photos["cat.png"]).size
    # LabelImg writes the absolute path; the file was renamed since, so <filename> finds nothing
    (xml_folder / "cat.xml").write_text(voc_xml("renamed.png", size, BOXES["cat.png"], str(photos["cat.png"])))
    (xml_folder / "street.xml").write_text(voc_xml("", Image.open(photos["street.jpg"]).size,
                                                   BOXES["street.jpg"], "pics/street.jpg"))
    output = tmp_path / "out"
    code, out, problems, _ = run_cli(capsys, "--annotations", xml_folder, "--output", output,
                                     "--logs", tmp_path / "logs")
    assert code == 0 and problems == []
    assert summary_counts(out)["faces"] == 4
    boxes = {name: BOXES[name] for name in ("cat.png", "street.jpg")}
    check_output(output, xml_folder / "pics", boxes=boxes, cut={item for item in CUT if item[0] in boxes})


def test_photos_named_outside_the_folder_given_are_refused_one_line_each_and_the_rest_is_cut(tmp_path, capsys):
    secret = tmp_path / "secret"
    secret.mkdir()
    picture("coffee").convert("RGB").save(secret / "secret.jpg", quality=90)
    size = Image.open(secret / "secret.jpg").size
    face = [("with_mask", (100, 100, 164, 170))]
    # VOC: a <filename> that climbs out, an absolute one, and an absolute <path> outside
    root = write_voc(tmp_path / "voc")
    notes = root / "annotations"
    (notes / "climb.xml").write_text(voc_xml("../../secret/secret.jpg", size, face))
    (notes / "absolute.xml").write_text(voc_xml(str(secret / "secret.jpg"), size, face))
    (notes / "path.xml").write_text(voc_xml("gone.jpg", size, face, str(secret / "secret.jpg")))
    # CSV: the same two kinds of rows beside the fixture's own
    csv_file = write_csv(tmp_path / "csv" / "boxes.csv")
    with open(csv_file, "a", newline="") as handle:
        csv.writer(handle).writerows([["../../secret/secret.jpg", *size, "with_mask", 100, 100, 164, 170],
                                      [str(secret / "secret.jpg"), *size, "with_mask", 100, 100, 164, 170]])
    # YOLO: a photo that is a link out of images/
    yolo = write_yolo(tmp_path / "yolo")
    (yolo / "images" / "linked.jpg").symlink_to(secret / "secret.jpg")
    (yolo / "labels" / "linked.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    for path, refused in ((root, ("climb.xml", "absolute.xml", "path.xml")), (csv_file, ("boxes.csv:", "boxes.csv:")),
                          (yolo, ("linked.jpg", "linked.txt"))):
        output = tmp_path / f"out_{path.name}"
        code, out, problems, err = run_cli(capsys, "--annotations", path, "--output", output,
                                           "--logs", tmp_path / "logs")
        assert code == 0, err
        assert len(problems) == len(refused), problems
        for line, name in zip(sorted(problems), sorted(refused), strict=True):
            assert name in line
        assert sum("lies outside" in line and "is not read" in line for line in problems) == len(refused) - (
            path == yolo)  # the label file of the refused link finds no photo
        assert summary_counts(out)["faces"] == len(CUT)
        assert not any(str(secret) in row["source"] for row in records.read_rows(output / facecrops.SOURCES))
    assert (secret / "secret.jpg").exists()


def test_cvat_voc_layout(tmp_path, capsys):
    """CVAT's PASCAL VOC export: Annotations/ and JPEGImages/."""
    root = write_voc(tmp_path / "cvat")
    (root / "annotations").rename(root / "Annotations")
    (root / "images").rename(root / "JPEGImages")
    output = tmp_path / "out"
    code, out, problems, _ = run_cli(capsys, "--annotations", root, "--output", output, "--logs", tmp_path / "logs")
    assert code == 0 and problems == []
    check_output(output, root / "JPEGImages")


def _turned_photo(folder: Path) -> tuple[Path, np.ndarray]:
    """A JPEG stored 512x384 with EXIF orientation 6: shown turned a quarter, 384x512. Returns it as shown."""
    folder.mkdir(parents=True, exist_ok=True)
    stored = picture("astronaut").resize((512, 384))
    exif = Image.Exif()
    exif[annotations.EXIF_ORIENTATION] = 6
    path = folder / "phone.jpg"
    stored.save(path, "JPEG", quality=90, exif=exif)
    shown = images.load_rgb(path)
    assert shown.shape[:2] == (512, 384)
    return path, shown


def test_boxes_refer_to_the_photo_as_shown(tmp_path, capsys):
    """EXIF orientation: boxes on the turned photo are cut from it; VOC boxes drawn on the stored pixels are refused."""
    box = (100, 300, 200, 420)  # inside the 384x512 shown photo, outside the 512x384 stored one
    voc = tmp_path / "voc"
    path, shown = _turned_photo(voc / "images")
    (voc / "annotations").mkdir()
    (voc / "annotations" / "phone.xml").write_text(voc_xml("phone.jpg", (384, 512), [("mask", box)]))
    yolo = tmp_path / "yolo"
    _turned_photo(yolo / "images")
    (yolo / "labels").mkdir()
    (yolo / "labels" / "phone.txt").write_text(f"0 {150 / 384!r} {360 / 512!r} {100 / 384!r} {120 / 512!r}\n")
    (yolo / "classes.txt").write_text("mask\n")
    for root in (voc, yolo):
        output = tmp_path / f"out_{root.name}"
        code, out, problems, _ = run_cli(capsys, "--annotations", root, "--output", output,
                                         "--logs", tmp_path / "logs")
        assert code == 0 and problems == [], root.name
        (crop,) = output.glob("mask/*.jpg")
        np.testing.assert_array_equal(np.asarray(Image.open(crop)), expected_jpeg(shown, box))

    # A VOC file whose <size> is the stored 512x384: its boxes were drawn on the unturned pixels.
    (voc / "annotations" / "phone.xml").write_text(voc_xml("phone.jpg", (512, 384), [("mask", (300, 100, 420, 200))]))
    output = tmp_path / "out_stored"
    code, out, problems, _ = run_cli(capsys, "--annotations", voc, "--output", output, "--logs", tmp_path / "logs")
    assert code == 0 and summary_counts(out)["problems"] == 1 and summary_counts(out)["faces"] == 0
    assert problems == [f"WARNING: {voc / 'annotations' / 'phone.xml'}: the boxes of phone.jpg were drawn on a 512x384 "
                        "picture, but the photo is 384x512 as shown (EXIF orientation applied); left alone"]
    assert records.read_rows(output / facecrops.SOURCES) == [], "a refused photo is not finished: a rerun tries again"


# ---------------------------------------------------------------------------------------------
# The grouped split


def test_the_crops_of_one_photo_share_a_group(tmp_path, capsys):
    root = write_voc(tmp_path / "voc")
    output = tmp_path / "out"
    assert run_cli(capsys, "--annotations", root, "--output", output, "--logs", tmp_path / "logs")[0] == 0
    crops = data.find_crops(output)
    assert len(crops.paths) == len(CUT) and crops.skipped == 0
    group_of = {Path(path).name: group for path, group in zip(crops.paths, crops.groups, strict=True)}
    street = [group for name, group in group_of.items() if name.startswith("street_")]
    # street.jpg has faces of three labels: all in one group, its sha256
    assert len(street) == 3 and set(street) == {images.sha256_file(root / "images" / "street.jpg")}
    assert len(set(group_of.values())) == len(PHOTOS)
    for split in data.grouped_split(crops.labels, crops.groups, (0.5, 0.5), seed=1):
        names = {Path(crops.paths[index]).name for index in split}
        assert len({name for name in names if name.startswith("street_")}) in (0, 3)


# ---------------------------------------------------------------------------------------------
# The real labelled set


def test_shared_wild_counts_by_label(tmp_path, capsys):
    wild = shared_data("wild")
    start = time.monotonic()
    output = tmp_path / "out"
    code, out, problems, _ = run_cli(capsys, "--annotations", wild, "--output", output, "--logs", tmp_path / "logs",
                                     "--min-face", "20")
    assert code == 0 and problems == []
    # The same rule straight from boxes.csv: the box clamped to the photo, short side at least 20 px; a photo
    # that is a byte copy of one before it (in the order of the XML files) is skipped as identical.
    with open(wild / "boxes.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    expected, small, seen, copies = Counter(), 0, set(), 0
    for name in sorted({row["image"] for row in rows}, key=lambda name: Path(name).stem + ".xml"):
        digest = hashlib.sha256((wild / "images" / name).read_bytes()).hexdigest()
        if digest in seen:
            copies += 1
            continue
        seen.add(digest)
        for row in (row for row in rows if row["image"] == name):
            width, height = int(row["width"]), int(row["height"])
            x1, y1 = max(float(row["xmin"]), 0), max(float(row["ymin"]), 0)
            x2, y2 = min(float(row["xmax"]), width), min(float(row["ymax"]), height)
            if min(x2 - x1, y2 - y1) >= 20:
                expected[row["label"]] += 1
            else:
                small += 1
    cut = Counter(path.parent.name for path in output.rglob("*.jpg"))
    assert cut == expected
    counts = summary_counts(out)
    assert counts["faces"] == sum(expected.values()) and counts["too_small"] == small
    assert (counts["skipped"], counts["done"]) == (copies, counts["photos"] - copies)
    assert f"({', '.join(f'{label} {count}' for label, count in sorted(expected.items()))})" in out
    assert time.monotonic() - start < 60
