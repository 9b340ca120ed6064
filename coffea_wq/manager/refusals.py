"""Peers the manager refused for a setting both ends must share: the password, or TLS.

Why: a worker whose password differs is refused at every attempt, and the run would wait for
workers forever while only the log said why. The manager records each refusal here, by the
peer's IP address; ``coffea_wq.work_queue.WorkQueue.refused_peers()`` hands a copy to the
executor, which fails the run when every worker that tried was refused (docs/executor.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

KEPT_PEERS = 64  # distinct addresses remembered; the oldest is forgotten first


@dataclass
class RefusedPeer:
    """The latest refusal of one peer address (``ip``), how often, since when."""

    address: str  # ip:port of the latest attempt
    kind: str  # "password" or "tls"
    reason: str
    count: int = 1
    first_seen: float = field(default_factory=time.monotonic)
    last_seen: float = field(default_factory=time.monotonic)


class RefusalLog:
    """The refusals so far, one entry per peer IP (the manager lock guards it).

    Example:
        >>> log = RefusalLog(); log.record("10.0.0.5:40001", "password", "peer's password does not match ours")
        >>> [(p.address, p.kind, p.count) for p in log.snapshot()]
        [('10.0.0.5:40001', 'password', 1)]
    """

    def __init__(self) -> None:
        self._peers: dict[str, RefusedPeer] = {}

    def record(self, address: str, kind: str, reason: str) -> None:
        ip = address.rpartition(":")[0] or address
        known = self._peers.pop(ip, None)
        if known is None:
            entry = RefusedPeer(address, kind, reason)
        else:
            entry = replace(known, address=address, kind=kind, reason=reason, count=known.count + 1,
                            last_seen=time.monotonic())
        self._peers[ip] = entry
        while len(self._peers) > KEPT_PEERS:
            self._peers.pop(next(iter(self._peers)))

    def snapshot(self) -> list[RefusedPeer]:
        return [replace(p) for p in self._peers.values()]
