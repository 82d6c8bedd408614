"""Face-stage recall, boxes on no label and speed against the stage before the face finder; --ablation; --replay.

Data: a folder with ``boxes.csv`` (image, width, height, label, xmin, ymin, xmax, ymax; labels
mask / without_mask / incorrect_mask) and ``images/``. A ground-truth face counts as found when a
kept box has IoU >= --iou (0.4) with it. Recall is given per class for faces whose short side is at least
--min-size px, and per face-size bucket (short side <20, 20-32, 32-64, 64-128, >=128 px). Precision is
against the labels: the share of kept boxes that match some labelled face (any size). Unlabelled
faces exist in these photos, so an unmatched box is not necessarily a non-face: a contact sheet of
the defaults' unmatched boxes is written under --out for a person to judge.

Measuring (the default). The baseline, measured in the same run, is the face stage before its own face finder:
the three proposal sources ssd, blazeface and mtcnn_below_threshold with the fusion weights of
``benchmarks/fusion_before_facefinder.json`` (fitted on this very set, so in-sample), a second-stage threshold
of 0.25 and no face verifier; ``--baseline-*`` change it. Why each labelled face the defaults still miss was
missed is written too (``missed.csv``: boxed off, below the threshold, suppressed, vetoed or not proposed; see
``why_missed``), with a contact sheet per class (``missed_mask_*.png``, ``missed_without_mask_*.png``,
``missed_incorrect_mask_*.png``), each face captioned with its row in missed.csv and why. Each scored run is a
line of ``results.json`` / ``results.csv`` in --out, beside ``unmatched.csv`` and ``missed.csv``.

With ``--thresholds``, the defaults run at the lowest of them (or the default, if lower) and are scored at each:
a second-stage face kept at a threshold is kept at any lower one, and only faces of higher probability can
suppress it, so keeping the boxes of at least a probability gives exactly what that threshold would keep.

Timing is detection only (decoding excluded), by default on one thread (TensorFlow, OpenCV,
TFLite, OMP), photos in sorted-name order.

Ablation (``--ablation``, :mod:`benchmarks.ablation`): the defaults, then the stage with one proposal source,
BlazeFace pass, the zoomed-in looks or part of the verifier removed at a time, each scored and timed on the same
photos in one run; a variant that changes the fusion's features gets fusion weights refitted on the held-out
photos of --fit-data (wild/), never on the photos scored.

Replaying (``--replay``). The slow part of the face stage (MTCNN, the proposal sources, the zoomed-in looks, the
fusion) runs once per photo and is cached in --cache; the keep/veto decision (``KeepRule.keep``) is then replayed
on the cached proposal groups in seconds at other verifier thresholds (--verifier-thresholds), ways of combining
the verifier's views (--views), veto values (--vetoes) or with another verifier file (--verifier), and scored as
above. The verifier's views are scored anew in each run (a minute), so --verifier compares a retrained verifier on
the very same groups. The row at the stage's defaults is the measuring mode's defaults row; "added" is against the
same groups with no verifier. Each group is scored at its best placement (``faceverifier.PLACEMENTS``), as the
stage does; ``--unplaced`` scores it where it is. Views (``faceverifier.VIEWS``): ``min`` is the stage's rule
(the lowest of the three), ``median`` and ``mean`` the others, ``first`` the plain crop alone. Every row with a
verifier vetoes as the stage does (a face the fusion keeps under 0.5 that no view scores ``verifier_veto``);
``--vetoes`` replays the stage's rule at other veto values. A setting chosen on these photos is chosen on the
evaluation set: confirm it on photos nothing was tuned on (``--data`` a held-out labelled folder) before making
it a default.

    .venv/bin/python -m benchmarks.bench_face_stage                       # all 660 photos, ~10 min
    .venv/bin/python -m benchmarks.bench_face_stage --limit 100 --out /tmp/bench_face_stage
    .venv/bin/python -m benchmarks.bench_face_stage --first-stage         # also our MTCNN alone
    .venv/bin/python -m benchmarks.bench_face_stage --fusion my_fusion.json --no-plain  # refitted weights
    .venv/bin/python -m benchmarks.bench_face_stage --thresholds 0.2 0.4 0.5  # the defaults at other thresholds
    .venv/bin/python -m benchmarks.bench_face_stage --replay              # 660 photos, ~6 min the first time
    .venv/bin/python -m benchmarks.bench_face_stage --replay --verifier my_verifier.keras
    .venv/bin/python -m benchmarks.bench_face_stage --replay --verifier-thresholds 0.8 0.9 0.98 --views min median
    .venv/bin/python -m benchmarks.bench_face_stage --replay --vetoes 0 0.001 0.01
    .venv/bin/python -m benchmarks.bench_face_stage --ablation --limit 200     # each part's worth, ~25 min
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

from benchmarks import ablation
from benchmarks.common import (
    BUCKETS,
    CLASSES,
    DEFAULT_DETECTION,
    MATCH_IOU,
    MIN_FACE,
    Detections,
    default_out,
    load_photo,
    load_truth,
    photo_sizes,
    require_detection_set,
    score,
    set_threads,
    write_results,
)
from maskdetect.face import DetectorSettings, FaceDetector, KeepRule
from maskdetect.face.boxes import iou as box_iou

NAME = "bench_face_stage"
BASELINE_FUSION = Path(__file__).resolve().parent / "fusion_before_facefinder.json"
BASELINE_SOURCES = ("ssd", "blazeface", "mtcnn_below_threshold")
BASELINE_THRESHOLD = 0.25
# A kept box at this IoU or more with a missed face (but under --iou) is on it, boxed off.
BOXED_OFF_IOU = 0.2
MISSED_REASONS = ("boxed off", "below threshold", "suppressed", "vetoed", "not proposed")

CACHE_VERSION = 1
VIEWS = {"min": lambda views: views.min(axis=0), "median": lambda views: np.median(views, axis=0),
         "mean": lambda views: views.mean(axis=0), "first": lambda views: views[0]}
# Flags that only one mode reads (argparse dests).
ABLATION_ONLY = ("fit_data", "variants", "candidates", "choose")
REPLAY_ONLY = ("cache", "verifier", "verifier_thresholds", "views", "vetoes", "unplaced")
MEASURE_ONLY = ("first_stage", "verifier_threshold", "without_verifier", "no_plain", "no_baseline", "baseline_fusion",
                "baseline_sources", "baseline_threshold", "thresholds", "sheet_max")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DETECTION, help="folder with boxes.csv and images/")
    parser.add_argument("--limit", type=int, default=0, help="only the first N photos (sorted by name); 0: all")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"folder for results.json, results.csv, the contact sheets, unmatched.csv and missed.csv "
                             f"(default {default_out(NAME)}; with --replay, its replay/ folder)")
    parser.add_argument("--threads", type=int, default=1, help="threads for TensorFlow/OpenCV/TFLite (default 1)")
    parser.add_argument("--min-size", type=int, default=MIN_FACE, help="short side (px) of faces counted in recall")
    parser.add_argument("--iou", type=float, default=MATCH_IOU, help="IoU for a box to match a labelled face")
    parser.add_argument("--fusion", type=Path, default=None,
                        help="fusion weights file for the defaults' second stage (default: the shipped one)")
    measure = parser.add_argument_group("measuring (the default)")
    measure.add_argument("--first-stage", action="store_true",
                         help="also run maskdetect's detector with second_stage=False")
    measure.add_argument("--verifier-threshold", type=float, default=None, metavar="P",
                         help="run the defaults with the face verifier at P (default: the face stage's default)")
    measure.add_argument("--without-verifier", action="store_true",
                         help="also run the defaults without the face verifier")
    measure.add_argument("--no-plain", action="store_true", help="skip plain MTCNN")
    measure.add_argument("--no-baseline", action="store_true", help="skip the stage before the face finder")
    measure.add_argument("--baseline-fusion", type=Path, default=BASELINE_FUSION, help="(default %(default)s)")
    measure.add_argument("--baseline-sources", nargs="+", default=list(BASELINE_SOURCES),
                         help="(default %(default)s)")
    measure.add_argument("--baseline-threshold", type=float, default=BASELINE_THRESHOLD,
                         help="its second-stage threshold (default %(default)s)")
    measure.add_argument("--thresholds", type=float, nargs="+", default=[], metavar="P",
                         help="also score the defaults at these second-stage thresholds")
    measure.add_argument("--sheet-max", type=int, default=600, help="most crops on the contact sheet")
    ablation.add_arguments(parser.add_argument_group("--ablation: what each part of the stage is worth"))
    replaying = parser.add_argument_group("--replay: the keep/veto decision replayed on cached proposal groups")
    replaying.add_argument("--replay", action="store_true", help="replay instead of measuring")
    replaying.add_argument("--cache", type=Path,
                           default=Path(tempfile.gettempdir()) / "maskdetect_face_stage_groups.json",
                           help="the cached proposal groups; rebuilt when the photos or the face stage differ "
                                "(default %(default)s)")
    replaying.add_argument("--verifier", type=Path, default=None,
                           help="a face verifier file (default: the shipped one)")
    replaying.add_argument("--verifier-thresholds", type=float, nargs="+",
                           default=[0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99], metavar="P",
                           help="verifier thresholds to replay (default %(default)s)")
    replaying.add_argument("--views", nargs="+", choices=sorted(VIEWS), default=["min", "median", "mean", "first"],
                           help="ways of combining the verifier's views (default %(default)s)")
    replaying.add_argument("--vetoes", type=float, nargs="+", default=[], metavar="V",
                           help="also replay the default rule with the verifier's veto at these values (0: no veto)")
    replaying.add_argument("--unplaced", action="store_true",
                           help="score each group only where it is, not also moved down (faceverifier.PLACEMENTS)")
    args = parser.parse_args(argv)
    if args.replay and args.ablation:
        parser.error("--replay and --ablation are two modes: choose one")
    mode = "--replay" if args.replay else "--ablation" if args.ablation else "the measuring mode"
    other_modes = {"--replay": REPLAY_ONLY, "--ablation": ABLATION_ONLY, "the measuring mode": MEASURE_ONLY}
    wrong_mode = [dest for other, dests in other_modes.items() if other != mode for dest in dests
                  if dest not in other_modes[mode] and getattr(args, dest) != parser.get_default(dest)]
    if wrong_mode:
        flags = ", ".join("--" + dest.replace("_", "-") for dest in wrong_mode)
        parser.error(f"{flags}: not in {mode}")
    if args.limit < 0 or args.threads < 1 or args.min_size < 0 or not 0 < args.iou <= 1:
        parser.error("--limit >= 0, --threads >= 1, --min-size >= 0 and 0 < --iou <= 1")
    if not all(0 < threshold <= 1 for threshold in [*args.thresholds, *args.verifier_thresholds]):
        parser.error("--thresholds and --verifier-thresholds are probabilities in (0, 1]")
    if args.verifier_threshold is not None and not 0 < args.verifier_threshold <= 1:
        parser.error("--verifier-threshold is a probability in (0, 1]")
    if not all(0 <= veto <= 1 for veto in args.vetoes):
        parser.error("--vetoes in [0, 1]")
    require_detection_set(parser, args.data, "--data")
    for flag, path in (("--fusion", args.fusion), ("--baseline-fusion", args.baseline_fusion),
                       ("--verifier", args.verifier)):
        if path is not None and not path.is_file():
            parser.error(f"{flag} {path} is not a file")
    if args.out is None:
        args.out = default_out(NAME) / ("replay" if args.replay else "ablation" if args.ablation else "")
    return args


# ---------------------------------------------------------------------------------------------
# Measuring: the defaults, the baseline and the others, each run on every photo


def why_missed(detector: FaceDetector, kept: Detections, missed: list[tuple[str, np.ndarray, str]], data: Path,
               match_iou: float, rule: KeepRule) -> list[dict]:
    """Why each missed face (photo, box, label) was missed, as far as the face stage tells. ``detector`` gives the
    proposal groups and the verifier's views of each photo; ``rule`` (the one ``kept``'s boxes were kept by: its
    second-stage threshold, verifier threshold and veto) judges them:

    - ``boxed off``: a kept box overlaps it at IoU 0.2 or more, but under ``match_iou`` (``kept_by`` names the
      detector that kept it);
    - ``below threshold``: a proposal group on it, at ``match_iou`` or more, has a fused probability under the
      rule's second-stage threshold and a verifier score under its verifier threshold;
    - ``suppressed``: such a group reaches a threshold but overlaps a likelier face;
    - ``vetoed``: such a group reaches the second-stage threshold but the rule's veto drops it;
    - ``not proposed``: no group on it passed the gates.
    """
    sizes = photo_sizes(data)
    threshold = rule.second_stage_threshold
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
            kept_at = any(rule.confidence(*group) is not None for group in on_face)
            reason = "suppressed" if kept_at else "vetoed" if probability >= threshold else "below threshold"
        else:
            reason = "not proposed"
        rows.append({"image": photo, "label": label, "x1": box[0], "y1": box[1], "x2": box[2], "y2": box[3],
                     "reason": reason, "kept_iou": round(kept_iou, 3),
                     "kept_by": kept.source[photo][int(np.argmax(overlaps))] if kept_iou >= BOXED_OFF_IOU else "",
                     "group_probability": round(probability, 3), "verifier_score": round(score, 3)})
    return rows


def baseline_detector(args: argparse.Namespace) -> FaceDetector:
    """The face stage before its face finder: no face verifier either (it came after the finder)."""
    return FaceDetector(num_threads=args.threads, fusion=str(args.baseline_fusion),
                        proposal_sources=tuple(args.baseline_sources), second_stage_threshold=args.baseline_threshold,
                        verifier_threshold=None)


def face_rows(detector: FaceDetector):
    """A function of a photo that gives ``detector``'s faces as rows (x1, y1, x2, y2, confidence, detector)."""
    def run(rgb):
        return [(f.x1, f.y1, f.x2, f.y2, f.confidence, f.detector) for f in detector.detect(rgb)]
    return run


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
    counts = {reason: sum(row["reason"] == reason for row in rows) for reason in MISSED_REASONS}
    below = [row["group_probability"] for row in rows if row["reason"] == "below threshold"]
    return (f"{counts['boxed off']} boxed off, {counts['below threshold']} with a proposal group on them under "
            f"{threshold}" + (f" (median probability {np.median(below):.2f})" if below else "")
            + f", {counts['suppressed']} suppressed by a likelier face, {counts['vetoed']} vetoed by the verifier, "
            f"{counts['not proposed']} not proposed")


