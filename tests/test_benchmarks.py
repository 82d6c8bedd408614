"""The benchmarks and the experiments are packages run as ``python -m benchmarks.bench_NAME`` and
``python -m experiments.NAME``: each starts, imports the project the normal way (no sys.path edits, no module
importing another but through benchmarks.common), and what they share (benchmarks.common: the detection set read,
matched and searched for faces, the end-to-end scorer, the results written) works on real photos."""

from __future__ import annotations

import ast
import csv
import dataclasses
import importlib
import json
import subprocess

import numpy as np
import pytest
from helpers import ASTRONAUT_FACE, GREEN_MASK, PYTHON, REPO, make_crop_dataset, picture, shared_data
from PIL import Image

from benchmarks import ablation, common

BENCHMARKS = sorted(path.stem for path in (REPO / "benchmarks").glob("bench_*.py"))
EXPERIMENTS = sorted(path.stem for path in (REPO / "experiments").glob("*.py") if path.stem != "__init__")
# every runnable module: (package, name)
MODULES = [("benchmarks", name) for name in BENCHMARKS] + [("experiments", name) for name in EXPERIMENTS]


def test_there_are_benchmarks():
    assert {"bench_face_stage", "bench_detect", "bench_data", "bench_train"} <= set(BENCHMARKS)
    assert "bench_detect" in BENCHMARKS
    assert {"decision_rules", "domain_gap", "street_recipes"} <= set(EXPERIMENTS)
    assert (REPO / "experiments" / "README.md").is_file()


