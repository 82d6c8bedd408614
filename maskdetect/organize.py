"""Organise ``original_data/`` in place: check every file, set aside what is unusable, rename the rest.

Every file under a class folder is decoded. Files that are not usable images are set aside under
``<input>/_rejected/<reason>/`` (or, with ``--delete`` only, removed). Usable images are moved to the
top of their class folder and named ``<class>_<first 12 hex digits of sha256>.<real extension>``:
the name follows from the content, so a second run finds nothing to change, and two files can
only want the same name when they are byte-identical (the second gets ``_1``). Every move is
journaled, and ``--undo`` puts everything back.
"""

from __future__ import annotations

import argparse
import functools
import logging
import re
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from maskdetect import images, moves, records, runtime

log = logging.getLogger(__name__)

_HASH_DIGITS = 12


def organised_name(class_name: str, check: images.FileCheck) -> str:
    return f"{class_name}_{check.sha256[:_HASH_DIGITS]}{images.extension_for(check.image_format)}"


def _is_organised(class_dir: Path, check: images.FileCheck) -> bool:
    if check.path.parent != class_dir:
        return False
    stem = f"{class_dir.name}_{check.sha256[:_HASH_DIGITS]}"
    extension = images.extension_for(check.image_format)
    return re.fullmatch(re.escape(stem) + r"(_\d+)?" + re.escape(extension), check.path.name) is not None


def scan(
    root: Path,
    min_size: int = images.DEFAULT_MIN_SIZE,
    max_pixels: int = images.DEFAULT_MAX_PIXELS,
    jobs: int = 1,
) -> dict[Path, list[images.FileCheck]]:
    """Check every file under each class folder of ``root``; read-only."""
    classes = images.class_dirs(root)
    if not classes:
        raise ValueError(f"no class folders in {root}: put the photos in {root}/<class name>/")
    for stray in sorted(p for p in root.iterdir() if not p.is_dir() or p.is_symlink()):
        log.warning("ignoring %s: it is not inside a class folder", stray)
    files = {class_dir: list(images.walk_files(class_dir)) for class_dir in classes}
    check = functools.partial(images.check_file, min_size=min_size, max_pixels=max_pixels)
    every_file = [path for paths in files.values() for path in paths]
    results = dict(zip(every_file, runtime.parallel_map(check, every_file, jobs, "organise: checking"), strict=True))
    return {class_dir: [results[path] for path in paths] for class_dir, paths in files.items()}


def plan(root: Path, checks: dict[Path, list[images.FileCheck]], delete: bool = False) -> list[moves.Move]:
    """The moves that organise ``root``: set-asides first, then renames. Pure: touches nothing."""
    rejected = [
        (moves.relative(check.path, root), check.reason, check.detail, check.sha256, check.size)
        for class_checks in checks.values()
        for check in class_checks
        if not check.ok
    ]
    planned = moves.set_aside_moves(root, rejected, delete)
    for class_dir, class_checks in checks.items():
        # A new name must differ from every name now at the top of the class folder, including
        # names of files that are about to move away, so no move can ever land on another file.
        taken = {entry.name for entry in class_dir.iterdir()}
        for check in class_checks:
            if not check.ok or _is_organised(class_dir, check):
                continue
            name = moves.free_name(organised_name(class_dir.name, check), taken)
            planned.append(
                moves.Move(
                    moves.relative(check.path, root),
                    moves.relative(class_dir / name, root),
                    moves.RENAME,
                    sha256=check.sha256,
                    size=check.size,
                )
            )
    return planned


def describe(move: moves.Move) -> str:
    if move.action == moves.RENAME:
        return f"rename      {move.original!r} -> {move.new!r}"
    if move.action == moves.DELETE:
        return f"delete      {move.original!r} ({move.reason}: {move.detail})"
    return f"set aside   {move.original!r} -> {move.new!r} ({move.detail})"


