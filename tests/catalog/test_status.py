"""`coffea-wq status` against real CCTools managers and catalogs, compared with work_queue_status."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from coffea_wq.catalog.client import query_catalog
from coffea_wq.catalog.tables import CATEGORIES, QUEUE, TASKS, WORKERS, format_table
from tests.catalog.helpers import RealManager, start_real_catalog
from tests.support import (
    LOOPBACK,
    REAL_STATUS,
    REAL_WORKER,
    coffea_wq_command,
    requires_cctools,
    requires_cctools_python,
    wait_until,
)

ENV = {**os.environ, "COLUMNS": "80"}


def ours(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(coffea_wq_command("status", *args), capture_output=True, text=True, timeout=60, env=ENV)


def theirs(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([REAL_STATUS, *args], capture_output=True, text=True, timeout=60, env=ENV)


def test_tables_follow_cctools_widths_and_truncation():
    row = {"taskid": 12345, "state": "WAITING", "priority": "0", "command": "x" * 40, "cores": 1.5, "memory": -1}
    text = format_table(TASKS, [row], 80)
    header, line = text.splitlines()
    assert header == "ID   STATE    PRIORITY HOST       COMMAND            CORES    MEMORY   DISK     "
    assert line == "1234 WAITING         0 ???        xxxxxxxxxxxxxxxxxx 1.5      -1       ???      "
    wide = format_table(TASKS, [row], 120).splitlines()[0]
    assert wide.rstrip().endswith("GPUS")  # a wider terminal shows the GPUS column ...
    assert "HOST" + " " * 17 in wide  # ... and grows the flexible columns
    assert format_table(WORKERS, [], 80).rstrip().endswith("DISK_A")  # titles cut to the column width
    assert format_table(CATEGORIES, [{"category": "c", "max_memory": ">612"}], 80).splitlines()[1].split()[-2] == ">612"


@requires_cctools
@requires_cctools_python
def test_catalog_view_matches_work_queue_status_on_the_real_catalog(processes, tmp_path):
    catalog_port = start_real_catalog(processes, tmp_path)
    name = f"test-status-{time.time_ns() % 10**6}"
    manager = RealManager(processes, tmp_path, name=name, catalog_port=catalog_port,
                          tasks=[{"command": "true"}, {"command": "true"}, {"command": "true"}])  # fmt: skip
    wait_until(lambda: any(r.get("project") == name for r in query_catalog([(LOOPBACK, catalog_port)])), 20,
               "the manager's record")  # fmt: skip
    catalog = f"{LOOPBACK}:{catalog_port}"
    for args in (("-C", catalog), ("-C", catalog, "-M", name), ("-C", catalog, "-R"), ("-C", catalog, "--capacity")):
        real, mine = theirs(*args), ours(*args)
        assert real.returncode == mine.returncode == 0, mine.stderr
        assert mine.stdout == real.stdout, args
    table = ours("-C", catalog, "-M", name).stdout.splitlines()
    assert table[0] == format_table(QUEUE, [], 80).rstrip("\n")
    fields = table[1].split()
    assert fields[0] == name and fields[2] == str(manager.port)
    assert fields[3:] == ["3", "0", "0", "0"]  # the manager's own numbers: 3 waiting, no workers
    assert ours("-C", catalog, "-M", "nomatch.*").stdout.count("\n") == 1  # the header only
    manager.stop()


@requires_cctools
@requires_cctools_python
@pytest.mark.slow
def test_direct_views_and_category_markers_match_work_queue_status(processes, tmp_path):
    """A run with a task that breaks its memory limit: -A shows ~ and > in both tools alike."""
    hog = "python3 -c 'x=bytes(300*1024*1024)+bytes([1]); y=x.replace(bytes(1), bytes([2])); import time; time.sleep(8)'"
    tasks = [{"command": hog, "category": "small", "cores": 1, "memory": 20, "disk": 100},
             {"command": "sleep 40", "category": "small", "cores": 1, "memory": 20, "disk": 100}]  # fmt: skip
    manager = RealManager(processes, tmp_path, monitor="mon", tasks=tasks,
                          category_modes={"small": "WORK_QUEUE_ALLOCATION_MODE_FIXED"})  # fmt: skip
    processes.start([REAL_WORKER, "--cores", "2", "--memory", "1000", "--disk", "2000", "-t", "60",
                     LOOPBACK, manager.port], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    direct = (LOOPBACK, str(manager.port))

    def markers_shown() -> str:
        out = ours("-A", *direct).stdout
        return out if ">" in out else ""

    out = wait_until(markers_shown, 40, "the > marker after the memory hog broke its limit")
    small = next(line for line in out.splitlines() if line.startswith("small"))
    assert small.split()[-2].startswith(">") and small.split()[-1].startswith("~")
    for args in (("-A",), ("-T",), ("-W",), ("-Q",), ("-R",), ("-A", "-l")):
        real, mine = theirs(*args, *direct), ours(*args, *direct)
        assert real.returncode == mine.returncode == 0, mine.stderr
        assert mine.stdout == real.stdout, args
    manager.stop()
