"""coffea-wq's own manager seen through the real CCTools tools and ours: counts and category markers.

The manager runs in the test process (``coffea_wq.work_queue``), so what the tools print is compared
with the manager's own ``stats`` and category state, not only with each other.
"""

from __future__ import annotations

import os
import subprocess
import time

import coffea_wq.work_queue as wq
from coffea_wq.manager.txlog import read_transactions_log
from tests.catalog.helpers import start_real_catalog
from tests.catalog.test_server import start_our_catalog
from tests.manager.helpers import start_worker
from tests.support import LOOPBACK, REAL_CATALOG, REAL_STATUS, coffea_wq_command, needs_system, wait_until

pytestmark = needs_system(REAL_STATUS is None or REAL_CATALOG is None, "work_queue_status or catalog_server",
                          "coop-computing-tools")

ENV = {**os.environ, "COLUMNS": "80"}
HOG = "python3 -c 'import time; b = bytearray(400 * 2**20); time.sleep(2)'"


def real_status(*args: str) -> str:
    out = subprocess.run([REAL_STATUS, *args], capture_output=True, text=True, timeout=60, env=ENV)
    assert out.returncode == 0, out.stderr
    return out.stdout


def our_status(*args: str) -> str:
    out = subprocess.run(coffea_wq_command("status", *args), capture_output=True, text=True, timeout=60, env=ENV)
    assert out.returncode == 0, out.stderr
    return out.stdout


def catalog_row(output: str, name: str) -> list[str]:
    """PROJECT HOST PORT WAITING RUNNING COMPLETE WORKERS of ``name`` in a ``-C`` listing ([] when absent)."""
    assert len(name) <= 18, "work_queue_status cuts a project name to 18 characters"
    rows = [line.split() for line in output.splitlines() if line.startswith(name + " ")]
    return rows[0] if rows else []


def submit(q: wq.WorkQueue, command: str, category: str | None = None, priority: int = 0,
           cores: int | None = None, memory: int | None = None, disk: int | None = None) -> int:  # fmt: skip
    t = wq.Task(command)
    if category:
        t.specify_category(category)
    if priority:
        t.specify_priority(priority)
    for value, method in ((cores, t.specify_cores), (memory, t.specify_memory), (disk, t.specify_disk)):
        if value is not None:
            method(value)
    return q.submit(t)


def test_both_catalogs_list_our_manager_with_its_own_counts(processes, tmp_path):
    """Real work_queue_status -C on coffea-wq's catalog, coffea-wq status -C on the real catalog_server."""
    (tmp_path / "ours").mkdir()
    (tmp_path / "real").mkdir()
    our_catalog = f"{LOOPBACK}:{start_our_catalog(processes, tmp_path / 'ours')}"
    real_catalog = f"{LOOPBACK}:{start_real_catalog(processes, tmp_path / 'real')}"
    name = f"tv-{os.getpid()}-{time.time_ns() % 10**6}"  # the listing shows 18 characters of a name
    with wq.WorkQueue(port=0, host=LOOPBACK, name=name, catalog=f"{our_catalog},{real_catalog}") as q:
        submit(q, "true", cores=1, memory=50, disk=50)
        start_worker("coffea-wq", processes, q.port, tmp_path / "w", cores=2, memory=500, disk=500)
        wait_until(lambda: q.wait(1), 60, "the first task to come back")
        for _ in range(3):
            submit(q, "sleep 60", cores=1, memory=50, disk=50)
        wait_until(lambda: q.stats.tasks_running == 2, 30, "two tasks running, one waiting")
        # the state holds for a minute now; re-naming the catalogs sends the record at once
        q.specify_catalog_servers(f"{our_catalog},{real_catalog}")
        stats = q.stats
        expected = [name, str(q.port), str(stats.tasks_waiting), str(stats.tasks_running), str(stats.tasks_done),
                    str(stats.workers_connected)]  # fmt: skip
        assert expected[2:] == ["1", "2", "1", "1"]

        def row_of(output: str) -> list[str]:
            row = catalog_row(output, name)
            return row[:1] + row[2:] if row else []

        wait_until(lambda: row_of(real_status("-C", our_catalog, "-M", name)) == expected, 30,
                   "work_queue_status -C on our catalog to show the manager's counts")  # fmt: skip
        wait_until(lambda: row_of(our_status("-C", real_catalog, "-M", name)) == expected, 30,
                   "coffea-wq status -C on catalog_server to show the manager's counts")  # fmt: skip
        # and the two tools print the real catalog's listing alike, byte for byte
        assert our_status("-C", real_catalog, "-M", name) == real_status("-C", real_catalog, "-M", name)


def test_a_retry_waiting_after_exhaustion_shows_the_greater_than_marker_in_both_tools(processes, tmp_path):
    """Our manager, automatic mode with monitoring: a task breaks the whole worker's memory before the
    category is steady and waits for its retry; ``-A`` shows ``>n`` (n = the peak - 1) for memory and
    ``~n`` for the resources it did not break, in work_queue_status and coffea-wq status alike."""
    txlog = tmp_path / "tx.log"
    with wq.WorkQueue(port=0, host=LOOPBACK, transactions_log=str(txlog)) as q:
        q.enable_monitoring(watchdog=True)
        q.tune("category-steady-n-tasks", 5)  # never reached here: the category stays unsteady
        q.specify_category_mode("analysis", wq.WORK_QUEUE_ALLOCATION_MODE_MAX)
        start_worker("coffea-wq", processes, q.port, tmp_path / "w", cores=2, memory=300, disk=500)
        hog = submit(q, HOG, category="analysis")  # declares nothing: the whole worker, 300 MB
        wait_until(lambda: q.stats.tasks_running == 1, 60, "the memory hog to start")
        # a higher-priority task that takes a core when the hog comes back: the hog's retry (again the
        # whole worker) cannot fit and waits
        submit(q, "sleep 60", category="blocker", priority=10, cores=1, memory=20, disk=20)
        wait_until(lambda: q.stats.tasks_exhausted_attempts == 1 and q.stats.tasks_waiting == 1
                   and q.stats.tasks_running == 1, 60, "the hog to exhaust its memory and wait for a retry")  # fmt: skip
        assert q.task_state(hog) == wq.WORK_QUEUE_TASK_READY

        direct = (LOOPBACK, str(q.port))
        mine = our_status("-A", *direct)
        assert mine == real_status("-A", *direct)
        assert our_status("-A", "-l", *direct) == real_status("-A", "-l", *direct)

    retrieved = [e for e in read_transactions_log(txlog) if e.subject == str(hog) and e.event == "RETRIEVED"]
    assert retrieved[0].result == "RESOURCE_EXHAUSTION" and retrieved[0].limits_exceeded == {"memory": 300}
    peak = retrieved[0].resources
    # CATEGORY DISPATCHED WAITING FIT-WORKERS MAX-CORES MAX-MEMORY MAX-DISK (a name may hold a space)
    rows = {" ".join(line.split()[:-6]): line.split()[-3:] for line in mine.splitlines()[1:]}
    assert rows["analysis"][1] == f">{int(peak['memory']) - 1}"
    assert rows["analysis"][0] == f"~{peak['cores']:.3f}" and rows["analysis"][2] == f"~{int(peak['disk'])}"
    assert rows["whole queue"] == ["1.000", "20", "20"]  # the largest request declared, the blocker's
    assert rows["blocker"] == ["???", "???", "???"]  # no explicit maximum, nothing measured yet
