"""MTCNN, the face stage's first detector (the ``mtcnn`` package; its weights ship in its wheel), with an image
pyramid that never has a level under 12 px and its three networks compiled once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from maskdetect.face.boxes import Face, FaceKind, resize

if TYPE_CHECKING:
    from maskdetect.face.settings import DetectorSettings


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


def _landmarks(row: np.ndarray) -> tuple[tuple[float, float], ...]:
    """The five (x, y) points of an MTCNN row (x1, y1, x2, y2, confidence, 5 x, 5 y)."""
    return tuple(zip(row[5:10].tolist(), row[10:15].tolist(), strict=True))


class Mtcnn:
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
            # This is StagePNet.__call__ of mtcnn 1.0.0 except for the pyramid (see
            # build_scale_pyramid); it runs one image at a time. The argument names are mtcnn's.
            def __call__(self, images_normalized, images_oshapes, min_face_size=20, scale_factor=0.709,
                         threshold_pnet=0.6, nms_pnet1=0.5, nms_pnet2=0.7, **kwargs):
                height, width = int(images_oshapes[0][0]), int(images_oshapes[0][1])
                scales = build_scale_pyramid(height, width, min_face_size, scale_factor)
                batch = images_normalized.shape[0]
                boxes_per_scale = []
                for scale in scales:
                    regression, classification = self._model(scale_images(images_normalized, scale))
                    boxes = generate_bounding_box(regression, classification, threshold_pnet)
                    boxes = upscale_bboxes(boxes, np.asarray([scale] * batch))
                    boxes_per_scale.append(smart_nms_from_bboxes(boxes, threshold=nms_pnet1, method="union",
                                                                 initial_sort=False))
                boxes = np.concatenate(boxes_per_scale, axis=0) if boxes_per_scale else np.empty((0, 6))
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
        pnet_threshold, rnet_threshold, onet_threshold = settings.stage_thresholds
        result = self._model.detect_faces(
            rgb.astype(np.float32), box_format="xyxy", output_type="numpy",
            min_face_size=settings.min_face_size, scale_factor=settings.scale_factor,
            threshold_pnet=pnet_threshold, threshold_rnet=rnet_threshold, threshold_onet=onet_threshold)
        result = np.asarray(result, dtype=np.float64)
        if result.ndim != 2 or result.shape[0] == 0 or result.shape[1] < 16:
            return np.empty((0, 15))
        return result[:, 1:16]

    def detect(self, rgb: np.ndarray, settings: DetectorSettings, cv2: Any) -> list[Face]:
        """Every face MTCNN reports in ``rgb`` at any confidence, highest first, in ``rgb``'s pixels.

        The photo is shrunk to ``settings.detect_size`` first; boxes are scaled back but not
        clipped to the photo.
        """
        height, width = rgb.shape[:2]
        scale = 1.0
        small = rgb
        if settings.detect_size is not None and max(height, width) > settings.detect_size:
            scale = settings.detect_size / max(height, width)
            small = resize(cv2, rgb, max(1, round(width * scale)), max(1, round(height * scale)))
        rows = self(small, settings)
        if len(rows) and scale != 1.0:
            rows = rows.copy()
            rows[:, [0, 2]] *= width / small.shape[1]
            rows[:, [1, 3]] *= height / small.shape[0]
            rows[:, 5:10] *= width / small.shape[1]
            rows[:, 10:15] *= height / small.shape[0]
        rows = rows[np.argsort(-rows[:, 4], kind="stable")] if len(rows) else rows
        return [Face(float(row[0]), float(row[1]), float(row[2]), float(row[3]), float(row[4]), _landmarks(row),
                     FaceKind.MTCNN) for row in rows]
