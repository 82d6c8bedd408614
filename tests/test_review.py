"""The manual review (maskdetect.review): verdict and box files, applying and undoing verdicts, the HTML sheets."""

from __future__ import annotations

import csv
import html
import html.parser
import logging
import shutil
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
from helpers import page_targets, picture
from PIL import Image

from maskdetect import facecrops, images, moves, records, review, suspects
from maskdetect.face.boxes import Face

pytestmark = pytest.mark.unit

SETTINGS = facecrops.CropSettings(size=32)


class Folder:
    """A small processed_data/ cut from real photos the way the face stage cuts it, and its logs folder."""

    def __init__(self, root: Path) -> None:
        self.photos, self.output, self.logs = root / "original_data", root / "processed_data", root / "logs"
        shots = {"mask/astronaut.jpg": "astronaut", "without_mask/coffee.jpg": "coffee",
                 "without_mask/chelsea.jpg": "chelsea"}
        for name, shot in shots.items():
            (self.photos / name).parent.mkdir(parents=True, exist_ok=True)
            picture(shot).save(self.photos / name, quality=90)
        faces = {"mask/astronaut.jpg": [Face(180, 60, 300, 200, 0.99), Face(20, 300, 80, 370, 0.93),
                                        Face(300, 300, 400, 400, 0.8, None, "mtcnn_low")],
                 "without_mask/coffee.jpg": [Face(100, 100, 250, 250, 0.97)]}
        self.crops: dict[str, Path] = {}
        for name, found in faces.items():
            source = (self.photos / name).resolve()
            sha256 = images.sha256_file(source)
            rows = facecrops.save_faces(images.load_rgb(source), found, source, sha256, source.parent.name,
                                        self.output, SETTINGS, self.kind)
            records.append_rows(self.output / facecrops.MANIFEST, facecrops.FACE_FIELDS, rows)
            for row in rows:
                self.crops[f"{Path(name).stem}{row['face_index']}"] = Path(row["crop"])
        records.append_rows(self.output / facecrops.SOURCES, facecrops.SOURCE_FIELDS, [
            {"source": str((self.photos / name).resolve()), "source_sha256": name, "class": name.split("/")[0],
             "status": "no_face" if "chelsea" in name else "faces"} for name in shots])

    @staticmethod
    def kind(face: Face) -> str:
        return facecrops.LOW_CONFIDENCE if face.confidence < 0.9 else facecrops.AUTO

    def manifest(self) -> list[dict]:
        return records.read_rows(self.output / facecrops.MANIFEST)

    def check_manifest_lists_exactly_the_crops_there_are(self) -> list[dict]:
        rows = self.manifest()
        on_disk = {path.resolve() for path in self.output.rglob(f"*{facecrops.CROP_EXTENSION}")
                   if path.relative_to(self.output).parts[0] not in (facecrops.REJECTED_DIR, facecrops.NO_FACE_DIR)}
        assert {Path(row["crop"]) for row in rows} == on_disk and len(rows) == len(on_disk)
        return rows


@pytest.fixture
def folder(tmp_path) -> Folder:
    return Folder(tmp_path)


def test_verdict_lines_are_reject_accept_or_move_and_a_bare_name_is_a_reject(tmp_path):
    path = tmp_path / "review_mask.txt"
    path.write_text("# downloaded from the sheet\n\nreject a_face0.jpg\r\naccept  b_face1.jpg \n"
                    "move c_face0.jpg => without_mask\nd_face2.jpg\nmove my photo_face0.jpg => no mask\n"
                    "processed_data/mask/e_face0.jpg\nreject f face0.jpg\naccept a_face0.jpg\n", encoding="utf-8")
    assert review.read_verdicts(path) == {
        "a_face0.jpg": "accept",  # the later line wins
        "b_face1.jpg": "accept",
        "c_face0.jpg": "move:without_mask",
        "d_face2.jpg": "reject",
        "my photo_face0.jpg": "move:no mask",
        "e_face0.jpg": "reject",  # a path: its file name
        "f face0.jpg": "reject",
    }
    path.write_text("")
    assert review.read_verdicts(path) == {}