def measure(args: argparse.Namespace) -> int:
    """The measuring mode: every run scored, printed, and written to ``args.out``."""
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

    defaults = run_detector("maskdetect defaults", face_rows(ours), photos, args.data, truth)
    verifier = "" if ours.settings.verifier_threshold is None else f", verifier at {ours.settings.verifier_threshold:g}"
    at_default = defaults.filtered(f"maskdetect defaults (second stage at {default_threshold}{verifier})",
                                   default_threshold, "second_stage")
    results.append(score(at_default, truth, args.min_size, args.iou))
    if not args.no_baseline:
        det = run_detector(f"baseline: {'+'.join(args.baseline_sources)}, {args.baseline_fusion.name}, "
                           f"threshold {args.baseline_threshold}, no verifier", face_rows(baseline_detector(args)),
                           photos, args.data, truth)
        results.append(score(det, truth, args.min_size, args.iou))
    if args.without_verifier:
        unverified = FaceDetector(num_threads=args.threads, fusion=args.fusion, verifier_threshold=None,
                                  second_stage_threshold=default_threshold)
        det = run_detector(f"the defaults without the face verifier (second stage at {default_threshold})",
                           face_rows(unverified), photos, args.data, truth)
        results.append(score(det, truth, args.min_size, args.iou))
    if args.first_stage:
        first = FaceDetector(second_stage=False)
        det = run_detector("maskdetect second_stage=False", face_rows(first), photos, args.data, truth)
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
    # the defaults' rule at the threshold their scored boxes were kept at
    reasons = why_missed(ours, at_default, missed, args.data, args.iou,
                         dataclasses.replace(ours.rule, second_stage_threshold=default_threshold))
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
    summary[0]["missed_why"] = {name: {reason: sum(row["reason"] == reason for row in reasons if row["label"] == name)
                                       for reason in MISSED_REASONS} for name in CLASSES}
    json_path, csv_path = write_results(args.out, summary)
    print(f"\nunmatched boxes of the defaults: {len(unmatched)} "
          f"(M = MTCNN, S = second stage; {min(len(unmatched), args.sheet_max)} on the sheets)")
    for path in sheets:
        print(f"contact sheet: {path}")
    print(f"details: {args.out / 'unmatched.csv'}, {json_path}, {csv_path}")
    return 0


