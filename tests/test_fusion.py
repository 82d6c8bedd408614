"""maskdetect.face.fusion_fit: fitting the second stage's fusion weights on labelled photos."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from helpers import PYTHON, REPO, shared_data

from maskdetect import annotations
from maskdetect.face import PROPOSAL_SOURCES, DetectorSettings, FaceDetector, fusion_features, load_fusion
from maskdetect.face import fusion_fit as fusion

SOURCES = ["ssd", "blazeface", "mtcnn_below_threshold"]


def test_fit_recovers_the_signs_of_informative_features() -> None:
    rng = np.random.default_rng(0)
    names = fusion_features(SOURCES)
    rows = 2000
    X = np.zeros((rows, len(names)))
    X[:, names.index("ssd")] = rng.uniform(0, 1, rows)  # for a face
    X[:, names.index("zoomed_short_range")] = rng.uniform(0, 1, rows)  # against one (as if)
    X[:, names.index("blazeface")] = rng.uniform(0, 1, rows)  # noise
    X[:, names.index("blazeface_passes")] = rng.integers(0, 4, rows)  # noise, up to 3 passes
    X[:, names.index("ssd_passes")] = X[:, names.index("ssd")] > 0  # one pass: only "proposed"
    logit = -1.0 + 4.0 * X[:, names.index("ssd")] - 4.0 * X[:, names.index("zoomed_short_range")]
    y = (rng.uniform(0, 1, rows) < 1 / (1 + np.exp(-logit))).astype(int)

    table = fusion.fit(names, X, y, fitted_on="synthetic")
    weights = table["weights"]
    assert weights["ssd"] > 2 and weights["zoomed_short_range"] < -2
    assert abs(weights["blazeface"]) < 1 and abs(weights["blazeface_passes"]) < 0.5
    # Pass counts of one-pass sources say no more than their scores; the others stay in the table's order.
    assert list(weights) == ["ssd", "blazeface", "mtcnn_below_threshold", "blazeface_passes",
                             "zoomed_full_range", "zoomed_short_range"]
    assert table["sources"] == SOURCES
    assert table["fitted_on"].startswith("synthetic: 2000 proposal groups")

    with pytest.raises(ValueError, match="groups on faces and groups off them"):
        fusion.fit(names, X, np.zeros(rows, dtype=int))


def test_the_threshold_table_shows_the_trade_off_on_groups_left_out_of_the_fit(tmp_path) -> None:
    rng = np.random.default_rng(1)
    names = fusion_features(SOURCES)
    rows = 1500
    X = np.zeros((rows, len(names)))
    y = (rng.uniform(0, 1, rows) < 0.3).astype(int)
    X[:, names.index("ssd")] = np.clip(0.35 * y + rng.normal(0.3, 0.2, rows), 0, 1)  # overlapping evidence

    table = fusion.threshold_table(names, X, y)
    assert [row["threshold"] for row in table] == list(fusion.THRESHOLDS)
    assert table[0]["threshold"] == 0.1 and table[-1]["threshold"] == 0.9
    assert all(row["probabilities"] == "cross-validated" for row in table)
    kept = [row["groups_kept"] for row in table]
    assert kept == sorted(kept, reverse=True) and kept[0] > kept[-1]  # a stricter threshold never keeps more
    recall = [row["recall"] for row in table]
    assert recall == sorted(recall, reverse=True) and recall[0] > 0.9
    for row in table:
        assert row["faces_kept"] <= row["groups_kept"]
        if row["groups_kept"]:
            assert row["precision"] == pytest.approx(row["faces_kept"] / row["groups_kept"], abs=1e-4)
    assert table[8]["precision"] > table[0]["precision"]  # at 0.5 the kept groups are surer than at 0.1

    line = fusion.threshold_summary(table, 0.4)
    best = max(table, key=lambda row: row["f1"])
    assert f"F1 peaks at {best['threshold']:g}" in line and "at the default 0.4: precision" in line
    fusion.write_threshold_table(table, tmp_path / "thresholds.csv")
    written = (tmp_path / "thresholds.csv").read_text().splitlines()
    assert written[0] == "threshold,groups_kept,faces_kept,precision,recall,f1,probabilities"
    assert len(written) == 1 + len(table)

    few = np.array([1, 0, 1, 0, 1, 0])  # too few rows for folds: the table says its probabilities are in-sample
    assert fusion.threshold_table(names, X[:6], few)[0]["probabilities"] == "in-sample"


def test_save_and_load_round_trip(tmp_path) -> None:
    table = {"weights": {"ssd": 1.5, "blazeface": -0.25, "zoomed_full_range": 3.0}, "bias": -4.0,
             "sources": ["ssd", "blazeface"], "fitted_on": "a test"}
    path = tmp_path / "deeper" / "fusion.json"
    fusion.save(table, path)
    assert fusion.load(path) == table
    assert list(fusion.load(path)["weights"]) == list(table["weights"])  # the sum's order
    assert [entry.name for entry in path.parent.iterdir()] == ["fusion.json"]  # no temporary file left
    with pytest.raises(ValueError, match="bias"):
        fusion.save({**table, "bias": float("nan")}, path)
    assert fusion.load(path) == table


def test_the_shipped_file_is_a_fusion_table_for_every_built_in_source() -> None:
    shipped = load_fusion()
    assert shipped["sources"] == [*SOURCES, "facefinder"] == list(PROPOSAL_SOURCES)
    assert set(shipped["weights"]) <= set(fusion_features([*SOURCES, "facefinder"]))
    assert shipped["weights"]["facefinder"] > 0  # the finder's score counts for a face


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "do not exist"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"weights": {"ssd": 1}, "bias": 0, "sources": ["ssd"]}', "missing key.*fitted_on"),
        ('{"weights": {"ssd": "1"}, "bias": 0, "sources": ["ssd"], "fitted_on": ""}', "'weights' must map"),
        ('{"weights": {"ssd": 1}, "bias": null, "sources": ["ssd"], "fitted_on": ""}', "'bias'"),
        ('{"weights": {"ssd": 1}, "bias": 0, "sources": "ssd", "fitted_on": "", "extra": 1}', "unknown key"),
    ],
)
def test_a_bad_fusion_file_is_one_line_before_models_load(tmp_path, content: str | None, message: str) -> None:
    path = tmp_path / "fusion.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=message) as info:
        FaceDetector(fusion=str(path))
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_the_fusion_setting_is_a_path() -> None:
    assert DetectorSettings(fusion=REPO / "x.json").fusion == str(REPO / "x.json")
    with pytest.raises(ValueError, match="fusion must be"):
        DetectorSettings(fusion=3)  # type: ignore[arg-type]


def test_collect_on_real_labelled_photos(caplog: pytest.LogCaptureFixture) -> None:
    labels = annotations.read(shared_data("wild"))
    labels.photos = labels.photos[:4]
    detector = fusion.collecting_detector()
    names, X, y, used = fusion.collect(labels, detector, progress=False)
    assert used == 4
    assert names == fusion_features(list(PROPOSAL_SOURCES))
    assert X.shape == (len(y), len(names)) and len(y) > 0
    assert y.sum() >= 1 and y.sum() < len(y)
    assert (X[:, names.index("blazeface_passes")] <= 3).all() and (X[:, :3] <= 1).all()

    # A photo that cannot be read is one line and skipped; the others go on.
    broken = annotations.LabelledPhoto(REPO / "no_such_photo.jpg", [annotations.LabelledFace("mask", (0, 0, 9, 9))])
    labels.photos = [broken, labels.photos[0]]
    names, X, y, used = fusion.collect(labels, detector, progress=False)
    assert used == 1 and len(y) > 0
    skipped = [record.getMessage() for record in caplog.records if "no_such_photo" in record.getMessage()]
    assert len(skipped) == 1 and "\n" not in skipped[0] and "skipped" in skipped[0]


def test_the_command_writes_the_weights_and_their_threshold_table(tmp_path, capsys) -> None:
    """Four real labelled photos: the weights, and beside them what each threshold keeps of the groups
    (in-sample: four photos give too few groups for folds)."""
    output = tmp_path / "mine.json"
    assert fusion.main(["--annotations", str(shared_data("wild")), "--limit", "4", "--output", str(output),
                        "--quiet"]) == 0
    assert load_fusion(output)["fitted_on"].startswith("4 photos of ")
    rows = (tmp_path / "mine_thresholds.csv").read_text().splitlines()
    assert rows[0] == "threshold,groups_kept,faces_kept,precision,recall,f1,probabilities"
    assert len(rows) == 1 + len(fusion.THRESHOLDS) and rows[1].endswith(",in-sample")
    printed = capsys.readouterr().out
    assert "second-stage threshold (in-sample on the groups): F1 peaks at" in printed
    assert f"-> {tmp_path / 'mine_thresholds.csv'}" in printed


def test_the_command_on_a_missing_path_is_one_line(tmp_path) -> None:
    result = subprocess.run([PYTHON, "-m", "maskdetect.face.fusion_fit", "--annotations", str(tmp_path / "nowhere"),
                             "--output", str(tmp_path / "fusion.json")], cwd=REPO, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "nowhere" in result.stderr and "do not exist" in result.stderr
    assert not (tmp_path / "fusion.json").exists()
    assert fusion.main(["--annotations", str(tmp_path), "--output", str(tmp_path / "f.json"), "--limit", "-1"]) == 2


def test_import_is_light() -> None:
    code = ("import sys, maskdetect.face.fusion_fit; "
            "print(sorted(m for m in ('tensorflow', 'cv2', 'mtcnn', 'sklearn') if m in sys.modules))")
    result = subprocess.run([PYTHON, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert json.loads(result.stdout.strip().replace("'", '"')) == []
