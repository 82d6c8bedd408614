"""One HTML page that ties a pipeline run together: detections, training plots, the sweep, data set counts.

``python -m maskdetect.report`` writes ``logs/report.html``. Pictures come first (annotated detection
examples, then the latest successful training run's curves, confusion matrix, ROC and misclassified
crops), then the sweep leaderboard and the counts after each data stage with links to the review
sheets. Images are referenced by paths relative to the page, not embedded, so the page stays small
and the ``logs/`` folder (with the data folders beside it) can be moved or opened anywhere. Every
section tolerates missing inputs: it says "not run yet" and which command fills it. What each section shows is
read by :mod:`maskdetect.report_inputs`; this module lays it out.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import time
import urllib.parse
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

from maskdetect import facecrops, images, moves, runtime
from maskdetect.records import finite_number, write_whole
from maskdetect.report_inputs import (
    IMAGE_SUFFIXES,
    data_counts,
    detection_outputs,
    json_or_empty,
    latest_run,
    newest_detection_folder,
    rows_or_empty,
    sweep_leaderboard,
)
from maskdetect.runlog import LOG_NAME, SWEEP_DIR
from maskdetect.settings import GRID_KEYS

# The plots a training run writes into its folder (maskdetect.train); the report imports no stage, only the
# layers below them (facecrops, runlog, settings), so that it never loads TensorFlow.
RUN_PLOTS = (("curves.png", "Learning curves"), ("confusion.png", "Confusion matrix (test set)"),
             ("roc.png", "ROC (test set)"), ("misclassified.png", "Misclassified test crops"))
DETECTION_EXAMPLES = 24
PEOPLE_SHOWN = 60  # best face crops of the people seen on video

# The command that fills each section, shown when it is empty.
HINTS = {
    "detections": "./detect_mask.py --output logs/detect/examples PHOTO...",
    "training": "./train_a_model.py",
    "sweep": "./auto_train.py",
    "organise": "./preprocess.sh",
    "faces": "./preprocess.sh   (step 3: process_faces.py)",
}


def _link(target: str | Path, page_dir: Path) -> str:
    return urllib.parse.quote(Path(os.path.relpath(Path(target).resolve(), page_dir.resolve())).as_posix())


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _percent(value) -> str:
    number = finite_number(value)
    return "–" if number is None else f"{100 * number:.1f} %"


def _missing(what: str, hint: str) -> str:
    return f'<p class="missing">{_e(what)}: not run yet. Run <code>{_e(hint)}</code></p>'


def _figure(path: Path, caption: str, page_dir: Path, css: str = "") -> str:
    link = _link(path, page_dir)
    return (f'<figure class="{css}"><a href="{link}"><img src="{link}" alt="{_e(caption)}"></a>'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _table(header: Sequence[str], rows: Sequence[Sequence], css: str = "") -> str:
    head = "".join(f"<th>{_e(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _cards(items: Sequence[tuple[str, str]]) -> str:
    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="value">{_e(value)}</div><div class="label">{_e(label)}</div></div>'
        for label, value in items) + "</div>"


# ---------------------------------------------------------------------------------------------
# detections


def _detections(folder: Path | None, page_dir: Path) -> tuple[str, list[tuple[str, str]]]:
    if folder is None or not folder.is_dir():
        return _missing("Detection examples", HINTS["detections"]), []
    summary = json_or_empty(folder / "summary.json")
    by_source: dict[str, list[dict]] = defaultdict(list)
    by_name: dict[str, list[dict]] = defaultdict(list)
    rows = rows_or_empty(folder / "detections.csv")
    for row in rows:
        by_source[row.get("source", "")].append(row)
        by_name[Path(row.get("source", "")).name].append(row)
    outputs = detection_outputs(folder, summary)
    pictures = [(source, path) for source, kind, path in outputs
                if kind == "image" and path.suffix.lower() in IMAGE_SUFFIXES]
    videos = [path for _, kind, path in outputs if kind != "image"]
    figures = []
    for source, picture in pictures[:DETECTION_EXAMPLES]:
        faces_here = by_source.get(source) or by_name.get(Path(source).name, [])
        caption = ", ".join(f"{row.get('label', '?')} {_percent(row.get('probability'))}" for row in faces_here)
        figures.append(_figure(picture, f"{Path(source).name}: {caption or 'no face'}", page_dir))
    labels = Counter(row.get("label", "") for row in rows)
    split = " · ".join(f"{count} {label or '?'}" for label, count in labels.most_common())
    cards = [(f"faces detected: {split}", str(sum(labels.values())))] if rows else []
    totals = summary.get("totals") if isinstance(summary.get("totals"), dict) else {}
    if finite_number(totals.get("mask_wearing_rate")) is not None:
        # masks worn wrong (incorrect_mask) count as faces, not as masks: say so where there is such a class
        cards.append(("mask-wearing rate (correctly worn masks / all faces)", _percent(totals["mask_wearing_rate"])))
    facts = [(key, value) for key, value in {**summary, **totals}.items()
             if isinstance(value, str | int | float | bool)][:16]
    parts = [f'<p class="note">From <code>{_e(folder)}</code>: {len(pictures)} annotated image(s)'
             + (f", the first {DETECTION_EXAMPLES} shown" if len(pictures) > DETECTION_EXAMPLES else "") + ".</p>"]
    if figures:
        parts.append('<div class="gallery">' + "".join(figures) + "</div>")
    elif not videos:  # a run on videos alone has no images to show, and is no run to ask for
        parts.append(_missing("Annotated images in this folder", HINTS["detections"]))
    if videos:
        parts.append("<p>Annotated videos: " + " · ".join(
            f'<a href="{_link(path, page_dir)}">{_e(path.name)}</a>' for path in videos) + "</p>")
    people = _people(folder, page_dir)
    if people:
        parts.append(people)
        if finite_number(totals.get("people_mask_wearing_rate")) is not None:
            cards.append(("mask-wearing rate of the people on video", _percent(totals["people_mask_wearing_rate"])))
    per_class = _faces_per_class(summary, totals)
    if per_class:
        parts.append(per_class)
    if facts:
        parts.append("<details><summary>summary.json</summary>" + _table(["", ""], facts, "facts") + "</details>")
    return "".join(parts), cards


def _people(folder: Path, page_dir: Path) -> str:
    """A gallery of the people seen on video (people.csv): each person's best face crop with their label."""
    rows = rows_or_empty(folder / "people.csv")
    if not rows:
        return ""
    figures = []
    for row in rows[:PEOPLE_SHOWN]:
        crop = folder / row.get("crop", "") if row.get("crop") else None
        caption = (f"{Path(row.get('source', '')).name} #{row.get('track', '?')}: {row.get('label', '?')} "
                   f"{_percent(row.get('probability'))}, frames {row.get('first_frame', '?')}-"
                   f"{row.get('last_frame', '?')}"
                   + (f"; changed {row['label_changes']}" if row.get("label_changes") else ""))
        if crop is not None and crop.is_file():
            figures.append(_figure(crop, caption, page_dir, "person"))
        else:
            figures.append(f'<figure class="person"><figcaption>{_e(caption)}</figcaption></figure>')
    labels = Counter(row.get("label", "") for row in rows)
    split = ", ".join(f"{count} {label or '?'}" for label, count in labels.most_common())
    more = f", the first {PEOPLE_SHOWN} shown" if len(rows) > PEOPLE_SHOWN else ""
    return (f"<h3>People seen on video</h3><p class=\"note\">{len(rows)} people ({_e(split)}){more}: each "
            "person's best face crop and label (the vote over their frames).</p>"
            '<div class="gallery people">' + "".join(figures) + "</div>")


