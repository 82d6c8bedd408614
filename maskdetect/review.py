"""Manual review of the face crops: static HTML contact sheets, applying the reviewer's verdicts, manual boxes.

``write_sheets`` makes ``<logs>/review/<class>.html`` per class: the crops sorted by confidence (lowest
first) with a link to each source photo, the low-confidence crops, and the photos with no face, on
which the reviewer drags boxes. The page needs no server: a click marks a crop (reject, or accept for
a low-confidence one), and two buttons download the verdicts (``review_<class>.txt``) and the drawn
boxes (``manual_boxes_<class>.csv``). ``apply_verdicts`` then moves rejected crops under
``<output>/_rejected/`` with a record, and ``faces.csv`` keeps listing exactly the crops that exist.

When ``process_faces.py --suspects`` has written ``<output>/suspects.csv``, each sheet starts with the crops
of its class that the out-of-fold models dispute, lowest label probability first; the reviewer rejects one
like any crop, or picks the class it belongs to. That move is journaled like organise's renames
(``<logs>/preprocess/renames.csv``) and ``process_faces.py --undo-review`` puts the crops back.
"""

from __future__ import annotations

import csv
import html
import logging
import math
import os
import urllib.parse
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from maskdetect import annotations, facecrops, images, moves, records

log = logging.getLogger(__name__)

MANUAL_BOX_FIELDS = ["source", "class", "x1", "y1", "x2", "y2"]


def _link(target: str | Path, page_dir: Path) -> str:
    return urllib.parse.quote(Path(os.path.relpath(Path(target).resolve(), page_dir.resolve())).as_posix())


def _tile(row: dict, page_dir: Path, verdict: str) -> str:
    name = Path(row["crop"]).name
    return (
        f'<figure class="tile" data-crop="{html.escape(name)}" data-verdict="{verdict}">'
        f'<img loading="lazy" src="{_link(row["crop"], page_dir)}" alt="{html.escape(name)}">'
        f'<figcaption>{float(row["confidence"]):.3f} {html.escape(row["detector"])}'
        f' <a href="{_link(row["source"], page_dir)}" target="_blank">source</a></figcaption></figure>'
    )


def _suspect_tile(row: dict, output: Path, page_dir: Path, class_names: list[str]) -> str:
    crop = output / row["crop"]
    name = crop.name
    options = "".join(f'<option value="{html.escape(other)}">{html.escape(other)}</option>'
                      for other in class_names if other != row["class"])
    source = f' <a href="{_link(row["source"], page_dir)}" target="_blank">source</a>' if row.get("source") else ""
    several = f", 1 of {row['faces_in_photo']} faces" if int(row.get("faces_in_photo") or 1) > 1 else ""
    return (
        f'<figure class="tile" data-crop="{html.escape(name)}" data-verdict="keep">'
        f'<img loading="lazy" src="{_link(crop, page_dir)}" alt="{html.escape(name)}">'
        f'<figcaption>p={float(row["label_probability"]):.2f}, models: {html.escape(row["suggested"])}{several}'
        f'{source}<br><select class="move" title="move this crop to another class"><option value="">move to'
        f'&hellip;</option>{options}</select></figcaption></figure>'
    )


def suspects_by_class(output: Path) -> tuple[dict[str, list[dict]], int]:
    """The disputed crops of ``<output>/suspects.csv`` per class, lowest label probability first, and how
    many of them no longer exist (moved or deleted by hand since they were scored)."""
    by_class: dict[str, list[dict]] = defaultdict(list)
    gone = 0
    for row in records.read_rows(Path(output) / facecrops.SUSPECTS):
        if not row.get("reason"):
            continue
        crop = Path(output) / row["crop"]
        if not crop.is_file() or crop.parent.name != row["class"]:
            gone += 1
            continue
        by_class[row["class"]].append(row)
    for rows in by_class.values():
        rows.sort(key=lambda row: float(row["label_probability"]))
    return by_class, gone


