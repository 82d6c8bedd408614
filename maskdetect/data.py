"""The training data: face crops by class, grouped by source photo, split without leaks.

Pure Python and numpy here; the ``tf.data`` pipeline is built by :func:`make_dataset`, which imports
TensorFlow only when it is called.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from maskdetect import artifact, facecrops, images, records, runtime

log = logging.getLogger(__name__)

# Formats TensorFlow's decode_image reads; anything else is skipped with a warning.
TF_FORMATS = {"JPEG", "PNG", "BMP", "GIF"}


@dataclass(frozen=True)
class Crops:
    """Every usable crop: its path, class index, group (source photo) and kind (faces.csv's: auto, manual,
    annotated, ...; empty for a crop that faces.csv does not know)."""

    paths: list[str]
    labels: np.ndarray
    groups: list[str]
    class_names: list[str]
    skipped: int = 0
    kinds: list[str] = field(default_factory=list)

    def strata(self) -> np.ndarray:
        """What the split stratifies on: the class, and whether the crop was cut from a labelled photo (kind
        annotated: a street face), so that each split gets its share of the street faces of every class. The
        validation split's street faces set the decision weights (``decisions.calibrate``): unstratified, a split
        of faces_dataset + the wild set gave them 11 unmasked street faces, too few to set anything."""
        street = np.asarray([kind == "annotated" for kind in self.kinds], dtype=np.int64) if self.kinds else 0
        return self.labels + len(self.class_names) * street

    def digest(self) -> str:
        """A short hash of the file list and labels: two runs on the same data share it."""
        digest = hashlib.sha256()
        for path, label in zip(self.paths, self.labels, strict=True):
            digest.update(f"{Path(path).name}\t{self.class_names[label]}\n".encode())
        return digest.hexdigest()[:12]


def _check_crop(path: Path) -> str:
    check = images.check_file(path, min_size=1)
    if not check.ok:
        return f"{check.reason}: {check.detail}"
    if check.image_format not in TF_FORMATS:
        return f"format {check.image_format} is not one TensorFlow decodes; convert it to JPEG or PNG"
    return ""


def find_crops(data_dir: str | Path, jobs: int = 1) -> Crops:
    """The crops under ``data_dir/<class>/``, checked; grouped by source photo via ``faces.csv``."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ValueError(f"data folder {data_dir} does not exist; run ./preprocess.sh first")
    class_dirs = images.class_dirs(data_dir)
    if len(class_dirs) < 2:
        found = ", ".join(folder.name for folder in class_dirs) or "none"
        raise ValueError(f"training needs at least two class folders in {data_dir} (found: {found})")
    candidates = [(path, index) for index, folder in enumerate(class_dirs)
                  for path in sorted(folder.iterdir())
                  if path.is_file() and path.suffix.lower() in images.IMAGE_EXTENSIONS
                  and not path.name.startswith(".")]
    problems = runtime.parallel_map(_check_crop, [path for path, _ in candidates], jobs, "checking crops")
    known = {str(Path(row["crop"]).resolve()): row for row in records.read_rows(data_dir / facecrops.MANIFEST)
             if row.get("crop")}
    paths, labels, groups, kinds, skipped = [], [], [], [], 0
    for (path, label), problem in zip(candidates, problems, strict=True):
        if problem:
            log.warning("skipping %s: %s", path, problem)
            skipped += 1
            continue
        resolved = str(path.resolve())
        paths.append(resolved)
        labels.append(label)
        # a crop that faces.csv does not know (added by hand) is a group of its own
        row = known.get(resolved, {})
        groups.append(row.get("source_sha256") or resolved)
        kinds.append(row.get("kind", ""))
    crops = Crops(paths, np.asarray(labels, dtype=np.int64), groups, [folder.name for folder in class_dirs], skipped,
                  kinds)
    counts = Counter(crops.labels.tolist())
    for index, name in enumerate(crops.class_names):
        if counts[index] == 0:
            raise ValueError(f"class folder {data_dir / name} has no usable images")
    return crops