def _faces_per_class(summary: dict, totals: dict) -> str:
    """summary.json's faces per class, every class of the model (none seen: 0), and which of them the
    mask-wearing rate counts as worn; any number of classes (mask, without_mask, incorrect_mask, ...)."""
    counts = totals.get("faces_per_class")
    if not isinstance(counts, dict) or not counts:
        return ""
    worn = summary.get("worn_mask_classes")
    total = sum(finite_number(count) or 0 for count in counts.values())
    rows = [(name, count, _percent((finite_number(count) or 0) / total) if total else "–",
             ("yes" if name in worn else "no") if isinstance(worn, list) else "?")
            for name, count in counts.items()]
    return ("<h3>Faces per class</h3>" + _table(["class", "faces", "share", "counted as a worn mask"], rows)
            + '<p class="note">The mask-wearing rate is the correctly worn masks over all faces: a mask worn wrong '
              "(under the nose, on the chin) counts as a face, not as a mask.</p>")


# ---------------------------------------------------------------------------------------------
# training and sweeps


def _training(logs: Path, page_dir: Path) -> tuple[str, list[tuple[str, str]]]:
    found = latest_run(logs)
    if found is None:
        return _missing("Training", HINTS["training"]), []
    row, folder = found
    metrics = json_or_empty(folder / "metrics.json")

    def value(key):
        return row.get(key) if row.get(key) not in (None, "") else metrics.get(key, "")

    cards = [("validation accuracy", _percent(value("val_accuracy"))),
             ("test accuracy", _percent(value("test_accuracy") or metrics.get("accuracy")))]
    if finite_number(value("roc_auc")) is not None:
        # with three or more classes train.evaluate gives the one-vs-rest AUC, and there is no ROC plot
        several = len(str(row.get("classes") or "").split()) > 2 or len(metrics.get("per_class") or {}) > 2
        cards.append(("ROC AUC (test, one-vs-rest)" if several else "ROC AUC (test)",
                      f"{finite_number(value('roc_auc')):.3f}"))
    plots = [(folder / name, caption) for name, caption in RUN_PLOTS if (folder / name).is_file()]
    wide = {"curves.png", "misclassified.png"}
    figures = "".join(_figure(path, caption, page_dir, "wide" if path.name in wide else "half")
                      for path, caption in plots)
    settings = [(key, row[key]) for key in GRID_KEYS if row.get(key) not in (None, "")]
    facts = [("run", folder.name), ("time", row.get("time", "")), ("classes", row.get("classes", "")),
             ("crops train / validation / test", " / ".join(str(row.get(k, "?")) for k in
                                                           ("train_size", "val_size", "test_size"))),
             ("epochs run (best)", f"{value('epochs_run')} ({value('best_epoch')})"),
             ("training time", f"{value('train_seconds')} s"), ("code", row.get("code_version", "")),
             ("notes", row.get("notes", ""))]
    per_class = metrics.get("per_class") or _loads(row.get("per_class"))
    class_rows = [(name, *(f"{finite_number(scores.get(key)) or 0:.3f}" for key in ("precision", "recall", "f1-score")))
                  for name, scores in per_class.items() if isinstance(scores, dict)]
    files = [f'<a href="{_link(folder / name, page_dir)}">{_e(name)}</a>'
             for name in ("config.json", "metrics.json", "history.csv") if (folder / name).is_file()]
    log_rows = rows_or_empty(logs / LOG_NAME)
    statuses = Counter(row.get("status", "") for row in log_rows)
    tally = ", ".join(f"{count} {status or '?'}" for status, count in statuses.most_common())
    html_text = (
        f'<div class="plots">{figures or _missing("Plots of run " + folder.name, HINTS["training"])}</div>'
        '<div class="columns">'
        f'<div><h3>Settings</h3>{_table(["setting", "value"], settings, "facts")}</div>'
        f'<div><h3>Run</h3>{_table(["", ""], facts, "facts")}</div>'
        + (f'<div><h3>Per class (test set)</h3>{_table(["class", "precision", "recall", "F1"], class_rows)}</div>'
           if class_rows else "")
        + "</div>"
        + f'<p class="note">Run folder <code>{_e(folder)}</code>: {" · ".join(files)}. '
        + (f"{len(log_rows)} run(s) in <code>{_e(logs / LOG_NAME)}</code>: {_e(tally)}.</p>" if log_rows else "</p>")
    )
    return html_text, cards


