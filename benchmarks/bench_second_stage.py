"""The second stage's decision, replayed: face recall and boxes kept at other face-verifier thresholds, other ways
of combining the verifier's views, or another verifier file, from one run of the face stage.

The slow part of the face stage (MTCNN, the proposal sources, the zoomed-in looks, the fusion) runs once per
photo and is cached in --cache; each setting is then replayed with ``KeepRule.keep`` on the
cached proposal groups in seconds, and scored as ``bench_detection.py`` scores (recall per class of the labelled
faces of --min-size px or more, at IoU >= --iou; boxes kept; boxes matching no label). The verifier's views are
scored anew in each run (a minute), so --verifier compares a retrained verifier on the very same groups. The row
at the stage's defaults is bench_detection's defaults row; "added" is against the same groups with no verifier.

Each group is scored at its best placement (``faceverifier.PLACEMENTS``), as the stage does; ``--unplaced`` scores
it where it is, as the stage did before. Views (``faceverifier.VIEWS``): ``min`` is the stage's rule (the lowest
of the three), ``median`` and ``mean`` the others, ``first`` the plain crop alone. Every row with a verifier vetoes
as the stage does (a face the fusion keeps under 0.5 that no view scores ``verifier_veto``); ``--vetoes`` replays
the stage's rule at other veto values. A setting chosen on these photos
is chosen on the evaluation set: confirm it on photos nothing was tuned on (``--data`` a held-out labelled folder)
before making it a default.

    .venv/bin/python -m benchmarks.bench_second_stage                              # 660 photos, ~6 min the first time
    .venv/bin/python -m benchmarks.bench_second_stage --verifier my_verifier.keras  # the same groups, another verifier
    .venv/bin/python -m benchmarks.bench_second_stage --thresholds 0.8 0.9 0.98 --views min median
    .venv/bin/python -m benchmarks.bench_second_stage --vetoes 0 0.001 0.01
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from maskdetect.face import DetectorSettings, FaceDetector, KeepRule

from benchmarks.common import (
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

CACHE_VERSION = 1
VIEWS = {"min": lambda views: views.min(axis=0), "median": lambda views: np.median(views, axis=0),
         "mean": lambda views: views.mean(axis=0), "first": lambda views: views[0]}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DETECTION, help="folder with boxes.csv and images/")
    parser.add_argument("--limit", type=int, default=0, help="only the first N photos (sorted by name); 0: all")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "maskdetect_second_stage.json",
                        help="the cached proposal groups; rebuilt when the photos or the face stage differ")
    parser.add_argument("--verifier", type=Path, default=None, help="a face verifier file (default: the shipped one)")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99],
                        metavar="P", help="verifier thresholds to replay")
    parser.add_argument("--views", nargs="+", choices=sorted(VIEWS), default=["min", "median", "mean", "first"])
    parser.add_argument("--vetoes", type=float, nargs="+", default=[], metavar="V",
                        help="also replay the default rule with the verifier's veto at these values (0: no veto)")
    parser.add_argument("--unplaced", action="store_true",
                        help="score each group only where it is, not also moved down (faceverifier.PLACEMENTS)")
    parser.add_argument("--min-size", type=int, default=MIN_FACE, help="short side (px) of faces counted in recall")
    parser.add_argument("--iou", type=float, default=MATCH_IOU, help="IoU for a box to match a labelled face")
    parser.add_argument("--threads", type=int, default=1, help="threads for TensorFlow/OpenCV/TFLite (default 1)")
    args = parser.parse_args(argv)
    if args.limit < 0 or not 0 < args.iou <= 1 or not all(0 < t <= 1 for t in args.thresholds):
        parser.error("--limit >= 0; --iou and --thresholds in (0, 1]")
    if not all(0 <= veto <= 1 for veto in args.vetoes):
        parser.error("--vetoes in [0, 1]")
    require_detection_set(parser, args.data, "--data")
    if args.verifier is not None and not args.verifier.is_file():
        parser.error(f"--verifier {args.verifier} is not a file")
    return args


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


def replay(detector: FaceDetector, cache: dict, views: dict[str, tuple[np.ndarray, np.ndarray]], combine,
           threshold: float | None, name: str, veto: float | None = DetectorSettings().verifier_veto) -> Detections:
    """The boxes the face stage keeps with its verifier at ``threshold`` (None: no verifier, so no veto either),
    views combined by ``combine``, vetoing at ``veto`` on the highest view (None: no veto), as
    ``FaceDetector.detect`` returns them (clipped to the photo)."""
    rule = KeepRule.from_settings(dataclasses.replace(detector.settings, verifier_threshold=threshold,
                                                      verifier_veto=veto))
    result = Detections(name)
    for photo, row in cache["rows"].items():
        kept = np.array(row["kept"]).reshape(-1, 5)
        groups = np.array(row["groups"]).reshape(-1, 5)
        verifier_boxes, scored = views[photo]
        scores = combine(scored) if threshold is not None else np.full(len(groups), np.nan)
        highest = scored.max(axis=0) if threshold is not None else np.full(len(groups), np.nan)
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    set_threads(args.threads)
    from maskdetect.face import faceverifier

    truth = load_truth(args.data)
    photos = sorted(truth)[: args.limit or None]
    detector = FaceDetector(num_threads=args.threads, verifier_threshold=None)
    key = stage_key(detector, photos, args.data)
    cache = read_cache(args.cache)
    if cache is None or cache.get("key") != key:
        print(f"running the face stage on {len(photos)} photos from {args.data} (cached in {args.cache})", flush=True)
        cache = build_cache(detector, photos, args.data, key)
        # written whole or not at all: an interrupted run leaves the previous cache, or none
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
    where = "where they are" if args.unplaced else "at their best placements"
    print(f"verifier {verifier_file}: {sum(len(boxes) for boxes, _ in views.values())} groups scored {where} in "
          f"{time.perf_counter() - started:.0f} s; the stage's default is min at {default:g}\n")
    truth = {photo: truth[photo] for photo in photos}
    base = score(replay(detector, cache, views, VIEWS["min"], None, "no verifier"), truth, args.min_size, args.iou)
    print(line(base))
    for combine in args.views:
        for threshold in sorted(args.thresholds):
            name = f"{combine} >= {threshold:g}" + (" (default)" if combine == "min" and threshold == default
                                                           and not args.unplaced else "")
            result = score(replay(detector, cache, views, VIEWS[combine], threshold, name), truth, args.min_size,
                           args.iou)
            print(line(result, base))
    default_veto = DetectorSettings().verifier_veto
    for veto in args.vetoes:
        name = f"veto {veto:g}" + (" (default)" if veto == default_veto else "")
        result = score(replay(detector, cache, views, VIEWS["min"], default, name, veto or None), truth,
                       args.min_size, args.iou)
        print(line(result, base))
    return 0


if __name__ == "__main__":
    sys.exit(main())