@pytest.mark.parametrize("line", ["move a_face0.jpg", "move a_face0.jpg =>  ", "move a_face0.jpg => ",
                                  "reject", "accept ", "reject /"])
def test_a_move_without_its_class_or_a_line_without_a_crop_name_is_refused_with_its_line_number(tmp_path, line):
    path = tmp_path / "review_mask.txt"
    path.write_text(f"reject fine_face0.jpg\n{line}\n")
    with pytest.raises(ValueError, match="review_mask.txt:2: ") as error:
        review.read_verdicts(path)
    assert "\n" not in str(error.value)


def write_boxes(path: Path, rows: list[list], header=tuple(review.MANUAL_BOX_FIELDS)) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_a_manual_box_file_gives_each_drawn_box_as_numbers_with_its_source_and_class(tmp_path):
    path = write_boxes(tmp_path / "manual_boxes_mask.csv", [["/photos/mask/a, \"b\".jpg", "mask", 10, 20.5, 110, 90],
                                                            ["/photos/mask/c.jpg", "mask", "1e1", 0, "12", "3"]])
    assert review.read_manual_boxes(path) == [
        {"source": '/photos/mask/a, "b".jpg', "class": "mask", "box": [10.0, 20.5, 110.0, 90.0], "where": f"{path}:2"},
        {"source": "/photos/mask/c.jpg", "class": "mask", "box": [10.0, 0.0, 12.0, 3.0], "where": f"{path}:3"}]
    assert review.read_manual_boxes(write_boxes(tmp_path / "none.csv", [])) == []


@pytest.mark.parametrize("rows, header, words", [
    ([["a.jpg", "mask", 1, 2, 3, 4]], ("source", "class", "x1", "y1", "x2"), r"lacks the column\(s\) \['y2'\]"),
    ([["a.jpg", "mask", 1, 2, 30, 40], ["b.jpg", "mask", "one", 2, 30, 40]], None, r"\.csv:3: could not convert"),
    ([["a.jpg", "mask", 1, 2, 30, ""]], None, r"\.csv:2: could not convert"),
    ([["a.jpg", "mask", 30, 2, 30, 40]], None, r"\.csv:2: the box .* is empty"),
    ([["a.jpg", "mask", 1, 40, 30, 2]], None, r"\.csv:2: the box .* is empty"),
    ([["a.jpg", "mask", 1, 2, 30]], None, r"\.csv:2: the row has no y2"),
    ([["a.jpg"]], None, r"\.csv:2: the row has no class, x1, y1, x2, y2"),
    ([["a.jpg", "mask", 1, 2, "nan", 40]], None, r"\.csv:2: the box .* is not four finite numbers"),
    ([["a.jpg", "mask", "-inf", 2, "inf", 40]], None, r"\.csv:2: the box .* is not four finite numbers"),
], ids=["missing column", "not a number", "empty cell", "no width", "upside down", "short row", "one cell", "nan",
        "inf"])
def test_a_manual_box_file_with_a_missing_column_a_non_number_or_an_empty_box_is_refused(tmp_path, rows, header, words):
    path = write_boxes(tmp_path / "boxes.csv", rows, header or review.MANUAL_BOX_FIELDS)
    with pytest.raises(ValueError, match=words):
        review.read_manual_boxes(path)