def _loads(text) -> dict:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _sweep(logs: Path, page_dir: Path) -> str:
    sweep, ranked, statuses = sweep_leaderboard(logs)
    if not sweep:
        return _missing("Sweep", HINTS["sweep"])
    plot = Path(logs) / SWEEP_DIR / f"{sweep}_val_accuracy.png"
    figure = (f'<div class="plots">{_figure(plot, "Validation accuracy by hyperparameter", page_dir, "wide")}</div>'
              if plot.is_file() else "")
    header = ["#", "validation accuracy", "test accuracy", "status", "model", "optimizer", "learning rate",
              "batch", "image", "kernel", "augmentation", "epochs run", "seconds", "run"]
    rows = [(rank, _percent(row.get("val_accuracy")), _percent(row.get("test_accuracy")), row.get("status", ""),
             row.get("model", ""), row.get("optimizer", ""), row.get("learning_rate", ""), row.get("batch_size", ""),
             row.get("image_size", ""), row.get("kernel_size", ""), row.get("augmentation", ""),
             row.get("epochs_run", ""), row.get("train_seconds", ""), row.get("run_id", ""))
            for rank, row in enumerate(ranked, 1)]
    tally = ", ".join(f"{count} {status or '?'}" for status, count in statuses.most_common())
    board = _table(header, rows, "leaderboard") if rows else "<p>No trial of this sweep has completed yet.</p>"
    return figure + (
        f'<p class="note">Sweep <code>{_e(sweep)}</code>: {sum(statuses.values())} trial(s) ({_e(tally)}). '
        f"Ranked by validation accuracy; the test accuracy is shown for reference only and was not used to "
        f"choose. The top {len(rows)} completed.</p>" + board)


