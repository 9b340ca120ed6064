"""A named manager's catalog record follows its queue within seconds: CCTools' ``work_queue_status -M``
shows the right WAITING count within 5 s of the submits, and a burst of changes sends about one
update per second, not one per change."""

from __future__ import annotations

import subprocess
import time

import pytest

import coffea_wq.work_queue as wq
from tests.catalog.helpers import start_real_catalog
from tests.catalog.test_server import start_our_catalog
from tests.support import LOOPBACK, REAL_CATALOG, REAL_STATUS, needs_system, wait_until

pytestmark = needs_system(REAL_STATUS is None, "work_queue_status", "coop-computing-tools")

CATALOGS = ["coffea-wq", pytest.param("cctools", marks=needs_system(
    REAL_CATALOG is None, "catalog_server", "coop-computing-tools"))]


def status_row(name: str, catalog_port: int) -> list[str] | None:
    """The manager's row of ``work_queue_status -M NAME``: PROJECT HOST PORT WAITING RUNNING ..."""
    out = subprocess.run([REAL_STATUS, "-M", name, "-C", f"{LOOPBACK}:{catalog_port}", "-t", "5"],
                         capture_output=True, text=True, timeout=30).stdout
    rows = [line.split() for line in out.splitlines() if line.split()[:1] == [name]]
    return rows[0] if rows else None


def waiting_shown(name: str, catalog_port: int) -> int | None:
    row = status_row(name, catalog_port)
    return int(row[3]) if row else None


@pytest.mark.slow
@pytest.mark.parametrize("catalog", CATALOGS)
def test_status_shows_the_waiting_count_within_5_s(catalog, processes, tmp_path):
    port = start_our_catalog(processes, tmp_path) if catalog == "coffea-wq" else start_real_catalog(processes, tmp_path)
    name = f"fresh-{time.time_ns() % 10**9}"
    with wq.WorkQueue(port=0, name=name, host=LOOPBACK, catalog=f"{LOOPBACK}:{port}") as q:
        # the first record is there at once, with the (empty) queue
        assert wait_until(lambda: waiting_shown(name, port) is not None, 10, "the first record") is not None
        assert waiting_shown(name, port) == 0
        for _ in range(7):
            q.submit(wq.Task("true"))
        submitted = time.monotonic()
        wait_until(lambda: waiting_shown(name, port) == 7, 5, "work_queue_status to show 7 waiting")
        assert time.monotonic() - submitted < 5
        # a cancel is a change too
        q.cancel_by_taskid(1)
        wait_until(lambda: waiting_shown(name, port) == 6, 5, "work_queue_status to show 6 waiting")


def test_a_burst_of_changes_sends_about_one_update_per_second(tmp_path):
    with wq.WorkQueue(port=0, name="burst", host=LOOPBACK, catalog=f"{LOOPBACK}:9") as q:
        advertiser = q._manager.advertiser
        wait_until(lambda: advertiser.updates_sent >= 1, 10, "the first update")
        before, began = advertiser.updates_sent, time.monotonic()
        while time.monotonic() - began < 3:
            q.submit(wq.Task("true"))
            time.sleep(0.02)
        sent = advertiser.updates_sent - before
        elapsed = time.monotonic() - began
        assert 1 <= sent <= elapsed + 2, (sent, elapsed)
