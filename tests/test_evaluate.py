"""Scoring a classifier on labelled photos (auto_train.py --rank-on): the faces cut, the classes matched,
the balanced accuracy, the cache, and one-line errors for folders that cannot rank anything."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import make_labelled_folder

from maskdetect import evaluate

pytestmark = pytest.mark.unit  # no TensorFlow: see conftest.py


class GreenMeansMask:
    """A stand-in for artifact.Classifier: calls a face masked when a twentieth of its crop is pure green."""

    def __init__(self, class_names=("with_mask", "without_mask"), meta=None) -> None:
        self.class_names = list(class_names)
        self.meta = meta if meta is not None else {"crop": {"margin": 0.0, "crop_size": 64}}
        self.shapes: list[tuple] = []

    def probabilities(self, crops: np.ndarray) -> np.ndarray:
        self.shapes.append(crops.shape)
        green = ((crops[..., 1] > 200) & (crops[..., 0] < 60) & (crops[..., 2] < 60)).mean(axis=(1, 2))
        masked = (green > 0.05).astype(np.float32)
        return np.stack([masked, 1 - masked], axis=1)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    return make_labelled_folder(tmp_path_factory.mktemp("labelled") / "street")


def test_balanced_accuracy_over_the_models_classes(labelled):
    stub = GreenMeansMask()
    result = evaluate.score(stub, labelled)
    # "mask" is the model's "with_mask" by meaning; without_mask: the astronaut right, the green coffee wrong
    assert result.recall == {"with_mask": 1.0, "without_mask": 0.5}
    assert result.faces == {"with_mask": 1, "without_mask": 2}
    assert result.accuracy == pytest.approx(0.75)  # not 2/3: each class counts the same
    assert result.other == 1  # incorrect_mask is no class of this model; the 20 px face is not scored at all
    # cut with the model's own crop geometry from its metadata, all faces in one batch
    assert stub.shapes == [(3, 64, 64, 3)]
    fields = result.row_fields()
    assert fields["rank_on"] == str(labelled.resolve()) and fields["rank_on_accuracy"] == 0.75
    per_class = json.loads(fields["rank_on_per_class"])
    assert per_class["without_mask"] == {"recall": 0.5, "faces": 2}
    assert per_class["not a class of the model"] == {"faces": 1}


def test_faces_are_cut_once_per_folder_and_geometry(labelled):
    first = evaluate.labelled_faces(labelled, 0.0, 64)
    assert evaluate.labelled_faces(labelled, 0.0, 64) is first  # cached: no photo read again
    assert first.labels == ["without_mask", "incorrect_mask", "without_mask", "mask"]  # bare, green, masked
    assert first.skipped["too_small"] == 1
    default = evaluate.labelled_faces(labelled, 0.2, 256)  # a model without crop metadata: the face stage's
    assert default is not first and default.crops.shape[1:] == (256, 256, 3)
    stub = GreenMeansMask(class_names=("mask", "without_mask", "incorrect_mask"), meta={})
    result = evaluate.score(stub, labelled)
    assert stub.shapes == [(4, 256, 256, 3)] and result.other == 0
    assert set(result.recall) == {"mask", "without_mask", "incorrect_mask"}


def test_folders_that_cannot_rank_are_one_line(labelled, tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        evaluate.check_folder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no annotations"):
        evaluate.check_folder(tmp_path / "empty")
    assert evaluate.check_folder(labelled) == {"mask": 1, "without_mask": 2, "incorrect_mask": 1}
    with pytest.raises(ValueError, match="no labelled face of 600 px or more"):
        evaluate.check_folder(labelled, min_face=600)
    with pytest.raises(ValueError, match="none of its labels .* is a class of the model"):
        evaluate.score(GreenMeansMask(class_names=("cat", "dog")), labelled)