# ---------------------------------------------------------------------------------------------
# data set counts


def _bars(stages: Sequence[tuple[str, int]]) -> str:
    top = max((count for _, count in stages), default=0) or 1
    return '<div class="bars">' + "".join(
        f'<div class="bar"><span class="name">{_e(name)}</span><span class="track"><span class="fill" '
        f'style="width:{100 * count / top:.1f}%"></span></span><span class="count">{count}</span></div>'
        for name, count in stages) + "</div>"


def _data_section(data: Path, processed: Path, logs: Path, page_dir: Path) -> tuple[str, list[tuple[str, str]]]:
    counts = data_counts(data, processed, logs)
    classes, kept, aside, sources, crops = (counts[key] for key in ("classes", "kept", "aside", "sources", "crops"))
    if not classes:
        return _missing(f"Data set ({data}/<class>/)", HINTS["organise"]), []
    reasons = sorted({reason for counter in aside.values() for reason in counter})
    def pick(table: dict[str, Counter], name: str | None) -> Counter:
        return sum(table.values(), Counter()) if name is None else table.get(name, Counter())

    photo_rows, face_rows = [], []
    for name in [*classes, None]:  # None: the total row
        set_aside, read, cut = pick(aside, name), pick(sources, name), pick(crops, name)
        kept_now = sum(kept.values()) if name is None else kept.get(name, 0)
        photo_rows.append((name or "all", kept_now + sum(set_aside.values()),
                           *(set_aside.get(reason, 0) for reason in reasons), kept_now))
        face_rows.append((name or "all", sum(read.values()), read.get("faces", 0), read.get("no_face", 0),
                          read.get("unreadable", 0), cut.get(facecrops.AUTO, 0) + cut.get(facecrops.MANUAL, 0),
                          cut.get(facecrops.LOW_CONFIDENCE, 0), cut.get("rejected", 0)))
    photo_header = ["class", "files found", *(reason.replace("_", " ") for reason in reasons), "kept"]
    face_header = ["class", "photos read", "with a face", "no face", "unreadable", "face crops", "low confidence",
                   "rejected in review"]
    found_total, kept_total = photo_rows[-1][1], photo_rows[-1][-1]
    with_face_total, crops_total = face_rows[-1][2], face_rows[-1][5]
    stages = [("files found", found_total), ("kept after checks", kept_total),
              ("photos with a face", with_face_total), ("face crops (training set)", crops_total)]
    duplicates = sum(counter.get(images.DUPLICATE, 0) for counter in aside.values())
    conflicts = sum(counter.get(images.LABEL_CONFLICT, 0) for counter in aside.values())
    cards = [("photos kept", str(kept_total)), ("face crops", str(crops_total))]
    notes = []
    if not counts["journal"]:
        notes.append(_missing("Organising (the journal logs/preprocess/renames.csv)", HINTS["organise"]))
    if not counts["faces_run"]:
        notes.append(_missing("The face stage", HINTS["faces"]))
    sheets = sorted((logs / "review").glob("*.html")) if (logs / "review").is_dir() else []
    review = ("<p>Review sheets (click the crops that are not faces, draw boxes on the photos with no face): "
              + " · ".join(f'<a href="{_link(sheet, page_dir)}">{_e(sheet.stem)}</a>' for sheet in sheets) + "</p>"
              if sheets else _missing("Review sheets", HINTS["faces"]))
    journal_link = moves.journal_path(logs)
    journal_text = (f' Every change is journaled in <a href="{_link(journal_link, page_dir)}">{_e(journal_link)}</a>.'
                    if journal_link.is_file() else "")
    html_text = (
        _bars(stages) + review
        + '<div class="columns">'
        + f'<div class="scroll"><h3>Organising: files set aside by reason</h3>'
          f'{_table(photo_header, photo_rows, "counts")}</div>'
        + f'<div class="scroll"><h3>Face stage</h3>{_table(face_header, face_rows, "counts")}</div></div>'
        + f'<p class="note">{duplicates} duplicate(s) and {conflicts} label conflict(s) set aside. '
          f"Set-aside files are under "
          f"<code>{_e(data)}/_rejected/&lt;reason&gt;/</code>; photos with no face are copied to "
          f"<code>{_e(processed)}/_no_face/&lt;class&gt;/</code>.{journal_text}</p>"
        + "".join(notes)
    )
    return html_text, cards


