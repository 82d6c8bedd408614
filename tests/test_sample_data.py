"""The sample data set: download from a local HTTP server (checksums, broken transfers), safe extraction,
folder sources, and a destination that is filled whole or not at all."""

from __future__ import annotations

import hashlib
import http.server
import io
import re
import socket
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from maskdetect import archives, sample_data

pytestmark = pytest.mark.unit  # no TensorFlow: see conftest.py

CLASSES = {"mask": 3, "without_mask": 2}


def _jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG")
    return buffer.getvalue()


def _members(top: str = "Sample-1234/dataset") -> dict[str, bytes]:
    """An archive's files: images in two class folders below a top folder, plus repository clutter."""
    files = {f"{top}/{name}/{name}_{i}.jpg": _jpeg(10 * k + i)
             for k, (name, count) in enumerate(CLASSES.items()) for i in range(count)}
    files["Sample-1234/README.md"] = b"# a repository\n"
    files["Sample-1234/demo.png"] = _jpeg(99)  # a picture at the top: the top is not the data root
    files["Sample-1234/Readme_images/a.png"] = _jpeg(98)
    return files


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _tar_gz(files: dict[str, bytes], link: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        if link:
            info = tarfile.TarInfo(link)
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            archive.addfile(info)
    return buffer.getvalue()


class _Handler(http.server.BaseHTTPRequestHandler):
    # path -> (body, bytes actually sent); set per server
    routes: dict[str, tuple[bytes, int]] = {}

    def do_GET(self):  # noqa: N802 - the name http.server calls
        if self.path not in self.routes:
            self.send_error(404)
            return
        body, sent = self.routes[self.path]
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:sent])
        self.wfile.flush()
        self.close_connection = True  # an interrupted transfer: fewer bytes than announced, then the end

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    routes: dict[str, tuple[bytes, int]] = {}
    handler = type("Handler", (_Handler,), {"routes": routes})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield base, routes
    finally:
        httpd.shutdown()
        httpd.server_close()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial-" in p.name or p.name.endswith(".part"))


def _error(captured: str) -> str:
    """The error line(s) of stderr, without the progress bar's carriage-return lines before them."""
    return captured[captured.index("error: "):]


def _run(tmp_path: Path, *argv: str) -> int:
    return sample_data.main(["--into", str(tmp_path / "original_data"), "--cache", str(tmp_path / "cache"), *argv])


def test_default_source_is_an_archive_of_a_fixed_commit_on_github():
    match = re.fullmatch(r"https://github\.com/chandrikadeb7/Face-Mask-Detection/archive/([0-9a-f]{40})\.zip",
                         sample_data.DEFAULT_URL)
    assert match and match.group(1) == sample_data.DEFAULT_COMMIT
    assert sample_data.DEFAULT_SUBDIR == "dataset"


def test_download_with_the_right_checksum_is_extracted_and_cached(server, tmp_path, capsys):
    base, routes = server
    body = _zip(_members())
    routes["/sample.zip"] = (body, len(body))
    digest = hashlib.sha256(body).hexdigest()
    assert _run(tmp_path, "--source", f"{base}/sample.zip", "--sha256", digest) == 0
    out = capsys.readouterr().out
    assert digest in out and "2 classes, 5 images" in out
    destination = tmp_path / "original_data"
    assert sorted(p.name for p in destination.iterdir()) == ["mask", "without_mask"]
    assert len(list((destination / "mask").iterdir())) == 3
    assert _leftovers(tmp_path) == [] and _leftovers(tmp_path / "cache") == []

    # a rerun into a fresh folder takes the archive from the cache, even with the server gone
    routes.clear()
    assert sample_data.main(["--into", str(tmp_path / "again"), "--cache", str(tmp_path / "cache"),
                             "--source", f"{base}/sample.zip", "--sha256", digest]) == 0
    assert "cached" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "again").iterdir()) == ["mask", "without_mask"]


def test_a_wrong_checksum_extracts_nothing_and_keeps_nothing(server, tmp_path, capsys):
    base, routes = server
    body = _tar_gz(_members())
    routes["/sample.tar.gz"] = (body, len(body))
    (tmp_path / "original_data").mkdir()  # an empty destination stays empty
    assert _run(tmp_path, "--source", f"{base}/sample.tar.gz", "--sha256", "0" * 64) == 2
    err = _error(capsys.readouterr().err)
    assert err.startswith("error: sha256 of") and hashlib.sha256(body).hexdigest() in err
    assert list((tmp_path / "original_data").iterdir()) == []
    assert _leftovers(tmp_path) == [] and list((tmp_path / "cache").iterdir()) == []


