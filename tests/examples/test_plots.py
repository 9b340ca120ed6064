"""``--plots DIR``: one valid PNG per histogram of the example, paths printed (plots.py)."""

from __future__ import annotations

import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis_examples.topeft.plots import DPI, FIGSIZE_IN
from analysis_examples.topeft.processor import HISTOGRAMS
from tests.support import REPO

SCRIPT = REPO / "analysis_examples" / "topeft" / "work_queue_run.py"
DEMO_CFG = REPO / "analysis_examples" / "topeft" / "cfg" / "demo.cfg"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG's IHDR chunk, after checking the signature."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def printed_plots(stdout: str) -> list[Path]:
    return [Path(p) for p in re.findall(r"^Plot written to (\S+\.png)$", stdout, re.MULTILINE)]


def assert_plots(paths: list[Path], directory: Path) -> None:
    """One PNG per histogram, of the figure's size, each holding a drawing (not a blank canvas)."""
    import matplotlib.image

    assert sorted(p.stem for p in paths) == sorted(HISTOGRAMS)
    assert sorted(directory.glob("*.png")) == sorted(paths)
    for path in paths:
        assert png_size(path) == (int(FIGSIZE_IN[0] * DPI), int(FIGSIZE_IN[1] * DPI)), path
        pixels = matplotlib.image.imread(path)
        assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 20, f"{path} looks empty"
        assert path.stat().st_size < 200_000


@pytest.mark.slow
def test_plots_option_writes_one_png_per_histogram_and_prints_the_paths(tmp_path):
    plots = tmp_path / "plots"
    proc = subprocess.run([sys.executable, str(SCRIPT), str(DEMO_CFG), "--executor", "iterative", "-s", "2500", "-c", "1",
                           "-p", str(tmp_path / "out"), "--no-status", "--plots", str(plots)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    paths = printed_plots(proc.stdout)
    assert "UserWarning" not in proc.stderr, proc.stderr[-3000:]  # e.g. a colour bar drawn on another figure
    assert all(p.parent == plots for p in paths)
    assert_plots(paths, plots)