def crop_geometry(data_dir: str | Path, paths: Sequence[str]) -> dict:
    """The margin and size the crops ``paths`` were cut with, from ``data_dir/faces.csv``'s settings.

    Returns ``{"margin", "crop_size", "source"}`` for the model's metadata, so that detection cuts faces
    the way the classifier saw them in training. ``source`` is ``faces.csv`` when the manifest gives
    the settings, or ``default`` (the face stage's defaults) when it knows none of the crops (crops put
    in the class folders by hand). Crops cut with different settings are mixed: a warning names the
    counts, and the most common geometry is returned with ``source`` ``faces.csv (mixed)``.
    """
    defaults = facecrops.CropSettings()
    settings_of: dict[str, str] = {}
    for row in records.read_rows(Path(data_dir) / facecrops.MANIFEST):
        if row.get("crop"):
            settings_of[str(Path(row["crop"]).resolve())] = row.get("settings") or ""
    geometries: Counter = Counter()
    unknown = 0
    for path in paths:
        text = settings_of.get(str(Path(path).resolve()))
        try:
            recorded = json.loads(text) if text else {}
            geometry = (float(recorded["margin"]), int(recorded["size"]))
        except (ValueError, TypeError, KeyError):
            unknown += 1  # not in faces.csv, or a damaged settings cell: it tells nothing about this crop
            continue
        geometries[geometry] += 1
    if not geometries:
        return {"margin": defaults.margin, "crop_size": defaults.size, "source": "default"}
    (margin, size), _ = geometries.most_common(1)[0]
    if unknown:
        log.info("%d of %d training crops are not in %s (added by hand); they are taken to be cut like the others",
                 unknown, len(paths), facecrops.MANIFEST)
    if len(geometries) == 1:
        return {"margin": margin, "crop_size": size, "source": "faces.csv"}
    counts = ", ".join(f"{count} with margin {m:g} and {s} px" for (m, s), count in geometries.most_common())
    log.warning("the training crops were cut with different settings (%s); the model records the most common, "
                "margin %g and %d px, and detection cuts faces that way. Cut all crops alike (process_faces.py "
                "with one --margin and --size) for a model that matches its faces.", counts, margin, size)
    return {"margin": margin, "crop_size": size, "source": "faces.csv (mixed)"}


def grouped_split(labels: np.ndarray, groups: Sequence[str], shares: Sequence[float], seed: int) -> list[np.ndarray]:
    """Indices for each split (e.g. shares (0.7, 0.15, 0.15)), stratified by class and grouped.

    Every crop of one group (one source photo) lands in the same split. Groups are placed one at a
    time, in a seeded random order, into the split that is furthest below its share of the group's
    classes; so each class is spread over the splits in about the given shares.
    """
    labels = np.asarray(labels)
    shares = np.asarray(shares, dtype=float)
    if shares.min() < 0 or not np.isclose(shares.sum(), 1.0):
        raise ValueError(f"split shares must be non-negative and sum to 1, not {shares.tolist()}")
    classes = int(labels.max()) + 1 if len(labels) else 0
    members: dict[str, list[int]] = {}
    for index, group in enumerate(groups):
        members.setdefault(group, []).append(index)
    order = list(members)
    np.random.default_rng(seed).shuffle(order)
    # big groups first, so the last small ones can even out the shares
    order.sort(key=lambda group: -len(members[group]))
    totals = np.bincount(labels, minlength=classes).astype(float)
    targets = shares[:, None] * totals[None, :]
    filled = np.zeros_like(targets)
    assigned: list[list[int]] = [[] for _ in shares]
    for group in order:
        composition = np.bincount(labels[members[group]], minlength=classes).astype(float)
        need = ((targets - filled) * composition[None, :]).sum(axis=1) / composition.sum()
        need[shares == 0] = -np.inf
        split = int(np.argmax(need))
        filled[split] += composition
        assigned[split].extend(members[group])
    return [np.asarray(sorted(indices), dtype=np.int64) for indices in assigned]


