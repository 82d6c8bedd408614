"""The README's first command, ./run_pipeline.sh, on a copy of the project: a small sample archive served on
127.0.0.1, the whole pipeline, and the report opened in Chromium."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
from helpers import REPO, page_targets, render_page, shared_data

from maskdetect import records, train

PER_CLASS = 40


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

    sha256 = hashlib.sha256(archive.read_bytes()).hexdigest()
    run = subprocess.run(["./run_pipeline.sh"], cwd=project, capture_output=True, text=True, timeout=600,
                         env={**environment, "MASKDETECT_SAMPLE_DATA": f"{url}/sample.zip",
                              "MASKDETECT_SAMPLE_SHA256": sha256})
    assert run.returncode == 0, (run.stdout[-3000:], run.stderr[-3000:])
    assert sha256 in run.stdout + run.stderr
    assert sorted(path.name for path in (project / "original_data").iterdir() if not path.name.startswith("_")) \
        == ["mask", "without_mask"]
    assert len(list((project / "processed_data" / "mask").glob("*.jpg"))) > PER_CLASS // 2
    (row,) = records.read_rows(project / "logs" / train.LOG_NAME)
    assert row["status"] == "ok" and row["epochs_run"] == "2"
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
