"""`make bench`: runs every benchmark script in this folder, one after the other.

Each script measures coffea-wq and its reference side by side in the same run and prints its
figures and ratios; this driver only runs them and reports which ones failed. Set
BENCH_ONLY=name1,name2 to run a subset (names without the ``bench_`` prefix and ``.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def selected_scripts() -> list[Path]:
    scripts = sorted(HERE.glob("bench_*.py"))
    only = {name.strip() for name in os.environ.get("BENCH_ONLY", "").split(",") if name.strip()}
    if only:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in only]
    return scripts


def main() -> int:
    failed = []
    for script in selected_scripts():
        print(f"\n=== {script.name} ===", flush=True)
        start = time.monotonic()
        rc = subprocess.call([sys.executable, str(script)], cwd=HERE.parent)
        print(f"=== {script.name}: exit {rc} after {time.monotonic() - start:.0f} s ===", flush=True)
        if rc != 0:
            failed.append(script.name)
    if failed:
        print(f"\nfailed benchmarks: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
