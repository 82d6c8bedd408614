"""The commands against hostile input and surroundings: decompression bombs, files where folders belong, runs at
once, folders that cannot be written. Each ends in one line naming the path and what to do, and leaves the inputs
and earlier outputs as they were."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from helpers import PYTHON, REPO, _png_claiming, tree_digest
from PIL import Image

from maskdetect import dedup, facecrops, faces, images, organize, report, runlog, sweep, train

pytestmark = pytest.mark.unit  # no TensorFlow: see conftest.py

AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
needs_permissions = pytest.mark.skipif(AS_ROOT, reason="running as root: permission bits do not stop root, so a "
                                                       "read-only folder cannot be made here")


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    """A real 13000 x 13000 PNG of one colour: a few hundred kB on disk, 161 MiB decoded, 484 MiB as RGB."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.png"
    Image.new("L", (13_000, 13_000)).save(path, compress_level=9)
    return path


def test_a_decompression_bomb_is_refused_from_its_header_by_every_decoder_with_the_same_words(bomb, tmp_path):
    reason = f"13000x13000 pixels ({13_000 ** 2 / 2**20:.0f} MiB decoded) is above the limit of " \
             f"{images.DEFAULT_MAX_PIXELS} pixels; raise --max-pixels to read it"
    with pytest.raises(images.ImageTooLarge) as refused:
        images.load_rgb(bomb)
    assert str(refused.value) == reason
    check = images.check_file(bomb)
    assert (check.reason, check.detail) == (images.TOO_LARGE, reason)
    assert dedup.hash_file((bomb, "mask")).phash is None  # exact copies of it are still found
    result = faces.process_source((str(bomb), "sha", "mask", str(tmp_path / "out"), facecrops.CropSettings()))
    assert (result.source["status"], result.source["detail"]) == ("unreadable", reason)
    # a header that claims more than Pillow's own bomb limit meets the same words, not Pillow's
    claims = tmp_path / "claims.png"
    claims.write_bytes(_png_claiming(100_000, 100_000))
    with pytest.raises(images.ImageTooLarge, match=r"100000x100000 pixels .* raise --max-pixels"):
        images.load_rgb(claims)