# ---------------------------------------------------------------------------------------------
# the page

_STYLE = """
:root{--ink:#1d2330;--muted:#667085;--line:#e4e7ec;--accent:#2d6cdf;--bg:#f6f7f9}
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:var(--ink);background:var(--bg);
 line-height:1.45}
header{background:#1d2330;color:#fff;padding:18px 28px}
header h1{margin:0;font-size:22px;font-weight:600}
header p{margin:4px 0 0;color:#c7cbd4;font-size:13px}
header code{background:#2b3345;color:#e4e7ec}
nav{position:sticky;top:0;z-index:2;background:#fff;border-bottom:1px solid var(--line);padding:8px 28px;font-size:14px}
nav a{margin-right:18px;color:var(--accent);text-decoration:none}
main{max-width:1280px;margin:0 auto;padding:8px 28px 40px}
section{background:#fff;border:1px solid var(--line);border-radius:10px;padding:14px 20px 18px;margin:18px 0}
h2{font-size:18px;margin:4px 0 10px}
h3{font-size:14px;margin:12px 0 6px;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:18px 0 0}
.card{background:#fff;border:1px solid var(--line);border-radius:10px;padding:8px 14px;min-width:120px}
.card .value{font-size:22px;font-weight:650}
.card .label{font-size:12px;color:var(--muted)}
figure{margin:0}
figure img{display:block;max-width:100%;border-radius:6px;border:1px solid var(--line);background:#fafafa}
figcaption{font-size:12px;color:var(--muted);margin-top:4px;word-break:break-word}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:14px}
.gallery img{width:100%;height:220px;object-fit:contain;background:#111}
.gallery.people{grid-template-columns:repeat(auto-fill,minmax(140px,1fr))}
.gallery.people img{height:128px}
.plots{display:flex;flex-wrap:wrap;gap:16px}
.plots .wide{flex:1 1 100%}
.plots .half{flex:1 1 420px;max-width:600px}
.plots img{margin:0 auto}
.columns{display:flex;flex-wrap:wrap;gap:28px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{padding:4px 10px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
th{background:#f2f4f7;font-weight:600}
table.facts td,table.facts th{text-align:left}
table.facts td:first-child{color:var(--muted)}
table.leaderboard tbody tr:first-child{background:#eef6ee;font-weight:600}
table.counts tbody tr:last-child{font-weight:650;background:#f9fafb}
.scroll{overflow-x:auto}
.bars{margin:6px 0 12px;max-width:760px}
.bar{display:flex;align-items:center;gap:10px;margin:4px 0;font-size:13px}
.bar .name{width:190px;color:var(--muted)}
.bar .track{flex:1;background:#eef1f5;border-radius:4px;height:14px}
.bar .fill{display:block;height:14px;border-radius:4px;background:var(--accent)}
.bar .count{width:64px;text-align:right;font-variant-numeric:tabular-nums}
.note{font-size:13px;color:var(--muted)}
.missing{background:#fff8e6;border:1px dashed #e0b341;border-radius:8px;padding:8px 12px;font-size:14px}
code{background:#f2f4f7;border-radius:4px;padding:1px 5px;font-size:12.5px}
img.broken{min-height:40px;min-width:120px;border:2px dashed #d33}
"""

