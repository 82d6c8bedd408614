"""Fill an empty ``original_data/`` with a sample data set: a URL, an archive or a folder of ``<class>/<images>``.

The default is the public mask / no-mask collection of github.com/chandrikadeb7/Face-Mask-Detection
(its ``dataset/`` folder), as a GitHub archive of one fixed commit so that every run gets the same
pictures. ``MASKDETECT_SAMPLE_DATA`` (or ``--source``) names any other URL, archive or folder.

With ``--labelled`` it fills ``labelled_data/`` instead with labelled street photos (a VOC, CSV or YOLO set, as
``process_faces.py --annotations`` reads): by default the CC0 Kaggle andrewmvd face-mask-detection photos as
github.com/marellanoc/MaskON publishes them (its ``archive/`` folder, labels in Spanish), or
``MASKDETECT_SAMPLE_ANNOTATIONS``. They are optional: with ``--optional`` a set that cannot be had is one line
saying what was left out and how to supply it, and the exit status stays 0.

The destination is never left half-filled: a download goes to a temporary file in the cache and
is checked (announced length, sha256) before anything is extracted; an archive is checked member by
member before anything is written (:mod:`maskdetect.archives`), then extracted into a temporary folder
beside the destination, and only the finished data set is renamed into place. Ctrl-C or an error at any
point removes the temporary folder and leaves the destination as it was.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import logging
import os
import shutil
import stat
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from maskdetect import __version__, images, runtime
from maskdetect.archives import is_archive, safe_extract, safe_relative

log = logging.getLogger(__name__)

# A commit of the upstream repository that writes files under dataset/with_mask (so its tree holds the
# data set; class folders dataset/with_mask and dataset/without_mask). A fixed commit, not a branch: a
# branch archive changes whenever the repository does. GitHub does not promise byte-identical archives
# over time, so no sha256 is pinned for it; pass --sha256 to pin one you have checked.
DEFAULT_COMMIT = "8c64c180873b6cbe4a89544bb61fe44abea14e88"
DEFAULT_URL = f"https://github.com/chandrikadeb7/Face-Mask-Detection/archive/{DEFAULT_COMMIT}.zip"
# The archive holds the whole repository (READMEs with pictures, demo images...); only this folder is the data.
DEFAULT_SUBDIR = "dataset"
# The labelled street photos: MaskON's archive/ folder (annotations/*.xml beside images/) at the commit the shared
# test set was taken from. Only its abbreviated id is known here; GitHub serves archives of abbreviated commit ids,
# and an id that names one commit now keeps naming it. No sha256 is pinned, as for DEFAULT_URL. Not checked here
# (no network): whether that commit's archive/ holds more than the Kaggle photos; another commit (a332fc1) also
# holds MaskedFace-Net's synthetic-mask photos (00000_Mask.jpg ...), which are under another licence.
DEFAULT_ANNOTATIONS_COMMIT = "b6c6b2d"
DEFAULT_ANNOTATIONS_URL = f"https://github.com/marellanoc/MaskON/archive/{DEFAULT_ANNOTATIONS_COMMIT}.zip"
DEFAULT_ANNOTATIONS_SUBDIR = "archive"
ANNOTATIONS_ENV = "MASKDETECT_SAMPLE_ANNOTATIONS"
SOURCE_ENV = "MASKDETECT_SAMPLE_DATA"
SHA256_ENV = "MASKDETECT_SAMPLE_SHA256"
CACHE_ENV = "MASKDETECT_CACHE"

# How deep below the archive's top the data set may sit (top folder / dataset / <class>).
MAX_SEARCH_DEPTH = 3
TIMEOUT_S = 30
_CHUNK = 1 << 20
# Judged by extension only to *find* the data set; the organise step decodes every file later.
IMAGE_SUFFIXES = frozenset({".jpe", ".jfif", *images.IMAGE_EXTENSIONS, *images.FORMAT_EXTENSIONS.values()})


def how_to(destination: Path) -> str:
    """What to do when no sample data set can be had: supply one, or lay out the photos by hand."""
    return (
        f"supply a data set yourself: set {SOURCE_ENV} (or --source) to a URL, a .zip/.tar.gz archive or a folder "
        f"laid out as <class>/<images>, e.g. {SOURCE_ENV}=/path/to/faces_dataset ./run_pipeline.sh; or put your "
        f"photos in {destination}/<class>/ by hand (e.g. {destination}/mask/ and {destination}/without_mask/). "
        f"{destination}/ was not touched."
    )


# ---------------------------------------------------------------------------------------------
# download


def default_cache() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "maskdetect"


def _cache_name(url: str) -> str:
    # The URL's own file name for the eye, its hash so that two URLs ending in master.zip never collide.
    name = PurePosixPath(urllib.parse.urlparse(url).path).name or "download"
    return f"{hashlib.sha256(url.encode()).hexdigest()[:12]}-{name}"


def _check_sha256(actual: str, expected: str | None, what: str) -> None:
    if expected and actual != expected.lower():
        raise ValueError(f"sha256 of {what} is {actual}, not the expected {expected.lower()}; nothing was extracted")


def download(url: str, cache: Path, sha256: str | None = None, timeout: float = TIMEOUT_S) -> Path:
    """The archive at ``url``, from ``cache`` when it is there (and matches ``sha256``), else downloaded.

    The transfer streams into a temporary file in ``cache`` that becomes the cached archive only when
    it is whole (as many bytes as announced) and its sha256 matches; otherwise it is removed and a
    ValueError says why. Its sha256 is printed either way, so it can be pinned with ``--sha256``.
    Network failures (no route, refused, HTTP errors, timeouts) raise ``ConnectionError``.
    """
    cache = Path(cache)
    cached = cache / _cache_name(url)
    if cached.is_file():
        digest = images.sha256_file(cached)
        if not sha256 or digest == sha256.lower():
            print(f"sample data: using the cached {cached} (sha256 {digest})")
            return cached
        log.warning("the cached %s has sha256 %s, not %s: downloading again", cached, digest, sha256)
        cached.unlink()
    cache.mkdir(parents=True, exist_ok=True)
    request = urllib.request.Request(url, headers={"User-Agent": f"maskdetect/{__version__}"})
    handle, name = tempfile.mkstemp(dir=cache, prefix=f".{cached.name}.", suffix=".part")
    partial = Path(name)
    try:
        digest = hashlib.sha256()
        received = 0
        with os.fdopen(handle, "wb") as output:
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    announced = response.headers.get("Content-Length")
                    announced = int(announced) if announced and announced.isdigit() else None
                    with tqdm(total=announced, desc="downloading", unit="B", unit_scale=True,
                              dynamic_ncols=True, leave=False) as bar:
                        while chunk := response.read(_CHUNK):
                            output.write(chunk)
                            digest.update(chunk)
                            received += len(chunk)
                            bar.update(len(chunk))
            except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
                if received:  # it had started: an interrupted transfer, not an absent network
                    raise ValueError(f"the download of {url} broke off after {received} bytes ({error}); "
                                     "nothing was extracted; run again to retry") from None
                reason = error if isinstance(error, urllib.error.HTTPError) else getattr(error, "reason", error)
                raise ConnectionError(f"cannot download {url}: {reason}") from None
            except (OSError, http.client.HTTPException) as error:  # IncompleteRead and other mid-transfer failures
                raise ValueError(f"the download of {url} broke off after {received} bytes ({error}); "
                                 "nothing was extracted; run again to retry") from None
        # urllib returns a short body without complaint when the server closes early; the length tells.
        if announced is not None and received != announced:
            raise ValueError(f"the download of {url} was interrupted: {received} of {announced} bytes arrived; "
                             "nothing was extracted; run again to retry")
        hexdigest = digest.hexdigest()
        print(f"sample data: downloaded {received} bytes from {url}, sha256 {hexdigest}")
        _check_sha256(hexdigest, sha256, f"the download from {url}")
        os.replace(partial, cached)
        return cached
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()


# ---------------------------------------------------------------------------------------------
# finding the data set inside what was unpacked


def _has_images(folder: Path, directly: bool = False) -> bool:
    walker = [(folder, [], [entry.name for entry in folder.iterdir()])] if directly else os.walk(folder)
    for directory, subdirs, files in walker:
        subdirs[:] = [name for name in subdirs if not name.startswith(images.RESERVED_PREFIXES)]
        if any(Path(name).suffix.lower() in IMAGE_SUFFIXES and Path(directory, name).is_file() for name in files):
            return True
    return False


def _is_data_root(folder: Path) -> bool:
    # A data root holds two or more class folders of images and no pictures of its own: a repository's
    # top folder (README pictures, demo photos) is not one, its dataset/ folder is.
    classes = [entry for entry in images.class_dirs(folder) if _has_images(entry)]
    return len(classes) >= 2 and not _has_images(folder, directly=True)


def _find_root(top: Path, subdir: str | None, is_root, what: str) -> Path | None:
    """``subdir`` below ``top`` or below its only top folder (archives of a repository have one); without it,
    the shallowest folder, at most ``MAX_SEARCH_DEPTH`` levels down, for which ``is_root`` holds (None if none)."""
    top = Path(top)
    if subdir:
        relative = safe_relative(subdir)
        tops = [top, *images.class_dirs(top)] if len(images.class_dirs(top)) == 1 else [top]
        for base in tops:
            candidate = base.joinpath(*relative.parts)
            if candidate.is_dir():
                return candidate
        raise ValueError(f"the {what} has no folder {subdir}/")
    level = [top]
    for _ in range(MAX_SEARCH_DEPTH + 1):
        for folder in level:
            if is_root(folder):
                return folder
        level = [child for folder in level for child in images.class_dirs(folder)]
    return None


def find_data_root(top: Path, subdir: str | None = None) -> Path:
    """The folder under ``top`` laid out as ``<class>/<images>``: ``subdir`` (see ``_find_root``), else the
    shallowest folder that holds two or more class folders with images and no images of its own."""
    found = _find_root(top, subdir, _is_data_root, "sample data")
    if found is None:
        raise ValueError("the sample data holds no folder laid out as <class>/<images> with 2 or more classes "
                         f"(searched {MAX_SEARCH_DEPTH} levels down); name it with --subdir")
    if subdir and len([entry for entry in images.class_dirs(found) if _has_images(entry)]) < 2:
        raise ValueError(f"{subdir}/ in the sample data has fewer than 2 class folders with images")
    return found


def _is_labelled_root(folder: Path) -> bool:
    # the layouts annotations.read recognises in a folder (a folder of bare VOC XML files aside: too loose to
    # search for, it can be named with --subdir)
    return ((folder / "annotations").is_dir() or ((folder / "labels").is_dir() and (folder / "images").is_dir())
            or (folder / "boxes.csv").is_file())


def find_labelled_root(top: Path, subdir: str | None = None) -> Path:
    """The folder under ``top`` that holds a labelled set: ``subdir`` (see ``_find_root``), else the shallowest
    folder with ``annotations/`` (VOC), ``labels/`` and ``images/`` (YOLO) or ``boxes.csv``."""
    found = _find_root(top, subdir, _is_labelled_root, "labelled data")
    if found is None:
        raise ValueError("the labelled data holds no VOC (annotations/), YOLO (labels/ and images/) or CSV "
                         f"(boxes.csv) set (searched {MAX_SEARCH_DEPTH} levels down); name its folder with --subdir")
    return found


def label_counts(root: Path) -> dict[str, int]:
    """Labelled faces per label of a labelled set (as annotations.read finds them)."""
    from maskdetect import annotations

    labels = annotations.read(root)
    counts: dict[str, int] = {}
    for photo in labels.photos:
        for face in photo.faces:
            counts[face.label] = counts.get(face.label, 0) + 1
    return dict(sorted(counts.items()))


def class_counts(root: Path) -> dict[str, int]:
    """Image files (by extension) per class folder of a data root."""
    counts = {}
    for folder in images.class_dirs(root):
        counts[folder.name] = sum(
            1 for directory, subdirs, files in os.walk(folder) for name in files
            if Path(name).suffix.lower() in IMAGE_SUFFIXES
            and not any(part.startswith(images.RESERVED_PREFIXES) for part in Path(directory).relative_to(folder).parts)
        )
    return {name: count for name, count in counts.items() if count}


# ---------------------------------------------------------------------------------------------
# filling the destination


def _check_destination(destination: Path) -> None:
    if destination.is_symlink() or (destination.exists() and not destination.is_dir()):
        raise ValueError(f"{destination} exists and is not a folder")
    if destination.is_dir() and any(destination.iterdir()):
        raise ValueError(f"{destination}/ is not empty; the sample data set only fills an empty folder "
                         f"(move its contents away, or use them as they are)")


def _make_writable(root: Path) -> None:
    # A copy of a read-only share stays read-only; the organise step must rename inside it.
    for directory, _, files in os.walk(root):
        for path in [Path(directory), *(Path(directory, name) for name in files)]:
            mode = path.lstat().st_mode
            if not stat.S_ISLNK(mode):
                path.chmod(stat.S_IMODE(mode) | stat.S_IWUSR | (stat.S_IXUSR if stat.S_ISDIR(mode) else 0))


class _CopyFailed(Exception):
    """A file the copy could not write, carrying its OSError past ``shutil.copytree``, which would collect it."""


def _copy_tree(source: Path, target: Path) -> None:
    """Copy the folder ``source`` to ``target``, symlinks as links, never followed (nothing outside the source comes
    along); stop at the first file that cannot be copied.

    Raises:
        OSError: that file's own error (a full disk, a read-only folder), with its paths, which ``run_cli`` says in
            one line. ``shutil.copytree`` alone goes on past it and raises one ``shutil.Error`` listing every file,
            with neither an errno nor a path.
    """
    def copy(src: str, dst: str) -> str:
        try:
            return shutil.copy2(src, dst)
        except OSError as error:
            raise _CopyFailed(error) from None

    try:
        shutil.copytree(source, target, symlinks=True, copy_function=copy)
    except _CopyFailed as failed:
        raise failed.args[0] from None
    except shutil.Error as error:  # a folder or its timestamps, not a file: the first of them
        src, dst, reason = error.args[0][0]
        raise OSError(None, reason, src, None, dst) from None


def _local_path(source: str) -> Path | None:
    parsed = urllib.parse.urlparse(source)
    if parsed.scheme == "file":
        return Path(urllib.request.url2pathname(parsed.path))
    if parsed.scheme in ("http", "https"):
        return None
    if len(parsed.scheme) > 1:  # ftp:, s3:, ... (a one-letter "scheme" is a Windows drive)
        raise ValueError(f"{source}: only http(s) and file URLs, archives and folders are supported")
    return Path(source).expanduser()


def fetch(source: str, destination: Path, sha256: str | None = None, subdir: str | None = None,
          cache: Path | None = None, labelled: bool = False) -> dict[str, int]:
    """Fill the empty or absent ``destination`` from ``source`` (URL, archive or folder); class counts, or
    with ``labelled`` (a VOC, CSV or YOLO set rather than ``<class>/<images>``) faces per label.

    Raises ValueError for anything wrong with the source or the destination, ConnectionError when a
    URL cannot be reached. The destination is renamed into place whole, or not at all.
    """
    destination = Path(destination)
    _check_destination(destination)
    local = _local_path(source)
    if local is not None and not local.exists():
        raise ValueError(f"{source} does not exist")
    if local is not None and local.is_dir() and sha256:
        raise ValueError("--sha256 checks an archive or a download, not a folder")
    if local is None:
        archive = download(source, cache or default_cache(), sha256)
        if not is_archive(archive):
            archive.unlink()  # an error page, say: not worth keeping in the cache
            raise ValueError(f"{source} did not give a .zip or .tar archive; nothing was extracted")
    elif local.is_dir():
        archive = None
    else:
        archive = local
        digest = images.sha256_file(archive)
        print(f"sample data: {archive}, sha256 {digest}")
        _check_sha256(digest, sha256, str(archive))
        if not is_archive(archive):
            raise ValueError(f"{archive} is neither a folder nor a .zip/.tar/.tar.gz archive")

    destination.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=destination.parent, prefix=f".{destination.name}.partial-"))
    find_root = find_labelled_root if labelled else find_data_root
    try:
        if archive is None:
            root = find_root(local, subdir)
            prepared = work / "data"
            _copy_tree(root, prepared)
        else:
            unpacked = work / "unpacked"
            unpacked.mkdir()
            safe_extract(archive, unpacked)
            prepared = find_root(unpacked, subdir)
        if labelled:
            counts = label_counts(prepared)
            if not counts:
                raise ValueError(f"{source} holds no labelled face")
        else:
            counts = class_counts(prepared)
        if not labelled and len(counts) < 2:
            raise ValueError(f"the sample data has {len(counts)} class folder(s) with images; 2 or more are needed")
        _make_writable(prepared)
        _check_destination(destination)  # again: something may have appeared while we copied
        # one rename: the destination is absent or empty, then whole (rename replaces an empty folder)
        os.rename(prepared, destination)
        return counts
    finally:
        shutil.rmtree(work, ignore_errors=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m maskdetect.sample_data",
        description="Fill an empty data folder with a sample data set (a URL, an archive or a folder of "
        "<class>/<images>). Default source: $" + SOURCE_ENV + ", else " + DEFAULT_URL,
    )
    parser.add_argument("--into", default="original_data", help="the folder to fill; must be empty or absent "
                        "(default %(default)s)")
    parser.add_argument("--source", default=None, help=f"http(s)/file URL, .zip/.tar/.tar.gz/.tgz archive, or folder "
                        f"(default: ${SOURCE_ENV}, else the upstream collection at a fixed commit)")
    parser.add_argument("--sha256", default=None, help=f"expected sha256 of the archive (default: ${SHA256_ENV})")
    parser.add_argument("--subdir", default=None, help="the folder inside the source that holds the class "
                        f"folders (default: found; {DEFAULT_SUBDIR} for the default source)")
    parser.add_argument("--cache", default=None, help=f"where downloads are kept (default: ${CACHE_ENV}, else "
                        "~/.cache/maskdetect)")
    parser.add_argument("--labelled", action="store_true",
                        help="fetch a labelled set (VOC, CSV or YOLO, for process_faces.py --annotations) instead: "
                        f"default source ${ANNOTATIONS_ENV}, else {DEFAULT_ANNOTATIONS_URL} "
                        f"({DEFAULT_ANNOTATIONS_SUBDIR}/)")
    parser.add_argument("--optional", action="store_true",
                        help="a source that cannot be had is one line saying what was left out, exit status 0")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def left_out(reason: str, destination: Path) -> str:
    """The one line for labelled photos that could not be had: what is missing and how to supply it."""
    reason = " ".join(reason.split())
    return (f"sample data: labelled street photos left out ({reason}); training goes on without them. To add "
            f"them, set {ANNOTATIONS_ENV} to a URL, archive or folder of VOC, CSV or YOLO labels and rerun, or fill "
            f"{destination}/ yourself, or run process_faces.py --annotations DIR")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    runtime.configure_logging(args.verbose)
    destination = Path(args.into)

    def body() -> int:
        if args.labelled:
            source = args.source or os.environ.get(ANNOTATIONS_ENV) or DEFAULT_ANNOTATIONS_URL
            subdir = args.subdir or (DEFAULT_ANNOTATIONS_SUBDIR if source == DEFAULT_ANNOTATIONS_URL else None)
            sha256 = args.sha256  # MASKDETECT_SAMPLE_SHA256 pins the other archive
        else:
            source = args.source or os.environ.get(SOURCE_ENV) or DEFAULT_URL
            subdir = args.subdir or (DEFAULT_SUBDIR if source == DEFAULT_URL else None)
            sha256 = args.sha256 or os.environ.get(SHA256_ENV) or None
        if sha256 and (len(sha256) != 64 or any(c not in "0123456789abcdefABCDEF" for c in sha256)):
            raise ValueError(f"--sha256 must be 64 hex digits, not {sha256!r}")
        if args.optional and source.lower() == "none":
            print(left_out(f"{ANNOTATIONS_ENV if args.labelled else SOURCE_ENV}=none", destination), file=sys.stderr)
            return runtime.EXIT_OK
        try:
            counts = fetch(source, destination, sha256, subdir, Path(args.cache) if args.cache else None,
                           labelled=args.labelled)
        except (ConnectionError, ValueError) as error:
            if args.optional:  # the pipeline runs on without them; say so once
                print(left_out(str(error), destination), file=sys.stderr)
                return runtime.EXIT_OK
            if isinstance(error, ValueError):
                raise
            raise ValueError(f"{error}.\n{how_to(destination)}") from None
        if args.labelled:
            print(f"sample data: {sum(counts.values())} labelled faces into {destination}/ ("
                  + ", ".join(f"{name} {count}" for name, count in counts.items()) + f") from {source}")
            return runtime.EXIT_OK
        listed = ", ".join(f"{name} {count}" for name, count in counts.items())
        print(f"sample data: {len(counts)} classes, {sum(counts.values())} images into {destination}/ "
              f"({listed}) from {source}")
        return runtime.EXIT_OK

    return runtime.run_cli(body, f"sample data: interrupted; {destination}/ was not touched.")


if __name__ == "__main__":
    raise SystemExit(main())