def _no_face_block(row: dict, page_dir: Path) -> str:
    source = row["source"]
    return (
        f'<div class="draw" data-source="{html.escape(source)}" data-class="{html.escape(row["class"])}">'
        f'<div class="stage"><img src="{_link(source, page_dir)}" alt="{html.escape(Path(source).name)}">'
        f'<canvas></canvas></div><p><a href="{_link(source, page_dir)}" target="_blank">'
        f"{html.escape(Path(source).name)}</a> <button class=\"undo\">undo last box</button>"
        f' <span class="count">0 boxes</span></p></div>'
    )


_STYLE = """
body{font-family:system-ui,sans-serif;margin:1em;background:#fafafa}
.grid{display:flex;flex-wrap:wrap;gap:4px}
.tile{margin:0;width:112px;cursor:pointer;border:3px solid transparent;background:#fff}
.tile img{width:112px;height:112px;display:block}
.tile figcaption{font-size:11px;padding:1px}
.tile[data-verdict=reject]{border-color:#d00;opacity:.55}
.tile[data-verdict=accept]{border-color:#0a0}
.tile[data-verdict=move]{border-color:#06c}
.tile select{font-size:11px;max-width:108px}
.draw{display:inline-block;margin:4px;vertical-align:top}
.stage{position:relative;display:inline-block}
.stage img{max-width:480px;max-height:480px;display:block}
.stage canvas{position:absolute;left:0;top:0;cursor:crosshair}
.bar{position:sticky;top:0;background:#fff;padding:6px;border-bottom:1px solid #ccc;z-index:2}
"""

_SCRIPT = """
const CLASS = document.body.dataset.class;
function save(name, text, type) {
  const link = document.createElement('a');
  link.href = URL.createObjectURL(new Blob([text], {type}));
  link.download = name; link.click();
}
document.querySelectorAll('.tile').forEach(tile => tile.addEventListener('click', event => {
  if (['A', 'SELECT', 'OPTION'].includes(event.target.tagName)) return;
  const wanted = tile.closest('section').dataset.mark;
  tile.dataset.verdict = tile.dataset.verdict === wanted ? 'keep' : wanted;
  update();
}));
document.querySelectorAll('select.move').forEach(select => select.addEventListener('change', () => {
  const tile = select.closest('.tile');
  tile.dataset.verdict = select.value ? 'move' : 'keep';
  tile.dataset.target = select.value;
  update();
}));
const MARKED = '.tile[data-verdict=reject],.tile[data-verdict=accept],.tile[data-verdict=move]';
function update() {
  document.getElementById('marked').textContent = document.querySelectorAll(MARKED).length;
  let boxes = 0; document.querySelectorAll('.draw').forEach(d => boxes += d.boxes.length);
  document.getElementById('boxes').textContent = boxes;
}
document.getElementById('save-verdicts').onclick = () => {
  const lines = [...document.querySelectorAll(MARKED)].map(t => t.dataset.verdict === 'move'
    ? 'move ' + t.dataset.crop + ' => ' + t.dataset.target : t.dataset.verdict + ' ' + t.dataset.crop);
  save('review_' + CLASS + '.txt', lines.join('\\n') + '\\n', 'text/plain');
};
function csvField(text) { return '"' + String(text).replace(/"/g, '""') + '"'; }
document.getElementById('save-boxes').onclick = () => {
  const rows = ['source,class,x1,y1,x2,y2'];
  document.querySelectorAll('.draw').forEach(d => d.boxes.forEach(b =>
    rows.push([csvField(d.dataset.source), csvField(d.dataset.class), ...b.map(Math.round)].join(','))));
  save('manual_boxes_' + CLASS + '.csv', rows.join('\\n') + '\\n', 'text/csv');
};
document.querySelectorAll('.draw').forEach(block => {
  const img = block.querySelector('img'), canvas = block.querySelector('canvas');
  const context = canvas.getContext('2d');
  block.boxes = [];
  let start = null;
  const scale = () => img.naturalWidth / img.clientWidth;
  function redraw(extra) {
    canvas.width = img.clientWidth; canvas.height = img.clientHeight;
    context.strokeStyle = '#0f0'; context.lineWidth = 2;
    const s = scale();
    [...block.boxes, ...(extra ? [extra] : [])].forEach(b =>
      context.strokeRect(b[0] / s, b[1] / s, (b[2] - b[0]) / s, (b[3] - b[1]) / s));
    block.querySelector('.count').textContent = block.boxes.length + ' boxes';
  }
  function point(event) { const s = scale(); return [event.offsetX * s, event.offsetY * s]; }
  function box(a, b) {
    return [Math.min(a[0], b[0]), Math.min(a[1], b[1]), Math.max(a[0], b[0]), Math.max(a[1], b[1])];
  }
  canvas.addEventListener('mousedown', e => { start = point(e); });
  canvas.addEventListener('mousemove', e => { if (start) redraw(box(start, point(e))); });
  canvas.addEventListener('mouseup', e => {
    if (!start) return;
    const b = box(start, point(e)); start = null;
    if (b[2] - b[0] > 4 && b[3] - b[1] > 4) block.boxes.push(b);
    redraw(); update();
  });
  block.querySelector('.undo').onclick = () => { block.boxes.pop(); redraw(); update(); };
  if (img.complete) redraw(); else img.addEventListener('load', () => redraw());
});
update();
document.body.dataset.ready = 'yes';
"""


