"""The one-page report: counts, the sweep ranking, missing inputs, and a render in headless Chromium."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, page_targets, picture, render_page
from PIL import ImageDraw

from maskdetect import facecrops, moves, plots, records, report, runlog

pytestmark = pytest.mark.unit  # no TensorFlow: see conftest.py

CLASSES = ["mask", "without_mask"]


def _journal(logs: Path, data: Path) -> None:
    rows = []
    aside = [("mask/notes.txt", "not_image"), ("mask/half.jpg", "corrupt"), ("without_mask/tiny.png", "too_small"),
             ("mask/copy1.jpg", "duplicate"), ("without_mask/copy2.jpg", "duplicate"),
             ("without_mask/both.jpg", "label_conflict"), ("mask/both.jpg", "label_conflict")]
    for original, reason in aside:
        rows.append({"action": moves.SET_ASIDE, "original": original, "new": f"_rejected/{reason}/{original}",
                     "reason": reason, "stage": "organise", "input": str(data.resolve())})
    rows.append(dict(rows[0]))  # a rerun after a kill journals an unfinished move again: counted once
    rows.append({"action": moves.RENAME, "original": "mask/a.jpg", "new": "mask/mask_0123.jpg", "stage": "organise",
                 "input": str(data.resolve())})
    records.append_rows(moves.journal_path(logs), moves.JOURNAL_FIELDS, rows)


def _run_folder(logs: Path, run_id: str) -> Path:
    folder = logs / "runs" / run_id
    folder.mkdir(parents=True)
    epochs = np.arange(1, 9)
    history = {"loss": list(1 / epochs), "val_loss": list(1.2 / epochs + 0.05), "accuracy": list(1 - 0.3 / epochs),
               "val_accuracy": list(1 - 0.35 / epochs)}
    plots.learning_curves(history, folder / "curves.png")
    plots.confusion([[40, 2], [3, 35]], CLASSES, folder / "confusion.png")
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 80)
    plots.roc(truth, np.clip(truth * 0.6 + rng.random(80) * 0.5, 0, 1), 0.97, CLASSES, folder / "roc.png")
    pixels = np.stack([np.asarray(picture("astronaut", 64).resize((64, 64)))] * 5)
    probabilities = np.tile([[0.3, 0.7]], (5, 1))
    plots.misclassified(pixels, np.zeros(5, int), probabilities, CLASSES, folder / "misclassified.png")
    (folder / "metrics.json").write_text(json.dumps({
        "accuracy": 0.9375, "roc_auc": 0.97,
        "per_class": {"mask": {"precision": 0.93, "recall": 0.95, "f1-score": 0.94},
                      "without_mask": {"precision": 0.95, "recall": 0.92, "f1-score": 0.935}}}))
    (folder / "config.json").write_text("{}")
    return folder


def _log_row(run_id: str, status: str, val: str, test: str, sweep: str = "", **more) -> dict:
    return {"time": "2025-11-25T10:00:00", "run_id": run_id, "sweep_id": sweep, "status": status, "model": "small",
            "epochs": 8, "batch_size": 32, "image_size": 64, "kernel_size": 3, "optimizer": "adam",
            "learning_rate": 0.001, "augmentation": "light", "classes": "mask without_mask", "train_size": 280,
            "val_size": 60, "test_size": 60, "epochs_run": 8, "best_epoch": 7, "train_seconds": 42.0,
            "val_accuracy": val, "test_accuracy": test, "roc_auc": "0.97", "run_dir": f"logs/runs/{run_id}",
            "per_class": "", "code_version": "0.1.0+test", **more}


def _sweep_plot(path: Path) -> None:
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(10, 3))
    for axis, key in zip(axes, ("optimizer", "batch_size", "augmentation"), strict=True):
        axis.scatter([0, 1, 2], [0.8, 0.97, 0.85])
        axis.set_title(key)
    path.parent.mkdir(parents=True)
    figure.savefig(path, dpi=80)
    plt.close(figure)


def _annotated(path: Path, name: str, boxes: list[tuple[int, int, int, int, str]]) -> None:
    image = picture(name).convert("RGB")
    draw = ImageDraw.Draw(image)
    for x1, y1, x2, y2, label in boxes:
        color = (0, 200, 0) if label == "mask" else (220, 0, 0)
        draw.rectangle((x1, y1, x2, y2), outline=color, width=4)
        draw.text((x1 + 4, y1 - 14), label, fill=color)
    image.save(path)


@pytest.fixture
def tree(tmp_path):
    """A fake but realistic pipeline: organised photos, journal, crops, manifests, review sheets,
    two training runs (one failed), a sweep, and a detection folder."""
    data, processed, logs = tmp_path / "original_data", tmp_path / "processed_data", tmp_path / "logs"
    for count, name in zip((5, 4), CLASSES, strict=True):
        (data / name).mkdir(parents=True)
        (processed / name).mkdir(parents=True)
        for i in range(count):
            picture("coffee", 48).save(data / name / f"{name}_{i:012x}.jpg")
    (data / "_rejected" / "not_image" / "mask").mkdir(parents=True)
    (data / "_rejected" / "not_image" / "mask" / "notes.txt").write_text("x")
    _journal(logs, data)

    face_rows, source_rows = [], []
    for name, found, none in (("mask", 4, 1), ("without_mask", 4, 0)):
        for i in range(found):
            crop = processed / name / f"{name}_{i:012x}_face0.jpg"
            picture("astronaut", 64).save(crop)
            face_rows.append({"crop": str(crop), "source": str(data / name / f"{name}_{i:012x}.jpg"), "class": name,
                              "kind": facecrops.LOW_CONFIDENCE if (name, i) == ("mask", 3) else facecrops.AUTO,
                              "confidence": "0.95", "detector": "mtcnn"})
            source_rows.append({"source": f"{name}_{i}", "class": name, "status": "faces", "faces": 1})
        for i in range(none):
            source_rows.append({"source": f"{name}_none{i}", "class": name, "status": "no_face", "faces": 0})
    records.append_rows(processed / facecrops.MANIFEST, facecrops.FACE_FIELDS, face_rows)
    records.append_rows(processed / facecrops.SOURCES, facecrops.SOURCE_FIELDS, source_rows)
    (logs / "review").mkdir(parents=True)
    for name in CLASSES:
        (logs / "review" / f"{name}.html").write_text(f"<!doctype html><title>{name}</title>")

    _run_folder(logs, "20251125-100000_aaaaaa")
    _run_folder(logs, "20251125-110000_bbbbbb")
    rows = [_log_row("20251125-100000_aaaaaa", "ok", "0.9", "0.91"),
            _log_row("20251125-110000_bbbbbb", "ok", "0.95", "0.9375", notes="<b>not bold</b>"),
            _log_row("20251125-120000_cccccc", "failed", "", "", error="ValueError: boom")]
    # an older sweep, then the newest: ranked by validation accuracy, never by test accuracy
    rows += [_log_row("old-1", "ok", "0.99", "0.99", sweep="sweep-old")]
    rows += [_log_row("s-1", "ok", "0.80", "0.99", sweep="sweep-new", optimizer="sgd"),
             _log_row("s-2", "ok", "0.97", "0.70", sweep="sweep-new", optimizer="rmsprop"),
             _log_row("s-3", "pruned", "0.85", "0.95", sweep="sweep-new", optimizer="adamw"),
             _log_row("s-4", "failed", "", "", sweep="sweep-new")]
    records.append_rows(logs / runlog.LOG_NAME, runlog.LOG_FIELDS, rows)
    _sweep_plot(logs / "sweeps" / "sweep-new_val_accuracy.png")

    detect = logs / "detect" / "20251125-130000"
    detect.mkdir(parents=True)
    _annotated(detect / "astronaut.png", "astronaut", [(160, 40, 320, 230, "without_mask")])
    _annotated(detect / "crowd & co.jpg", "coffee", [(50, 60, 200, 220, "mask"), (300, 60, 450, 220, "mask")])
    with open(detect / "detections.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["source", "x1", "y1", "x2", "y2", "label", "probability"])
        writer.writerow(["/photos/astronaut.png", 160, 40, 320, 230, "without_mask", 0.97])
        writer.writerow(["/photos/crowd & co.jpg", 50, 60, 200, 220, "mask", 0.88])
        writer.writerow(["/photos/crowd & co.jpg", 300, 60, 450, 220, "mask", 0.91])
    (detect / "summary.json").write_text(json.dumps({
        "model": "<model>", "class_names": CLASSES,
        "totals": {"images": 2, "videos": 0, "faces": 3, "mask_wearing_rate": 0.6667},
        "sources": [{"source": "/photos/astronaut.png", "kind": "image", "output": "astronaut.png"},
                    {"source": "/photos/crowd & co.jpg", "kind": "image", "output": "crowd & co.jpg"},
                    {"source": "/photos/gone.jpg", "kind": "image", "output": "gone.jpg"}]}))
    return tmp_path


def _report(root: Path, *extra: str) -> Path:
    output = root / "logs" / "report.html"
    assert report.main(["--logs", str(root / "logs"), "--data", str(root / "original_data"),
                        "--processed", str(root / "processed_data"), "--output", str(output), *extra]) == 0
    return output


def _text(page: Path) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.read_text(encoding="utf-8")))


def test_report_shows_every_stage_and_ranks_the_sweep_by_validation_accuracy(tree, capsys):
    page = _report(tree)
    assert str(page) in capsys.readouterr().out
    text = _text(page)
    source = page.read_text(encoding="utf-8")
    # counts per stage: 9 kept + 7 set aside (the repeated journal row counted once), per reason
    assert "all 16 1 2 2 1 1 9 " in text, text  # found, corrupt, duplicate, label conflict, not image, too small, kept
    assert "all 9 8 1 0 7 1 0 " in text  # photos read, with a face, no face, unreadable, crops, low confidence
    assert "2 duplicate(s) and 2 label conflict(s) set aside" in text
    # the latest successful run, not the failed one after it
    assert "20251125-110000_bbbbbb" in text and "95.0 %" in text and "93.8 %" in text
    assert "runs/20251125-110000_bbbbbb/curves.png" in source and "runs/20251125-110000_bbbbbb/roc.png" in source
    # the newest sweep, ranked by validation accuracy; test accuracy beside it but not used
    board = source[source.index('class="leaderboard"'):]
    order = [board.index(run) for run in ("s-2", "s-3", "s-1")]
    assert order == sorted(order) and "old-1" not in board and "s-4" not in board  # s-4 failed: counted, not ranked
    assert "4 trial(s) (2 ok, 1 pruned, 1 failed)" in text
    assert "sweeps/sweep-new_val_accuracy.png" in source
    # detections with their labels; everything from files is escaped
    assert "crowd &amp; co.jpg: mask 88.0 %, mask 91.0 %" in source
    assert "&lt;b&gt;not bold&lt;/b&gt;" in source and "<b>not bold</b>" not in source
    assert "&lt;model&gt;" in source
    parser = page_targets(page)
    assert len(parser.images) == 2 + 4 + 1  # two detection examples, four plots of the run, the sweep's plot
    assert any(link.endswith("review/mask.html") for link in parser.links)
    assert "not run yet" not in text


def test_empty_logs_still_make_a_page_that_says_what_to_run(tmp_path):
    page = _report(tmp_path)
    text = _text(page)
    assert text.count("not run yet") >= 4
    for hint in ("./train_a_model.py", "./auto_train.py", "./preprocess.sh", "detect_mask.py"):
        assert hint in text
    assert page_targets(page).images == []


def test_report_renders_in_chromium_with_every_image_loaded(tree):
    page = _report(tree)
    page_targets(page)
    shot = tree / "logs" / "report.png"
    dom = render_page(page, tree / "chromium", shot)
    assert 'data-ready="yes"' in dom, "the page's script did not run to the end"
    assert 'data-broken="0"' in dom, "an image did not load"
    # for a person to look at: logs/ is not committed
    (REPO / "logs").mkdir(exist_ok=True)
    shutil.copyfile(shot, REPO / "logs" / "report_screenshot.png")


def test_empty_report_renders_in_chromium(tmp_path):
    page = _report(tmp_path)
    dom = render_page(page, tmp_path / "chromium", tmp_path / "empty.png")
    assert 'data-ready="yes"' in dom and 'data-broken="0"' in dom
    assert dom.count("not run yet") >= 4


def test_a_missing_detections_folder_is_one_line(tmp_path, capsys):
    assert report.main(["--logs", str(tmp_path), "--detections", str(tmp_path / "absent")]) == 2
    assert capsys.readouterr().err.startswith("error: --detections")


def test_three_classes_show_their_counts_and_what_the_rate_counts(tree):
    logs = tree / "logs"
    folder = _run_folder(logs, "20251125-140000_dddddd")
    (folder / "roc.png").unlink()  # training draws no ROC for three classes
    records.append_rows(logs / runlog.LOG_NAME, runlog.LOG_FIELDS, [
        _log_row("20251125-140000_dddddd", "ok", "0.9", "0.88", classes="incorrect_mask mask without_mask")])
    detections = logs / "detect" / "20251125-130000"
    with open(detections / "detections.csv", "a", newline="") as handle:
        csv.writer(handle).writerow(["/photos/astronaut.png", 10, 10, 60, 60, "incorrect_mask", 0.8])
    summary = json.loads((detections / "summary.json").read_text())
    summary["class_names"] = ["incorrect_mask", "mask", "without_mask"]
    summary["worn_mask_classes"] = ["mask"]
    summary["totals"].update(faces=4, mask_wearing_rate=0.5,
                             faces_per_class={"incorrect_mask": 1, "mask": 2, "without_mask": 1})
    (detections / "summary.json").write_text(json.dumps(summary))
    text = _text(_report(tree))
    assert "incorrect_mask 1 25.0 % no mask 2 50.0 % yes without_mask 1 25.0 % no" in text, text
    assert "mask-wearing rate (correctly worn masks / all faces)" in text
    assert "1 incorrect_mask" in text  # the count of detections by label
    assert "ROC AUC (test, one-vs-rest)" in text and "20251125-140000_dddddd" in text


def test_people_seen_on_video_are_a_gallery_of_best_crops_with_labels(tree):
    detections = tree / "logs" / "detect" / "20251125-130000"
    crop = detections / "people" / "door" / "person_1.jpg"
    crop.parent.mkdir(parents=True)
    picture("astronaut").resize((256, 256)).convert("RGB").save(crop)
    with open(detections / "people.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["source", "track", "first_frame", "last_frame", "label", "probability", "label_changes",
                         "crop"])
        writer.writerow(["/videos/door.mp4", 1, 3, 90, "without_mask", 0.91, "40:mask>without_mask",
                         "people/door/person_1.jpg"])
        writer.writerow(["/videos/door.mp4", 2, 10, 50, "mask", 0.99, "", ""])  # its crop was not saved
    summary = json.loads((detections / "summary.json").read_text())
    summary["totals"]["people_mask_wearing_rate"] = 0.5
    (detections / "summary.json").write_text(json.dumps(summary))
    page = _report(tree)
    text = _text(page)
    assert "People seen on video" in text and "2 people (1 without_mask, 1 mask)" in text
    assert "door.mp4 #1: without_mask 91.0 %, frames 3-90; changed 40:mask&gt;without_mask" in \
        page.read_text(encoding="utf-8")
    assert "door.mp4 #2: mask 99.0 %" in text
    assert "mask-wearing rate of the people on video" in text
    assert any(link.endswith("people/door/person_1.jpg") for link in page_targets(page).images)


def test_a_detection_run_on_videos_alone_is_not_called_not_run(tree):
    detections = tree / "logs" / "detect" / "20251126-090000"
    detections.mkdir(parents=True)
    (detections / "door.mp4").write_bytes(b"\0" * 64)
    (detections / "summary.json").write_text(json.dumps(
        {"sources": [{"source": "/videos/door.mp4", "kind": "video", "output": "door.mp4"}], "totals": {}}))
    text = _text(_report(tree, "--detections", str(detections)))
    assert "Annotated videos: door.mp4" in text and "Annotated images in this folder" not in text
