"""What a class name means: a worn mask, no mask, or a mask worn wrong. Class names are the user's folder names
(``mask``, ``with_mask``, ``without_mask``, ``incorrect_mask``, Kaggle's ``mask_weared_incorrect``, ...), so
detection's colours and mask-wearing rate, training's decision weights and ranking on labelled photos all read
them here. Pure Python: no stage imports.
"""

from __future__ import annotations

_NO_MASK = ("without", "no_", "nomask", "unmask", "not_")
# Words of a class of masks worn wrong: incorrect_mask, mask_incorrect, Kaggle's mask_weared_incorrect,
# mask_under_nose, mask_on_chin, ...
_WORN_WRONG = ("incorrect", "improper", "wrong", "bad", "partial", "chin", "nose", "under", "below")
_NOT_WORN = (*_NO_MASK, *_WORN_WRONG)


def normal(name: str) -> str:
    return name.lower().replace(" ", "_").replace("-", "_")


def wears_mask(class_name: str) -> bool:
    """A class that means a properly worn mask: ``mask``, ``with_mask``, ``masked``; not ``without_mask``,
    ``no_mask``, ``unmasked``, nor a mask worn wrong (``incorrect_mask``, ``mask_weared_incorrect``): only
    these count as worn in the mask-wearing rate."""
    name = normal(class_name)
    return "mask" in name and not any(word in name for word in _NOT_WORN)


def no_mask(class_name: str) -> bool:
    """A class of faces without a mask: ``without_mask``, ``no_mask``, ``unmasked``."""
    name = normal(class_name)
    return "mask" in name and any(word in name for word in _NO_MASK)


def mask_worn_wrong(class_name: str) -> bool:
    """A class of masks worn wrong (under the nose, on the chin): ``incorrect_mask``, ``mask_incorrect``,
    ``mask_weared_incorrect``; not ``without_mask``."""
    name = normal(class_name)
    return "mask" in name and not no_mask(name) and any(word in name for word in _WORN_WRONG)
