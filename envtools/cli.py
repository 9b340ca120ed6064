"""``coffea-wq env build|list|clean`` (also ``python -m envtools``)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from envtools.build import UncommittedChangesError, get_environment
from envtools.cache import CachedTarball, clean_cache, list_tarballs
from envtools.editables import EditableBuildError
from envtools.source import UnsupportedEnvironmentError


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``build``, ``list`` and ``clean`` actions and their options to ``parser``."""
    parser.add_argument("action", choices=["build", "list", "clean"],
                        help="build: pack the running environment; list: show the cache; clean: keep the newest N")
    parser.add_argument("--cache-dir", default="envs", help="directory of the tarballs (default: envs)")
    parser.add_argument("--keep", type=int, default=3, help="tarballs to keep (default: 3)")
    parser.add_argument("--dry-run", action="store_true", help="build: only print the name; clean: only print what would go")
    parser.add_argument("--watch", action="append", default=[], metavar="PATH",
                        help="build: analysis path whose commits name the environment (repeatable)")
    parser.add_argument("--unstaged", choices=["rebuild", "fail", "reuse"], default="rebuild",
                        help="build: what to do with uncommitted changes in watched paths")
    parser.add_argument("--force", action="store_true", help="build: rebuild even when cached")
    parser.add_argument("--prefix", default=None, help="build: environment to pack (default: the running one)")


def _human_size(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def _human_age(seconds: float) -> str:
    for unit, length in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= length:
            return f"{seconds / length:.0f} {unit}"
    return f"{seconds:.0f} s"


def format_listing(tarballs: list[CachedTarball]) -> str:
    """The table ``env list`` prints: name, size, age, commit, in use."""
    rows = [("NAME", "SIZE", "AGE", "COMMIT", "IN USE")]
    rows += [(t.path.name, _human_size(t.size), _human_age(t.age_seconds), t.commit, "yes" if t.in_use else "")
             for t in tarballs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def _build(args: argparse.Namespace) -> int:
    if args.dry_run:
        from envtools.build import plan_name, watched_states
        from envtools.source import describe_environment

        env = describe_environment(args.prefix)
        print(Path(args.cache_dir).resolve() / plan_name(env, watched_states(env, Path("."), args.watch)).filename)
        return 0
    started = time.monotonic()
    path = get_environment(args.cache_dir, watch=args.watch, unstaged=args.unstaged, keep=args.keep,
                           force=args.force, prefix=args.prefix)
    print(path)
    print(f"{_human_size(path.stat().st_size)} in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


def _clean(args: argparse.Namespace) -> int:
    removed = clean_cache(Path(args.cache_dir), keep=args.keep, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for tarball in removed:
        print(f"{verb} {tarball.path.name}")
    if not removed:
        print(f"nothing to remove (keeping the {args.keep} newest and any in use)")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run one action; errors a user can fix are printed without a traceback (exit status 1)."""
    try:
        if args.action == "build":
            return _build(args)
        if args.action == "list":
            tarballs = list_tarballs(Path(args.cache_dir))
            print(format_listing(tarballs) if tarballs else f"no environments in {Path(args.cache_dir).resolve()}")
            return 0
        return _clean(args)
    except (UncommittedChangesError, UnsupportedEnvironmentError, EditableBuildError, ValueError) as exc:
        print(f"coffea-wq env {args.action}: {exc}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    """``python -m envtools ACTION [options]``."""
    parser = argparse.ArgumentParser(prog="python -m envtools", description="build, list and clean packed environments")
    configure(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    return run(args)