def test_a_rejected_crop_moves_under_rejected_with_a_record_and_faces_csv_lists_exactly_the_crops_left(folder):
    crop = folder.crops["astronaut1"]
    counts = review.apply_verdicts(folder.output, {crop.name: "reject", "not_a_crop.jpg": "reject"})
    assert counts == {"rejected": 1, "accepted": 0, "missing": 0, "unknown": 1, "moved": 0, "gone": 0}
    target = folder.output / facecrops.REJECTED_DIR / "mask" / crop.name
    assert not crop.exists() and target.is_file()
    rows = folder.check_manifest_lists_exactly_the_crops_there_are()
    assert len(rows) == 3 and crop.name not in {Path(row["crop"]).name for row in rows}
    (record,) = records.read_rows(folder.output / facecrops.REJECTED_DIR / facecrops.REJECTED_RECORD)
    assert record["crop"] == str(target) and record["detail"] == "rejected in review" and record["class"] == "mask"
    assert list(record) == [*facecrops.FACE_FIELDS, "detail"]

    # a second crop of that name in _rejected/ gets a free name; nothing there is overwritten
    other = folder.crops["astronaut0"]
    other.rename(other.with_name(crop.name))
    rows = folder.manifest()
    rows[0]["crop"] = str(other.with_name(crop.name))
    records.replace_rows(folder.output / facecrops.MANIFEST, facecrops.FACE_FIELDS, rows)
    assert review.apply_verdicts(folder.output, {crop.name: "reject"})["rejected"] == 1
    assert sorted(path.name for path in target.parent.iterdir()) == sorted([crop.name, f"{crop.stem}_1.jpg"])
    folder.check_manifest_lists_exactly_the_crops_there_are()


def test_an_accepted_low_confidence_crop_joins_its_class_as_a_detected_face_accepting_a_kept_one_does_nothing(folder):
    low, kept = folder.crops["astronaut2"], folder.crops["coffee0"]
    assert low.parent == (folder.output / facecrops.LOW_CONFIDENCE_DIR / "mask").resolve()
    counts = review.apply_verdicts(folder.output, {low.name: "accept", kept.name: "accept"})
    assert (counts["accepted"], counts["rejected"]) == (1, 0)
    assert not low.exists() and (folder.output / "mask" / low.name).is_file() and kept.is_file()
    rows = {Path(row["crop"]).name: row for row in folder.check_manifest_lists_exactly_the_crops_there_are()}
    accepted = folder.output.resolve() / "mask" / low.name
    assert (rows[low.name]["kind"], rows[low.name]["crop"]) == (facecrops.AUTO, str(accepted))
    assert rows[kept.name]["kind"] == facecrops.AUTO
    assert not (folder.output / facecrops.REJECTED_DIR).exists()


def test_an_accept_whose_name_is_taken_is_refused_before_any_reject_accept_or_move_is_carried_out(folder):
    low = folder.crops["astronaut2"]
    taken = folder.output / "mask" / low.name
    taken.write_bytes(b"the user's file")
    before = {path: path.read_bytes() for path in folder.output.rglob("*") if path.is_file()}
    verdicts = {folder.crops["astronaut0"].name: "reject", low.name: "accept",
                folder.crops["astronaut1"].name: review.MOVE + "without_mask"}
    with pytest.raises(ValueError, match=rf"cannot accept {low.name}: .*{taken.name} exists.*nothing was moved"):
        review.apply_verdicts(folder.output, verdicts, folder.logs)
    assert {path: path.read_bytes() for path in folder.output.rglob("*") if path.is_file()} == before
    assert not moves.journal_path(folder.logs).exists()


def test_a_crop_deleted_by_hand_is_recorded_as_rejected_whatever_the_verdicts(folder):
    gone = folder.crops["coffee0"]
    gone.unlink()
    before = {name: path.read_bytes() for name, path in folder.crops.items() if path.exists()}
    counts = review.apply_verdicts(folder.output, {})
    assert (counts["missing"], counts["rejected"], counts["unknown"]) == (1, 0, 0)
    (record,) = records.read_rows(folder.output / facecrops.REJECTED_DIR / facecrops.REJECTED_RECORD)
    assert record["crop"] == "" and record["detail"] == f"deleted by hand: {gone}"
    folder.check_manifest_lists_exactly_the_crops_there_are()
    assert {name: path.read_bytes() for name, path in folder.crops.items() if path.exists()} == before


