"""Find crops whose label looks wrong before training: quick models scored out of fold.

Collections carry mislabelled files, and the seed's pipeline puts every face of a photo into the photo's
class, so an unmasked bystander in a "mask" photo becomes a "mask" training face. The review sheet shows
thousands of crops; this puts the few dozen disputed ones first.

How: a frozen ImageNet MobileNetV2 trunk (Keras's own file, as training uses) turns every crop and its
mirror image into one feature vector, once; then for each of ``folds`` folds, grouped by source photo as the
training split is (a photo's faces never on both sides), a logistic regression learns from the other folds
and scores the held-out crops. Each crop gets the probability of its own label from a model that never saw
it, and the class the models prefer. Frozen features keep it to minutes on 2 cores, where fine-tuning a
network per fold would take hours; the classes of a face collection are far apart in those features.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskdetect import data, facecrops, records, runtime

log = logging.getLogger(__name__)

SUSPECTS = facecrops.SUSPECTS
FIELDS = ["crop", "source", "class", "label_probability", "suggested", "faces_in_photo", "reason"]
DEFAULT_FOLDS = 5
DEFAULT_SIZE = 128  # the quick model's input side: 18.8 of 20 planted flips among the 40 lowest, against 18.0 at 96 px
SIZES = (64, 96, 128, 160, 224)
DEFAULT_ALPHA = 0.35
# Strong L2 (C = 0.01): with 1280 features and a few thousand crops, weaker settings fit the mislabelled crops
# themselves (planted flips among the 40 lowest: 18.8 of 20 at 0.01, 18.3 at 0.03, fewer at 0.1 and 1).
REGULARISATION = 0.01
# a photo's face whose out-of-fold prediction disagrees with the photo's label is a suspect when the
# photo has more than one face: the bystander in a "mask" photo
DISPUTED = "the models prefer another class"
BYSTANDER = "one of several faces in the photo, and the models prefer another class"
_BATCH = 64


@dataclass(frozen=True)
class Scores:
    """Out-of-fold scores of every crop of a data folder."""

    crops: data.Crops
    label_probability: np.ndarray  # P(own label), out of fold
    suggested: np.ndarray  # the class index the models prefer
    seconds: float


def check(crops: data.Crops, folds: int) -> None:
    """One-line ValueErrors for data that cannot be scored in ``folds`` folds."""
    if folds < 2:
        raise ValueError(f"--folds must be 2 or more, not {folds}")
    counts = np.bincount(crops.labels, minlength=len(crops.class_names))
    groups = {name: len({g for g, label in zip(crops.groups, crops.labels, strict=True) if label == index})
              for index, name in enumerate(crops.class_names)}
    few = [f"{name} ({counts[index]} crops from {groups[name]} photos)"
           for index, name in enumerate(crops.class_names) if groups[name] < folds]
    if few:
        raise ValueError(f"too few crops to score in {folds} folds: {', '.join(few)}; "
                         f"add crops or lower --folds")


def features(paths: list[str], image_size: int, weights: str) -> np.ndarray:
    """Pooled features of the frozen ImageNet trunk for each crop, averaged with its mirror image."""
    with runtime.native_stderr_silenced():
        import keras
        import tensorflow as tf

        tf.constant(0)
    from maskdetect import models

    inputs = keras.Input((image_size, image_size, 3))
    scaled = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    trunk = models.mobilenetv2_trunk(image_size, DEFAULT_ALPHA, weights, pooling="avg")
    network = keras.Model(inputs, trunk(scaled, training=False))
    dataset = data.make_dataset(paths, np.zeros(len(paths), dtype=np.int64), image_size, _BATCH, shuffle=False,
                                seed=0)
    from tqdm import tqdm

    out = []
    for batch, _ in tqdm(dataset, total=-(-len(paths) // _BATCH), desc="suspects: features", unit="batch"):
        batch = tf.cast(batch, tf.float32)
        out.append((network(batch, training=False).numpy() + network(batch[:, :, ::-1], training=False).numpy()) / 2)
    return np.concatenate(out)


def score(data_dir: str | Path, folds: int = DEFAULT_FOLDS, image_size: int = DEFAULT_SIZE,
          weights: str = "imagenet", seed: int = 42, jobs: int = 1) -> Scores:
    """Out-of-fold probability of each crop's own label, and the class preferred, for ``data_dir/<class>/``."""
    import time

    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if image_size not in SIZES:
        raise ValueError(f"--quick-size must be one of {SIZES}, not {image_size}")
    start = time.perf_counter()
    crops = data.find_crops(data_dir, jobs)
    check(crops, folds)
    vectors = features(crops.paths, image_size, weights)
    probabilities = np.zeros((len(crops.paths), len(crops.class_names)))
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, held_out in splitter.split(vectors, crops.labels, crops.groups):
        model = make_pipeline(StandardScaler(),
                              LogisticRegression(C=REGULARISATION, class_weight="balanced", max_iter=3000))
        model.fit(vectors[train], crops.labels[train])
        probabilities[np.ix_(held_out, model.classes_)] = model.predict_proba(vectors[held_out])
    own = probabilities[np.arange(len(crops.labels)), crops.labels]
    return Scores(crops, own, probabilities.argmax(axis=1), time.perf_counter() - start)


def rows(scores: Scores, output: Path) -> list[dict]:
    """suspects.csv's rows for every crop, lowest label probability first; ``reason`` is empty for crops the
    models agree with."""
    crops = scores.crops
    by_crop = {str(Path(row["crop"]).resolve()): row for row in records.read_rows(Path(output) / facecrops.MANIFEST)
               if row.get("crop")}
    faces_in_photo = Counter(crops.groups)
    result = []
    for index in np.argsort(scores.label_probability, kind="stable"):
        path = Path(crops.paths[index])
        known = by_crop.get(str(path), {})
        disputed = scores.suggested[index] != crops.labels[index]
        several = faces_in_photo[crops.groups[index]] > 1
        result.append({
            "crop": path.relative_to(Path(output).resolve()).as_posix() if path.is_relative_to(Path(output).resolve())
            else str(path),
            "source": known.get("source", ""),
            "class": crops.class_names[crops.labels[index]],
            "label_probability": round(float(scores.label_probability[index]), 4),
            "suggested": crops.class_names[scores.suggested[index]],
            "faces_in_photo": faces_in_photo[crops.groups[index]],
            "reason": (BYSTANDER if several else DISPUTED) if disputed else "",
        })
    return result


def write(scores: Scores, output: Path) -> tuple[Path, dict]:
    """Write ``<output>/suspects.csv`` (replacing an older one) and return it with counts."""
    table = rows(scores, output)
    path = Path(output) / SUSPECTS
    records.replace_rows(path, FIELDS, table)
    counts = defaultdict(int)
    for row in table:
        counts[row["reason"] or "agreed"] += 1
    return path, dict(counts)
