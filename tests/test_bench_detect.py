"""bench_detect's threshold ceiling: the figure that tells a threshold problem from a model problem; and the shared
end-to-end scorer it counts with (benchmarks.common.EndToEnd), which decides as the model decides."""

from collections import Counter, defaultdict

import numpy as np
import pytest

from benchmarks.bench_detect import (
    benchmark_label,
    crop_settings,
    parse_args,
    report,
    report_ceiling,
    threshold_ceiling,
)
from benchmarks.common import EndToEnd
from maskdetect.face import from_crop_settings
from maskdetect.face.settings import DetectorSettings


def test_separable_scores_reach_every_face_even_when_0_5_would_not():
    # every unmasked face scores above every masked one, but all below 0.5: the default threshold
    # would call them all masked, the ceiling shows a threshold exists that gets all of them
    positive = np.array([False] * 6 + [True] * 4)
    score = np.array([0.01, 0.02, 0.05, 0.08, 0.1, 0.12, 0.2, 0.3, 0.35, 0.4])
    auc, threshold, negative_accuracy, positive_accuracy = threshold_ceiling(positive, score)
    assert auc == 1.0
    assert (negative_accuracy, positive_accuracy) == (1.0, 1.0)
    assert 0.12 < threshold <= 0.2


def test_overlapping_scores_give_the_best_worse_class():
    positive = np.array([False, False, False, False, True, True, True, True])
    score = np.array([0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9])
    auc, threshold, negative_accuracy, positive_accuracy = threshold_ceiling(positive, score)
    assert auc == pytest.approx(15 / 16)  # only 0.4 < 0.6 is out of order
    # at 0.4: masks 3/4 right, unmasked 4/4; at 0.7: masks 4/4, unmasked 3/4; never both 4/4
    assert min(negative_accuracy, positive_accuracy) == 0.75
    assert threshold in (0.4, 0.7)


def test_one_class_is_a_clear_error():
    with pytest.raises(ValueError, match="both classes"):
        threshold_ceiling(np.array([True, True]), np.array([0.2, 0.9]))


def _result(confusion: dict) -> dict:
    """bench_detect's accuracy result for found faces with the given true -> predicted counts (all faces found)."""
    result = {"counted": Counter(), "found": Counter(), "correct": Counter(), "confusion": defaultdict(Counter),
              "scored": []}
    for label, predicted in confusion.items():
        for name, count in predicted.items():
            result["counted"][label] += count
            result["found"][label] += count
            result["correct"][label] += count if name == label else 0
            result["confusion"][label][name] += count
            result["scored"] += [(label, name, 0.9)] * count
    return result


def test_a_three_class_model_gets_per_class_accuracy_and_its_confusion(capsys):
    result = _result({"mask": {"mask": 8, "incorrect_mask": 2}, "without_mask": {"without_mask": 5},
                      "incorrect_mask": {"incorrect_mask": 3, "mask": 1}})
    names = ["mask", "mask_weared_incorrect", "without_mask"]  # Kaggle's spelling is the labels' incorrect_mask
    assert [benchmark_label(name) for name in names] == ["mask", "incorrect_mask", "without_mask"]
    report(result, names, 32)
    report_ceiling(result, names)
    out = capsys.readouterr().out
    assert "not a class of the model" not in out  # incorrect_mask is one of this model's classes
    assert "incorrect_mask: incorrect_mask 3, mask 1" in out
    table = out[out.index("true / predicted"):].splitlines()
    assert table[0].split() == ["true", "/", "predicted", "mask", "incorrect_mask", "without_mask", "right"]
    assert table[1].split() == ["mask", "8", "2", "0", "80.0%"]
    assert table[3].split() == ["incorrect_mask", "1", "3", "0", "75.0%"]


def test_a_two_class_model_in_other_words_still_gets_the_threshold_ceiling(capsys):
    result = _result({"mask": {"mask": 6}, "without_mask": {"without_mask": 3, "mask": 1},
                      "incorrect_mask": {"mask": 2}})
    report(result, ["with_mask", "without_mask"], 32)
    report_ceiling(result, ["with_mask", "without_mask"])
    out = capsys.readouterr().out
    assert "ROC AUC" in out and "n/a: not a class of the model" in out  # only incorrect_mask is not
    assert out.count("n/a: not a class of the model") == 1


def test_no_verifier_runs_the_face_stage_without_its_verifier(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "boxes.csv").write_text("image,width,height,label,xmin,ymin,xmax,ymax\n")
    default = from_crop_settings(crop_settings(parse_args(["--detection", str(tmp_path)])))
    without = from_crop_settings(crop_settings(parse_args(["--detection", str(tmp_path), "--no-verifier"])))
    assert default.verifier_threshold == DetectorSettings().verifier_threshold
    assert without.verifier_threshold is None


def test_the_scorer_decides_found_faces_by_the_model_s_decision_weights():
    # two labelled faces on one photo and a 20 px one (not counted); the box on the unmasked face has
    # P(without_mask) 0.3: plain argmax calls it masked, a threshold of 0.2 (weights 0.2, 0.8) unmasked
    labels = [("mask", np.array([0, 0, 100, 100.0])), ("without_mask", np.array([200, 0, 300, 100.0])),
              ("without_mask", np.array([400, 0, 420, 20.0]))]
    boxes = [(0, 0, 100, 100), (205, 0, 300, 100), (400, 0, 420, 20)]
    probabilities = np.array([[0.9, 0.1], [0.7, 0.3], [0.1, 0.9]])
    argmax, weighted = EndToEnd(["with_mask", "without_mask"]), EndToEnd(["with_mask", "without_mask"], [0.2, 0.8])
    for tally in (argmax, weighted):
        tally.add_photo(labels, boxes, probabilities)
        assert tally.counted == Counter(mask=1, without_mask=1) and tally.found == tally.counted
    assert argmax.correct == Counter(mask=1) and argmax.confusion["without_mask"] == Counter(mask=1)
    assert weighted.correct == Counter(mask=1, without_mask=1)
    assert weighted.scored == [("mask", "mask", 0.9), ("without_mask", "without_mask", 0.3)]
    rates = weighted.rates("without_mask")
    assert (rates["recall"], rates["end_to_end"], rates["on_found"]) == (1.0, 1.0, 1.0)
    # faces already matched add up the same way, and tallies of two models merge
    found = EndToEnd(["mask", "without_mask"], [0.2, 0.8])
    found.add_found(["mask", "without_mask"], probabilities[:2], {"mask": 1, "without_mask": 2})
    assert found.correct == Counter(mask=1, without_mask=1) and found.rates("without_mask")["recall"] == 0.5
    merged = found.merge(argmax)
    assert merged.counted == Counter(mask=2, without_mask=3) and merged.correct == Counter(mask=2, without_mask=1)
    assert merged.as_dict()["confusion"]["without_mask"] == Counter(without_mask=1, mask=1)