@pytest.mark.parametrize(("package", "name"), MODULES)
def test_each_benchmark_imports_the_package_and_only_common(package, name):
    tree = ast.parse((REPO / package / f"{name}.py").read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert not node.level, "a relative import: run as python -m benchmarks.NAME, import benchmarks.common"
            imported.add(node.module or "")
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            assert (node.value.id, node.attr) != ("sys", "path"), "sys.path is not edited"
    assert not {module for module in imported if module.startswith("bench_")}, "imports another benchmark"
    # what benchmarks share is in their helper modules (common, ablation), never in another benchmark
    helpers = {f"benchmarks.{path.stem}" for path in (REPO / "benchmarks").glob("*.py")
               if not path.stem.startswith("bench_") and path.stem != "__init__"}
    assert {module.rsplit(".", 1)[0] if module.count(".") > 1 else module
            for module in imported if module.startswith("benchmarks.")} <= helpers | {"benchmarks"}
    assert {module for module in imported if module.startswith("benchmarks.common.")} <= {
        f"benchmarks.common.{attribute}" for attribute in dir(common)}
    assert not {module for module in imported if module.startswith("experiments")}, "imports an experiment"


@pytest.mark.parametrize(("package", "name"), MODULES)
def test_each_benchmark_starts(package, name, capsys):
    module = importlib.import_module(f"{package}.{name}")
    with pytest.raises(SystemExit) as exit_:
        module.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage:") and module.__doc__.splitlines()[0][:40] in " ".join(out.split())


def test_the_documented_command_runs_from_the_repository_root():
    finished = subprocess.run([PYTHON, "-m", "benchmarks.bench_detect", "--help"], cwd=REPO, capture_output=True,
                              text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    assert "--detection" in finished.stdout and "bench_detect" in finished.stdout


def test_every_module_starts_as_documented_in_one_process_each():
    """``python -m PACKAGE.NAME --help`` from the repository root, for every benchmark and experiment (a few
    seconds: nothing heavy is imported before it runs)."""
    for package, name in MODULES:
        finished = subprocess.run([PYTHON, "-m", f"{package}.{name}", "--help"], cwd=REPO, capture_output=True,
                                  text=True, timeout=300)
        assert finished.returncode == 0, f"{package}.{name}: {finished.stderr}"
        assert finished.stdout.startswith("usage:") and name in finished.stdout


def write_detection_set(root):
    """A detection set (boxes.csv + images/) of real photos: the astronaut with a green mask, the astronaut as she
    is (also a 20 px box, too small to count), and a landscape photo stored sideways with an EXIF rotation."""
    masked = picture("astronaut")
    from PIL import ImageDraw

    ImageDraw.Draw(masked).rectangle(GREEN_MASK, fill=(0, 255, 0))
    (root / "images").mkdir(parents=True)
    masked.save(root / "images" / "masked.jpg", quality=95)
    picture("astronaut").save(root / "images" / "bare.jpg", quality=95)
    rocket = picture("rocket")  # 640 x 427 as stored; EXIF orientation 6 shows it turned, 427 x 640
    exif = Image.Exif()
    exif[0x0112] = 6
    rocket.save(root / "images" / "sideways.jpg", exif=exif.tobytes())
    rows = [("masked.jpg", 512, 512, "mask", *ASTRONAUT_FACE),
            ("bare.jpg", 512, 512, "without_mask", *ASTRONAUT_FACE),
            ("bare.jpg", 512, 512, "without_mask", 10, 10, 30, 30),
            ("sideways.jpg", rocket.width, rocket.height, "incorrect_mask", 10, 10, 60, 60)]
    with open(root / "boxes.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "width", "height", "label", "xmin", "ymin", "xmax", "ymax"])
        writer.writerows(rows)
    return root


def test_the_detection_set_is_read_and_checked(tmp_path):
    import argparse

    data = write_detection_set(tmp_path / "detection")
    assert common.has_detection_set(data) and not common.has_detection_set(tmp_path)
    parser = argparse.ArgumentParser(prog="bench")
    common.require_detection_set(parser, data)
    with pytest.raises(SystemExit) as exit_:
        common.require_detection_set(parser, tmp_path / "nothing", "--data")
    assert exit_.value.code == 2
    truth = common.load_truth(data)
    assert sorted(truth) == ["bare.jpg", "masked.jpg", "sideways.jpg"]
    assert [label for label, _ in truth["bare.jpg"]] == ["without_mask", "without_mask"]
    assert np.array_equal(truth["masked.jpg"][0][1], ASTRONAUT_FACE)
    sizes = common.photo_sizes(data)
    assert sizes["masked.jpg"] == (512, 512) and sizes["sideways.jpg"] == (640, 427)
    assert common.load_photo(data / "images" / "bare.jpg", 512, 512).shape == (512, 512, 3)
    # the labels were drawn on the stored pixel grid: the EXIF rotation would turn the photo off them
    assert common.load_photo(data / "images" / "sideways.jpg", *sizes["sideways.jpg"]).shape == (427, 640, 3)


def test_matches_count_faces_of_the_minimum_size_and_match_at_the_iou():
    labels = [("mask", np.array(ASTRONAUT_FACE, float)), ("without_mask", np.array([10, 10, 30, 30], float)),
              ("without_mask", np.array([300, 300, 400, 400], float))]
    boxes = [(182, 62, 298, 198), (5, 5, 35, 35), (340, 340, 440, 440)]
    assert [(label, best) for label, _, best in common.matches(labels, boxes)] == [("mask", 0), ("without_mask", None)]
    # the 20 px face is counted at min_size 16; the third face matches its box at a lower IoU
    found = [(label, best) for label, _, best in common.matches(labels, boxes, min_size=16, iou=0.2)]
    assert found == [("mask", 0), ("without_mask", 1), ("without_mask", 2)]
    assert [best for _, _, best in common.matches(labels, [])] == [None, None]


def test_folds_split_photos_by_name_the_same_way_every_time():
    folds = [common.fold_of(f"photo_{k}.jpg") for k in range(200)]
    assert set(folds) == set(range(common.FOLDS)) and folds == [common.fold_of(f"photo_{k}.jpg") for k in range(200)]


def test_collect_finds_and_cuts_the_labelled_faces(tmp_path):
    data = write_detection_set(tmp_path / "detection")
    collected = common.collect(data, ["mask", "without_mask"])
    found, labelled = collected["found"], collected["labelled"]
    # both astronaut faces are counted (the 20 px face and the unknown label are not) and cut from their boxes
    assert sorted(labelled["labels"].tolist()) == ["mask", "without_mask"]
    assert labelled["crops"].shape == (2, 256, 256, 3)
    assert sum(collected["counted"].values()) == 2
    # the face stage finds the bare face at least (a masked face is harder), cut with its own geometry
    assert "without_mask" in found["labels"].tolist() and found["crops"].shape[1:] == (256, 256, 3)
    assert set(found["folds"].tolist()) <= {common.fold_of("bare.jpg"), common.fold_of("masked.jpg")}


@pytest.mark.slow
@pytest.mark.timeout(1200)  # two child processes, each importing TensorFlow and training
def test_bench_train_speed_runs_both_sides_in_child_processes(tmp_path, monkeypatch, capsys):
    from benchmarks import bench_train

    crops = make_crop_dataset(tmp_path / "crops", per_class=12, size=48)
    monkeypatch.chdir(tmp_path)  # the children find the benchmarks package from anywhere
    assert bench_train.main(["--data", str(crops), "--epochs", "1", "--image-size", "32", "--batch-size", "8",
                             "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "baseline" in out and "ours" in out and "speed-up: ours/baseline" in out
    rows = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [row["side"] for row in rows] == ["baseline", "ours", "ours/baseline"]


def test_the_modes_of_the_face_stage_benchmark_take_only_their_own_flags(capsys):
    from benchmarks import bench_face_stage

    for argv, message in ((["--ablation", "--replay"], "two modes"), (["--fit-data", "x"], "not in the measuring mode"),
                          (["--ablation", "--vetoes", "0.1"], "not in --ablation"),
                          (["--replay", "--variants", "ssd"], "not in --replay")):
        with pytest.raises(SystemExit) as exit_:
            bench_face_stage.parse_args(argv)
        assert exit_.value.code == 2 and message in capsys.readouterr().err, argv
    names = [name for name, _, _ in ablation.VARIANTS]
    assert names[0] == "defaults" and len(set(names)) == len(names)
    # every variant is a valid setting of the stage, and the refitted ones change a fusion feature
    from maskdetect.face import DetectorSettings

    for name, overrides, refitted in ablation.VARIANTS:
        settings = DetectorSettings(**overrides)
        assert refitted == (name == "defaults, fusion refitted" or bool(
            {"proposal_sources", "blazeface_passes", "zoom", "ssd_size"} & set(overrides))), name
        assert settings != DetectorSettings() or not overrides, name


@pytest.mark.slow  # the face stage twice on two photos, a fusion refitted on eight
def test_the_ablation_scores_each_variant_and_refits_the_fusion_without_the_part_it_removes(tmp_path, capsys):
    """On real photos: the variants that keep the fusion are scored as the stage with their settings scores; a
    fusion refitted without the ssd source weighs no ssd feature and its detector runs without it."""
    from benchmarks import bench_face_stage
    from maskdetect import annotations
    from maskdetect.face import FaceDetector, load_fusion

    data = write_detection_set(tmp_path / "detection")
    out = tmp_path / "out"
    assert bench_face_stage.main(["--ablation", "--data", str(data), "--variants", "first view", "without the verifier",
                                  "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert [r["name"] for r in results] == ["defaults", "verifier on its first view only", "without the verifier"]
    assert results[2]["settings"] == {"verifier_threshold": None} and "without the verifier" in printed
    truth = common.load_truth(data)
    direct = common.Detections("direct")
    detector = FaceDetector(num_threads=1, verifier_threshold=None)
    for photo in sorted(truth):
        rgb = common.load_photo(data / "images" / photo, *common.photo_sizes(data)[photo])
        direct.add(photo, bench_face_stage.face_rows(detector)(rgb), 0.0)
    assert common.score(direct, truth, common.MIN_FACE, common.MATCH_IOU)["found"] == results[2]["found"]
    wild = annotations.read(shared_data("wild"))
    labels = annotations.Labels(wild.photos[:8])
    overrides = dict(next(o for n, o, _ in ablation.VARIANTS if n == "without the ssd source"))
    path = ablation.refit(overrides, labels, 1, tmp_path, "without the ssd source")
    table = load_fusion(path)
    assert "ssd" not in table["sources"] and not any(name.startswith("ssd") for name in table["weights"])
    assert "ssd" not in FaceDetector(num_threads=1, fusion=path, **overrides).settings.source_names()


@pytest.mark.slow  # the whole benchmark on a few photos, ~10 s; why_missed runs in the quick tier
def test_bench_face_stage_scores_the_defaults_at_other_thresholds_from_one_run(tmp_path, capsys):
    """Two labelled real photos: the defaults, the stage before the face finder and the threshold curve are
    scored and written as results.json and results.csv, and every unmatched box and missed face has a contact
    sheet."""
    from benchmarks import bench_face_stage

    data = write_detection_set(tmp_path / "detection")
    out = tmp_path / "out"
    assert bench_face_stage.main(["--data", str(data), "--no-plain", "--thresholds", "0.1", "0.9",
                                  "--verifier-threshold", "0.95", "--without-verifier", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    for name in ("maskdetect defaults (second stage at 0.4, verifier at 0.95)",
                 "the defaults with the second stage at 0.1", "the defaults with the second stage at 0.9",
                 "baseline: ssd+blazeface+mtcnn_below_threshold, fusion_before_facefinder.json, threshold 0.25, "
                 "no verifier",
                 "the defaults without the face verifier (second stage at 0.4)"):
        assert f"== {name}" in printed
    assert "defaults against the defaults without the verifier: mask recall " in printed
    # the baseline is the stage before the face finder, so before the verifier too
    baseline = bench_face_stage.baseline_detector(bench_face_stage.parse_args(["--data", str(data)]))
    assert baseline.settings.verifier_threshold is None and "facefinder" not in baseline.settings.source_names()
    summary = json.loads((out / "results.json").read_text())
    table = list(csv.DictReader((out / "results.csv").open()))
    assert [row["name"] for row in table] == [row["name"] for row in summary]
    assert [int(row["kept"]) for row in table] == [row["kept"] for row in summary]
    kept = [row["kept"] for row in summary]
    # a stricter threshold never keeps more boxes; the MTCNN faces are kept at every threshold
    assert kept[3] >= kept[0] >= kept[4] >= summary[4]["by_detector"].get("mtcnn", {"kept": 0})["kept"]
    # the verifier only adds faces; those on no label are listed apart
    assert kept[0] >= kept[2]
    added = list(csv.DictReader((out / "verifier_added.csv").open()))
    # against the run without the verifier, not the baseline: the fusion's boxes are the same in both
    assert len(added) == summary[0]["unmatched"] - summary[2]["unmatched"]
    assert f"unmatched boxes the verifier adds: {len(added)}" in printed
    new = ("a.jpg", [50, 50, 60, 60], 0.97, "s")
    assert bench_face_stage.verifier_added([("a.jpg", [0, 0, 10, 10], 0.99, "s"), new],
                                           [("a.jpg", [0, 0, 10, 11], 0.5, "s")]) == [new]
    # why each missed face was missed, one row each, with its class; a line per class
    missed = list(csv.DictReader((out / "missed.csv").open()))
    counts = ", ".join(f"{sum(row['label'] == name for row in missed)} {name}" for name in common.CLASSES)
    assert f"faces of 32 px or more that the defaults miss: {counts}" in printed
    assert all(f"  why, {name}: " in printed for name in common.CLASSES)
    assert all(row["reason"] in ("boxed off", "below threshold", "suppressed", "vetoed", "not proposed")
               for row in missed)
    # a contact sheet for each class with missed faces, and none for the others
    assert {path.name for path in out.glob("missed_*.png")} == {f"missed_{row['label']}_01.png" for row in missed}


def test_why_a_face_was_missed_on_a_real_photo(tmp_path):
    """On the real astronaut photo, with the real face stage: a label that the kept face overlaps at IoU 0.29 is
    boxed off; one on the weak proposal group above her head is below the threshold, or vetoed by the verifier when
    the threshold is under its probability (suppressed with no veto); one on the empty corner was not proposed.
    The judge is a keep rule: the detector's own, at another threshold or without its veto."""
    from benchmarks import ablation, bench_face_stage
    from maskdetect.face.detector import FaceDetector

    data = write_detection_set(tmp_path / "detection")
    # the stage before its presets, which proposes a weak group above her head (the defaults propose none there)
    detector = FaceDetector(num_threads=1, ssd_size=640, blazeface_passes=("photo", "mirror", "tiles"),
                            fusion=str(ablation.BEFORE_PRESETS))
    rgb = np.asarray(picture("astronaut"))
    kept = bench_face_stage.Detections("kept")
    kept.add("bare.jpg", [(f.x1, f.y1, f.x2, f.y2, f.confidence, f.detector) for f in detector.detect(rgb)], 0.0)
    (face,) = kept.boxes["bare.jpg"]
    groups = detector.proposal_groups(rgb)
    assert groups, "the real face stage proposes a weak group above her head"
    group_box, features = groups[0]
    probability = detector.fused_probability(features)
    assert probability < 0.4
    shifted = face + np.array([50, 0, 50, 0])
    missed = [("bare.jpg", shifted, "without_mask"), ("bare.jpg", np.asarray(group_box, float), "mask"),
              ("bare.jpg", np.array([440.0, 440.0, 500.0, 500.0]), "mask")]
    at = dataclasses.replace(detector.rule, second_stage_threshold=0.4)
    rows = bench_face_stage.why_missed(detector, kept, missed, data, 0.4, at)
    assert [row["reason"] for row in rows] == ["boxed off", "below threshold", "not proposed"]
    assert 0.2 <= rows[0]["kept_iou"] < 0.4 and rows[0]["kept_by"] == "mtcnn" and rows[1]["kept_by"] == ""
    assert rows[1]["group_probability"] == round(probability, 3)
    assert [row["label"] for row in rows] == ["without_mask", "mask", "mask"]
    assert bench_face_stage.why_line(rows, 0.4).startswith("1 boxed off, 1 with a proposal group on them under 0.4")
    # under a threshold below its probability, the verifier vetoes it (no view sees a face in her hair)...
    lower = dataclasses.replace(detector.rule, second_stage_threshold=probability / 2)
    vetoed = bench_face_stage.why_missed(detector, kept, missed[1:2], data, 0.4, lower)
    assert vetoed[0]["reason"] == "vetoed"
    # ...and with no veto, it would be kept but for the likelier face it overlaps
    no_veto = dataclasses.replace(lower, verifier_veto=None)
    suppressed = bench_face_stage.why_missed(detector, kept, missed[1:2], data, 0.4, no_veto)
    assert suppressed[0]["reason"] == "suppressed"


@pytest.mark.slow  # the face stage at four settings on a 105-face photo, ~35 s
def test_the_second_stage_replayed_from_its_cache_is_what_the_face_stage_keeps(tmp_path, capsys):
    """On a real crowd photo of the detection set: the boxes that bench_face_stage --replay replays from the cached
    proposal groups (a keep rule, no network) are those FaceDetector.detect keeps, with no verifier, at the default
    threshold and at a lower one, and with a higher veto; the command reuses its cache and writes its rows."""
    from benchmarks import bench_face_stage
    from maskdetect.face import DetectorSettings, FaceDetector, faceverifier

    detection = shared_data("detection")
    crowd = "6d23852cb67ebb6dd0d289969c028d3f.jpg"  # 105 labelled faces, masked and not, many small
    data = tmp_path / "detection"
    (data / "images").mkdir(parents=True)
    (data / "images" / crowd).symlink_to(detection / "images" / crowd)
    lines = (detection / "boxes.csv").read_text().splitlines()
    (data / "boxes.csv").write_text("\n".join([lines[0], *(line for line in lines if line.startswith(crowd))]))
    detector = FaceDetector(num_threads=1, verifier_threshold=None)
    key = bench_face_stage.stage_key(detector, [crowd], data)
    cache = bench_face_stage.build_cache(detector, [crowd], data, key)
    views = bench_face_stage.view_scores(faceverifier.FaceVerifier.load(faceverifier.SHIPPED_MODEL), cache, data)
    rgb = common.load_photo(data / "images" / crowd, *common.photo_sizes(data)[crowd])
    kept, default, veto = {}, DetectorSettings().verifier_threshold, DetectorSettings().verifier_veto
    # the live stage looks at the other views only where they can change its decision, the replay at all of them
    for threshold, veto_at in ((None, veto), (default, veto), (0.5, veto), (default, 0.95)):
        rule = bench_face_stage.replay_rule(detector.settings, threshold, veto_at)
        replayed = bench_face_stage.replay(cache, views, bench_face_stage.VIEWS["min"], rule, "")
        live = FaceDetector(num_threads=1, verifier_threshold=threshold, verifier_veto=veto_at).detect(rgb)
        assert replayed.source[crowd] == [face.detector for face in live]
        assert np.allclose(replayed.boxes[crowd], [[face.x1, face.y1, face.x2, face.y2] for face in live])
        assert np.allclose(replayed.conf[crowd], [face.confidence for face in live])
        kept[threshold, veto_at] = len(live)
    # the verifier adds faces here; a higher veto can only drop faces
    assert kept[None, veto] <= kept[default, veto] <= kept[0.5, veto] and kept[None, veto] < kept[0.5, veto]
    assert kept[default, 0.95] <= kept[default, veto]
    arguments = ["--replay", "--data", str(data), "--cache", str(tmp_path / "cache.json"), "--verifier-thresholds",
                 str(default), "--views", "min", "median", "--out", str(tmp_path / "out")]
    assert bench_face_stage.main(arguments) == 0 and bench_face_stage.main(arguments) == 0
    (tmp_path / "broken.json").write_text('{"key": ')  # a run killed while writing it
    assert bench_face_stage.read_cache(tmp_path / "broken.json") is None
    printed = capsys.readouterr().out
    assert printed.count("running the face stage on 1 photos") == 1 and "proposal groups from" in printed
    assert "broken.json cannot be read" in printed
    assert f"min >= {default:g} (default)" in printed and f"median >= {default:g}" in printed
    assert "added: mask " in printed
    rows = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [row["name"] for row in rows] == ["no verifier", f"min >= {default:g} (default)", f"median >= {default:g}"]
    assert rows[1]["verifier_threshold"] == default and "added" in rows[1]
    # a flag of the other mode is a usage error, not ignored
    with pytest.raises(SystemExit) as exit_:
        bench_face_stage.parse_args(["--data", str(data), "--vetoes", "0.01"])
    assert exit_.value.code == 2


def test_bench_video_counts_a_track_on_no_face_against_the_tracker_unless_the_rule_leaves_it_out():
    from benchmarks import bench_video

    face = np.array([100.0, 100.0, 160.0, 170.0])
    frames = [{"counted": [("photo#0", "without_mask", face)], "small": []} for _ in range(30)]
    rows = [{"frame": str(i), "track": "1", **dict(zip(("x1", "y1", "x2", "y2"), map(str, face + i % 3), strict=True))}
            for i in range(30)]
    rows += [{"frame": str(i), "track": "2", "x1": "400", "y1": "50", "x2": "430", "y2": "85"} for i in range(30)]
    people = {1: {"label": "without_mask", "detections": "2", "confidence": "0.99"},
              2: {"label": "mask", "detections": "3", "confidence": "0.6"}}  # a box on no face, never sure
    every_track = bench_video.score_video(frames, rows, bench_video.counted_under(people, 1, 0.0), 20)
    assert every_track["extra"]["no_face"] == 1 and every_track["predicted"] == {"without_mask": 1, "mask": 1}
    ruled = bench_video.score_video(frames, rows, bench_video.counted_under(people, 2, 0.9), 20)
    assert ruled["extra"]["no_face"] == 0 and ruled["predicted"] == {"without_mask": 1}
    assert ruled["true"] == {"without_mask": 1} and ruled["right"] == {"without_mask": 1}
    assert bench_video.counted_under(people, 3, 0.0) == {2: "mask"}


def test_bench_video_held_out_makes_videos_only_of_photos_the_face_stage_was_not_trained_on():
    from benchmarks import bench_video
    from maskdetect.annotations import held_out

    two_faces = [("mask", np.array([10.0, 10.0, 90.0, 90.0])), ("without_mask", np.array([200.0, 10.0, 290.0, 90.0]))]
    names = [f"street_{number}.jpg" for number in range(200)]
    truth = {name: two_faces for name in names}
    sizes = {name: (640, 480) for name in names}
    every = bench_video._usable(truth, sizes, 32)
    held = bench_video._usable(truth, sizes, 32, held_out_only=True)
    assert every == sorted(names)
    assert held and len(held) < len(every) / 2
    assert bench_video.held_out_share() == 0.2  # what the shipped face finder's file records
    assert held == [name for name in every if held_out(name, 0.2)]