def write_sheets(output: Path, logs: Path) -> list[Path]:
    """One HTML contact sheet per class under ``<logs>/review/``; returns their paths."""
    page_dir = Path(logs) / "review"
    page_dir.mkdir(parents=True, exist_ok=True)
    by_class: dict[str, dict[str, list[dict]]] = defaultdict(lambda: {"auto": [], "low": [], "none": []})
    for row in records.read_rows(output / facecrops.MANIFEST):
        if Path(row["crop"]).exists():
            by_class[row["class"]]["low" if row["kind"] == facecrops.LOW_CONFIDENCE else "auto"].append(row)
    for row in records.read_rows(output / facecrops.SOURCES):
        if row["status"] == "no_face" and Path(row["source"]).exists():
            by_class[row["class"]]["none"].append(row)
    disputed, gone = suspects_by_class(output)
    if gone:
        log.info("%d suspects of suspects.csv no longer exist where they were scored: left out of the sheets", gone)
    class_names = [folder.name for folder in images.class_dirs(output)]
    pages = []
    for class_name in sorted({*by_class, *disputed}):
        groups = by_class[class_name]
        for key in ("auto", "low"):
            groups[key].sort(key=lambda row: float(row["confidence"]))
        page = page_dir / f"{class_name}.html"
        tiles = "".join(_tile(row, page_dir, "keep") for row in groups["auto"])
        low = "".join(_tile(row, page_dir, "keep") for row in groups["low"])
        blocks = "".join(_no_face_block(row, page_dir) for row in groups["none"])
        suspect_tiles = "".join(_suspect_tile(row, output, page_dir, class_names) for row in disputed[class_name])
        suspects_section = (
            f"<section data-mark=\"reject\" id=\"suspects\"><h2>Suspects: crops the models say are not "
            f"{html.escape(class_name)}, least likely first ({len(disputed[class_name])})</h2><p><small>Click to "
            f"reject, or pick the class a crop belongs to.</small></p>"
            f"<div class=\"grid\">{suspect_tiles}</div></section>" if disputed[class_name] else "")
        records.write_whole(  # a full disk leaves the earlier sheet whole
            page,
            f"<!doctype html><html><head><meta charset=\"utf-8\"><title>review: {html.escape(class_name)}</title>"
            f"<style>{_STYLE}</style></head><body data-class=\"{html.escape(class_name)}\">"
            f"<div class=\"bar\"><b>{html.escape(class_name)}</b>: {len(groups['auto'])} faces, "
            f"{len(groups['low'])} low-confidence, {len(groups['none'])} photos with no face. "
            f"Marked: <span id=\"marked\">0</span> "
            f"<button id=\"save-verdicts\">download verdicts</button> "
            f"Boxes drawn: <span id=\"boxes\">0</span> <button id=\"save-boxes\">download boxes</button>"
            f"<br><small>Click a face that is not a face (or wrongly cropped) to reject it; click a "
            f"low-confidence face to accept it. Then: <code>process_faces.py --apply-review "
            f"review_{html.escape(class_name)}.txt</code>. Drag boxes over faces in the photos below, then "
            f"<code>process_faces.py --manual-boxes manual_boxes_{html.escape(class_name)}.csv</code>.</small></div>"
            f"{suspects_section}"
            f"<section data-mark=\"reject\"><h2>Faces, lowest confidence first ({len(groups['auto'])})</h2>"
            f"<div class=\"grid\">{tiles}</div></section>"
            f"<section data-mark=\"accept\"><h2>Low confidence, not in the training set unless accepted "
            f"({len(groups['low'])})</h2><div class=\"grid\">{low}</div></section>"
            f"<section><h2>No face found ({len(groups['none'])}): drag a box over each face</h2>{blocks}</section>"
            f"<script>{_SCRIPT}</script></body></html>",
        )
        pages.append(page)
    return pages


