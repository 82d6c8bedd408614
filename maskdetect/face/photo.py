"""One photo as the face stage's networks look at it: shrunk once, not once per network.

Every network of the face stage looks at the photo, or a crop of it, at a small fixed size: MTCNN at 480 or 640 px,
the face finder at 512, the SSD at 300, BlazeFace at 192 and 128. Shrinking a large photo with area averaging
costs about as much as some of those networks, so a :class:`Photo` shrinks it once to the largest size a
whole-photo network needs (its *base*), and the others shrink that copy; crops for the zoomed-in looks are cut
from the smallest halving of the photo that still has the pixels they need. Which copy serves which request
depends only on the photo and the request, never on what was asked before, so results are the same in any order
and on any thread.
"""

from __future__ import annotations

import threading

import numpy as np

from maskdetect import images
from maskdetect.face.boxes import resize


class Photo:
    """An RGB uint8 photo and its shrunk copies.

    Args:
        rgb: the photo, RGB uint8 (H, W, 3).
        base_side: the long side of the copy that whole-photo requests up to that size are shrunk from (made here,
            once); None, or a photo no larger, serves every request from the photo itself.
    """

    def __init__(self, rgb: np.ndarray, base_side: int | None = None) -> None:
        import cv2

        self._cv2 = cv2
        self.rgb = rgb
        self.height, self.width = rgb.shape[:2]
        self._base = rgb
        if base_side is not None and max(self.height, self.width) > base_side:
            scale = base_side / max(self.height, self.width)
            self._base = resize(cv2, rgb, max(1, round(self.width * scale)), max(1, round(self.height * scale)))
        self._halvings = [rgb]  # the photo, then each level half the one before, made when first needed
        self._lock = threading.Lock()

    @classmethod
    def of(cls, image: np.ndarray | Photo) -> Photo:
        """``image`` as a Photo (itself when it is one already)."""
        return image if isinstance(image, Photo) else cls(image)

    def resized(self, width: int, height: int) -> np.ndarray:
        """The whole photo at ``width`` x ``height`` (area averaging to shrink, bilinear to enlarge), from the
        base copy when it is at least that large, else from the photo."""
        source = self._base if self._base.shape[1] >= width and self._base.shape[0] >= height else self.rgb
        return resize(self._cv2, source, width, height)

    def square_crop(self, box: np.ndarray, context: float,
                    at_least: int) -> tuple[np.ndarray, float, float, float, float]:
        """:func:`maskdetect.images.square_crop` of ``box`` at ``context``, cut from the smallest halving of the
        photo on which the crop is still ``at_least`` px on a side (the photo itself for small crops).

        Returns:
            The crop, the photo coordinates of its top-left corner, and its scales (crop px per photo px) across
            and down: a point (x, y) of the crop is (left + x / scale_x, top + y / scale_y) in the photo.
        """
        side = context * max(box[2] - box[0], box[3] - box[1])
        level = 0
        while side / 2 ** (level + 1) >= at_least and min(self.height, self.width) >> (level + 1) >= 2:
            level += 1
        picture = self._halving(level)
        scale_x, scale_y = picture.shape[1] / self.width, picture.shape[0] / self.height
        scaled = np.array([box[0] * scale_x, box[1] * scale_y, box[2] * scale_x, box[3] * scale_y])
        crop, left, top = images.square_crop(picture, scaled, context)
        return crop, left / scale_x, top / scale_y, scale_x, scale_y

    def _halving(self, level: int) -> np.ndarray:
        with self._lock:
            while len(self._halvings) <= level:
                above = self._halvings[-1]
                self._halvings.append(self._cv2.resize(above, (above.shape[1] // 2, above.shape[0] // 2),
                                                       interpolation=self._cv2.INTER_AREA))
            return self._halvings[level]
