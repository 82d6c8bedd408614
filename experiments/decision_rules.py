"""How steady each decision rule is: the same trained models, decided by each rule, on street faces.

A two-class model's decision is a threshold on P(without_mask), fitted after training on the validation
split's street faces (``maskdetect.decisions.calibrate``). For each model (the ``model.keras`` files of
``train_a_model.py`` runs, or every two-class model in a ``street_recipes`` results.json), this experiment
rebuilds the run's split from its ``config.json``, scores its validation street faces, and fits each rule
(``maskdetect.decisions.RULES``):

  discriminant        linear discriminant on the log-odds (the default);
  masked kept         the lowest threshold that keeps 98 % of masked faces right;
  balanced accuracy   the best balanced accuracy.

Each fitted threshold then decides the faces the face stage finds in the labelled street photos of the
detection set (nothing here trains on them), through the benchmarks' end-to-end scorer
(``benchmarks.common.EndToEnd``): masked and unmasked faces right, end to end and on found. To see how much of
that is the luck of the validation faces, each rule is refitted on bootstrap resamples of them (--draws);
printed are the mean and spread of the recalls on found faces and the share of draws that meet both street
targets (masked end to end within 2 points of the face stage's recall, unmasked within 4).

    .venv/bin/python -m experiments.decision_rules --results /tmp/street_recipes/results.json \\
        --work /tmp/street_recipes
    .venv/bin/python -m experiments.decision_rules --models logs/runs/*/model.keras --work /tmp/decision_rules
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from benchmarks.common import (
    DEFAULT_DETECTION,
    MATCH_IOU,
    MIN_FACE,
    EndToEnd,
    found_faces,
    require_detection_set,
)
from maskdetect import data, decisions, facecrops, runtime

TWO = ["mask", "without_mask"]
# the street targets, as the largest gap in points between the face stage's recall and end to end
TARGET_GAP = {"mask": 2.0, "without_mask": 4.0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--models", nargs="+", type=Path, help="model.keras files of train_a_model.py runs")
    source.add_argument("--results", type=Path, help="a street_recipes results.json: its two-class models")
    parser.add_argument("--work", type=Path, required=True, help="where the face stage's finds are cached "
                        "(a street_recipes --work folder reuses its cache)")
    parser.add_argument("--detection", type=Path, default=DEFAULT_DETECTION,
                        help="labelled street photos: boxes.csv + images/ (default %(default)s)")
    parser.add_argument("--draws", type=int, default=300, help="bootstrap resamples of the validation faces")
    parser.add_argument("--seed", type=int, default=0, help="of the bootstrap")
    args = parser.parse_args(argv)
    require_detection_set(parser, args.detection)
    if args.draws < 1:
        parser.error("--draws must be at least 1")
    return args


def models_of(args: argparse.Namespace) -> dict[str, Path]:
    if args.models:
        return {str(path): path for path in args.models}
    results = json.loads(args.results.read_text())
    return {name: Path(row["model"]) for name, row in results.items() if row.get("classes") == TWO}


def validation_street_faces(model: Path) -> tuple[np.ndarray, np.ndarray]:
    """The run's validation street faces (uint8 crops) and labels, the split rebuilt from its config.json."""
    from PIL import Image

    config = json.loads((model.parent / "config.json").read_text())
    folder = Path(config["data"])
    if not folder.is_absolute() and not folder.is_dir():  # relative to where the run started: its project
        folder = model.resolve().parents[3] / folder
    crops = data.find_crops(folder, 1)
    shares = (1 - config["val_split"] - config["test_split"], config["val_split"], config["test_split"])
    validation = data.grouped_split(crops.strata(), crops.groups, shares, config["split_seed"])[1]
    street = [index for index in validation if crops.kinds and crops.kinds[index] == facecrops.ANNOTATED]
    pixels = np.stack([np.asarray(Image.open(crops.paths[index]).convert("RGB")) for index in street]) \
        if street else np.zeros((0, 1, 1, 3), np.uint8)
    return pixels, crops.labels[street]


def recalls_on_found(weights, probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The share of the found faces of each class of TWO called right when ``weights`` decide."""
    tally = EndToEnd(TWO, weights)
    tally.add_found(labels, probabilities)
    return np.array([tally.rates(name)["on_found"] for name in TWO])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runtime.configure_logging()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    def body() -> int:
        from sklearn import metrics

        from maskdetect import artifact

        found = found_faces(args.detection, args.work, 0, MIN_FACE, MATCH_IOU)
        both = np.isin(found["labels"], TWO)
        crops, labels_found = found["crops"][both], found["labels"][both]
        truth = (labels_found == "without_mask").astype(int)
        counted = np.array([found["counted"][name] for name in TWO])
        stage_recall = np.bincount(truth, minlength=2) / counted
        needed = stage_recall - np.array([TARGET_GAP[name] for name in TWO]) / 100  # end to end
        print(f"found faces: mask {(truth == 0).sum()} of {counted[0]}, without_mask {(truth == 1).sum()} of "
              f"{counted[1]}; targets end to end: mask >= {needed[0]:.1%}, without_mask >= {needed[1]:.1%}")
        rng = np.random.default_rng(args.seed)
        print(f"\n{'model':48s} {'rule':18s} {'threshold':>9s} {'masked e2e (found)':>19s} "
              f"{'unmasked e2e (found)':>21s}  bootstrap on found: masked, unmasked, both targets met")
        for name, path in models_of(args).items():
            classifier = artifact.load_classifier(path)
            if classifier.class_names != TWO:
                print(f"{name}: classes {classifier.class_names}, not {TWO}: skipped")
                continue
            pixels, labels = validation_street_faces(path)
            validation = classifier.probabilities(pixels)
            found_probabilities = np.concatenate([classifier.probabilities(crops[start:start + 128])
                                                  for start in range(0, len(crops), 128)])
            auc = metrics.roc_auc_score(truth, found_probabilities[:, 1])
            print(f"{name} (validation street faces: {np.bincount(labels, minlength=2).tolist()}, "
                  f"AUC on found {auc:.4f})")
            for rule in decisions.RULES:
                fitted = decisions.calibrate(labels, validation, TWO, rule=rule)
                if fitted["weights"] is None:
                    print(f"{'':48s} {rule:18s} {fitted['why']}")
                    continue
                on_found = recalls_on_found(fitted["weights"], found_probabilities, labels_found)
                end_to_end = on_found * stage_recall
                drawn = []
                for _ in range(args.draws):
                    sample = rng.integers(0, len(labels), len(labels))
                    refit = decisions.calibrate(labels[sample], validation[sample], TWO, rule=rule)
                    if refit["weights"] is not None:
                        drawn.append(recalls_on_found(refit["weights"], found_probabilities, labels_found))
                drawn = np.array(drawn)
                met = ((drawn * stage_recall) >= needed).all(axis=1).mean()
                weights = fitted["weights"]
                print(f"{'':48s} {rule:18s} {weights[0] / sum(weights):9.3f} "
                      f"{end_to_end[0]:10.1%} ({on_found[0]:5.1%}) {end_to_end[1]:12.1%} ({on_found[1]:5.1%})  "
                      f"{drawn[:, 0].mean():.1%} ±{drawn[:, 0].std():.1%}, {drawn[:, 1].mean():.1%} "
                      f"±{drawn[:, 1].std():.1%}, {met:.0%}")
        return runtime.EXIT_OK

    return runtime.run_cli(body, "decision_rules: interrupted")


if __name__ == "__main__":
    sys.exit(main())
