"""maskdetect.export without TensorFlow: where the files go, the refusals before any conversion, and the metadata
code without this package reads. The conversions themselves are checked against Keras in test_detect."""

from __future__ import annotations

from pathlib import Path

import pytest

from maskdetect import export


def test_default_paths_sit_beside_the_keras_file():
    model = Path("logs/runs/r1/model.keras")
    assert export.default_path(model, "tflite") == Path("logs/runs/r1/model.tflite")
    assert export.default_path(model, "savedmodel") == Path("logs/runs/r1/model_savedmodel")
    assert export.meta_path(Path("out/model.tflite"), "tflite") == Path("out/model.json")
    # inside the folder, so that copying a SavedModel takes its class names along
    assert export.meta_path(Path("out/model_savedmodel"), "savedmodel") == Path("out/model_savedmodel/maskdetect.json")


def test_refusals_come_before_any_conversion(tmp_path):
    with pytest.raises(ValueError, match="--export must be one of tflite, savedmodel"):
        export.export(None, {}, "onnx", tmp_path / "model.onnx")
    with pytest.raises(ValueError, match="is a folder"):
        export.export(None, {}, "tflite", tmp_path)
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(ValueError, match="is a file"):
        export.export(None, {}, "savedmodel", tmp_path / "file")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["file"]  # nothing written


@pytest.mark.parametrize("names", [["mask", "without_mask"], ["incorrect_mask", "mask", "without_mask"]])
def test_describe_tells_code_without_this_package_how_to_cut_and_decide(names):
    meta = {"class_names": names, "image_size": 96, "crop": {"margin": 0.3, "crop_size": 128},
            "decision": {"weights": [1.0] * (len(names) - 1) + [2.0]}, "run_id": "r7"}
    description = export.describe(meta, "savedmodel", "logs/runs/r7/model.keras")
    assert description["class_names"] == names and description["image_size"] == 96
    assert description["binary"] == (len(names) == 2)
    assert ("sigmoid" in description["output"]) == (len(names) == 2)
    assert (description["crop_margin"], description["crop_size"]) == (0.3, 128)
    assert "0.3" in description["crop"] and "128 px" in description["crop"] and "96 px" in description["crop"]
    assert description["decision_weights"] == [1.0] * (len(names) - 1) + [2.0]
    assert description["source_model"] == "logs/runs/r7/model.keras" and description["run_id"] == "r7"


def test_an_older_model_is_described_with_the_default_geometry_and_no_weights():
    description = export.describe({"class_names": ["mask", "without_mask"], "image_size": 64}, "tflite")
    assert (description["crop_margin"], description["crop_size"]) == (0.2, 256)
    assert description["decision_weights"] is None and description["run_id"] == ""


def test_unusable_metadata_is_refused():
    with pytest.raises(ValueError, match="crop geometry"):
        export.describe({"class_names": ["a", "b"], "image_size": 64, "crop": {"margin": -1, "crop_size": 128}},
                        "tflite")
    with pytest.raises(ValueError, match="decision weights"):
        export.describe({"class_names": ["a", "b"], "image_size": 64, "decision": {"weights": [1.0]}}, "tflite")
