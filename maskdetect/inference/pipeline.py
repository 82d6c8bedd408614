"""Faces in a frame, classified: the face stage's detector followed by a trained classifier.

Faces are found by the face stage's own detector and settings (``facecrops.CropSettings()`` defaults through
``maskdetect.face.from_crop_settings`` and ``maskdetect.face.detect_faces``, the padded retry included), and cut
with its geometry (``facecrops.crop_face``) at the margin and crop size the model's training crops had (recorded in
the model's metadata; margin 0.2 and 256 px, the face stage's defaults, for a model whose metadata does not record
them), then resized to the model's size by ``artifact.classifier_input``, the resize of training's ``tf.data``
pipeline (``tf.image.resize`` with antialiasing, rounded to uint8). So the classifier
(:class:`maskdetect.artifact.Classifier`) sees faces as it saw them in training. All faces of a frame go to the
model in one batch.

TensorFlow, Keras and the face detector's models load when a :class:`MaskDetector` is built, not on import.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from maskdetect import records, runtime
from maskdetect.artifact import Classifier
from maskdetect.face import detect_faces, from_crop_settings
from maskdetect.facecrops import CropSettings, crop_face
from maskdetect.runlog import LOG_NAME, leaderboard, ranking_folder

# The face stage's settings: the same detector and thresholds as process_faces.py's defaults. The crop geometry
# (margin, size) is replaced by the classifier's own (see MaskDetector).
CROP = CropSettings()


def best_model(logs: str | Path) -> Path:
    """The model of the best finished training run, ranked as auto_train.py ranks.

    Only ``ok`` runs of ``<logs>/training_log.csv`` whose model file still exists count. When runs were scored
    with ``--rank-on``, they are ranked by the balanced accuracy on labelled photos (on the folder of the latest
    scored run; unscored runs come after the scored ones); otherwise by validation accuracy.

    Args:
        logs: the folder that holds the training log.

    Returns:
        The path of the best run's ``model.keras``.

    Raises:
        ValueError: there is no training log, or no finished run in it whose model file exists.
    """
    log_path = Path(logs) / LOG_NAME
    usable = [row for row in records.read_rows(log_path)
              if row.get("status") == "ok" and row.get("model_path") and Path(row["model_path"]).is_file()]
    ranked = leaderboard(usable, ranking_folder(usable))
    if not ranked:
        where = f"{log_path} has no finished run whose model file exists" if log_path.is_file() else \
            f"there is no training log {log_path}"
        raise ValueError(f"no model to use: {where}; train one with train_a_model.py or give --model PATH")
    return Path(ranked[0]["model_path"])


@dataclass(frozen=True)
class Detection:
    """One classified face.

    Attributes:
        box: x1, y1, x2, y2 in the frame's pixels.
        label: the class the classifier chose.
        probability: the classifier's probability of that class.
        confidence: the face detector's confidence.
        detector: the name of the detector that found the face.
        carried: True when the box was not found on this video frame but followed onto it from an earlier one.
        track: on video, the number of the person (track) the face belongs to; None on photos.
    """

    box: tuple[float, float, float, float]
    label: str
    probability: float
    confidence: float
    detector: str
    carried: bool = False
    track: int | None = None


@functools.lru_cache(maxsize=2)  # one for photos, one for video (two presets)
def _face_detector(settings):
    """The face detector for ``settings``, built once per process.

    Loading the detectors' models takes seconds, so the detector is cached. The key is the detector's settings
    alone, so classifiers whose crops differ in margin or size share one detector.

    Args:
        settings: a ``maskdetect.face.DetectorSettings``.

    Returns:
        A ``maskdetect.face.FaceDetector`` whose graphs are already built.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with runtime.native_stderr_silenced():
        from maskdetect.face.detector import FaceDetector

        detector = FaceDetector(settings)
        detector.detect(np.zeros((64, 64, 3), np.uint8))  # the first call builds the graphs, which log
    return detector