def class_weights(labels: np.ndarray, classes: int) -> dict[int, float]:
    """Weights inversely proportional to class frequency (balanced), for an imbalanced training set."""
    counts = np.bincount(labels, minlength=classes).astype(float)
    return {index: float(len(labels) / (classes * count)) if count else 0.0 for index, count in enumerate(counts)}


def balanced_weights(strata: np.ndarray) -> np.ndarray:
    """One weight per sample, inversely proportional to the size of its stratum (``Crops.strata``: class, and
    street face or not), so that every stratum weighs alike in the loss: the unmasked street faces, the
    fewest and the ones that matter, as much as the close-ups of a class. Without street faces these are the
    balanced class weights."""
    strata = np.asarray(strata)
    present, inverse, counts = np.unique(strata, return_inverse=True, return_counts=True)
    return (len(strata) / (len(present) * counts))[inverse].astype(np.float32)


@functools.lru_cache(maxsize=1)
def _tf():
    import tensorflow as tf

    return tf


def _decodes_plainly(path: str) -> bool:
    """Whether TensorFlow may decode ``path`` itself; a picture above the size limit is refused here, from its
    header, so that no decoder is handed it (ValueError, one line)."""
    try:
        return images.decodes_plainly(path)
    except images.ImageTooLarge as error:
        # images.too_large's words would name --max-pixels, which training lacks
        raise ValueError(f"crop {path}: {error.size} is above the limit of {images.DEFAULT_MAX_PIXELS} pixels for a "
                         "picture; move it out of the data folder (crops are a few hundred pixels a side)") from None
    except images.DECODE_ERRORS:
        return True  # TensorFlow's decoder says what is wrong with it


def make_dataset(paths: Sequence[str], labels: np.ndarray, image_size: int, batch_size: int, *,
                 shuffle: bool, seed: int, augment=None, sample_weights: np.ndarray | None = None):
    """A ``tf.data`` pipeline: decode and resize once, cache in memory, shuffle, batch, augment, prefetch.

    The resize is :func:`maskdetect.artifact.classifier_input`, the one inference uses too. Images stay uint8
    0-255 (models rescale inside), so the saved model takes raw pixels. With ``sample_weights`` each element
    is (image, label, weight), which ``fit`` reads as per-sample loss weights.
    """
    tf = _tf()
    paths = [str(path) for path in paths]
    # The face stage writes plain 8-bit JPEGs, which TensorFlow decodes as every stage does. A crop added by
    # hand may be 16-bit, transparent or EXIF-turned, which TensorFlow decodes otherwise (a 16-bit picture of
    # 8-bit values comes out black): those go through images.load_rgb, the face stage's own decoding.
    plain = [_decodes_plainly(path) for path in paths]

    def resized(image, label):
        return artifact.classifier_input(image, image_size), label

    def load(path, label):
        return resized(tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False), label)

    def load_any(path, label, is_plain):
        image = tf.cond(
            is_plain,
            lambda: tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False),
            lambda: tf.numpy_function(lambda name: images.load_rgb(name.decode()), [path], tf.uint8, stateful=False),
        )
        image.set_shape([None, None, 3])
        return resized(image, label)

    if all(plain):
        dataset = tf.data.Dataset.from_tensor_slices((paths, np.asarray(labels)))
        dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE).cache()
    else:
        log.info("%d of %d crops are not plain 8-bit pictures; they are decoded as the face stage decodes",
                 len(plain) - sum(plain), len(plain))
        dataset = tf.data.Dataset.from_tensor_slices((paths, np.asarray(labels), plain))
        dataset = dataset.map(load_any, num_parallel_calls=tf.data.AUTOTUNE).cache()
    if sample_weights is not None:
        weights = tf.data.Dataset.from_tensor_slices(np.asarray(sample_weights, dtype=np.float32))
        dataset = tf.data.Dataset.zip((dataset, weights)).map(lambda pair, weight: (*pair, weight))
    if shuffle:
        dataset = dataset.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    if augment is not None:
        dataset = dataset.map(lambda x, *rest: (augment(tf.cast(x, tf.float32), training=True), *rest),
                              num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)