def test_an_interrupted_transfer_extracts_nothing_and_leaves_no_partial_file(server, tmp_path, capsys):
    base, routes = server
    body = _zip(_members())
    routes["/sample.zip"] = (body, len(body) // 2)
    assert _run(tmp_path, "--source", f"{base}/sample.zip") == 2
    err = _error(capsys.readouterr().err)
    assert "interrupted" in err or "broke off" in err, err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "original_data").exists()
    assert _leftovers(tmp_path) == [] and list((tmp_path / "cache").iterdir()) == []


def test_an_unreachable_url_says_how_to_supply_data(tmp_path, capsys):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert _run(tmp_path, "--source", f"http://127.0.0.1:{port}/sample.zip") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot download")
    assert sample_data.SOURCE_ENV in err and "original_data/<class>/" in err
    assert not (tmp_path / "original_data").exists() and _leftovers(tmp_path) == []


def test_a_missing_file_on_the_server_says_how_to_supply_data(server, tmp_path, capsys):
    base, _ = server
    assert _run(tmp_path, "--source", f"{base}/absent.zip") == 2
    assert "404" in capsys.readouterr().err
    assert not (tmp_path / "original_data").exists()


@pytest.mark.parametrize("member, kind", [("../evil.jpg", "'..'"), ("/tmp/evil.jpg", "absolute"), (None, "link")])
def test_unsafe_archive_members_are_refused_before_anything_is_written(tmp_path, capsys, member, kind):
    files = _members()
    if member:
        files[member] = b"evil"
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(_tar_gz(files, link=None if member else "Sample-1234/dataset/mask/link.jpg"))
    assert _run(tmp_path, "--source", str(archive)) == 2
    err = capsys.readouterr().err
    assert "unsafe archive member" in err and kind in err
    assert not (tmp_path / "original_data").exists() and _leftovers(tmp_path) == []
    assert not (tmp_path.parent / "evil.jpg").exists()


def test_zip_with_a_climbing_member_is_refused(tmp_path, capsys):
    archive = tmp_path / "bad.zip"
    archive.write_bytes(_zip({**_members(), "Sample-1234/../../evil.jpg": b"evil"}))
    assert _run(tmp_path, "--source", archive.as_uri()) == 2
    assert "unsafe archive member" in capsys.readouterr().err
    assert not (tmp_path / "original_data").exists() and _leftovers(tmp_path) == []


def test_folder_source_is_copied_whole_and_made_writable(tmp_path, capsys):
    source = tmp_path / "faces_dataset"
    for name, count in CLASSES.items():
        (source / name).mkdir(parents=True)
        for i in range(count):
            (source / name / f"{i}.jpg").write_bytes(_jpeg(i))
        (source / name).chmod(0o555)  # a read-only share
    try:
        assert _run(tmp_path, "--source", str(source)) == 0
    finally:
        for name in CLASSES:
            (source / name).chmod(0o755)
    assert "2 classes, 5 images" in capsys.readouterr().out
    copied = tmp_path / "original_data" / "mask"
    assert len(list(copied.iterdir())) == 3
    (copied / "0.jpg").rename(copied / "renamed.jpg")  # the organise step can rename inside
    assert len(list(source.joinpath("mask").iterdir())) == 3


def test_a_full_disk_while_a_folder_is_copied_is_one_line_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    import errno
    import shutil

    source = tmp_path / "faces_dataset"
    for name, count in CLASSES.items():
        (source / name).mkdir(parents=True)
        for i in range(count):
            (source / name / f"{i}.jpg").write_bytes(_jpeg(i))
    copy2, copied = shutil.copy2, []

    def fills_the_disk(src, dst, **kwargs):
        if len(copied) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", src, None, dst)
        copied.append(src)
        return copy2(src, dst, **kwargs)

    monkeypatch.setattr(shutil, "copy2", fills_the_disk)
    assert _run(tmp_path, "--source", str(source)) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "No space left on device; the disk is full" in err and str(source) in err
    assert not (tmp_path / "original_data").exists() and _leftovers(tmp_path) == []
    assert sorted(p.name for p in source.rglob("*.jpg")) == ["0.jpg", "0.jpg", "1.jpg", "1.jpg", "2.jpg"]


def test_data_root_is_found_below_a_repository_top_folder(tmp_path):
    archive = tmp_path / "repo.zip"
    archive.write_bytes(_zip(_members()))
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    archives.safe_extract(archive, unpacked)
    assert sample_data.find_data_root(unpacked) == unpacked / "Sample-1234" / "dataset"
    assert sample_data.find_data_root(unpacked, "dataset") == unpacked / "Sample-1234" / "dataset"
    with pytest.raises(ValueError, match="no folder"):
        sample_data.find_data_root(unpacked, "absent")


