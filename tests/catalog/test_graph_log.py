"""`coffea-wq graph-log`: PNG/SVG plots from a stats log, clear errors for bad logs."""

from __future__ import annotations

import subprocess

from coffea_wq.cli.graph_log import add_throughput
from coffea_wq.manager.statslog import StatsLog, format_stats_row
from tests.support import coffea_wq_command


def _log(tmp_path, rows: int = 5):
    path = tmp_path / "stats.log"
    StatsLog(path).close()
    with open(path, "a") as f:
        for i in range(rows):
            f.write(format_stats_row({"tasks_done": 3 * i, "workers_connected": 2, "total_cores": 4},
                                     timestamp_us=10**15 + i * 60 * 10**6) + "\n")  # fmt: skip
    return path


def test_png_and_svg_are_written(tmp_path):
    path = _log(tmp_path)
    for fmt, magic in (("png", b"\x89PNG"), ("svg", b"<?xml")):
        out = subprocess.run(coffea_wq_command("graph-log", str(path), "-o", str(tmp_path / "p"), "-T", fmt),
                             capture_output=True, text=True, timeout=120)  # fmt: skip
        assert out.returncode == 0, out.stderr
        for name in ("workers", "tasks", "throughput", "cores"):
            assert (tmp_path / f"p.{name}.{fmt}").read_bytes().startswith(magic)
    svg = (tmp_path / "p.tasks.svg").read_text()
    assert "time since start (minutes)" in svg


def test_throughput_is_tasks_per_minute():
    rows = [{"timestamp": 0.0, "tasks_done": 0.0}, {"timestamp": 60e6, "tasks_done": 3.0},
            {"timestamp": 90e6, "tasks_done": 4.0}]  # fmt: skip
    add_throughput(rows)
    assert [r["throughput"] for r in rows] == [0.0, 3.0, 2.0]


def test_bad_logs_are_named(tmp_path):
    empty = tmp_path / "empty.log"
    StatsLog(empty).close()
    out = subprocess.run(coffea_wq_command("graph-log", str(empty)), capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and f"{empty} has no data rows" in out.stderr
    missing = tmp_path / "missing.log"
    out = subprocess.run(coffea_wq_command("graph-log", str(missing)), capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and f"cannot read {missing}" in out.stderr
