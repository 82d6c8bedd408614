"""train_a_model.py: tiny real trainings, the grouped split, the log, and bad input."""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import multiprocessing
from pathlib import Path

import numpy as np
import pytest
from helpers import make_crop_dataset, make_labelled_folder

from maskdetect import artifact, data, decisions, facecrops, records, runlog, train

TINY = ["--model", "small", "--epochs", "2", "--image-size", "32", "--batch-size", "8", "--jobs", "1"]


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> Path:
    return make_crop_dataset(tmp_path_factory.mktemp("crops") / "processed_data", per_class=24)


@pytest.mark.parametrize("network", ["small", pytest.param("deep", marks=pytest.mark.slow),
                                     pytest.param("mobilenetv2", marks=pytest.mark.slow)])
def test_tiny_run_saves_a_model_that_reloads_and_predicts(crops, tmp_path, network, capsys):
    logs = tmp_path / "logs"
    # mobilenetv2 from scratch here; its ImageNet start is tested offline in test_weights.py
    scratch = ["--weights", "none"] if network == "mobilenetv2" else []
    argv = ["--data", str(crops), "--logs", str(logs), *TINY, "--model", network, "--notes", "tiny", *scratch]
    assert train.main(argv) == 0
    assert "test accuracy" in capsys.readouterr().out
    rows = records.read_rows(logs / runlog.LOG_NAME)
    assert len(rows) == 1
    row = rows[0]
    assert row["status"] == "ok" and row["model"] == network and row["image_size"] == "32"
    assert row["epochs"] == "2" and row["optimizer"] == "adam" and row["notes"] == "tiny"
    assert 0 <= float(row["val_accuracy"]) <= 1 and 0 <= float(row["test_accuracy"]) <= 1
    assert int(row["train_size"]) + int(row["val_size"]) + int(row["test_size"]) == 48
    run_dir = Path(row["run_dir"])
    for name in ("config.json", "history.csv", "metrics.json", "model.keras", "curves.png", "confusion.png",
                 "roc.png", "misclassified.png"):
        assert (run_dir / name).exists(), name

    model, meta = artifact.load_model(row["model_path"])
    assert meta["class_names"] == ["mask", "without_mask"] and meta["image_size"] == 32
    pixels = np.random.default_rng(0).integers(0, 256, size=(5, 32, 32, 3), dtype=np.uint8)
    probabilities = artifact.predict_probabilities(model, pixels)
    assert probabilities.shape == (5, 2)
    assert np.all((probabilities >= 0) & (probabilities <= 1)) and np.allclose(probabilities.sum(axis=1), 1)


@pytest.mark.slow  # another training; the tiny runs cover the path
def test_three_classes_use_softmax(tmp_path):
    root = make_crop_dataset(tmp_path / "data", per_class=14, classes=("a", "b", "c"))
    assert train.main(["--data", str(root), "--logs", str(tmp_path / "logs"), *TINY]) == 0
    row = records.read_rows(tmp_path / "logs" / runlog.LOG_NAME)[0]
    model, meta = artifact.load_model(row["model_path"])
    assert model.output_shape[-1] == 3 and meta["class_names"] == ["a", "b", "c"]


def test_grouped_split_keeps_each_photo_on_one_side():
    rng = np.random.default_rng(0)
    groups = [f"photo{index // 3}" for index in range(600)]  # three crops per photo
    labels = np.array([int(rng.random() < 0.3) for _ in range(200) for _ in range(3)])
    splits = data.grouped_split(labels, groups, (0.7, 0.15, 0.15), seed=1)
    assert sorted(np.concatenate(splits).tolist()) == list(range(600))
    seen = [{groups[i] for i in split} for split in splits]
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])
    for split, share in zip(splits, (0.7, 0.15, 0.15), strict=True):
        assert abs(len(split) / 600 - share) < 0.03
        assert abs(labels[split].mean() - labels.mean()) < 0.05  # stratified
    again = data.grouped_split(labels, groups, (0.7, 0.15, 0.15), seed=1)
    assert [split.tolist() for split in splits] == [split.tolist() for split in again]  # seeded


def test_crops_of_one_photo_are_grouped_through_faces_csv(tmp_path):
    root = make_crop_dataset(tmp_path / "processed_data", per_class=12)
    crops_on_disk = sorted(root.glob("*/*.jpg"))
    rows = [{"crop": str(path.resolve()), "source": f"photo{i // 4}.jpg", "source_sha256": f"sha{i // 4}",
             "class": path.parent.name, "kind": "auto"} for i, path in enumerate(crops_on_disk)]
    records.append_rows(root / facecrops.MANIFEST, facecrops.FACE_FIELDS, rows)
    found = data.find_crops(root)
    assert len(set(found.groups)) == 6
    for seed in range(5):
        splits = data.grouped_split(found.labels, found.groups, (0.6, 0.2, 0.2), seed)
        sides = [{found.groups[i] for i in split} for split in splits]
        assert sum(len(side) for side in sides) == 6


