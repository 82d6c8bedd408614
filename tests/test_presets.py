"""The face stage's presets: their settings, their shipped fusion files, and how the command lines choose them
(no model loads here)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from maskdetect import facecrops
from maskdetect.face import fusion
from maskdetect.face.settings import PRESET_FUSION, PRESETS, WEIGHTS_DIR, from_crop_settings, preset_settings

pytestmark = pytest.mark.unit


def test_the_presets_are_the_command_lines_choices_and_each_ships_its_fusion() -> None:
    assert tuple(PRESETS) == facecrops.FACE_STAGES == tuple(PRESET_FUSION)
    for name in PRESETS:
        settings = preset_settings(name)
        table = fusion.load_fusion(settings.fusion)
        assert list(table["sources"]) == list(settings.source_names())


def test_accurate_is_the_defaults_and_fast_runs_the_face_finder_alone() -> None:
    accurate, fast = preset_settings("accurate"), preset_settings("fast")
    assert accurate.fusion == str(WEIGHTS_DIR / "fusion.json") == str(fusion.SHIPPED_FUSION)
    assert dataclasses.replace(accurate, fusion=None) == type(accurate)()
    assert accurate.first_stage and accurate.zoom and accurate.verifier_threshold is not None
    assert fast.first_stage and not fast.zoom and fast.verifier_threshold is None
    assert fast.source_names() == ("facefinder",) and fast.detect_size == 480 < accurate.detect_size
    assert preset_settings("fast", num_threads=1).num_threads == 1
    with pytest.raises(ValueError, match="unknown face-stage preset 'quick'"):
        preset_settings("quick")


def test_the_crop_settings_choose_the_preset() -> None:
    assert from_crop_settings(facecrops.CropSettings(face_stage="fast")) == preset_settings("fast")
    assert from_crop_settings(facecrops.CropSettings()) == preset_settings("accurate")
    # --detect-size wins over the preset's
    assert from_crop_settings(facecrops.CropSettings(face_stage="fast", detect_size=800)).detect_size == 800
    with pytest.raises(ValueError, match="--face-stage must be one of accurate, fast"):
        facecrops.CropSettings(face_stage="fastest")
    # the fast preset with no second stage is MTCNN alone at its size
    assert not from_crop_settings(facecrops.CropSettings(face_stage="fast", second_stage=False)).source_names()


def test_a_trained_face_detector_needs_the_presets_fusion(tmp_path) -> None:
    folder = tmp_path / "detector"
    folder.mkdir()
    for name in facecrops.FACE_DETECTOR_FILES:
        (folder / name).write_bytes(b"")
    crop = facecrops.CropSettings(face_detector=str(folder), face_stage="fast")
    with pytest.raises(ValueError, match="has no fusion_fast.json for the fast face stage: retrain it"):
        from_crop_settings(crop)
    (folder / "fusion_fast.json").write_text(json.dumps({}))
    used = from_crop_settings(crop)
    assert used.fusion == str(folder / "fusion_fast.json") and used.detect_size == 480
    assert used.face_model == str(folder / "facefinder.keras")