MOVE = "move:"  # a verdict "move:<class>": the crop belongs to that class


def read_verdicts(path: Path) -> dict[str, str]:
    """``reject NAME`` / ``accept NAME`` / ``move NAME => CLASS`` lines (a bare name means reject) ->
    {crop file name: verdict}, a move as ``"move:CLASS"``."""
    verdicts = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        verdict, _, name = line.partition(" ")
        if verdict == "move":
            name, arrow, target = name.rpartition(" => ")
            if not arrow or not target.strip():
                raise ValueError(f"{path}:{number}: a move names its class: 'move NAME => CLASS', not {line!r}")
            verdict = MOVE + target.strip()
        elif verdict not in ("reject", "accept"):
            verdict, name = "reject", line
        name = Path(name.strip()).name
        if not name:
            raise ValueError(f"{path}:{number}: no crop name in {line!r}")
        verdicts[name] = verdict
    return verdicts


def relabel(output: Path, verdicts: dict[str, str], logs: Path) -> dict[str, int]:
    """Carry out the ``move:<class>`` verdicts: each crop goes from its class folder to the one the reviewer
    picked, journaled under ``<logs>/preprocess/renames.csv`` before it moves (``undo_relabels`` puts it
    back), and its ``faces.csv`` row follows. A crop that is no longer in any class folder (moved or deleted
    by hand since the sheet was written) is skipped and counted."""
    output = Path(output).resolve()
    classes = {folder.name for folder in images.class_dirs(output)}
    counts = {"moved": 0, "gone": 0}
    planned, taken = [], {name: {path.name for path in (output / name).iterdir()} for name in classes}
    for name, verdict in sorted(verdicts.items()):
        if not verdict.startswith(MOVE):
            continue
        target_class = verdict[len(MOVE):]
        if target_class not in classes:
            raise ValueError(f"cannot move {name} to {target_class!r}: no class folder of that name in {output} "
                             f"(classes: {', '.join(sorted(classes))})")
        found = [name_class for name_class in sorted(classes) if (output / name_class / name).is_file()]
        if not found:
            log.warning("%s is in no class folder of %s any more: not moved", name, output)
            counts["gone"] += 1
            continue
        if found[0] == target_class:
            continue
        new_name = moves.free_name(name, taken[target_class])
        taken[target_class].add(new_name)
        planned.append(moves.Move(f"{found[0]}/{name}", f"{target_class}/{new_name}", moves.RELABEL,
                                  reason="review", detail=f"{found[0]} -> {target_class}"))
    if planned:
        moves.apply_moves(output, planned, logs, stage="review")
        _follow_in_manifest(output, {str(output / move.original): output / move.new for move in planned})
    counts["moved"] = len(planned)
    return counts


def undo_relabels(output: Path, logs: Path) -> int:
    """Put back every crop the review moved to another class since the last undo; returns how many."""
    output = Path(output).resolve()
    rows = [row for row in records.read_rows(moves.journal_path(logs)) if row["input"] == str(output)]
    pending = [row for row in moves.since_last_undo(rows) if row["action"] == moves.RELABEL]
    counts = moves.undo(output, logs)
    back = {str(output / row["new"]): output / row["original"] for row in pending
            if (output / row["original"]).is_file()}
    _follow_in_manifest(output, back)
    return counts["restored"]