def test_a_nonempty_destination_is_refused(tmp_path, capsys):
    destination = tmp_path / "original_data"
    (destination / "mask").mkdir(parents=True)
    (destination / "mask" / "mine.jpg").write_bytes(b"mine")
    archive = tmp_path / "sample.zip"
    archive.write_bytes(_zip(_members()))
    assert _run(tmp_path, "--source", str(archive)) == 2
    assert "not empty" in capsys.readouterr().err
    assert [p.name for p in destination.rglob("*")] == ["mask", "mine.jpg"]


def test_environment_variable_names_the_source(tmp_path, monkeypatch, capsys):
    archive = tmp_path / "sample.zip"
    archive.write_bytes(_zip(_members()))
    monkeypatch.setenv(sample_data.SOURCE_ENV, str(archive))
    monkeypatch.setenv(sample_data.SHA256_ENV, "f" * 64)
    assert _run(tmp_path) == 2
    assert "sha256" in capsys.readouterr().err
    monkeypatch.delenv(sample_data.SHA256_ENV)
    assert _run(tmp_path) == 0
    assert (tmp_path / "original_data" / "without_mask").is_dir()


def test_not_an_archive_is_a_clear_error(tmp_path, capsys):
    bogus = tmp_path / "data.zip"
    bogus.write_text("not an archive")
    assert _run(tmp_path, "--source", str(bogus)) == 2
    assert "neither a folder nor" in capsys.readouterr().err
    assert not (tmp_path / "original_data").exists()


def _labelled_members(top: str = "MaskON-b6c6b2d/archive") -> dict[str, bytes]:
    """A repository archive holding a VOC set below its top folder, as MaskON's archive/ does."""
    xml = ("<annotation><filename>street.jpg</filename><object><name>con_mascarilla</name><bndbox><xmin>2</xmin>"
           "<ymin>2</ymin><xmax>30</xmax><ymax>30</ymax></bndbox></object><object><name>sin_mascarilla</name>"
           "<bndbox><xmin>10</xmin><ymin>5</ymin><xmax>40</xmax><ymax>35</ymax></bndbox></object></annotation>")
    return {f"{top}/images/street.jpg": _jpeg(7), f"{top}/annotations/street.xml": xml.encode(),
            "MaskON-b6c6b2d/README.md": b"# MaskON\n"}


def test_labelled_street_photos_default_to_maskon_and_are_found_in_an_archive(server, tmp_path, capsys):
    assert sample_data.DEFAULT_ANNOTATIONS_URL == "https://github.com/marellanoc/MaskON/archive/b6c6b2d.zip"
    assert sample_data.DEFAULT_ANNOTATIONS_SUBDIR == "archive"
    base, routes = server
    body = _zip(_labelled_members())
    routes["/maskon.zip"] = (body, len(body))
    into = tmp_path / "labelled_data"
    assert sample_data.main(["--labelled", "--optional", "--into", str(into), "--cache", str(tmp_path / "cache"),
                             "--source", f"{base}/maskon.zip"]) == 0
    assert "2 labelled faces into" in capsys.readouterr().out
    assert sorted(path.name for path in into.iterdir()) == ["annotations", "images"]
    assert sample_data.label_counts(into) == {"con_mascarilla": 1, "sin_mascarilla": 1}


def test_labelled_photos_that_cannot_be_had_are_one_line_and_exit_0(server, tmp_path, capsys, monkeypatch):
    base, _ = server
    into = tmp_path / "labelled_data"
    monkeypatch.setenv(sample_data.ANNOTATIONS_ENV, f"{base}/missing.zip")
    assert sample_data.main(["--labelled", "--optional", "--into", str(into), "--cache", str(tmp_path / "c")]) == 0
    err = capsys.readouterr().err
    (line,) = [line for line in err.splitlines() if "left out" in line]
    assert line.startswith("sample data: labelled street photos left out (cannot download")
    assert sample_data.ANNOTATIONS_ENV in line and "process_faces.py --annotations" in line
    assert not into.exists() and not _leftovers(tmp_path)
    # without --optional it is an error; a folder with no labels is one too
    assert sample_data.main(["--labelled", "--into", str(into), "--cache", str(tmp_path / "c")]) == 2
    (tmp_path / "plain").mkdir()
    assert sample_data.main(["--labelled", "--optional", "--into", str(into), "--source", str(tmp_path / "plain")]) == 0
    assert "holds no VOC" in capsys.readouterr().err