def summary(checks: dict[Path, list[images.FileCheck]], planned: Sequence[moves.Move], dry_run: bool) -> str:
    total = sum(len(c) for c in checks.values())
    reasons = Counter(move.reason for move in planned if move.action != moves.RENAME)
    renamed = sum(move.action == moves.RENAME for move in planned)
    kept = total - sum(reasons.values())
    verb = "would be " if dry_run else ""
    aside = "deleted" if any(m.action == moves.DELETE for m in planned) else "set aside"
    by_reason = ", ".join(f"{reason} {count}" for reason, count in sorted(reasons.items()))
    return (
        f"organise: {total} files read in {len(checks)} classes; {kept} images kept "
        f"({renamed} {verb}renamed, {kept - renamed} already named); "
        f"{sum(reasons.values())} {verb}{aside}" + (f" ({by_reason})" if by_reason else "")
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m maskdetect.organize",
        description="Check, set aside and rename the photos under INPUT/<class>/, in place and undoably.",
    )
    parser.add_argument("--input", default="original_data", help="folder with one subfolder per class")
    parser.add_argument("--logs", default="logs", help="where the journal goes (<logs>/preprocess/renames.csv)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and change nothing")
    parser.add_argument("--delete", action="store_true", help="delete unusable files instead of setting them aside")
    parser.add_argument("--undo", action="store_true", help="restore original names and everything set aside")
    parser.add_argument("--min-size", type=int, default=images.DEFAULT_MIN_SIZE,
                        help="set aside images whose shorter side is below this many pixels (default %(default)s)")
    parser.add_argument("--max-pixels", type=int, default=images.DEFAULT_MAX_PIXELS,
                        help="set aside images with more pixels than this (default %(default)s)")
    parser.add_argument("--jobs", type=int, default=runtime.default_jobs(), help="processes (default: all cores)")
    parser.add_argument("--check", action="store_true", help="check the flags and stop, changing nothing")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    runtime.configure_logging(args.verbose)
    return runtime.run_cli(
        lambda: _run(args),
        "organise: interrupted; every move so far is journaled. Run again to finish, or --undo to go back.",
    )


def _run(args: argparse.Namespace) -> int:
    root = Path(args.input)
    if not root.is_dir():
        raise ValueError(f"input folder {root} does not exist")
    for flag in ("min_size", "max_pixels", "jobs"):
        if getattr(args, flag) < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be at least 1, not {getattr(args, flag)}")
    if args.undo and (args.delete or args.dry_run):
        raise ValueError("--undo cannot be combined with --delete or --dry-run")
    if args.check:
        return runtime.EXIT_OK
    root = root.resolve()
    if args.undo:
        journal = moves.journal_path(args.logs)
        if not any(row["input"] == str(root) for row in records.read_rows(journal)):
            raise ValueError(f"no change to {root} is recorded in {journal}: nothing to undo; give the --input and "
                             "--logs of the run to undo")
        counts = moves.undo(root, args.logs)
        print(
            f"undo: {counts['restored']} files restored in {root}; "
            f"{counts['missing']} missing, {counts['conflict']} left (name taken), "
            f"{counts['deleted']} deleted earlier"
        )
        return runtime.EXIT_OK
    checks = scan(root, args.min_size, args.max_pixels, args.jobs)
    empty = [folder for folder, found in checks.items() if not found]
    for folder in empty:
        log.warning("class folder %s is empty: put its photos there or remove it", folder)
    if len(checks) - len(empty) < 2:
        log.warning("%d class folder(s) with photos in %s: training needs two or more (%s/<class name>/)",
                    len(checks) - len(empty), root, root)
    planned = plan(root, checks, args.delete)
    for move in planned:
        if args.dry_run or move.action != moves.RENAME:
            (print if args.dry_run else log.info)(describe(move))
    if not args.dry_run:
        moves.apply_moves(root, planned, args.logs, "organise")
    print(summary(checks, planned, args.dry_run))
    return runtime.EXIT_OK



if __name__ == "__main__":
    sys.exit(main())