def _follow_in_manifest(output: Path, moved: dict[str, Path]) -> None:
    """``faces.csv``'s rows of moved crops take their new path and class (the folder they are in now)."""
    manifest = output / facecrops.MANIFEST
    rows = records.read_rows(manifest)
    changed = False
    for row in rows:
        new = moved.get(str(Path(row["crop"]).resolve())) if row.get("crop") else None
        if new is not None:
            row.update(crop=str(new.resolve()), **{"class": new.parent.name})
            changed = True
    if changed:
        records.replace_rows(manifest, facecrops.FACE_FIELDS, rows)


def apply_verdicts(output: Path, verdicts: dict[str, str], logs: Path | None = None) -> dict[str, int]:
    """Move rejected crops to ``<output>/_rejected/<class>/`` and accepted low-confidence crops into
    their class folder, and carry out the moves to another class (:func:`relabel`, journaled under ``logs``);
    crops deleted by hand count as rejected. ``faces.csv`` is rewritten to match. An accept whose crop's name is
    taken in its class folder is refused (ValueError) before anything moves."""
    manifest = output / facecrops.MANIFEST
    rows = records.read_rows(manifest)
    # Every refusal comes before the first move: a refused sheet leaves the folder as it was.
    for row in rows:
        crop = Path(row["crop"])
        target = output / row["class"] / crop.name
        if (verdicts.get(crop.name) == "accept" and row["kind"] == facecrops.LOW_CONFIDENCE and crop.exists()
                and target.exists()):
            raise ValueError(f"cannot accept {crop.name}: {target} exists; rename or remove it, then apply the "
                             "verdicts again (nothing was moved)")
    moved = {"moved": 0, "gone": 0}
    if any(verdict.startswith(MOVE) for verdict in verdicts.values()):
        if logs is None:
            raise ValueError("moving crops to another class needs a logs folder for the journal")
        moved = relabel(output, verdicts, logs)
        verdicts = {name: verdict for name, verdict in verdicts.items() if not verdict.startswith(MOVE)}
        rows = records.read_rows(manifest)
    counts = {"rejected": 0, "accepted": 0, "missing": 0, "unknown": 0, **moved}
    known = {Path(row["crop"]).name for row in rows}
    for name in sorted(set(verdicts) - known):
        log.warning("%s is not a crop in %s; ignored", name, manifest)
        counts["unknown"] += 1
    kept_rows, rejected_rows = [], []
    for row in rows:
        crop = Path(row["crop"])
        verdict = verdicts.get(crop.name)
        if not crop.exists():
            log.info("%s was deleted by hand: recorded as rejected", crop.name)
            rejected_rows.append({**row, "crop": "", "detail": f"deleted by hand: {crop}"})
            counts["missing"] += 1
        elif verdict == "reject":
            target = output / facecrops.REJECTED_DIR / row["class"] / crop.name
            taken = {p.name for p in target.parent.iterdir()} if target.parent.is_dir() else set()
            target = target.with_name(moves.free_name(crop.name, taken))
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(crop, target)
            rejected_rows.append({**row, "crop": str(target), "detail": "rejected in review"})
            counts["rejected"] += 1
        elif verdict == "accept" and row["kind"] == facecrops.LOW_CONFIDENCE:
            target = output / row["class"] / crop.name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(crop, target)
            kept_rows.append({**row, "crop": str(target.resolve()), "kind": facecrops.AUTO})
            counts["accepted"] += 1
        else:
            kept_rows.append(row)
    if rejected_rows:
        records.append_rows(output / facecrops.REJECTED_DIR / facecrops.REJECTED_RECORD,
                            [*facecrops.FACE_FIELDS, "detail"], rejected_rows)
    if len(kept_rows) != len(rows) or counts["accepted"]:
        records.replace_rows(manifest, facecrops.FACE_FIELDS, kept_rows)
    return counts