def _append(logs: str, worker: int) -> None:
    for index in range(40):
        runlog.append_log(logs, {"run_id": f"{worker}-{index}", "status": "ok", "notes": "a, \"b\"\nc"})


def test_two_runs_appending_at_once_leave_a_valid_log(tmp_path):
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append, args=(str(tmp_path), worker)) for worker in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    with open(tmp_path / runlog.LOG_NAME, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == runlog.LOG_FIELDS and len(rows) == 81
    assert all(len(row) == len(runlog.LOG_FIELDS) for row in rows)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--epochs", "0"], "--epochs"), (["--kernel-size", "4"], "--kernel-size"),
        (["--image-size", "8"], "--image-size"), (["--optimizer", "adagrad"], "--optimizer"),
        (["--model", "resnet"], "--model"), (["--augmentation", "wild"], "--augmentation"),
        (["--learning-rate", "-1"], "--learning-rate"), (["--val-split", "0.7"], "--val-split"),
        (["--weights", "w.h5"], "--weights"),
    ],
)
def test_bad_flags_are_one_line(crops, tmp_path, capsys, flags, message):
    assert train.main(["--data", str(crops), "--logs", str(tmp_path), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_bad_data_is_one_line(tmp_path, capsys):
    single = make_crop_dataset(tmp_path / "single", per_class=6, classes=("mask",))
    few = make_crop_dataset(tmp_path / "few", per_class=2)
    cases = [(tmp_path / "absent", "does not exist"), (single, "at least two class folders"),
             (few, "too few images")]
    for folder, message in cases:
        assert train.main(["--data", str(folder), "--logs", str(tmp_path / "logs"), *TINY]) == 2
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and message in errors[0] and "Traceback" not in err, err


@pytest.mark.slow  # another training
def test_an_unreadable_crop_is_skipped_and_counted(tmp_path, capsys):
    root = make_crop_dataset(tmp_path / "data", per_class=12)
    (root / "mask" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    assert train.main(["--data", str(root), "--logs", str(tmp_path / "logs"), *TINY]) == 0
    assert records.read_rows(tmp_path / "logs" / runlog.LOG_NAME)[0]["skipped_crops"] == "1"
    assert "skipping" in capsys.readouterr().err


@pytest.mark.slow
def test_mobilenetv2_starts_from_a_local_weights_file(crops, tmp_path):
    import keras

    backbone = keras.applications.MobileNetV2(input_shape=(32, 32, 3), include_top=False, weights=None, alpha=0.35)
    weights = tmp_path / "mobilenet_v2_no_top.weights.h5"
    backbone.save_weights(weights)
    argv = ["--data", str(crops), "--logs", str(tmp_path / "logs"), *TINY, "--model", "mobilenetv2",
            "--weights", str(weights)]
    assert train.main(argv) == 0
    assert records.read_rows(tmp_path / "logs" / runlog.LOG_NAME)[0]["weights"] == str(weights)


def test_an_error_raised_while_ctrl_c_unwinds_logs_the_run_as_interrupted(crops, tmp_path, monkeypatch):
    # TensorFlow can turn the KeyboardInterrupt that Ctrl-C raises in its Python callbacks into an error of its own
    import keras

    from maskdetect import runtime

    monkeypatch.setattr(runtime, "_interrupt_requested", False)

    def broken(batch, logs):
        raise RuntimeError("an error TensorFlow raised in place of the KeyboardInterrupt")

    def ctrl_c_turned_into_an_error(batch, logs):
        runtime.note_interrupt()
        broken(batch, logs)

    settings = train.Settings(model="small", data=str(crops), logs=str(tmp_path / "logs"), epochs=2, image_size=32,
                              batch_size=8, jobs=1)
    with pytest.raises(KeyboardInterrupt):
        train.run(settings, [keras.callbacks.LambdaCallback(on_train_batch_begin=ctrl_c_turned_into_an_error)])
    (row,) = records.read_rows(tmp_path / "logs" / runlog.LOG_NAME)
    assert row["status"] == "interrupted" and row["error"] == "stopped by Ctrl-C (during RuntimeError)"

    monkeypatch.setattr(runtime, "_interrupt_requested", False)  # with no Ctrl-C, the same error is a failure
    with pytest.raises(RuntimeError):
        train.run(settings, [keras.callbacks.LambdaCallback(on_train_batch_begin=broken)])
    assert records.read_rows(tmp_path / "logs" / runlog.LOG_NAME)[1]["status"] == "failed"


@pytest.mark.slow  # another training; test_runlog checks the log's columns
def test_an_older_log_without_new_columns_still_gets_the_row(crops, tmp_path):
    logs = tmp_path / "logs"
    old_columns = [column for column in runlog.LOG_FIELDS if column not in ("weights", "sweep_id")]
    records.append_rows(logs / runlog.LOG_NAME, old_columns, [{"run_id": "old", "status": "ok"}])
    assert train.main(["--data", str(crops), "--logs", str(logs), *TINY]) == 0
    rows = records.read_rows(logs / runlog.LOG_NAME)
    assert [row["run_id"] for row in rows][0] == "old" and rows[1]["status"] == "ok" and "weights" not in rows[1]


def test_rank_on_scores_the_run_on_labelled_photos(crops, tmp_path, capsys):
    logs = tmp_path / "logs"
    assert train.main(["--data", str(crops), "--logs", str(logs), *TINY, "--rank-on", str(tmp_path / "no")]) == 2
    assert capsys.readouterr().err.strip() == f"error: --rank-on {tmp_path / 'no'} does not exist"
    assert not (logs / runlog.LOG_NAME).exists()  # refused before training
    labelled = make_labelled_folder(tmp_path / "street")
    assert train.main(["--data", str(crops), "--logs", str(logs), *TINY, "--rank-on", str(labelled)]) == 0
    assert "rank-on: balanced accuracy" in capsys.readouterr().out
    (row,) = records.read_rows(logs / runlog.LOG_NAME)
    assert row["rank_on"] == str(labelled.resolve()) and 0 <= float(row["rank_on_accuracy"]) <= 1


@pytest.mark.slow  # a longer training; the tiny run covers the path
def test_a_hundred_crops_give_a_model_that_works(tmp_path):
    # With batch-norm momentum 0.99 (Keras's default) a few dozen training steps leave the running statistics
    # near their initial values: the saved model called every crop one class and early stopping kept it.
    root = make_crop_dataset(tmp_path / "data", per_class=60)
    logs = tmp_path / "logs"
    argv = ["--data", str(root), "--logs", str(logs), "--model", "small", "--epochs", "12", "--image-size", "32",
            "--batch-size", "8",
            "--jobs", "1"]
    assert train.main(argv) == 0
    row = records.read_rows(logs / runlog.LOG_NAME)[0]
    assert float(row["val_accuracy"]) >= 0.9 and float(row["test_accuracy"]) >= 0.9, row


def test_crop_geometry_comes_from_faces_csv(tmp_path, caplog):
    root = tmp_path / "processed_data"
    root.mkdir()
    paths = [str(root / "mask" / f"m{index}.jpg") for index in range(6)]
    hand_made = str(root / "mask" / "by_hand.jpg")

    def manifest(settings_per_crop):
        (root / facecrops.MANIFEST).unlink(missing_ok=True)
        records.append_rows(root / facecrops.MANIFEST, facecrops.FACE_FIELDS, [
            {"crop": path, "class": "mask", "kind": facecrops.AUTO,
             "settings": json.dumps(dataclasses.asdict(settings))}
            for path, settings in zip(paths, settings_per_crop, strict=True)])

    # no faces.csv: crops put there by hand, cut as the face stage cuts by default
    assert data.crop_geometry(root, paths) == {"margin": 0.2, "crop_size": 256, "source": "default"}
    wide = facecrops.CropSettings(margin=0.3, size=128)
    manifest([wide] * 6)
    assert data.crop_geometry(root, [*paths, hand_made]) == {"margin": 0.3, "crop_size": 128, "source": "faces.csv"}
    # only the crops asked about count: the first two alone agree on the defaults
    manifest([facecrops.CropSettings()] * 2 + [wide] * 4)
    assert data.crop_geometry(root, paths[:2])["margin"] == 0.2
    with caplog.at_level(logging.WARNING, logger="maskdetect.data"):
        mixed = data.crop_geometry(root, paths)
    assert mixed == {"margin": 0.3, "crop_size": 128, "source": "faces.csv (mixed)"}
    assert "4 with margin 0.3 and 128 px, 2 with margin 0.2 and 256 px" in caplog.text


def test_a_model_without_crop_geometry_uses_the_defaults_and_a_bad_one_is_refused():
    assert artifact.model_crop({"class_names": ["a", "b"], "image_size": 32}) == (0.2, 256)
    assert artifact.model_crop({"crop": {"margin": 0.3, "crop_size": 128, "source": "faces.csv"}}) == (0.3, 128)
    for crop in ({"margin": 5, "crop_size": 128}, {"margin": 0.3}, "0.3"):
        with pytest.raises(ValueError, match="crop geometry"):
            artifact.model_crop({"crop": crop})


def test_a_run_with_street_faces_fits_decision_weights_that_detection_uses(tmp_path):
    """Crops recorded in faces.csv as cut from labelled photos (kind annotated) are street faces: the run fits
    the decision weights on those of the validation split, saves them in the model, and detect uses them."""
    root = make_crop_dataset(tmp_path / "data", per_class=80)
    rows = [{"crop": str(path.resolve()), "source": str(path), "source_sha256": path.stem, "class": path.parent.name,
             "face_index": 0, "kind": facecrops.ANNOTATED} for path in sorted(root.glob("*/*.jpg"))]
    records.append_rows(root / facecrops.MANIFEST, facecrops.FACE_FIELDS, rows)
    logs = tmp_path / "logs"
    assert train.main(["--data", str(root), "--logs", str(logs), "--model", "small", "--epochs", "3",
                       "--image-size", "32", "--batch-size", "8", "--jobs", "1"]) == 0
    row = records.read_rows(logs / runlog.LOG_NAME)[0]
    _, meta = artifact.load_model(row["model_path"])
    decision = meta["decision"]
    assert len(decision["weights"]) == 2 and sum(decision["faces"]) >= 2 * decisions.MIN_CALIBRATION_FACES
    assert json.loads(Path(row["run_dir"], "metrics.json").read_text())["decision"] == decision
    classifier = artifact.load_classifier(row["model_path"])
    assert classifier.decision_weights == decision["weights"] and meta["mirror_averaged"]
    # the saved classifier averages each face with its mirror image: a face and its mirror score alike
    from PIL import Image

    faces_ = np.stack([np.asarray(Image.open(path).convert("RGB")) for path in sorted(root.glob("*/*.jpg"))[:8]])
    assert np.allclose(classifier.probabilities(faces_), classifier.probabilities(faces_[:, :, ::-1]), atol=1e-4)


def test_the_split_gives_each_side_its_share_of_the_street_faces():
    """Street faces (kind annotated) are stratified apart from close-ups, so that the validation split has
    enough of each class to set the decision weights."""
    labels = np.array([0] * 400 + [1] * 400 + [0] * 100 + [1] * 40)
    kinds = ["auto"] * 800 + ["annotated"] * 140
    crops = data.Crops([f"/c/{index}.jpg" for index in range(940)], labels, [str(index) for index in range(940)],
                       ["mask", "without_mask"], 0, kinds)
    _, validation, _ = data.grouped_split(crops.strata(), crops.groups, (0.7, 0.15, 0.15), seed=1)
    street = np.asarray(kinds)[validation] == "annotated"
    assert np.bincount(labels[validation][street], minlength=2).tolist() == [15, 6]
    assert (data.Crops(crops.paths, labels, crops.groups, crops.class_names).strata() == labels).all()


def test_each_stratum_weighs_alike_in_the_loss():
    """Close-ups and street faces of each class: the 40 unmasked street faces weigh as much in all as the 400
    masked close-ups; without street faces the weights are the balanced class weights."""
    labels = np.array([0] * 400 + [1] * 200 + [0] * 100 + [1] * 40)
    kinds = ["auto"] * 600 + ["annotated"] * 140
    crops = data.Crops([f"/c/{index}.jpg" for index in range(740)], labels, [str(index) for index in range(740)],
                       ["mask", "without_mask"], 0, kinds)
    weights = data.balanced_weights(crops.strata())
    totals = [weights[crops.strata() == stratum].sum() for stratum in range(4)]
    assert np.allclose(totals, 740 / 4) and np.isclose(weights.mean(), 1.0)
    plain = data.balanced_weights(labels[:600])
    class_weights = data.class_weights(labels[:600], 2)
    assert np.allclose(plain, [class_weights[label] for label in labels[:600]])


def test_training_uses_the_sample_weights(tmp_path):
    """The training pipeline yields (image, label, weight) when given weights; fit reads them."""
    root = make_crop_dataset(tmp_path / "data", per_class=6, size=32)
    paths = sorted(str(path) for path in root.glob("*/*.jpg"))
    labels = np.array([0 if "/mask/" in path else 1 for path in paths])
    dataset = data.make_dataset(paths, labels, 32, 4, shuffle=True, seed=1,
                                sample_weights=np.arange(len(paths), dtype=np.float32))
    images, batch_labels, weights = next(iter(dataset))
    assert images.shape == (4, 32, 32, 3) and weights.shape == (4,)
    by_weight = {int(weight): int(label) for weight, label in zip(weights.numpy(), batch_labels.numpy(), strict=True)}
    assert all(labels[index] == label for index, label in by_weight.items())  # weights travel with their images