def test_a_move_to_another_class_is_journaled_faces_csv_follows_and_undo_puts_it_back(folder):
    crop = folder.crops["astronaut0"]
    clash = folder.output / "without_mask" / crop.name  # a crop of that name is there already: the move renames
    Image.open(folder.crops["coffee0"]).save(clash)
    rows = folder.manifest()
    records.append_rows(folder.output / facecrops.MANIFEST, facecrops.FACE_FIELDS,
                        [{**rows[-1], "crop": str(clash.resolve())}])
    before = folder.manifest()
    verdicts = {crop.name: review.MOVE + "without_mask", "gone_face0.jpg": review.MOVE + "without_mask",
                folder.crops["astronaut1"].name: "reject"}
    counts = review.apply_verdicts(folder.output, verdicts, folder.logs)
    assert (counts["moved"], counts["gone"], counts["rejected"], counts["unknown"]) == (1, 1, 1, 0)
    moved = folder.output / "without_mask" / f"{crop.stem}_1.jpg"
    assert not crop.exists() and moved.is_file() and clash.is_file()
    (journal,) = records.read_rows(moves.journal_path(folder.logs))
    assert (journal["action"], journal["original"], journal["new"], journal["stage"], journal["input"]) == (
        moves.RELABEL, f"mask/{crop.name}", f"without_mask/{moved.name}", "review", str(folder.output.resolve()))
    row = next(row for row in folder.check_manifest_lists_exactly_the_crops_there_are()
               if row["source_sha256"] == before[0]["source_sha256"] and row["face_index"] == "0")
    assert (row["crop"], row["class"]) == (str(moved.resolve()), "without_mask")

    assert review.undo_relabels(folder.output, folder.logs) == 1
    assert crop.is_file() and not moved.exists()
    rows = {row["crop"]: row for row in folder.check_manifest_lists_exactly_the_crops_there_are()}
    assert rows[str(crop)]["class"] == "mask"
    assert review.undo_relabels(folder.output, folder.logs) == 0  # nothing left to undo


def test_a_move_to_a_class_that_does_not_exist_or_without_a_journal_is_refused_before_anything_moves(folder):
    crop = folder.crops["astronaut0"]
    before = folder.manifest()
    with pytest.raises(ValueError, match="no class folder of that name"):
        review.apply_verdicts(folder.output, {crop.name: review.MOVE + "no_mask", "x.jpg": "reject"}, folder.logs)
    with pytest.raises(ValueError, match="needs a logs folder"):
        review.apply_verdicts(folder.output, {crop.name: review.MOVE + "without_mask"})
    assert crop.is_file() and folder.manifest() == before
    assert not moves.journal_path(folder.logs).exists() and not (folder.output / facecrops.REJECTED_DIR).exists()
    # already in that class: nothing to do
    assert review.relabel(folder.output, {crop.name: review.MOVE + "mask"}, folder.logs) == {"moved": 0, "gone": 0}
    assert crop.is_file() and not moves.journal_path(folder.logs).exists()