def read_manual_boxes(path: Path) -> list[dict]:
    """Rows of a manual-box CSV (source, class, x1, y1, x2, y2), validated: each a dict of ``source``, ``class``,
    ``box`` (four numbers) and ``where`` (the file and row, for messages)."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = set(MANUAL_BOX_FIELDS) - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path} lacks the column(s) {sorted(missing)}; expected {MANUAL_BOX_FIELDS}")
        rows = []
        for number, row in enumerate(reader, 2):
            # DictReader fills the cells a short row lacks with None
            short = [key for key in MANUAL_BOX_FIELDS if row.get(key) is None]
            if short:
                raise ValueError(f"{path}:{number}: the row has no {', '.join(short)}; each row needs "
                                 f"{', '.join(MANUAL_BOX_FIELDS)}")
            try:
                box = [float(row[key]) for key in ("x1", "y1", "x2", "y2")]
            except ValueError as error:
                raise ValueError(f"{path}:{number}: {error}") from None
            if not all(math.isfinite(value) for value in box):
                raise ValueError(f"{path}:{number}: the box {box} is not four finite numbers")
            if box[2] <= box[0] or box[3] <= box[1]:
                raise ValueError(f"{path}:{number}: the box {box} is empty")
            rows.append({"source": row["source"], "class": row["class"], "box": box, "where": f"{path}:{number}"})
    return rows


class _ManualFace:
    """A box the reviewer drew, shaped like a detector's face."""

    def __init__(self, box: list[float]) -> None:
        self.x1, self.y1, self.x2, self.y2 = box
        self.confidence, self.landmarks, self.detector = 1.0, None, "manual"
        self.width, self.height = self.x2 - self.x1, self.y2 - self.y1


def crop_manual_boxes(output: Path, boxes: list[dict], settings: facecrops.CropSettings,
                      folders: Sequence[Path] = ()) -> int:
    """Crop the drawn boxes with the detector's geometry into the class folders; recorded as manual.

    A box is cut only from a photo the review sheets can show: one the face stage read into ``output`` (a row
    of its sources.csv), or one inside ``output`` or ``folders`` (the photo folders the stage reads), with
    ``..`` and links resolved; and only into a class folder of ``output`` (a plain folder name). Each photo
    refused, missing or unreadable is one warning line naming its rows; the other boxes are cut.
    """
    by_source: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in boxes:
        by_source[(row["source"], row["class"])].append(row)
    existing = {row["crop"] for row in records.read_rows(output / facecrops.MANIFEST)}
    read_before = {str(Path(row["source"]).resolve()) for row in records.read_rows(output / facecrops.SOURCES)}
    written = 0
    for (source_text, class_name), rows in by_source.items():
        where = rows[0].get("where", "manual boxes") + (f" and {len(rows) - 1} more rows" if len(rows) > 1 else "")
        source = Path(source_text)
        if not annotations.valid_label(class_name):
            log.warning("%s: the class %r cannot be a class folder; its boxes are skipped (name a class folder of "
                        "%s)", where, class_name, output)
            continue
        if str(source.resolve()) not in read_before and not images.inside(source, [output, *folders]):
            log.warning("%s: the photo %s is neither one this stage read nor inside %s, so it is not read; its boxes "
                        "are skipped (draw them on the review sheets, which show the photos this stage read)",
                        where, source, " or ".join(str(folder) for folder in (*folders, output)))
            continue
        if not source.exists():
            log.warning("%s: %s does not exist; its boxes are skipped", where, source)
            continue
        try:
            rgb = images.load_rgb(source, settings.max_pixels)
        except images.DECODE_ERRORS as error:
            log.warning("%s: %s cannot be read (%s); its boxes are skipped", where, source, error)
            continue
        sha256 = images.sha256_file(source)
        cut = facecrops.save_faces(rgb, [_ManualFace(row["box"]) for row in rows], source.resolve(), sha256,
                                   class_name, output, settings, lambda face: facecrops.MANUAL)
        new_rows = [row for row in cut if row["crop"] not in existing]
        records.append_rows(output / facecrops.MANIFEST, facecrops.FACE_FIELDS, new_rows)
        written += len(cut)
    return written