def test_the_limit_counts_decoded_bytes_and_max_pixels_raises_or_lowers_it(tmp_path):
    wide = tmp_path / "deep.tif"
    Image.fromarray(np.zeros((40, 50), np.float32), "F").save(wide)  # 4 bytes a pixel
    assert images.load_rgb(wide, max_pixels=2000).shape == (40, 50, 3)
    with pytest.raises(images.ImageTooLarge, match=r"40 pixels .* above the limit of 499 pixels"):
        images.load_rgb(wide, max_pixels=499)  # 2000 px x 4 bytes is over 4 x 499 bytes
    small = tmp_path / "small.png"
    Image.new("RGB", (30, 20)).save(small)
    with pytest.raises(images.ImageTooLarge):
        images.load_rgb(small, max_pixels=599)
    assert images.load_rgb(small, max_pixels=600).shape == (20, 30, 3)


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads the peak memory from /proc (Linux)")
def test_loading_a_bomb_takes_megabytes_not_gigabytes(bomb):
    # VmHWM, the process's peak resident memory: unlike ru_maxrss it starts afresh at exec, not at the parent's
    code = ("from maskdetect import images\n"
            "try:\n"
            f"    images.load_rgb({str(bomb)!r})\n"
            "except images.ImageTooLarge:\n"
            "    pass\n"
            "print(next(line for line in open('/proc/self/status') if line.startswith('VmHWM')).split()[1])\n")
    result = subprocess.run([PYTHON, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    peak_kib = int(result.stdout.split()[-1])
    assert peak_kib < 200 * 1024, f"{peak_kib // 1024} MiB to refuse a bomb of 484 MiB"


@pytest.mark.parametrize("flag", ["--max-pixels", "--jobs"])
def test_every_command_that_decodes_photos_takes_max_pixels_and_refuses_zero_with_the_flag_named(flag, tmp_path,
                                                                                                capsys):
    (tmp_path / "mask").mkdir()
    for main in (organize.main, dedup.main, faces.main):
        assert main(["--input", str(tmp_path), "--logs", str(tmp_path / "logs"), flag, "0", "--check"]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line == f"error: {flag} must be at least 1, not 0", (main, line)


def test_a_file_where_the_logs_folder_belongs_is_one_line_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "logs"
    blocker.write_text("the user's notes")
    settings = train.Settings(model="small", data=str(tmp_path / "absent"), logs=str(blocker / "deeper"))
    with pytest.raises(ValueError, match=rf"{blocker} is a file, not a folder: .* give another --logs"):
        train.run(settings)
    assert sweep.main(["--logs", str(blocker), "--data", str(tmp_path / "absent")]) == 2
    assert f"{blocker} is a file, not a folder" in capsys.readouterr().err
    assert report.main(["--logs", str(blocker)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"{blocker} is a file, not a folder" in line and "--logs" in line
    assert blocker.read_text() == "the user's notes"


def test_a_training_log_of_another_kind_is_refused_before_training(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / runlog.LOG_NAME).write_text("name,score\nx,1\n")
    settings = train.Settings(model="small", data=str(tmp_path / "absent"), logs=str(logs))
    with pytest.raises(ValueError, match="is not a training log"):
        train.run(settings)
    assert (logs / runlog.LOG_NAME).read_text() == "name,score\nx,1\n"


@needs_permissions
def test_read_only_folders_are_one_line_and_nothing_moves(tmp_path, capsys):
    root = tmp_path / "photos"
    for index, name in enumerate(("mask", "without_mask")):
        (root / name).mkdir(parents=True)
        Image.fromarray(np.full((40, 40, 3), index * 90, np.uint8)).save(root / name / f"p{index}.png")
    before = tree_digest(root)
    (root / "mask").chmod(0o555)
    logs = tmp_path / "logs"
    logs.mkdir(mode=0o555)
    try:
        assert organize.main(["--input", str(root), "--logs", str(tmp_path / "own logs")]) == 2
        assert "it is not writable" in capsys.readouterr().err
        assert report.main(["--logs", str(logs)]) == 2
        assert f"cannot write in {logs}" in capsys.readouterr().err
    finally:
        (root / "mask").chmod(0o755)
        logs.chmod(0o755)
    assert tree_digest(root) == before


@pytest.mark.parametrize("flags, line", [
    (["--seed", "-5"], f"--seed must be between 0 and {2**32 - 1}, not -5"),
    (["--jobs", "0"], "--jobs must be at least 1, not 0"),
    (["--epochs", "2", "--warmup-epochs", "3"], "--warmup-epochs 3 is more than --epochs 2, which counts both: lower "
                                                "it or raise --epochs"),
    (["--kernel-size", "5"], "--kernel-size is for --model small and deep only (mobilenetv2's kernels are 3)"),
    (["--model", "small", "--alpha", "0.5"], "--alpha is for --model mobilenetv2 only"),
], ids=["seed", "jobs", "warm-up", "kernel size on mobilenetv2", "alpha on small"])
def test_a_training_flag_the_run_would_ignore_or_clamp_is_refused_naming_it(tmp_path, capsys, flags, line):
    assert train.main(["--data", str(tmp_path / "absent"), "--logs", str(tmp_path / "logs"), *flags]) == 2
    assert capsys.readouterr().err == f"error: {line}\n"
    assert not (tmp_path / "logs").exists()


def test_the_default_warm_up_fits_a_short_run():
    assert train.Settings(epochs=2).warmup_epochs == 2 and train.Settings().warmup_epochs == 3


def test_run_pipeline_help_prints_the_usage_and_starts_nothing(tmp_path):
    # a copy of the script alone: were it to start, it would make .venv/ beside itself
    script = tmp_path / "run_pipeline.sh"
    script.write_bytes((REPO / "run_pipeline.sh").read_bytes())
    script.chmod(0o755)
    shown = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "MASKDETECT_SAMPLE_DATA" in shown.stdout and "set -euo" not in shown.stdout
    refused = subprocess.run([str(script), "--epochs", "3"], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "unknown argument '--epochs'" in refused.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run_pipeline.sh"]


def test_process_faces_help_shows_its_folder_defaults(capsys):
    with pytest.raises(SystemExit):
        faces.main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert all(f"(default {name})" in out for name in ("original_data", "processed_data", "logs"))


def test_an_annotated_copy_that_cannot_be_saved_is_one_line_in_run_clis_words_and_the_other_items_go_on(tmp_path,
                                                                                                         capsys):
    import errno
    import types

    from maskdetect import runtime
    from maskdetect.face import from_crop_settings
    from maskdetect.inference import media, run

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.jpg", "b.jpg"):
        Image.new("RGB", (64, 48), (90, 120, 150)).save(photos / name)
    output = tmp_path / "out"
    (output / "a.jpg").mkdir(parents=True)  # a folder where a's annotated copy goes
    classifier = types.SimpleNamespace(class_names=["mask", "without_mask"], path="model.keras", image_size=96,
                                       crop_source="face")
    pipeline = types.SimpleNamespace(settings=facecrops.CropSettings(), video_settings=facecrops.CropSettings(),
                                     detector_settings=lambda video=False: from_crop_settings(facecrops.CropSettings()),
                                     classifier=classifier, image=lambda rgb: [])
    items = [media.Item("image", str(photos / name), name) for name in ("a.jpg", "b.jpg")]
    summary = run.process(pipeline, items, output)
    err = capsys.readouterr().err
    error = IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(output / "a.jpg"))
    assert err.splitlines() == [f"error: {runtime.os_error_line(error)}"]
    assert "[Errno" not in err and "a folder is where a file is expected" in err
    assert [failure["error"] for failure in summary["failed"]] == [runtime.os_error_line(error)]
    assert (output / "b.jpg").is_file() and not (output / "a.jpg.jpg").exists()


def test_a_crop_above_the_size_limit_is_refused_from_its_header_before_tensorflow_decodes_it(bomb):
    from maskdetect import data

    with pytest.raises(ValueError, match=r"^crop .*bomb\.png: 13000x13000 pixels .* is above the limit of \d+ pixels "
                                         r"for a picture; move it out of the data folder"):
        data._decodes_plainly(str(bomb))
    with pytest.raises(images.ImageTooLarge):
        images.decodes_plainly(bomb)


def test_a_yolo_photo_above_the_size_limit_is_one_problem_line_before_it_is_decoded(bomb, tmp_path):
    from maskdetect import annotations

    root = tmp_path / "yolo"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "images" / "bomb.png").write_bytes(bomb.read_bytes())
    (root / "labels" / "bomb.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (root / "classes.txt").write_text("mask\n")
    labels = annotations.read(root)
    assert labels.photos == [] and len(labels.problems) == 1
    assert "bomb.png: cannot be read (13000x13000 pixels" in labels.problems[0]
    assert "raise --max-pixels" in labels.problems[0]