class Tiles(html.parser.HTMLParser):
    """The crops a sheet shows, section by section, and its drawing blocks."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[tuple[str, list[str]]] = []
        self.draw: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.sections.append((attrs.get("id") or attrs.get("data-mark") or "", []))
        elif tag == "figure":
            self.sections[-1][1].append(attrs["data-crop"])
        elif tag == "div" and "draw" in (attrs.get("class") or "").split():
            self.draw.append((attrs["data-source"], attrs["data-class"]))


def tiles(page: Path) -> Tiles:
    parser = Tiles()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def test_one_sheet_per_class_names_every_crop_lowest_confidence_first_and_offers_each_faceless_photo(folder):
    folder.crops["coffee0"].unlink()  # deleted by hand: left out
    pages = review.write_sheets(folder.output, folder.logs)
    assert pages == [folder.logs / "review" / "mask.html", folder.logs / "review" / "without_mask.html"]
    mask = tiles(pages[0])
    names = {key: path.name for key, path in folder.crops.items()}
    assert mask.sections == [("reject", [names["astronaut1"], names["astronaut0"]]),  # 0.93 before 0.99
                             ("accept", [names["astronaut2"]]), ("", [])]
    assert mask.draw == []
    without_mask = tiles(pages[1])
    assert without_mask.sections == [("reject", []), ("accept", []), ("", [])]
    assert without_mask.draw == [(str((folder.photos / "without_mask" / "chelsea.jpg").resolve()), "without_mask")]
    for page in pages:
        targets = page_targets(page)  # every image and link: a relative path to a file that exists
        assert len(targets.images) + len(targets.links) >= 2
        text = page.read_text(encoding="utf-8")
        assert text.startswith("<!doctype html>") and text.rstrip().endswith("</html>")
    assert "2 faces, 1 low-confidence, 0 photos with no face" in pages[0].read_text(encoding="utf-8")
    assert "review_mask.txt" in pages[0].read_text(encoding="utf-8")


def test_a_sheet_escapes_odd_names_in_its_markup_and_its_links(folder):
    source = folder.photos / "mask" / 'a <b> & "c" #1 50%.jpg'
    picture("rocket").save(source, quality=90)
    sha256 = images.sha256_file(source)
    rows = facecrops.save_faces(images.load_rgb(source), [Face(100, 100, 200, 200, 0.95)], source.resolve(), sha256,
                                "mask", folder.output, SETTINGS, Folder.kind)
    records.append_rows(folder.output / facecrops.MANIFEST, facecrops.FACE_FIELDS, rows)
    page = review.write_sheets(folder.output, folder.logs)[0]
    name = Path(rows[0]["crop"]).name
    assert name in tiles(page).sections[0][1]  # the name the verdicts will carry, as it is on disk
    text = page.read_text(encoding="utf-8")
    assert 'a <b>' not in text and html.escape(name) in text
    targets = page_targets(page)  # each one, unquoted, is a file that exists
    (image,) = [target for target in targets.images if urllib.parse.unquote(target).endswith(name)]
    assert "#" not in image and " " not in image and '"' not in image


def test_the_suspects_of_a_class_lead_its_sheet_least_likely_first_and_moved_or_deleted_ones_are_counted(folder):
    crops = folder.crops
    names = {key: f"{path.parent.name}/{path.name}" for key, path in crops.items()}
    rows = [{"crop": names["astronaut0"], "class": "mask", "label_probability": "0.30", "suggested": "without_mask",
             "faces_in_photo": 3, "reason": suspects.DISPUTED, "source": str(folder.photos / "mask/astronaut.jpg")},
            {"crop": names["astronaut1"], "class": "mask", "label_probability": "0.10", "suggested": "without_mask",
             "faces_in_photo": 3, "reason": suspects.BYSTANDER, "source": ""},
            {"crop": names["coffee0"], "class": "without_mask", "label_probability": "0.90",
             "suggested": "without_mask", "faces_in_photo": 1, "reason": "", "source": ""},  # agreed: not a suspect
            {"crop": "mask/gone_face0.jpg", "class": "mask", "label_probability": "0.05", "suggested": "without_mask",
             "faces_in_photo": 1, "reason": suspects.DISPUTED, "source": ""},
            {"crop": names["coffee0"], "class": "mask", "label_probability": "0.2", "suggested": "without_mask",
             "faces_in_photo": 1, "reason": suspects.DISPUTED, "source": ""}]  # no longer in the class it was scored in
    records.append_rows(folder.output / facecrops.SUSPECTS, suspects.FIELDS, rows)
    by_class, gone = review.suspects_by_class(folder.output)
    assert gone == 2 and list(by_class) == ["mask"]
    assert [row["crop"] for row in by_class["mask"]] == [names["astronaut1"], names["astronaut0"]]

    page = review.write_sheets(folder.output, folder.logs)[0]
    sheet = tiles(page)
    assert sheet.sections[0] == ("suspects", [crops["astronaut1"].name, crops["astronaut0"].name])
    text = page.read_text(encoding="utf-8")
    assert '<option value="without_mask">' in text and '<option value="mask">' not in text
    assert "1 of 3 faces" in text
    page_targets(page)


def test_drawn_boxes_are_cut_with_the_detector_geometry_as_manual_crops_once(folder):
    source = (folder.photos / "without_mask" / "chelsea.jpg").resolve()
    box = [140.0, 40.0, 300.0, 200.0]
    boxes = [{"source": str(source), "class": "without_mask", "box": box},
             {"source": str(source), "class": "without_mask", "box": [20.0, 20.0, 60.0, 70.0]},
             {"source": str(folder.photos / "absent.jpg"), "class": "mask", "box": box}]
    assert review.crop_manual_boxes(folder.output, boxes, SETTINGS) == 2
    manual = [row for row in folder.check_manifest_lists_exactly_the_crops_there_are() if row["kind"] == "manual"]
    assert [(Path(row["crop"]).parent.name, row["detector"], row["confidence"], row["face_index"]) for row in manual] \
        == [("without_mask", "manual", "1.0", "0"), ("without_mask", "manual", "1.0", "1")]
    assert all("_manual_face" in Path(row["crop"]).name for row in manual)
    assert manual[0]["source_sha256"] == images.sha256_file(source)
    expected = facecrops.crop_face(images.load_rgb(source), box, SETTINGS.margin, SETTINGS.size).astype(float)
    assert np.abs(np.asarray(Image.open(manual[0]["crop"]), dtype=float) - expected).mean() < 4  # JPEG's loss only
    # the same file applied again rewrites the crops without listing them twice
    assert review.crop_manual_boxes(folder.output, boxes, SETTINGS) == 2
    assert len([row for row in folder.check_manifest_lists_exactly_the_crops_there_are() if row["kind"] == "manual"]) \
        == 2


def test_drawn_boxes_on_a_photo_outside_the_data_folders_or_into_no_class_folder_are_one_line_each(folder, caplog):
    secret = folder.photos.parent / "secret"
    secret.mkdir()
    shutil.copy(folder.photos / "without_mask" / "chelsea.jpg", secret / "secret.jpg")
    (folder.photos / "mask" / "extra.jpg").write_bytes((secret / "secret.jpg").read_bytes())
    (folder.photos / "mask" / "link.jpg").symlink_to(secret / "secret.jpg")
    box = [140.0, 40.0, 300.0, 200.0]
    climb = folder.photos / "mask" / ".." / ".." / "secret" / "secret.jpg"
    rows = [[str(secret / "secret.jpg"), "mask", *box],  # absolute, outside
            [str(climb), "mask", *box], [str(climb), "mask", *box],  # .. out of the data folder: two rows, one line
            [str(folder.photos / "mask" / "link.jpg"), "mask", *box],  # a link out
            [str(folder.photos / "mask" / "extra.jpg"), "../escape", *box],  # a class that is no folder
            [str(folder.photos / "mask" / "extra.jpg"), "mask", *box],  # in --input, never read: cut
            [str(folder.photos / "without_mask" / "chelsea.jpg"), "without_mask", *box]]  # read before: cut
    path = write_boxes(folder.photos.parent / "manual_boxes_mask.csv", rows)
    with caplog.at_level(logging.WARNING):
        written = review.crop_manual_boxes(folder.output, review.read_manual_boxes(path), SETTINGS, [folder.photos])
    assert written == 2
    lines = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert [line.split(": ", 1)[0] for line in lines] == [f"{path}:2", f"{path}:3 and 1 more rows", f"{path}:5",
                                                          f"{path}:6"]
    assert all("is not read" in line for line in lines[:3]) and "cannot be a class folder" in lines[3]
    assert all("\n" not in line for line in lines)
    manual = [row for row in folder.check_manifest_lists_exactly_the_crops_there_are() if row["kind"] == "manual"]
    assert sorted(Path(row["source"]).name for row in manual) == ["chelsea.jpg", "extra.jpg"]
    assert not (folder.output.parent / "escape").exists() and (secret / "secret.jpg").exists()
