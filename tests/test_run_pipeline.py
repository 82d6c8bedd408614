"""The README's first command, ./run_pipeline.sh, on a copy of the project: a small sample archive and a small
labelled street-photo archive served on 127.0.0.1, the whole pipeline, and the report opened in Chromium."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import shutil
import subprocess
import sys
import threading
import xml.etree.ElementTree as ElementTree
import zipfile
from pathlib import Path

import pytest
from helpers import REPO, page_targets, render_page, shared_data

from maskdetect import records, runlog

PER_CLASS = 40
LABELLED_PHOTOS = 12


def project_copy(target: Path) -> Path:
    """The project's files as a fresh clone has them, with this test run's .venv (already installed)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    (target / ".venv").symlink_to(sys.prefix)  # the virtual environment running these tests
    return target


def sample_archive(path: Path) -> Path:
    """A zip laid out like the upstream repository: <top>/dataset/<class>/<photos>."""
    faces_dataset = shared_data("faces_dataset")
    with zipfile.ZipFile(path, "w") as archive:
        for folder in sorted(entry for entry in faces_dataset.iterdir() if entry.is_dir()):
            for photo in sorted(folder.iterdir())[:PER_CLASS]:
                archive.write(photo, f"Face-Mask-Detection-sample/dataset/{folder.name}/{photo.name}")
    return path


def labelled_archive(path: Path) -> Path:
    """A zip laid out like MaskON's: <top>/archive/{annotations,images}/, a few of the shared street photos (VOC).
    Photos with an incorrect_mask face are left out: a class of one or two faces cannot be split for training."""
    wild = shared_data("wild")
    chosen = []
    for xml_file in sorted((wild / "annotations").glob("*.xml")):
        labels = {item.findtext("name") for item in ElementTree.parse(xml_file).getroot().iter("object")}
        if labels and labels <= {"mask", "without_mask"}:
            chosen.append(xml_file)
        if len(chosen) == LABELLED_PHOTOS:
            break
    with zipfile.ZipFile(path, "w") as archive:
        for xml_file in chosen:
            photo = ElementTree.parse(xml_file).getroot().findtext("filename")
            archive.write(xml_file, f"MaskON-sample/archive/annotations/{xml_file.name}")
            archive.write(wild / "images" / photo, f"MaskON-sample/archive/images/{photo}")
    return path


@pytest.fixture
def server(tmp_path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "served"))
    (tmp_path / "served").mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield tmp_path / "served", f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.slow
@pytest.mark.timeout(1800)  # three pipeline runs, each with its own timeout (300 + 600 + 600 s)
def test_the_first_command_from_a_fresh_copy(tmp_path, server):
    served, url = server
    archive = sample_archive(served / "sample.zip")
    project = project_copy(tmp_path / "project")
    environment = {**os.environ, "MASKDETECT_DEMO_EPOCHS": "2", "MASKDETECT_CACHE": str(tmp_path / "cache")}

    # nothing to download from: a message that says what to do, and no half-filled original_data/
    unreachable = subprocess.run(["./run_pipeline.sh"], cwd=project, capture_output=True, text=True, timeout=300,
                                 env={**environment, "MASKDETECT_SAMPLE_DATA": f"{url}/missing.zip"})
    assert unreachable.returncode == 2, unreachable.stderr[-2000:]
    assert "original_data/<class" in unreachable.stderr and "MASKDETECT_SAMPLE_DATA" in unreachable.stderr
    assert not any((project / "original_data").glob("*"))

    # the labelled street photos cannot be had: one line says so, and the pipeline runs on the sample set alone
    sha256 = hashlib.sha256(archive.read_bytes()).hexdigest()
    run = subprocess.run(["./run_pipeline.sh"], cwd=project, capture_output=True, text=True, timeout=600,
                         env={**environment, "MASKDETECT_SAMPLE_DATA": f"{url}/sample.zip",
                              "MASKDETECT_SAMPLE_SHA256": sha256,
                              "MASKDETECT_SAMPLE_ANNOTATIONS": f"{url}/missing_labels.zip"})
    assert run.returncode == 0, (run.stdout[-3000:], run.stderr[-3000:])
    assert sha256 in run.stdout + run.stderr
    (line,) = [line for line in (run.stdout + run.stderr).splitlines() if "left out" in line]
    assert "labelled street photos" in line and "MASKDETECT_SAMPLE_ANNOTATIONS" in line
    assert not (project / "labelled_data").exists()
    assert sorted(path.name for path in (project / "original_data").iterdir() if not path.name.startswith("_")) \
        == ["mask", "without_mask"]
    assert len(list((project / "processed_data" / "mask").glob("*.jpg"))) > PER_CLASS // 2

    # named later, they are fetched, and their faces join the crops of the next training
    labelled_archive(served / "labelled.zip")
    run = subprocess.run(["./run_pipeline.sh"], cwd=project, capture_output=True, text=True, timeout=600,
                         env={**environment, "MASKDETECT_SAMPLE_ANNOTATIONS": f"{url}/labelled.zip"})
    assert run.returncode == 0, (run.stdout[-3000:], run.stderr[-3000:])
    assert sorted(path.name for path in (project / "labelled_data").iterdir()) == ["annotations", "images"]
    annotated = [row for row in records.read_rows(project / "processed_data" / "faces.csv")
                 if row["kind"] == "annotated"]
    assert {row["class"] for row in annotated} == {"mask", "without_mask"}
    assert all((project / "processed_data" / row["class"] / Path(row["crop"]).name).is_file() for row in annotated)
    first, second = records.read_rows(project / "logs" / runlog.LOG_NAME)
    assert first["status"] == second["status"] == "ok" and second["epochs_run"] == "2"
    assert int(second["data_size"]) == int(first["data_size"]) + len(annotated)
    detections = records.read_rows(project / "logs" / "detect" / "run_pipeline" / "detections.csv")
    assert detections and {item["label"] for item in detections} <= {"mask", "without_mask"}
    page = project / "logs" / "report.html"
    assert "logs/report.html" in run.stdout and page.is_file()
    targets = page_targets(page)
    assert sum("detect/run_pipeline/" in image for image in targets.images) >= 2  # annotated photos
    assert len(targets.images) >= 6  # and the run's plots
    shot = project / "logs" / "report.png"
    dom = render_page(page, tmp_path / "chromium", shot)
    assert 'data-ready="yes"' in dom and 'data-broken="0"' in dom
    # for a person to look at: logs/ is not committed
    (REPO / "logs").mkdir(exist_ok=True)
    shutil.copyfile(shot, REPO / "logs" / "run_pipeline_report.png")
