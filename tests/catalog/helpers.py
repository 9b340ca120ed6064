"""Real CCTools components for the catalog tests: catalog_server and a python3-workqueue manager."""

from __future__ import annotations

import json
import socket
import textwrap
from pathlib import Path

from tests.support import LOOPBACK, REAL_CATALOG, SYSTEM_PYTHON, Processes, free_port, wait_until


def start_real_catalog(processes: Processes, workdir: Path) -> int:
    """CCTools' catalog_server on a free loopback port (it reports itself only to itself).

    catalog_server also takes port+1 (TCP updates), which free_port() cannot promise: one that
    exits at start is tried again on another port.
    """
    for _attempt in range(3):
        port = free_port()
        history = workdir / "catalog.history"
        proc = processes.start(
            [REAL_CATALOG, "-p", port, "-I", LOOPBACK, "-u", f"{LOOPBACK}:{port}", "-H", history,
             "-o", workdir / "catalog.debug", "-d", "all"],
            cwd=workdir,
        )  # fmt: skip
        if wait_until(lambda proc=proc, port=port: proc.poll() is not None or _accepts(port), 30,
                      "catalog_server to listen") and proc.poll() is None:  # fmt: skip
            return port
    raise AssertionError(f"catalog_server exited at start three times; see {workdir / 'catalog.debug'}")


def _accepts(port: int) -> bool:
    try:
        socket.create_connection((LOOPBACK, port), timeout=0.5).close()
        return True
    except OSError:
        return False


MANAGER_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    import work_queue as wq
    cfg = json.load(open(sys.argv[1]))
    q = wq.WorkQueue(port=0, name=cfg.get("name"), stats_log=cfg.get("stats_log"),
                     transactions_log=cfg.get("transactions_log"))
    if cfg.get("catalog_port"):
        q.specify_catalog_server("127.0.0.1", cfg["catalog_port"])
    if cfg.get("monitor"):
        q.enable_monitoring(cfg["monitor"])
    for name, mode in cfg.get("category_modes", {}).items():
        q.specify_category_mode(name, getattr(wq, mode))
    for spec in cfg.get("tasks", []):
        t = wq.Task(spec["command"])
        if "category" in spec: t.specify_category(spec["category"])
        if "cores" in spec: t.specify_cores(spec["cores"])
        if "memory" in spec: t.specify_memory(spec["memory"])
        if "disk" in spec: t.specify_disk(spec["disk"])
        if "retries" in spec: t.specify_max_retries(spec["retries"])
        q.submit(t)
    with open(cfg["port_file"] + ".tmp", "w") as f:
        f.write(str(q.port))
    os.rename(cfg["port_file"] + ".tmp", cfg["port_file"])
    deadline = time.time() + cfg.get("lifetime", 60)
    done = []
    while time.time() < deadline and not os.path.exists(cfg["stop_file"]):
        t = q.wait(1)
        if t:
            done.append({"id": t.id, "result": t.result, "return_status": t.return_status})
            with open(cfg["done_file"], "w") as f:
                json.dump(done, f)
        if cfg.get("exit_when_empty") and q.empty():
            break
    """
)


class RealManager:
    """A CCTools manager (Debian's python3-workqueue) run by the system python3."""

    def __init__(self, processes: Processes, workdir: Path, **config: object) -> None:
        self.workdir = workdir
        self.port_file = workdir / "manager.port"
        self.stop_file = workdir / "manager.stop"
        self.done_file = workdir / "manager.done"
        script = workdir / "real_manager.py"
        script.write_text(MANAGER_SCRIPT)
        cfg = {"port_file": str(self.port_file), "stop_file": str(self.stop_file),
               "done_file": str(self.done_file), **config}  # fmt: skip
        (workdir / "manager.json").write_text(json.dumps(cfg))
        self.proc = processes.start(
            [SYSTEM_PYTHON, script, workdir / "manager.json"],
            cwd=workdir,
            stdout=open(workdir / "manager.out", "wb"),  # noqa: SIM115
            stderr=open(workdir / "manager.err", "wb"),  # noqa: SIM115
        )
        wait_until(self._started, 20, "the CCTools manager to start")
        self.port = int(self.port_file.read_text())

    def _started(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"manager died: {(self.workdir / 'manager.err').read_text()[-2000:]}")
        return self.port_file.exists()

    def done(self) -> list[dict]:
        return json.loads(self.done_file.read_text()) if self.done_file.exists() else []

    def stop(self, timeout: float = 15) -> None:
        self.stop_file.write_text("stop")
        self.proc.wait(timeout)
