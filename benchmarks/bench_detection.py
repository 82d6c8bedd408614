"""Face-detection recall, precision and speed: the face stage's defaults against the stage before them and MTCNN.

Data: a folder with ``boxes.csv`` (image, width, height, label, xmin, ymin, xmax, ymax; labels
mask / without_mask / incorrect_mask) and ``images/``. A ground-truth face counts as found when a
kept box has IoU >= 0.4 with it. Recall is given per class for faces whose short side is at least
--min-size px, and per face-size bucket (short side <32, 32-64, 64-128, >=128 px). Precision is
against the labels: the share of kept boxes that match some labelled face (any size). Unlabelled
faces exist in these photos, so an unmatched box is not necessarily a non-face: a contact sheet of
the defaults' unmatched boxes is written under --out for a person to judge.

The baseline, measured in the same run, is the face stage as it was before its own face finder (issue 16): the
three proposal sources ssd, blazeface and mtcnn_below_threshold with the fusion weights of
``benchmarks/fusion_before_facefinder.json`` (fitted on this very set, so in-sample), a second-stage threshold
of 0.25 and no face verifier; ``--baseline-*`` change it. Why each labelled face the defaults still miss was
missed is written too (``missed.csv``: boxed off, below the threshold, suppressed, vetoed or not proposed; see
``why_missed``), with a contact sheet per class (``missed_mask_*.png``, ``missed_without_mask_*.png``,
``missed_incorrect_mask_*.png``), each face captioned with its row in missed.csv and why.

Timing is detection only (decoding excluded), by default on one thread (TensorFlow, OpenCV,
TFLite, OMP), photos in sorted-name order.

    .venv/bin/python -m benchmarks.bench_detection                       # all 660 photos, ~10 min
    .venv/bin/python -m benchmarks.bench_detection --limit 100 --out /tmp/bench_det
    .venv/bin/python -m benchmarks.bench_detection --first-stage         # also our MTCNN alone
    .venv/bin/python -m benchmarks.bench_detection --fusion my_fusion.json --no-plain  # refitted weights
    .venv/bin/python -m benchmarks.bench_detection --thresholds 0.2 0.4 0.5  # the defaults at other thresholds

With ``--thresholds``, the defaults run at the lowest of them (or the default, if lower) and are scored at each:
a second-stage face kept at a threshold is kept at any lower one, and only faces of higher probability can
suppress it, so keeping the boxes of at least a probability gives exactly what that threshold would keep.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from maskdetect.face import DetectorSettings, FaceDetector, KeepRule
from maskdetect.face.boxes import iou as box_iou

from benchmarks.common import (
    BUCKETS,
    CLASSES,
    DEFAULT_DETECTION,
    MATCH_IOU,
    MIN_FACE,
    Detections,
    load_photo,
    load_truth,
    photo_sizes,
    require_detection_set,
    score,
    set_threads,
)

BASELINE_FUSION = Path(__file__).resolve().parent / "fusion_before_facefinder.json"
BASELINE_SOURCES = ("ssd", "blazeface", "mtcnn_below_threshold")
BASELINE_THRESHOLD = 0.25


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DETECTION, help="folder with boxes.csv and images/")
    parser.add_argument("--limit", type=int, default=0, help="only the first N photos (sorted by name); 0: all")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "maskdetect_bench_detection",
                        help="folder for the contact sheet, unmatched.csv and summary.json")
    parser.add_argument("--threads", type=int, default=1, help="threads for TensorFlow/OpenCV/TFLite (default 1)")
    parser.add_argument("--min-size", type=int, default=MIN_FACE, help="short side (px) of faces counted in recall")
    parser.add_argument("--iou", type=float, default=MATCH_IOU, help="IoU for a box to match a labelled face")
    parser.add_argument("--first-stage", action="store_true",
                        help="also run maskdetect's detector with second_stage=False")
    parser.add_argument("--verifier-threshold", type=float, default=None, metavar="P",
                        help="run the defaults with the face verifier at P (default: the face stage's default)")
    parser.add_argument("--without-verifier", action="store_true",
                        help="also run the defaults without the face verifier")
    parser.add_argument("--no-plain", action="store_true", help="skip plain MTCNN")
    parser.add_argument("--fusion", type=Path, default=None,
                        help="fusion weights file for the defaults' second stage (default: the shipped one)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the stage before the face finder")
    parser.add_argument("--baseline-fusion", type=Path, default=BASELINE_FUSION, help="(default %(default)s)")
    parser.add_argument("--baseline-sources", nargs="+", default=list(BASELINE_SOURCES),
                        help="(default %(default)s)")
    parser.add_argument("--baseline-threshold", type=float, default=BASELINE_THRESHOLD,
                        help="its second-stage threshold (default %(default)s)")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[], metavar="P",
                        help="also score the defaults at these second-stage thresholds")
    parser.add_argument("--sheet-max", type=int, default=600, help="most crops on the contact sheet")
    args = parser.parse_args(argv)
    if args.limit < 0 or args.threads < 1 or args.min_size < 0 or not 0 < args.iou <= 1:
        parser.error("--limit >= 0, --threads >= 1, --min-size >= 0 and 0 < --iou <= 1")
    if not all(0 < threshold <= 1 for threshold in args.thresholds):
        parser.error("--thresholds are probabilities in (0, 1]")
    if args.verifier_threshold is not None and not 0 < args.verifier_threshold <= 1:
        parser.error("--verifier-threshold is a probability in (0, 1]")
    require_detection_set(parser, args.data, "--data")
    for flag, path in (("--fusion", args.fusion), ("--baseline-fusion", args.baseline_fusion)):
        if path is not None and not path.is_file():
            parser.error(f"{flag} {path} is not a file")
    return args


# A kept box at this IoU or more with a missed face (but under --iou) is on it, boxed off.
BOXED_OFF_IOU = 0.2


def why_missed(detector: FaceDetector, kept: Detections, missed: list[tuple[str, np.ndarray, str]], data: Path,
               match_iou: float, threshold: float) -> list[dict]:
    """Why each missed face (photo, box, label) was missed, as far as the face stage tells:

    - ``boxed off``: a kept box overlaps it at IoU 0.2 or more, but under ``match_iou`` (``kept_by`` names the
      detector that kept it);
    - ``below threshold``: a proposal group on it, at ``match_iou`` or more, has a fused probability under
      ``threshold`` (the one ``kept``'s boxes were kept at) and a verifier score under the detector's verifier
      threshold;
    - ``suppressed``: such a group reaches a threshold but overlaps a likelier face;
    - ``vetoed``: such a group reaches ``threshold`` but the face verifier vetoes it (``verifier_veto``);
    - ``not proposed``: no group on it passed the gates.
    """
    sizes = photo_sizes(data)
    # the stage's own rule decides whether a group would be kept, at the threshold kept's boxes were kept at
    judge = KeepRule.from_settings(dataclasses.replace(detector.settings, second_stage_threshold=threshold))
    rows, groups_of = [], {}
    for photo, box, label in missed:
        if photo not in groups_of:
            rgb = load_photo(data / "images" / photo, *sizes[photo])
            groups = detector.proposal_groups(rgb)
            _, scores, highest = detector.verify(rgb, np.array([group_box for group_box, _ in groups]))
            groups_of[photo] = [(group_box, detector.fused_probability(features), score, high)
                                for (group_box, features), score, high in zip(groups, scores, highest, strict=True)]
        boxes = kept.boxes[photo]
        overlaps = box_iou(box[None], boxes)[0] if len(boxes) else np.zeros(0)
        kept_iou = float(overlaps.max(initial=0.0))
        on_face = [group[1:] for group in groups_of[photo]
                   if box_iou(box[None], np.asarray(group[0])[None, :4])[0, 0] >= match_iou]
        probability = max((probability for probability, *_ in on_face), default=float("nan"))
        score = max((score for _, score, _ in on_face), default=float("nan"))
        if kept_iou >= BOXED_OFF_IOU:
            reason = "boxed off"
        elif on_face:
            kept_at = any(judge.confidence(*group) is not None for group in on_face)
            reason = "suppressed" if kept_at else "vetoed" if probability >= threshold else "below threshold"
        else:
            reason = "not proposed"
        rows.append({"image": photo, "label": label, "x1": box[0], "y1": box[1], "x2": box[2], "y2": box[3],
                     "reason": reason, "kept_iou": round(kept_iou, 3),
                     "kept_by": kept.source[photo][int(np.argmax(overlaps))] if kept_iou >= BOXED_OFF_IOU else "",
                     "group_probability": round(probability, 3), "verifier_score": round(score, 3)})
    return rows


def baseline_detector(args: argparse.Namespace) -> FaceDetector:
    """The face stage as it was before its face finder: no face verifier either (it came after the finder)."""
    return FaceDetector(num_threads=args.threads, fusion=str(args.baseline_fusion),
                        proposal_sources=tuple(args.baseline_sources), second_stage_threshold=args.baseline_threshold,
                        verifier_threshold=None)


def run_detector(name: str, detect, photos: list[str], data: Path,
                 truth: dict[str, list[tuple[str, np.ndarray]]]) -> Detections:
    result = Detections(name)
    sizes = photo_sizes(data)
    start = time.perf_counter()
    for i, photo in enumerate(photos):
        width, height = sizes[photo]
        rgb = load_photo(data / "images" / photo, width, height)
        t0 = time.perf_counter()
        rows = detect(rgb)
        result.add(photo, rows, time.perf_counter() - t0)
        if (i + 1) % 100 == 0:
            print(f"  {name}: {i + 1}/{len(photos)} photos, {np.mean(result.seconds):.3f} s/photo so far",
                  flush=True)
    print(f"  {name}: done in {time.perf_counter() - start:.0f} s", flush=True)
    return result


def print_result(r: dict, min_size: int) -> None:
    rec = r["recall"]
    print(f"\n== {r['name']}  ({r['photos']} photos)")
    print(f"recall (faces >= {min_size} px): mask {rec['mask']:.1%} ({r['counted']['mask']})  "
          f"without_mask {rec['without_mask']:.1%} ({r['counted']['without_mask']})  "
          f"incorrect_mask {rec['incorrect_mask']:.1%} ({r['counted']['incorrect_mask']})")
    print("recall by face short side:  " + "  ".join(f"{name:>14s}" for _, _, name in BUCKETS))
    for c in CLASSES:
        cells = []
        for _, _, name in BUCKETS:
            f, t = r["buckets"][c][name]
            cells.append(f"{(f / t if t else float('nan')):6.1%} ({f:3d}/{t:3d})" if t else f"{'-':>14s}")
        print(f"  {c:24s}  " + "  ".join(cells))
    print(f"kept boxes {r['kept']}, matching a label {r['matched']}, unmatched {r['unmatched']}, "
          f"precision vs labels {r['precision']:.1%}, photos with no box {r['photos_without_boxes']}")
    if len(r["by_detector"]) > 1:
        parts = [f"{k} {v['kept']} kept / {v['kept'] - v['matched']} unmatched"
                 for k, v in sorted(r["by_detector"].items())]
        print("  by detector: " + ", ".join(parts))
    print(f"speed: {r['s_per_photo']:.3f} s/photo (p90 {r['s_per_photo_p90']:.3f}), {r['photos_per_s']:.2f} photos/s")


def contact_sheet(unmatched: list, data: Path, out: Path, limit: int, cell: int = 112, cols: int = 12,
                  prefix: str = "unmatched", captions: list[str] | None = None) -> list[Path]:
    """PNG sheets of crops (box plus 15 % margin) of (photo, box, confidence, detector) rows, each captioned with
    its number in the list (as in unmatched.csv), M or S (MTCNN or second stage) and its confidence; or with
    ``captions``, one per row."""
    from PIL import Image, ImageDraw

    paths = []
    per_sheet = cols * 10
    shown = unmatched[:limit]
    for start in range(0, len(shown), per_sheet):
        chunk = shown[start:start + per_sheet]
        rows = (len(chunk) + cols - 1) // cols
        sheet = Image.new("RGB", (cols * cell, rows * (cell + 14)), "white")
        draw = ImageDraw.Draw(sheet)
        for k, (photo, box, conf, src) in enumerate(chunk):
            with Image.open(data / "images" / photo) as image:
                image = image.convert("RGB")
                w, h = box[2] - box[0], box[3] - box[1]
                crop = image.crop((int(box[0] - 0.15 * w), int(box[1] - 0.15 * h),
                                   int(box[2] + 0.15 * w), int(box[3] + 0.15 * h)))
            x, y = (k % cols) * cell, (k // cols) * (cell + 14)
            sheet.paste(crop.resize((cell, cell)), (x, y))
            caption = captions[start + k] if captions else f"{start + k} {'M' if src == 'mtcnn' else 'S'} {conf:.2f}"
            draw.text((x + 2, y + cell), caption, fill="black")
        path = out / f"{prefix}_{start // per_sheet + 1:02d}.png"
        sheet.save(path)
        paths.append(path)
    return paths


def verifier_added(unmatched: list, unverified: list, same_iou: float = 0.9) -> list:
    """The unmatched boxes of one run that the run without the verifier does not have (none of its unmatched
    boxes in the same photo at IoU ``same_iou`` or more): the verifier's additions on no label."""
    by_photo: dict[str, list] = {}
    for photo, box, *_ in unverified:
        by_photo.setdefault(photo, []).append(box)
    return [item for item in unmatched
            if not by_photo.get(item[0]) or box_iou(np.asarray(item[1])[None], np.asarray(by_photo[item[0]])).max()
            < same_iou]


def why_line(rows: list[dict], threshold: float) -> str:
    """The reasons of ``why_missed``'s rows counted, in one line."""
    counts = {reason: sum(row["reason"] == reason for row in rows)
              for reason in ("boxed off", "below threshold", "suppressed", "vetoed", "not proposed")}
    below = [row["group_probability"] for row in rows if row["reason"] == "below threshold"]
    return (f"{counts['boxed off']} boxed off, {counts['below threshold']} with a proposal group on them under "
            f"{threshold}" + (f" (median probability {np.median(below):.2f})" if below else "")
            + f", {counts['suppressed']} suppressed by a likelier face, {counts['vetoed']} vetoed by the verifier, "
            f"{counts['not proposed']} not proposed")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    set_threads(args.threads)
    truth = load_truth(args.data)
    photos = sorted(truth)
    if args.limit:
        photos = photos[:args.limit]
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"{len(photos)} photos from {args.data}, {args.threads} thread(s), IoU >= {args.iou}, "
          f"recall on faces with short side >= {args.min_size} px")

    results = []
    t0 = time.perf_counter()
    # run at the lowest threshold asked for; the others are the same boxes, filtered (see the docstring)
    default_threshold = DetectorSettings().second_stage_threshold
    verifying = {} if args.verifier_threshold is None else {"verifier_threshold": args.verifier_threshold}
    ours = FaceDetector(num_threads=args.threads, fusion=args.fusion,
                        second_stage_threshold=min([default_threshold, *args.thresholds]), **verifying)
    print(f"defaults: {ours.settings} (loaded in {time.perf_counter() - t0:.1f} s)")

    def detect_ours(detector):
        def run(rgb):
            return [(f.x1, f.y1, f.x2, f.y2, f.confidence, f.detector) for f in detector.detect(rgb)]
        return run

    defaults = run_detector("maskdetect defaults", detect_ours(ours), photos, args.data, truth)
    verifier = "" if ours.settings.verifier_threshold is None else f", verifier at {ours.settings.verifier_threshold:g}"
    at_default = defaults.filtered(f"maskdetect defaults (second stage at {default_threshold}{verifier})",
                                   default_threshold, "second_stage")
    results.append(score(at_default, truth, args.min_size, args.iou))
    if not args.no_baseline:
        det = run_detector(f"baseline: {'+'.join(args.baseline_sources)}, {args.baseline_fusion.name}, "
                           f"threshold {args.baseline_threshold}, no verifier", detect_ours(baseline_detector(args)),
                           photos, args.data, truth)
        results.append(score(det, truth, args.min_size, args.iou))
    if args.without_verifier:
        unverified = FaceDetector(num_threads=args.threads, fusion=args.fusion, verifier_threshold=None,
                                  second_stage_threshold=default_threshold)
        det = run_detector(f"the defaults without the face verifier (second stage at {default_threshold})",
                           detect_ours(unverified), photos, args.data, truth)
        results.append(score(det, truth, args.min_size, args.iou))
    if args.first_stage:
        first = FaceDetector(second_stage=False)
        det = run_detector("maskdetect second_stage=False", detect_ours(first), photos, args.data, truth)
        results.append(score(det, truth, args.min_size, args.iou))
    if not args.no_plain:
        from mtcnn import MTCNN

        plain = MTCNN()

        def detect_plain(rgb):
            rows = []
            for face in plain.detect_faces(rgb):
                x, y, w, h = face["box"]
                rows.append((x, y, x + w, y + h, float(face["confidence"]), "mtcnn"))
            return rows

        det = run_detector("plain MTCNN (mtcnn 1.0.0 defaults)", detect_plain, photos, args.data, truth)
        results.append(score(det, truth, args.min_size, args.iou))
        results.append(score(det.filtered("plain MTCNN, confidence >= 0.9", 0.9), truth, args.min_size, args.iou))

    curve = [score(defaults.filtered(f"the defaults with the second stage at {threshold}", threshold,
                                     "second_stage"), truth, args.min_size, args.iou)
             for threshold in sorted(set(args.thresholds) - {default_threshold})]
    for r in results + curve:
        print_result(r, args.min_size)
    if args.without_verifier:
        unverified = next(r for r in results if r["name"].startswith("the defaults without the face verifier"))
        print(f"\ndefaults against the defaults without the verifier: mask recall "
              f"{results[0]['recall']['mask'] - unverified['recall']['mask']:+.1%}, without_mask "
              f"{results[0]['recall']['without_mask'] - unverified['recall']['without_mask']:+.1%}, "
              f"{results[0]['kept'] - unverified['kept']:+d} boxes kept, "
              f"{results[0]['s_per_photo'] / unverified['s_per_photo']:.2f}x the seconds per photo")
    if not args.no_baseline:
        base = results[1]
        gain = {label: results[0]["recall"][label] - base["recall"][label] for label in ("mask", "without_mask")}
        print(f"\ndefaults against the baseline: mask recall {gain['mask']:+.1%}, "
              f"without_mask {gain['without_mask']:+.1%}, "
              f"{results[0]['kept'] - base['kept']:+d} boxes kept, "
              f"{results[0]['s_per_photo'] / base['s_per_photo']:.2f}x the seconds per photo")

    unmatched = sorted(results[0]["_unmatched"], key=lambda u: (u[3], -u[2]))
    with open(args.out / "unmatched.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "image", "x1", "y1", "x2", "y2", "confidence", "detector"])
        for k, (photo, box, conf, src) in enumerate(unmatched):
            writer.writerow([k, photo, *(f"{v:.1f}" for v in box), f"{conf:.3f}", src])
    sheets = contact_sheet(unmatched, args.data, args.out, args.sheet_max)
    if args.without_verifier:
        # what the verifier adds that matches no label, for a person to judge apart from what the fusion keeps
        added = verifier_added(unmatched, unverified["_unmatched"])
        with open(args.out / "verifier_added.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["index", "image", "x1", "y1", "x2", "y2", "confidence"])
            for k, (photo, box, conf, _) in enumerate(added):
                writer.writerow([k, photo, *(f"{v:.1f}" for v in box), f"{conf:.3f}"])
        sheets += contact_sheet(added, args.data, args.out, args.sheet_max, prefix="verifier_added")
        print(f"unmatched boxes the verifier adds: {len(added)} -> {args.out / 'verifier_added.csv'}")
    missed = results[0]["_missed"]
    print(f"labelled faces of {args.min_size} px or more that the defaults miss: "
          + ", ".join(f"{sum(label == name for *_, label in missed)} {name}" for name in CLASSES))
    reasons = why_missed(ours, at_default, missed, args.data, args.iou, default_threshold)
    with open(args.out / "missed.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["image", "label", "x1", "y1", "x2", "y2", "reason", "kept_iou",
                                                    "kept_by", "group_probability", "verifier_score"])
        writer.writeheader()
        writer.writerows(reasons)
    for name in CLASSES:
        # a sheet per class, each face captioned with its row in missed.csv (which names the photo) and why
        rows = [(index, row) for index, row in enumerate(reasons) if row["label"] == name]
        sheets += contact_sheet([(row["image"], [row[k] for k in ("x1", "y1", "x2", "y2")], 0.0, "missed")
                                 for _, row in rows], args.data, args.out, args.sheet_max, prefix=f"missed_{name}",
                                captions=[f"{index} {row['reason']}" for index, row in rows])
    for name in CLASSES:
        print(f"  why, {name}: {why_line([row for row in reasons if row['label'] == name], default_threshold)}")
    print(f"  (boxed off: a kept box at IoU {BOXED_OFF_IOU}-{args.iou}; not proposed: no group past the gates) "
          f"-> {args.out / 'missed.csv'}")
    summary = [{k: v for k, v in r.items() if not k.startswith("_")} for r in results + curve]
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    print(f"\nunmatched boxes of the defaults: {len(unmatched)} "
          f"(M = MTCNN, S = second stage; {min(len(unmatched), args.sheet_max)} on the sheets)")
    for path in sheets:
        print(f"contact sheet: {path}")
    print(f"details: {args.out / 'unmatched.csv'}, {args.out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
