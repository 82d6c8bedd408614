"""The ``blazeface`` proposal source: MediaPipe BlazeFace full-range on the photo, its mirror image and tiles."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from maskdetect.face.blazeface import FULL_RANGE, BlazeFaceModel
from maskdetect.face.boxes import Face, faces_from_rows, nms
from maskdetect.face.proposals import register_proposal_source

if TYPE_CHECKING:
    from maskdetect.face.settings import DetectorSettings

# Boxes under this score are not proposed.
_MIN_SCORE = 0.10
# Each pass is thinned by non-maximum suppression at this IoU.
_NMS_IOU = 0.30
# The tiled pass uses 2 x 2 tiles, each this share of the photo's width and height.
_TILE_SHARE = 0.6


@register_proposal_source
class BlazeFaceSource:
    """MediaPipe BlazeFace full-range, by default in three passes: the photo, its mirror image and tiles.

    BlazeFace sees masked faces that the other detectors miss but fires on one pass and not the
    next; the number of passes that agree is evidence too. The 2 x 2 overlapping tiles let it see
    small faces that its 192 px input loses.
    """

    name = "blazeface"
    gate = 0.20

    def __init__(self, settings: DetectorSettings) -> None:
        self._model = BlazeFaceModel(FULL_RANGE, settings.num_threads)
        self._passes = settings.blazeface_passes

    def propose(self, image: np.ndarray, mtcnn_faces: Sequence[Face]) -> list[list[Face]]:
        """A list per pass of ``DetectorSettings.blazeface_passes`` (by default the whole photo, its mirror image
        and tiles, in that order), each thinned by non-maximum suppression."""
        looks = {"photo": self._photo, "mirror": self._mirror, "tiles": self._tiles}
        return [faces_from_rows(nms(looks[name](image), _NMS_IOU), self.name) for name in self._passes]

    def _photo(self, image: np.ndarray) -> np.ndarray:
        return self._model(image, _MIN_SCORE)

    def _mirror(self, image: np.ndarray) -> np.ndarray:
        return self._model(image, _MIN_SCORE, mirror=True)

    def _tiles(self, image: np.ndarray) -> np.ndarray:
        height, width = image.shape[:2]
        tiles = []
        tile_height, tile_width = int(height * _TILE_SHARE), int(width * _TILE_SHARE)
        if tile_height >= 2 and tile_width >= 2:
            for top in (0, height - tile_height):
                for left in (0, width - tile_width):
                    found = self._model(image[top:top + tile_height, left:left + tile_width], _MIN_SCORE)
                    found[:, [0, 2]] += left
                    found[:, [1, 3]] += top
                    tiles.append(found)
        return np.concatenate(tiles) if tiles else np.empty((0, 5))

