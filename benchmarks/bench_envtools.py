"""Benchmark: get_environment() on the running environment, built once then cached.

Usage: python benchmarks/bench_envtools.py [--cache-dir DIR] [--repeat N] [--prefix PREFIX]
Prints one JSON object: build time and size of the first call, and the cached call times
(target: median <= 0.5 s), plus the time to unpack the tarball once on a "worker".
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import envtools  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default=None, help="default: a temporary directory")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--prefix", default=None, help="environment to pack (default: the running one)")
    parser.add_argument("--no-unpack", action="store_true", help="skip timing the unpack")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-envtools-") as scratch:
        cache = Path(args.cache_dir or Path(scratch) / "envs")
        warnings.simplefilter("ignore")
        started = time.perf_counter()
        tarball = envtools.get_environment(cache, analysis_dir=REPO, prefix=args.prefix, unstaged="reuse")
        first = time.perf_counter() - started
        cached = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            again = envtools.get_environment(cache, analysis_dir=REPO, prefix=args.prefix, unstaged="reuse")
            cached.append(time.perf_counter() - started)
            assert again == tarball
        report = {
            "tarball": tarball.name,
            "size_mb": round(tarball.stat().st_size / 1e6, 1),
            "first_call_s": round(first, 2),
            "cached_call_median_s": round(statistics.median(cached), 3),
            "cached_call_max_s": round(max(cached), 3),
            "cached_target_s": 0.5,
            "cached_ok": statistics.median(cached) <= 0.5,
        }
        if not args.no_unpack:
            started = time.perf_counter()
            envtools.ensure_unpacked(tarball, Path(scratch) / "worker" / "coffea-wq-envs")
            report["unpack_once_s"] = round(time.perf_counter() - started, 2)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
