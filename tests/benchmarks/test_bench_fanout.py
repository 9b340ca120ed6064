"""The fan-out benchmark at CI size: 4 workers on hosts of their own, an 8 MB cached input, peer
transfers on and off. Checks what the benchmark measures apart from time (the manager's uploads), so
the full run (``make bench``: 32 workers, 256 MB) cannot quietly measure something else."""

from __future__ import annotations

import os

import pytest

from tests.benchmarks.test_bench_helpers import _import_benchmark
from tests.netns_lab import unavailable_reason

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(bool(unavailable_reason()), reason=unavailable_reason() or "namespaces work")]


def test_fan_out_uploads_one_copy_with_peer_transfers_and_one_per_worker_without(tmp_path):
    bench = _import_benchmark("bench_fanout")
    path = tmp_path / "env.tar.gz"
    path.write_bytes(os.urandom(8 << 20))
    on = bench.fan_out(path, 4, "1gbit", True, tmp_path / "on")
    off = bench.fan_out(path, 4, "1gbit", False, tmp_path / "off")
    print(f"\npeers on: {on[0]:.2f} s, {on[1]:.2f} copies, {on[2]}; peers off: {off[0]:.2f} s, {off[1]:.2f} copies")
    assert 1.0 <= on[1] <= bench.TARGET_COPIES, on
    assert on[2] == {"peer_copies": 3, "manager_copies": 1, "failures": 0}, on
    assert off[1] >= 4.0, off
