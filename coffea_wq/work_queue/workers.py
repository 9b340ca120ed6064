"""The worker-side controls of ``WorkQueue``: telling workers to leave, blocking hosts, draining."""

from __future__ import annotations

import time


class WorkerControl:
    """Methods of ``WorkQueue`` that act on connected workers (mixed into it; they call the
    ``Manager`` of ``manager/api.py`` held as ``self._manager``)."""

    def shutdown_workers(self, n: int) -> int:
        """Tell up to ``n`` idle workers (0: all idle workers) to exit; returns how many were told."""
        return self._manager.exit_idle_workers(int(n))

    def block_host(self, host: str) -> int:
        """Refuse workers from ``host`` (their hostname as they report it); connected ones are released."""
        return self.block_host_with_timeout(host, float("inf"))

    def block_host_with_timeout(self, host: str, timeout: float) -> int:
        self._manager.block_host(host, float(timeout))
        return 1

    def disconnect_worker(self, address: str) -> int:
        """coffea-wq: release the worker connected from ``address`` ("ip:port", a task's ``host``)
        and requeue its tasks; 1 if it was connected. The executor uses it for a worker whose
        result it refused (docs/executor.md, Security)."""
        return int(self._manager.disconnect_worker(address))

    def worker_features(self) -> set[str]:
        """coffea-wq: the features of the connected workers, together. Each coffea-wq worker
        advertises ``coffea-wq-worker-<token>``, so this says which of them are still connected."""
        return self._manager.worker_features()

    def refused_peers(self) -> list:
        """coffea-wq: the peers refused for a password or TLS mismatch, one ``RefusedPeer`` per IP
        (``address``, ``kind``, ``reason``, ``count``, ``first_seen``/``last_seen`` monotonic s)."""
        return self._manager.refused_peers()

    def status_records(self, kind: str = "queue_status") -> list:
        """coffea-wq: the records a ``kind`` status query (``queue_status``, ``task_status``, ...) would
        get, read in this process: a factory serving this queue uses it, since a password or TLS
        closes the port to status queries."""
        return self._manager.status_records(kind)

    def snapshot(self):
        """coffea-wq: the four status records (``queue``, ``workers``, ``tasks``, ``categories``, as
        ``status_records`` gives them) read at one instant, with ``last_contact``: each worker's
        last message, s since the epoch, by address. The dashboard reads an in-process queue so."""
        return self._manager.snapshot()

    @property
    def listening_host(self) -> str:
        """coffea-wq: the address the manager listens on ("0.0.0.0" for every interface)."""
        return self._manager.listening_host

    blacklist = block_host
    blacklist_with_timeout = block_host_with_timeout

    def unblock_host(self, host: str | None = None) -> int:
        """Accept ``host`` again (every host when None)."""
        self._manager.unblock_host(host)
        return 1

    blacklist_clear = unblock_host

    def specify_draining_by_hostname(self, hostname: str, drain_mode: bool = True) -> int:
        """Let workers on ``hostname`` finish their tasks but give them no new ones (or undo it)."""
        return self._manager.drain_host(hostname, bool(drain_mode))

    def workers_summary(self) -> list[dict]:
        """One dict per distinct worker size: workers, cores, memory, disk, gpus (CCTools' shape)."""
        sizes = self._manager.worker_sizes()
        return [{"workers": n, "cores": c, "memory": m, "disk": d, "gpus": g} for (c, m, d, g), n in sizes.items()]

    def wait_for_workers(self, count: int, timeout: float) -> bool:
        """Block until ``count`` workers are ready for tasks (True) or ``timeout`` s pass (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._manager.ready_workers() >= count:
                return True
            time.sleep(0.05)
        return False