# ---------------------------------------------------------------------------------------------
# Replaying: the keep/veto decision on cached proposal groups


def stage_key(detector: FaceDetector, photos: list[str], data: Path) -> dict:
    """What the cached groups depend on: the photos, and the face stage's settings and files less its verifier."""
    from maskdetect.face import facefinder
    from maskdetect.face.fusion import SHIPPED_FUSION

    settings = dataclasses.replace(detector.settings, verifier_threshold=None, verifier_model=None, verifier_veto=None,
                                   num_threads=None)
    files = [Path(settings.fusion or SHIPPED_FUSION), Path(settings.face_model or facefinder.SHIPPED_MODEL)]
    return {"version": CACHE_VERSION, "data": str(data.resolve()), "photos": photos, "settings": repr(settings),
            "files": {str(path): path.stat().st_mtime_ns for path in files}}


def build_cache(detector: FaceDetector, photos: list[str], data: Path, key: dict) -> dict:
    """Per photo: its height and width, the kept MTCNN boxes and confidences, and the proposal groups' boxes and
    fused probabilities."""
    sizes = photo_sizes(data)
    rows, started = {}, time.perf_counter()
    for index, photo in enumerate(photos):
        rgb = load_photo(data / "images" / photo, *sizes[photo])
        kept, groups = detector.stages(rgb)
        rows[photo] = {"shape": list(rgb.shape[:2]),
                       "kept": [[face.x1, face.y1, face.x2, face.y2, face.confidence] for face in kept],
                       "groups": [[*map(float, box), detector.fused_probability(features)] for box, features in groups]}
        if (index + 1) % 100 == 0:
            print(f"  groups: {index + 1}/{len(photos)} photos, {time.perf_counter() - started:.0f} s", flush=True)
    return {"key": key, "rows": rows}


