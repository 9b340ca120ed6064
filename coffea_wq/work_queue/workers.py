"""The worker-side controls of ``WorkQueue``: telling workers to leave, blocking hosts, draining."""

from __future__ import annotations

import time


class WorkerControl:
    """Methods of ``WorkQueue`` that act on connected workers (mixed into it; uses ``self._server``)."""

    def shutdown_workers(self, n: int) -> int:
        """Tell up to ``n`` idle workers (0: all idle workers) to exit; returns how many were told."""
        from coffea_wq.manager.workers import PeerKind
        from coffea_wq.protocol.manager_side import WorkerConnection

        def tell() -> int:
            told = 0
            for peer in list(self._server.core.peers.values()):
                if peer.kind is PeerKind.WORKER and not peer.tasks and not peer.closing and (n <= 0 or told < n):
                    peer.send(WorkerConnection.send_exit())
                    peer.closing = True
                    peer.disconnect_reason = "EXPLICIT"
                    told += 1
            return told

        return int(self._server.call(tell))

    def block_host(self, host: str) -> int:
        """Refuse workers from ``host`` (their hostname as they report it); connected ones are released."""
        return self.block_host_with_timeout(host, float("inf"))

    def block_host_with_timeout(self, host: str, timeout: float) -> int:
        from coffea_wq.protocol.manager_side import WorkerConnection

        def block() -> int:
            self._server.blocked_hosts[host] = time.monotonic() + float(timeout)
            for peer in list(self._server.core.peers.values()):
                if peer.hostname == host and not peer.closing:
                    peer.send(WorkerConnection.send_release())
                    peer.closing = True
                    peer.disconnect_reason = "EXPLICIT"
            return 1

        return int(self._server.call(block))

    def disconnect_worker(self, address: str) -> int:
        """coffea-wq: release the worker connected from ``address`` ("ip:port", a task's ``host``)
        and requeue its tasks; 1 if it was connected. The executor uses it for a worker whose
        result it refused (docs/executor.md, Security)."""
        from coffea_wq.protocol.manager_side import WorkerConnection

        def release() -> int:
            for peer in self._server.core.peers.values():
                if peer.address == address and not peer.closing:
                    peer.send(WorkerConnection.send_release())
                    peer.closing = True
                    peer.disconnect_reason = "EXPLICIT"
                    return 1
            return 0

        return int(self._server.call(release))

    def refused_peers(self) -> list:
        """coffea-wq: the peers refused for a password or TLS mismatch, one ``RefusedPeer`` per IP
        (``address``, ``kind``, ``reason``, ``count``, ``first_seen``/``last_seen`` monotonic s)."""
        with self._server.lock:
            return self._server.refusals.snapshot()

    def status_records(self, kind: str = "queue_status") -> list:
        """coffea-wq: the records a ``kind`` status query (``queue_status``, ``task_status``, ...) would
        get, read in this process: a factory serving this queue uses it, since a password or TLS
        closes the port to status queries."""
        import json

        with self._server.lock:
            body = self._status.answer(kind)
        return json.loads(body) if body else []

    @property
    def listening_host(self) -> str:
        """coffea-wq: the address the manager listens on ("0.0.0.0" for every interface)."""
        return self._server.listener.getsockname()[0]

    blacklist = block_host
    blacklist_with_timeout = block_host_with_timeout

    def unblock_host(self, host: str | None = None) -> int:
        """Accept ``host`` again (every host when None)."""
        def unblock() -> int:
            if host is None:
                self._server.blocked_hosts.clear()
            else:
                self._server.blocked_hosts.pop(host, None)
            return 1

        return int(self._server.call(unblock))

    blacklist_clear = unblock_host

    def specify_draining_by_hostname(self, hostname: str, drain_mode: bool = True) -> int:
        """Let workers on ``hostname`` finish their tasks but give them no new ones (or undo it)."""
        def drain() -> int:
            count = 0
            for peer in self._server.core.peers.values():
                if peer.hostname == hostname:
                    peer.draining = bool(drain_mode)
                    count += 1
            return count

        return int(self._server.call(drain))

    def workers_summary(self) -> list[dict]:
        """One dict per distinct worker size: workers, cores, memory, disk, gpus (CCTools' shape)."""
        sizes: dict[tuple, int] = {}
        with self._server.lock:
            for peer in self._server.core.peers.values():
                if peer.ready_for_tasks:
                    total = peer.total
                    key = tuple(int(getattr(total, n) or 0) for n in ("cores", "memory", "disk", "gpus"))
                    sizes[key] = sizes.get(key, 0) + 1
        return [{"workers": n, "cores": c, "memory": m, "disk": d, "gpus": g} for (c, m, d, g), n in sizes.items()]

    def wait_for_workers(self, count: int, timeout: float) -> bool:
        """Block until ``count`` workers are ready for tasks (True) or ``timeout`` s pass (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._server.lock:
                ready = sum(1 for p in self._server.core.peers.values() if p.ready_for_tasks)
            if ready >= count:
                return True
            time.sleep(0.05)
        return False
