"""Unpack an untrusted .zip or .tar archive without letting it write outside its folder or fill the disk.

Every member is checked before the first byte is written: no absolute paths, no ``..``, no links, devices or
pipes, a bounded count of members and of bytes in all; the bytes are counted again while writing, since a
listing can lie.
"""

from __future__ import annotations

import stat
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

# A zip bomb or a mistaken multi-gigabyte archive stops here, before it fills the disk.
MAX_EXTRACTED_BYTES = 5 << 30
MAX_MEMBERS = 200_000
_CHUNK = 1 << 20


def safe_relative(name: str) -> PurePosixPath:
    """An archive member's name (or a folder named inside an archive) as a relative path that stays inside.

    Raises:
        ValueError: the name is absolute (``/``, ``\\`` or a drive letter) or climbs out with ``..``.
    """
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[0].isalpha() and name[1] == ":"):
        raise ValueError(f"unsafe archive member {name!r}: an absolute path; nothing was extracted")
    if ".." in path.parts:
        raise ValueError(f"unsafe archive member {name!r}: it climbs out with '..'; nothing was extracted")
    return path


def _check_total(total: int, count: int) -> None:
    if total > MAX_EXTRACTED_BYTES:
        raise ValueError(f"the archive would unpack to {total / 2**30:.1f} GiB, more than the "
                         f"{MAX_EXTRACTED_BYTES / 2**30:.0f} GiB allowed; nothing was extracted")
    if count > MAX_MEMBERS:
        raise ValueError(f"the archive has more than {MAX_MEMBERS} members; nothing was extracted")


def _copy_stream(source, target: Path, budget: list[int]) -> None:
    with open(target, "xb") as output:
        while chunk := source.read(_CHUNK):
            budget[0] -= len(chunk)
            if budget[0] < 0:  # the listing lied about the sizes
                raise ValueError(f"the archive unpacks to more than {MAX_EXTRACTED_BYTES} bytes; stopped")
            output.write(chunk)


def _zip_members(archive: zipfile.ZipFile) -> Iterator[tuple[zipfile.ZipInfo, PurePosixPath]]:
    infos = archive.infolist()
    _check_total(sum(info.file_size for info in infos), len(infos))
    for info in infos:
        relative = safe_relative(info.filename)
        mode = info.external_attr >> 16  # Unix mode, when the zip was made on Unix; the type bits may be 0
        if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a plain file or folder"
            raise ValueError(f"unsafe archive member {info.filename!r}: {kind}; nothing was extracted")
        yield info, relative


def _tar_members(archive: tarfile.TarFile) -> Iterator[tuple[tarfile.TarInfo, PurePosixPath]]:
    members = archive.getmembers()
    _check_total(sum(member.size for member in members if member.isfile()), len(members))
    for member in members:
        relative = safe_relative(member.name)
        if not (member.isfile() or member.isdir()):
            kind = "a link" if member.issym() or member.islnk() else "a device, pipe or other special file"
            raise ValueError(f"unsafe archive member {member.name!r}: {kind}; nothing was extracted")
        yield member, relative


def _target(root: Path, relative: PurePosixPath) -> Path:
    target = root.joinpath(*relative.parts)
    if not target.resolve().is_relative_to(root.resolve()):  # belt and braces after the checks above
        raise ValueError(f"unsafe archive member {relative}: it lands outside the folder; stopped")
    return target


def _write_members(checked: list, target: Path, budget: list[int], is_dir, open_member) -> None:
    # the members were all checked (list() ran the checks) before the first byte is written
    for member, relative in checked:
        path = _target(target, relative)
        if is_dir(member):
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        with open_member(member) as source:
            _copy_stream(source, path, budget)


def safe_extract(archive: Path, target: Path) -> None:
    """Unpack a .zip or .tar(.gz/.bz2/.xz) into the existing folder ``target``.

    Every member is checked before anything is written: no absolute paths, no ``..``, no links,
    devices or pipes, at most ``MAX_MEMBERS`` members and ``MAX_EXTRACTED_BYTES`` in all. The kind is told by the
    content, not the name.

    Raises:
        ValueError: the archive is not a zip or tar archive, is damaged, or has a member that fails a check;
            nothing is written when a listed member fails, and writing stops when the data outgrow the sizes
            the listing announced.
    """
    archive, target = Path(archive), Path(target)
    budget = [MAX_EXTRACTED_BYTES]
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as handle:
            _write_members(list(_zip_members(handle)), target, budget, zipfile.ZipInfo.is_dir, handle.open)
        return
    try:
        handle = tarfile.open(archive)  # noqa: SIM115 - closed below; tarfile.open raises before `with` could
    except (tarfile.TarError, OSError):
        raise ValueError(f"{archive} is not a zip or tar archive (or it is damaged); nothing was extracted") from None
    with handle:
        try:
            _write_members(list(_tar_members(handle)), target, budget, tarfile.TarInfo.isdir, handle.extractfile)
        except (tarfile.TarError, EOFError, zipfile.BadZipFile) as error:
            raise ValueError(f"{archive} is damaged ({error})") from None


def is_archive(path: Path) -> bool:
    """Whether ``path`` is a file that :func:`safe_extract` can open as a zip or tar archive (told by content)."""
    return path.is_file() and (zipfile.is_zipfile(path) or tarfile.is_tarfile(path))
