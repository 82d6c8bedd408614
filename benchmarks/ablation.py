"""What each part of the face stage is worth: the defaults, then the stage with one source, pass or view removed
at a time, each scored on the same photos in one run (``bench_face_stage --ablation``).

A variant that changes the fusion's features (a proposal source, a BlazeFace pass, the zoomed-in looks) gets fusion
weights refitted without that part, on the labelled photos of --fit-data held out of the face finder's training
(``annotations.held_out``, as the shipped weights were fitted): never on the photos it is scored on. The row
"defaults, fusion refitted" is the same refit with every part, so that the refit's own effect can be told from
the part's. Variants of the verifier change no feature and keep the shipped weights.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import DEFAULT_WILD, load_truth, score
from maskdetect.face.settings import PRESETS, preset_fields

# name, the settings that differ from the defaults, whether the fusion is refitted for it
VARIANTS: tuple[tuple[str, dict[str, Any], bool], ...] = (
    ("defaults", {}, False),
    ("defaults, fusion refitted", {}, True),
    ("without the ssd source", {"proposal_sources": ("blazeface", "mtcnn_below_threshold", "facefinder")}, True),
    ("the ssd source at 640 px", {"ssd_size": 640}, True),
    ("without the blazeface source", {"proposal_sources": ("ssd", "mtcnn_below_threshold", "facefinder")}, True),
    ("without mtcnn_below_threshold", {"proposal_sources": ("ssd", "blazeface", "facefinder")}, True),
    ("without the facefinder source", {"proposal_sources": ("ssd", "blazeface", "mtcnn_below_threshold")}, True),
    ("blazeface without its mirror pass", {"blazeface_passes": ("photo",)}, True),
    ("blazeface with a tiles pass too", {"blazeface_passes": ("photo", "mirror", "tiles")}, True),
    ("without the zoomed-in looks", {"zoom": False}, True),
    ("verifier on its first view only", {"verifier_views": 1}, False),
    ("without the verifier", {"verifier_threshold": None}, False),
)

BEFORE_PRESETS = Path(__file__).resolve().parent / "fusion_before_presets.json"
_FAST = {"zoom": False, "verifier_threshold": None}
_NO_MTCNN = {**_FAST, "first_stage": False}
# Candidates for the face stage's presets (``--candidates``), after the stage's defaults before the presets (the
# baseline): the presets as shipped, then the others that were weighed for them. Each has its own fusion, as a preset
# ships its own: the presets' shipped ones, refitted on --fit-data for the others.
CANDIDATES: tuple[tuple[str, dict[str, Any], bool], ...] = (
    ("before the presets (ssd at 640 px, tiles)", {"ssd_size": 640, "blazeface_passes": ("photo", "mirror", "tiles"),
                                                   "fusion": str(BEFORE_PRESETS)}, False),
    ("accurate preset (the defaults)", {}, False),
    ("accurate, 1 verifier view", {"verifier_views": 1}, False),
    ("fast preset", preset_fields("fast"), False),
    ("fast with mtcnn at 640 px", {**PRESETS["fast"], "detect_size": 640}, True),
    ("fast with mtcnn_below_threshold too", {**PRESETS["fast"], "proposal_sources": ("mtcnn_below_threshold",
                                                                                      "facefinder")}, True),
    # cheaper MTCNN pyramids for fast: faces from 24 px instead of 20, or a coarser step between levels
    ("fast, mtcnn faces from 24 px", {**PRESETS["fast"], "min_face_size": 24}, True),
    ("fast, mtcnn pyramid step 0.65", {**PRESETS["fast"], "scale_factor": 0.65}, True),
    ("no mtcnn: the face finder alone", {**_NO_MTCNN, "proposal_sources": ("facefinder",)}, True),
    ("no mtcnn: the face finder, zoomed-in looks", {**_NO_MTCNN, "proposal_sources": ("facefinder",), "zoom": True},
     True),
    ("no mtcnn: the face finder, blazeface on the photo",
     {**_NO_MTCNN, "proposal_sources": ("blazeface", "facefinder"), "blazeface_passes": ("photo",)}, True),
)
# --choose scores on this share of the photos held out of the face finder's training (``annotations.held_out``,
# 20 %): the other half fits the fusion.
CHOICE_SHARE = 0.1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ablation", action="store_true",
                        help="the defaults, then one source, pass or view removed at a time, in one run")
    parser.add_argument("--fit-data", type=Path, default=DEFAULT_WILD,
                        help="with --ablation: labelled photos (VOC, CSV or YOLO) whose held-out share refits the "
                        "fusion for each variant (default: %(default)s); never the photos scored")
    parser.add_argument("--variants", nargs="+", default=None, metavar="NAME",
                        help="with --ablation: only the variants whose names contain one of these words")
    parser.add_argument("--candidates", action="store_true",
                        help="with --ablation: the candidates for the accurate and fast presets instead of the "
                        "one-part-removed variants")
    parser.add_argument("--choose", action="store_true",
                        help="with --ablation: score on half of --fit-data's held-out photos and refit on the other "
                        "half, instead of scoring on --data: for choosing, so that --data stays unseen")


def choice_folder(fit_data: Path, folder: Path) -> Path:
    """A --data folder (``boxes.csv``, ``images/``) of the photos of ``fit_data`` that --choose scores on: those held
    out of the face finder's training whose name hash is in the upper half of the held-out share."""
    from maskdetect.annotations import held_out

    with open(fit_data / "boxes.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = [row for row in reader if held_out(row["image"], 2 * CHOICE_SHARE)
                and not held_out(row["image"], CHOICE_SHARE)]
        fields = reader.fieldnames
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "boxes.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fields)
        writer.writeheader()
        writer.writerows(rows)
    (folder / "images").symlink_to((fit_data / "images").resolve())
    return folder