class MaskDetector:
    """The face stage's detector followed by the classifier.

    Faces are found with ``settings`` (the face stage's defaults) and cut at the classifier's crop margin and
    size, whatever ``settings`` says about them: a model trained on crops with margin 0.3 must see faces cut
    with margin 0.3. Without a classifier, faces are found and cut as ``settings`` says, and not classified.

    Args:
        classifier: the trained model, or None to find and cut faces only.
        settings: the face stage's settings for photos; its margin and size are replaced by the classifier's.
        video_settings: those for video frames (e.g. another ``face_stage`` preset); None: ``settings``.
        concurrent: run the face stage's proposal sources beside MTCNN, on a second thread
            (``DetectorSettings.concurrent``); None: where this process has a second core.

    Attributes:
        classifier: as given.
        settings: the settings faces are found and cut with in photos.
        video_settings: and in video frames.
        detector: the shared face detector for photos (loaded when first used; models take seconds to load).
    """

    def __init__(self, classifier: Classifier | None, settings: CropSettings = CROP,
                 video_settings: CropSettings | None = None, concurrent: bool | None = None) -> None:
        self.classifier = classifier
        if video_settings is None:
            video_settings = settings
        if classifier is not None:
            settings, video_settings = (dataclasses.replace(chosen, margin=classifier.crop_margin,
                                                            size=classifier.crop_size)
                                        for chosen in (settings, video_settings))
        self.settings = settings
        self.video_settings = video_settings
        # checked now, loaded when first used; one process, so a second core can run proposal sources beside MTCNN
        if concurrent is None:
            concurrent = runtime.default_jobs() > 1
        self._detector_settings = {video: dataclasses.replace(from_crop_settings(chosen), concurrent=concurrent)
                                   for video, chosen in ((False, settings), (True, video_settings))}

    def detector_settings(self, video: bool = False):
        """The face detector's settings (``maskdetect.face.DetectorSettings``) for photos, or for video frames."""
        return self._detector_settings[video]

    @property
    def detector(self):
        """The face detector for photos (``maskdetect.face.FaceDetector``), shared by every MaskDetector with the
        same settings."""
        return _face_detector(self._detector_settings[False])

    def faces(self, rgb: np.ndarray, video: bool = False) -> list:
        """The faces of ``rgb`` (H x W x 3 uint8) the face stage would keep, as ``maskdetect.face.Face``.

        Args:
            rgb: the photo or frame.
            video: a video frame: found with ``video_settings``.

        Faces the face stage keeps only for review (low confidence) are left out.
        """
        settings = self.video_settings if video else self.settings
        found, _ = detect_faces(_face_detector(self._detector_settings[video]), rgb, settings)
        return [face for face in found if not face.low_confidence]

    def crops(self, rgb: np.ndarray, found: Sequence) -> tuple[list[np.ndarray], list]:
        """The face stage's crops of ``found`` faces of ``rgb``.

        Returns:
            The crops, and the faces they are of: a face whose box gives no crop (empty, or outside a smaller
            frame it was carried onto) is left out of both.
        """
        crops, kept = [], []
        for face in found:
            try:
                crops.append(crop_face(rgb, (face.x1, face.y1, face.x2, face.y2), self.settings.margin,
                                             self.settings.size))
                kept.append(face)
            except ValueError:  # a box carried onto a smaller frame, or empty: nothing to classify
                continue
        return crops, kept

    def classify(self, rgb: np.ndarray, found: Sequence, carried: bool = False) -> list[Detection]:
        """Classify ``found`` faces of ``rgb`` in one batch.

        Args:
            rgb: the frame, H x W x 3 uint8.
            found: faces of the frame (``maskdetect.face.Face``).
            carried: recorded in each detection: the boxes come from an earlier frame.

        Returns:
            One detection per face that gives a crop, in the order of ``found``.
        """
        crops, kept = self.crops(rgb, found)
        if not kept:
            return []
        probabilities = self.classifier.probabilities(np.stack(crops))
        names = self.classifier.class_names
        chosen = self.classifier.decide(probabilities)
        return [Detection((face.x1, face.y1, face.x2, face.y2), names[index], float(p[index]),
                          float(face.confidence), face.detector, carried)
                for face, p, index in zip(kept, probabilities, chosen, strict=True)]

    def image(self, rgb: np.ndarray) -> list[Detection]:
        """Find and classify every face of ``rgb`` (H x W x 3 uint8)."""
        return self.classify(rgb, self.faces(rgb))