# Marks any picture that does not load (a folder moved, a file deleted) so it is seen, not silently blank.
_SCRIPT = """
window.addEventListener('load', () => {
  let broken = 0;
  document.querySelectorAll('img').forEach(img => {
    if (!img.complete || img.naturalWidth === 0) { broken += 1; img.classList.add('broken'); }
  });
  document.body.dataset.broken = broken;
  document.body.dataset.ready = 'yes';
});
"""


def build(logs: Path, data: Path, processed: Path, detections: Path | None, output: Path) -> str:
    """The report's HTML, with links relative to ``output``'s folder."""
    logs, data, processed, output = Path(logs), Path(data), Path(processed), Path(output)
    page_dir = output.parent
    if detections is None:
        detections = newest_detection_folder(logs)
    detect_html, detect_cards = _detections(detections, page_dir)
    train_html, train_cards = _training(logs, page_dir)
    data_html, data_cards = _data_section(data, processed, logs, page_dir)
    sections = [("detections", "Detection examples", detect_html),
                ("training", "Training: the latest run", train_html),
                ("sweep", "Sweep leaderboard", _sweep(logs, page_dir)),
                ("data", "Data set after each stage", data_html)]
    nav = "".join(f'<a href="#{key}">{_e(title)}</a>' for key, title, _ in sections)
    body = "".join(f'<section id="{key}"><h2>{_e(title)}</h2>{content}</section>' for key, title, content in sections)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>maskdetect report</title><style>{_STYLE}</style></head><body>"
        f"<header><h1>maskdetect: pipeline report</h1><p>{_e(time.strftime('%Y-%m-%d %H:%M'))} · data "
        f"<code>{_e(data)}</code> · crops <code>{_e(processed)}</code> · logs <code>{_e(logs)}</code></p></header>"
        f"<nav>{nav}</nav><main>{_cards(train_cards + data_cards + detect_cards)}{body}</main>"
        f"<script>{_SCRIPT}</script></body></html>"
    )


def write_report(logs: Path, data: Path, processed: Path, detections: Path | None = None,
                 output: Path | None = None) -> Path:
    """Write the report (default ``<logs>/report.html``) whole, by a rename; returns its path."""
    output = Path(output) if output else Path(logs) / "report.html"
    if detections is not None and not Path(detections).is_dir():
        raise ValueError(f"--detections {detections} is not a folder")
    flag = "--output" if output.name != "report.html" or output.parent != Path(logs) else "--logs"
    if output.is_dir():
        raise ValueError(f"{output} is a folder; give {flag} a file name for the page")
    runtime.check_writable(output.parent, flag)  # before reading everything, not after
    output.parent.mkdir(parents=True, exist_ok=True)
    text = build(logs, data, processed, Path(detections) if detections else None, output)
    write_whole(output, text)  # two reports at once, or a full disk, never leave a partial page
    return output


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m maskdetect.report",
        description="Write one HTML page that ties the pipeline together: detection examples, the latest "
        "training run's plots, the sweep leaderboard and the data set counts after each stage.",
    )
    parser.add_argument("--logs", default="logs", help="(default %(default)s)")
    parser.add_argument("--data", default="original_data", help="the photos, one folder per class "
                        "(default %(default)s)")
    parser.add_argument("--processed", default="processed_data", help="the face crops (default %(default)s)")
    parser.add_argument("--detections", default=None, help="a folder written by detect_mask.py --output "
                        "(default: the newest folder under LOGS/detect/)")
    parser.add_argument("--output", default=None, help="the page (default LOGS/report.html)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    runtime.configure_logging(args.verbose)

    def body() -> int:
        path = write_report(Path(args.logs), Path(args.data), Path(args.processed),
                            Path(args.detections) if args.detections else None,
                            Path(args.output) if args.output else None)
        print(f"report: {path} (open it in a browser: {path.resolve().as_uri()})")
        return runtime.EXIT_OK

    return runtime.run_cli(body, "report: interrupted; the previous report, if any, is unchanged.")


if __name__ == "__main__":
    raise SystemExit(main())
