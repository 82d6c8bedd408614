"""Find duplicate photos (plan), then set them aside (act).

* Exact duplicates share a sha256.
* Near duplicates (re-encodes, resizes of one picture) have 64-bit perceptual hashes within a small
  Hamming distance. Pairs are found with vectorised XOR + popcount over blocks of the hash matrix,
  so 20,000 images take about a second, not an O(n^2) Python loop.

Pictures linked by either relation form one group (connected components). Within one class a group
keeps its largest image (ties: first name) and the rest are duplicates. A group that spans two
classes holds one picture under two labels: every copy is a label conflict.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from maskdetect import images, moves, runtime

log = logging.getLogger(__name__)

DEFAULT_HASH_DISTANCE = 4
_NO_HASH = np.uint64(0)
# Rows of the hash matrix compared at once: 512 x 20,000 x 8 bytes = 80 MB at most.
_BLOCK = 512


@dataclass(frozen=True)
class HashedFile:
    path: Path
    class_name: str
    sha256: str
    phash: int | None  # None when the file does not decode
    width: int = 0
    height: int = 0
    size: int = 0


@dataclass
class Group:
    """Copies of one picture. ``kept`` is None for a label conflict (every copy goes)."""

    kind: str  # "exact" or "near"
    members: list[HashedFile]
    kept: HashedFile | None = None
    classes: list[str] = field(default_factory=list)

    @property
    def removed(self) -> list[HashedFile]:
        return [member for member in self.members if member is not self.kept]


def perceptual_hash(image: Image.Image) -> int:
    """The 64-bit DCT hash (as imagehash.phash: 32x32 grey, top-left 8x8 DCT against its median).

    ``image`` is 8-bit (``images.to_8bit``): imagehash converts it to grey with Pillow, which clips deeper modes.
    """
    import imagehash

    bits = imagehash.phash(image).hash.flatten()
    return int(np.packbits(bits).view(">u8")[0])


def hash_file(item: tuple[Path, str] | tuple[Path, str, int]) -> HashedFile:
    """sha256 of the bytes and perceptual hash of the picture of one file (a worker function); the item's third
    value, when there is one, is the pixel limit above which the picture is not decoded (only exact copies of it
    are looked for)."""
    path, class_name, max_pixels = (*item, images.DEFAULT_MAX_PIXELS)[:3]
    digest = images.sha256_file(path)
    size = path.stat().st_size
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with images.open_image(path, max_pixels) as image:
                width, height = image.size
                # JPEG can decode at 1/2..1/8 scale for free; the hash only looks at 32x32 pixels.
                image.draft("L", (128, 128))
                # images.to_8bit, as every stage decodes: Pillow's own convert("L") inside imagehash clips
                # 16-bit pixels at 255, so every 16-bit picture hashed alike (all white)
                phash = perceptual_hash(images.to_8bit(image))
                return HashedFile(path, class_name, digest, phash, width, height, size)
    except images.DECODE_ERRORS as error:
        log.warning("%s: cannot decode (%s); only exact copies of it are looked for", path, error)
        return HashedFile(path, class_name, digest, None, size=size)


def near_pairs(hashes: np.ndarray, max_distance: int) -> np.ndarray:
    """Index pairs (i < j) whose 64-bit hashes differ in at most ``max_distance`` bits, shape (k, 2)."""
    hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
    found = []
    for start in range(0, len(hashes), _BLOCK):
        block = hashes[start : start + _BLOCK]
        distances = np.bitwise_count(block[:, None] ^ hashes[None, :])
        rows, columns = np.nonzero(distances <= max_distance)
        rows += start
        upper = columns > rows
        found.append(np.stack([rows[upper], columns[upper]], axis=1))
    return np.concatenate(found) if found else np.empty((0, 2), dtype=np.int64)


class _UnionFind:
    def __init__(self, size: int) -> None:
        self.parent = list(range(size))

    def find(self, item: int) -> int:
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def union(self, first: int, second: int) -> None:
        root_first, root_second = self.find(first), self.find(second)
        if root_first != root_second:
            self.parent[max(root_first, root_second)] = min(root_first, root_second)


def _keep_order(item: HashedFile) -> tuple:
    return (-item.width * item.height, str(item.path))


def find_duplicates(files: Sequence[HashedFile], max_distance: int = DEFAULT_HASH_DISTANCE) -> list[Group]:
    """Group copies of one picture; pure (touches no file). ``max_distance`` 0 finds exact copies only."""
    if max_distance < 0 or max_distance > 64:
        raise ValueError(f"hash distance must be between 0 and 64, not {max_distance}")
    union = _UnionFind(len(files))
    first_of_sha: dict[str, int] = {}
    for index, item in enumerate(files):
        union.union(first_of_sha.setdefault(item.sha256, index), index)
    if max_distance > 0:
        # One representative per distinct content is enough: its exact copies are joined already.
        hashed = [index for index in first_of_sha.values() if files[index].phash is not None]
        vector = np.array([files[index].phash for index in hashed], dtype=np.uint64)
        for first, second in near_pairs(vector, max_distance):
            union.union(hashed[first], hashed[second])
    components: dict[int, list[int]] = defaultdict(list)
    for index in range(len(files)):
        components[union.find(index)].append(index)
    groups = []
    for indices in components.values():
        if len(indices) < 2:
            continue
        members = sorted((files[index] for index in indices), key=_keep_order)
        kind = "exact" if len({member.sha256 for member in members}) == 1 else "near"
        classes = sorted({member.class_name for member in members})
        groups.append(Group(kind, members, None if len(classes) > 1 else members[0], classes))
    return sorted(groups, key=lambda group: str(group.members[0].path))


def plan_moves(root: Path, groups: Sequence[Group], delete: bool = False) -> list[moves.Move]:
    """Set aside every copy but the kept one, and every copy of a label conflict. Pure."""
    entries = []
    for group in groups:
        for member in group.removed:
            if group.kept is None:
                reason = images.LABEL_CONFLICT
                detail = "the same picture is in classes " + ", ".join(group.classes)
            else:
                reason = images.DUPLICATE
                detail = f"{group.kind} duplicate of {moves.relative(group.kept.path, root)}"
            entries.append((moves.relative(member.path, root), reason, detail, member.sha256, member.size))
    return moves.set_aside_moves(root, entries, delete)


def hash_classes(class_dirs: Sequence[Path], jobs: int, max_pixels: int = images.DEFAULT_MAX_PIXELS
                 ) -> list[HashedFile]:
    items = [(path, class_dir.name, max_pixels) for class_dir in class_dirs for path in images.walk_files(class_dir)
             if not path.is_symlink()]
    return list(runtime.parallel_map(hash_file, items, jobs, "duplicates: hashing"))


def describe(root: Path, group: Group) -> str:
    def name(item: HashedFile) -> str:
        return f"{moves.relative(item.path, root)!r} ({item.width}x{item.height})"

    if group.kept is None:
        return f"label conflict ({', '.join(group.classes)}): " + ", ".join(map(name, group.members))
    return (f"{group.kind} group ({group.classes[0]}): keep {name(group.kept)}; set aside "
            + ", ".join(map(name, group.removed)))


def summary(files: Sequence[HashedFile], groups: Sequence[Group], dry_run: bool) -> str:
    kinds = Counter(group.kind for group in groups if group.kept is not None)
    conflicts = [group for group in groups if group.kept is None]
    aside = Counter()
    for group in groups:
        aside[images.LABEL_CONFLICT if group.kept is None else images.DUPLICATE] += len(group.removed)
    verb = "would be set aside" if dry_run else "set aside"
    return (
        f"remove_duplicates: {len(files)} files read; {kinds['exact']} exact groups, {kinds['near']} near groups, "
        f"{len(conflicts)} label conflicts ({aside[images.LABEL_CONFLICT]} files); "
        f"{sum(aside.values())} {verb} (duplicate {aside[images.DUPLICATE]}, "
        f"label_conflict {aside[images.LABEL_CONFLICT]})"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="remove_duplicates.py",
        description="Find exact and near-duplicate photos within and across class folders and set them aside "
        "under <root>/_rejected/ (duplicate, label_conflict), journaled and undoable with preprocess.sh --undo.",
    )
    parser.add_argument("folders", nargs="*", type=Path,
                        help="class folders, all in one parent folder (default: every class folder of --input)")
    parser.add_argument("--input", type=Path, default=Path("original_data"),
                        help="folder whose subfolders are the classes (default %(default)s)")
    parser.add_argument("--hash-distance", type=int, default=DEFAULT_HASH_DISTANCE,
                        help="near duplicates differ in at most this many of 64 perceptual-hash bits; "
                        "0 finds exact copies only (default %(default)s)")
    parser.add_argument("--logs", default="logs", help="journal folder, shared with preprocess.sh")
    parser.add_argument("--dry-run", action="store_true", help="print the groups and change nothing")
    parser.add_argument("--delete", action="store_true", help="delete duplicates instead of setting them aside")
    parser.add_argument("--jobs", type=int, default=runtime.default_jobs(), help="processes (default: all cores)")
    parser.add_argument("--max-pixels", type=int, default=images.DEFAULT_MAX_PIXELS, help=images.MAX_PIXELS_HELP)
    parser.add_argument("--check", action="store_true", help="check the flags and stop, changing nothing")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def _resolve_class_dirs(args: argparse.Namespace) -> tuple[Path, list[Path]]:
    if not args.folders:
        return args.input.resolve(), [path.resolve() for path in images.class_dirs(args.input)]
    folders = [path.resolve() for path in args.folders]
    for folder in folders:
        if not folder.is_dir():
            raise ValueError(f"{folder} is not a folder")
    parents = {folder.parent for folder in folders}
    if len(parents) != 1:
        raise ValueError("the class folders must share one parent folder, where _rejected/ will go")
    return parents.pop(), folders


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    runtime.configure_logging(args.verbose)
    return runtime.run_cli(
        lambda: _run(args), "remove_duplicates: interrupted; every move so far is journaled. Run again to finish."
    )


def _run(args: argparse.Namespace) -> int:
    if not 0 <= args.hash_distance <= 64:
        raise ValueError(f"--hash-distance must be between 0 and 64, not {args.hash_distance}")
    if args.jobs < 1:
        raise ValueError(f"--jobs must be at least 1, not {args.jobs}")
    if args.max_pixels < 1:
        raise ValueError(f"--max-pixels must be at least 1, not {args.max_pixels}")
    if args.check:
        return runtime.EXIT_OK
    root, class_dirs = _resolve_class_dirs(args)
    if not class_dirs:
        raise ValueError(f"no class folders in {root}")
    files = hash_classes(class_dirs, args.jobs, args.max_pixels)
    groups = find_duplicates(files, args.hash_distance)
    for group in groups:
        (print if args.dry_run else log.info)(describe(root, group))
    if not args.dry_run:
        moves.apply_moves(root, plan_moves(root, groups, args.delete), args.logs, "remove_duplicates")
    print(summary(files, groups, args.dry_run))
    return runtime.EXIT_OK



if __name__ == "__main__":
    sys.exit(main())
