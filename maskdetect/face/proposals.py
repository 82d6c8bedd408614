"""Proposal sources: the face detectors whose boxes the second stage weighs as evidence for faces MTCNN missed.

A source is a class with the :class:`ProposalSource` shape whose constructor takes the
:class:`~maskdetect.face.settings.DetectorSettings` (and loads its models there), registered with
:func:`register_proposal_source`. The built-in ones live in :mod:`maskdetect.face.sources`, one module each.
Adding one takes three steps: write the class, decorate it, and refit the fusion weights with it running
(``python -m maskdetect.face.fusion_fit``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar, runtime_checkable

import numpy as np

from maskdetect.face.boxes import Face

# Names of the zoomed-in scores among the fusion features.
ZOOMED_FULL_RANGE = "zoomed_full_range"
ZOOMED_SHORT_RANGE = "zoomed_short_range"
# Suffix of a source's pass-count feature: how many of its passes proposed the group.
PASSES_SUFFIX = "_passes"


@runtime_checkable
class ProposalSource(Protocol):
    """A face detector whose boxes the second stage weighs as evidence for faces MTCNN missed.

    A source is a class whose constructor takes the :class:`DetectorSettings` (and loads its
    models there), registered with :func:`register_proposal_source`.
    """

    # The source's registry name, its key in the fusion weights and the ``detector`` of its proposals.
    name: str
    # A proposal group is looked at again, zoomed in, only when some source's best score in it
    # reaches that source's gate; the others' low scores still count in the fusion.
    gate: float
    # Optional (a class attribute, absent or None by default): its proposals of this score or more
    # refine the kept MTCNN boxes that lie mostly inside them (maskdetect.face.groups.refined).
    # Optional (a class attribute, absent or False by default): True when propose() uses ``mtcnn_faces``. The
    # sources that do not may run on a second thread while MTCNN runs (DetectorSettings.concurrent).

    def propose(self, image: np.ndarray, mtcnn_faces: Sequence[Face]) -> Sequence[Sequence[Face]]:
        """Faces this source sees in ``image`` (RGB uint8), one list per pass over the photo.

        A source that looks at the photo once returns one list; one that looks several times (the
        whole photo, its mirror image, tiles) returns a list per look, and the number of passes
        that propose a group is a fusion feature. Boxes are in ``image``'s pixels and need not be
        clipped to it. ``mtcnn_faces`` are all of MTCNN's faces in the photo, at any confidence,
        highest first, for sources that build on them.
        """
        ...


_SourceClass = TypeVar("_SourceClass", bound=type)

# The registered proposal sources by name, in registration order, which is the order they run in
# by default: see DetectorSettings.proposal_sources for what the order decides.
# A source's constructor takes the DetectorSettings.
PROPOSAL_SOURCES: dict[str, Callable[..., ProposalSource]] = {}


def register_proposal_source(source_class: _SourceClass) -> _SourceClass:
    """Make a :class:`ProposalSource` class available under its ``name``; use as a class decorator.

    Its name needs a weight in the detector's fusion weights before a detector can run it.
    """
    name = getattr(source_class, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"a proposal source needs a non-empty string name, {source_class.__name__} has {name!r}")
    if name in PROPOSAL_SOURCES:
        raise ValueError(f"a proposal source named {name!r} is already registered")
    if name in (ZOOMED_FULL_RANGE, ZOOMED_SHORT_RANGE) or name.endswith(PASSES_SUFFIX):
        raise ValueError(f"proposal source name {name!r} would clash with a fusion feature's name")
    PROPOSAL_SOURCES[name] = source_class
    return source_class