def refit(overrides: dict[str, Any], labels, threads: int, folder: Path, name: str) -> str:
    """Fusion weights fitted on ``labels`` for a stage with ``overrides``; the path of the file written."""
    from maskdetect.face import fusion_fit

    sources = overrides.get("proposal_sources")
    settings = {key: value for key, value in overrides.items() if key != "proposal_sources"}
    detector = fusion_fit.collecting_detector(sources, num_threads=threads, **settings)
    names, features, targets, used = fusion_fit.collect(labels, detector, progress=False)
    table = fusion_fit.fit(names, features, targets, fitted_on=f"{used} held-out photos, ablation: {name}")
    path = folder / f"fusion_{len(list(folder.iterdir()))}.json"
    fusion_fit.save(table, path)
    return str(path)


def run(args: argparse.Namespace, run_detector, face_rows) -> list[dict]:
    """Every variant (or those --variants names) scored on --data's first --limit photos.

    ``run_detector(name, detect, photos, data, truth)`` and ``face_rows(detector)`` are the face-stage
    benchmark's own, so the variants are timed and scored exactly as its defaults are.

    Returns:
        One scored result per variant (``benchmarks.common.score``'s dict), the defaults first.
    """
    from maskdetect import annotations
    from maskdetect.face import FaceDetector
    from maskdetect.face.facefinder_train import held_out

    scratch_folder = tempfile.TemporaryDirectory()
    if args.choose:
        args.data = choice_folder(args.fit_data, Path(scratch_folder.name) / "choice")
    truth = load_truth(args.data)
    photos = sorted(truth)[: args.limit or None]
    every = CANDIDATES if args.candidates else VARIANTS
    chosen = [variant for variant in every
              if variant is every[0] or not args.variants
              or any(word in variant[0] for word in args.variants)]
    labels = None
    if any(refitted for *_, refitted in chosen):
        read = annotations.read(args.fit_data)
        # never fitted on a photo it is scored on (with --choose the two share a folder)
        labels = annotations.Labels([photo for photo in read.photos if held_out(photo.image.name, 2 * CHOICE_SHARE)
                                     and photo.image.name not in truth])
        print(f"fusion refits on {len(labels.photos)} held-out photos of {args.fit_data}; "
              f"scored on {len(photos)} photos of {args.data}")
    results = []
    with scratch_folder as scratch:
        for name, overrides, refitted in chosen:
            start = time.perf_counter()
            settings = dict(overrides)
            if refitted:
                settings["fusion"] = refit(overrides, labels, args.threads, Path(scratch), name)
                print(f"  {name}: fusion refitted in {time.perf_counter() - start:.0f} s", flush=True)
            detector = FaceDetector(num_threads=args.threads, **settings)
            result = score(run_detector(name, face_rows(detector), photos, args.data, truth), truth,
                           args.min_size, args.iou)
            result["settings"] = {key: value for key, value in dataclasses.asdict(detector.settings).items()
                                  if key in overrides}
            results.append(result)
    return results


def table(results: list[dict]) -> str:
    """The results as a table: recall per class, boxes kept and on no label, s/photo and its ratio to the first."""
    base = results[0]
    lines = [f"{'variant':36s} {'masked':>7s} {'unmasked':>8s} {'kept':>5s} {'no label':>8s} {'s/photo':>7s} "
             f"{'time':>5s}"]
    for r in results:
        lines.append(f"{r['name']:36s} {r['recall']['mask']:7.1%} {r['recall']['without_mask']:8.1%} "
                     f"{r['kept']:5d} {r['unmatched']:8d} {r['s_per_photo']:7.3f} "
                     f"{r['s_per_photo'] / base['s_per_photo']:4.2f}x")
    return "\n".join(lines)