def read_cache(path: Path) -> dict | None:
    """The cache in ``path``; None when there is none or it cannot be read (it is then rebuilt)."""
    try:
        cache = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        print(f"{path} cannot be read ({error}); rebuilding it")
        return None
    return cache if isinstance(cache, dict) else None


def view_scores(verifier, cache: dict, data: Path, placed: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Photo -> the boxes the verifier scored (each cached group's box at its best placement, as the face stage
    does; with ``placed`` False, where it is) and their (len(VIEWS), groups) scores."""
    sizes = photo_sizes(data)
    scores = {}
    for photo, row in cache["rows"].items():
        boxes = np.array([group[:4] for group in row["groups"]]).reshape(-1, 4)
        if not len(boxes):
            scores[photo] = boxes, np.zeros((1, 0))
            continue
        rgb = load_photo(data / "images" / photo, *sizes[photo])
        scores[photo] = verifier.placed(rgb, boxes) if placed else (boxes, verifier.view_scores(rgb, boxes))
    return scores


def replay_rule(settings: DetectorSettings, verifier_threshold: float | None, veto: float | None) -> KeepRule:
    """The rule of a stage with ``settings`` but its verifier at ``verifier_threshold`` (None: no verifier, so no
    veto either) and its veto at ``veto`` (None: no veto)."""
    return dataclasses.replace(KeepRule.from_settings(settings), verifier_threshold=verifier_threshold,
                               verifier_veto=None if verifier_threshold is None else veto)


def replay(cache: dict, views: dict[str, tuple[np.ndarray, np.ndarray]], combine, rule: KeepRule,
           name: str) -> Detections:
    """The boxes the face stage keeps by ``rule`` (``KeepRule.keep``) on the cached groups, the verifier's views
    combined by ``combine`` (the highest view for the veto), as ``FaceDetector.detect`` returns them (clipped to
    the photo). A rule without a verifier threshold looks at no view."""
    verifying = rule.verifier_threshold is not None
    result = Detections(name)
    for photo, row in cache["rows"].items():
        kept = np.array(row["kept"]).reshape(-1, 5)
        groups = np.array(row["groups"]).reshape(-1, 5)
        verifier_boxes, scored = views[photo]
        scores = combine(scored) if verifying else np.full(len(groups), np.nan)
        highest = scored.max(axis=0) if verifying else np.full(len(groups), np.nan)
        faces = [(*box[:4], box[4], "mtcnn") for box in kept]
        faces += [(*box, confidence, "second_stage") for box, confidence
                  in rule.keep(kept[:, :4], groups[:, :4], groups[:, 4], scores, verifier_boxes, highest)]
        height, width = row["shape"]
        result.add(photo, [(max(0.0, x1), max(0.0, y1), min(width, x2), min(height, y2), confidence, source)
                           for x1, y1, x2, y2, confidence, source in faces], 0.0)
    return result


def line(result: dict, base: dict | None = None) -> str:
    counts, text = result["found"], f"{result['name']:22s}"
    for label in CLASSES:
        text += f" {label} {result['recall'][label]:6.1%} ({counts[label]}/{result['counted'][label]})"
    text += f"  kept {result['kept']}  unmatched {result['unmatched']}"
    if base is not None:
        before = base["found"]
        text += ("  added: " + " ".join(f"{label} {counts[label] - before[label]:+d}" for label in CLASSES)
                 + f", unmatched {result['unmatched'] - base['unmatched']:+d}")
    return text


def result_row(result: dict, rule: KeepRule, views: str | None, base: dict | None = None) -> dict:
    """A replayed setting's result line for results.json: its score, the rule and views, what it adds to ``base``."""
    row = {k: v for k, v in result.items() if not k.startswith("_")}
    row.update({"views": views, "verifier_threshold": rule.verifier_threshold, "verifier_veto": rule.verifier_veto})
    if base is not None:
        row["added"] = {**{label: result["found"][label] - base["found"][label] for label in CLASSES},
                        "unmatched": result["unmatched"] - base["unmatched"]}
    return row


def run_replay(args: argparse.Namespace) -> int:
    """The replay mode: the cache read or built, each setting replayed, scored, printed and written to ``args.out``."""
    from maskdetect.face import faceverifier

    truth = load_truth(args.data)
    photos = sorted(truth)[: args.limit or None]
    detector = FaceDetector(num_threads=args.threads, fusion=args.fusion, verifier_threshold=None)
    key = stage_key(detector, photos, args.data)
    cache = read_cache(args.cache)
    if cache is None or cache.get("key") != key:
        print(f"running the face stage on {len(photos)} photos from {args.data} (cached in {args.cache})", flush=True)
        cache = build_cache(detector, photos, args.data, key)
        # written whole or not at all: an interrupted run leaves the previous cache, or none
        args.cache.parent.mkdir(parents=True, exist_ok=True)
        partial = args.cache.with_name(args.cache.name + ".partial")
        partial.write_text(json.dumps(cache))
        partial.replace(args.cache)
    else:
        print(f"{len(photos)} photos from {args.data}: proposal groups from {args.cache}")
    verifier_file = args.verifier or faceverifier.SHIPPED_MODEL
    verifier = faceverifier.FaceVerifier.load(verifier_file)
    started = time.perf_counter()
    views = view_scores(verifier, cache, args.data, not args.unplaced)
    default = DetectorSettings().verifier_threshold
    default_veto = DetectorSettings().verifier_veto
    where = "where they are" if args.unplaced else "at their best placements"
    print(f"verifier {verifier_file}: {sum(len(boxes) for boxes, _ in views.values())} groups scored {where} in "
          f"{time.perf_counter() - started:.0f} s; the stage's default is min at {default:g}\n")
    truth = {photo: truth[photo] for photo in photos}
    settings = detector.settings
    unverified = replay_rule(settings, None, None)
    base = score(replay(cache, views, VIEWS["min"], unverified, "no verifier"), truth, args.min_size, args.iou)
    print(line(base))
    rows = [result_row(base, unverified, None)]
    for combine in args.views:
        for threshold in sorted(args.verifier_thresholds):
            name = f"{combine} >= {threshold:g}" + (" (default)" if combine == "min" and threshold == default
                                                           and not args.unplaced else "")
            rule = replay_rule(settings, threshold, default_veto)
            result = score(replay(cache, views, VIEWS[combine], rule, name), truth, args.min_size, args.iou)
            print(line(result, base))
            rows.append(result_row(result, rule, combine, base))
    for veto in args.vetoes:
        name = f"veto {veto:g}" + (" (default)" if veto == default_veto else "")
        rule = replay_rule(settings, default, veto or None)
        result = score(replay(cache, views, VIEWS["min"], rule, name), truth, args.min_size, args.iou)
        print(line(result, base))
        rows.append(result_row(result, rule, "min", base))
    json_path, csv_path = write_results(args.out, rows)
    print(f"\nresults: {json_path}, {csv_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    set_threads(args.threads)
    if args.ablation:
        return run_ablation(args)
    return run_replay(args) if args.replay else measure(args)


def run_ablation(args: argparse.Namespace) -> int:
    """The ablation mode (:mod:`benchmarks.ablation`): every variant scored, printed and written to --out."""
    results = ablation.run(args, run_detector, face_rows)
    print(ablation.table(results))
    json_path, csv_path = write_results(args.out, [{k: v for k, v in r.items() if not k.startswith("_")}
                                                   for r in results])
    print(f"details: {json_path}, {csv_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
