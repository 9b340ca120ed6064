"""Workers the executor will not wait for: those whose result it refused, and those the manager refused.

* A worker that sent a result off the allow-list (``coffea_wq/safe_pickle/allow_list.py``) is
  disconnected, so it cannot take the same item again on that connection (coffea-wq's manager releases that one
  connection; CCTools' blocks the worker's hostname for a while).
* When every worker that tried to join was refused for a password or TLS mismatch, none is
  connected and none ever joined, the run fails after ``REFUSAL_GRACE_S`` with an error naming the
  peers, instead of waiting forever while only the log says why. A run that simply has no
  workers yet keeps waiting. See docs/executor.md, "Security".
"""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger(__name__)

REFUSAL_GRACE_S = 20.0  # a worker refused this long ago, and none joined since the start: give up
CCTOOLS_BLOCK_S = 300.0


class PeersRefusedError(RuntimeError):
    """No worker could join: each one that tried was refused (the message names them and why)."""


class RefusedWorkers:
    """Disconnects workers whose results were refused (see the module docstring)."""

    def __init__(self, queue: Any):
        self.queue = queue

    def disconnect(self, address: str | None, hostname: str | None) -> None:
        """Drop the worker at ``address`` (``host:port``), or block its ``hostname`` where a manager cannot."""
        release = getattr(self.queue, "disconnect_worker", None)
        if callable(release) and address:
            release(address)
            return
        block = getattr(self.queue, "block_host_with_timeout", None)
        if callable(block) and hostname:
            log.warning("blocking worker host %s for %.0f s (this manager cannot drop one connection)",
                        hostname, CCTOOLS_BLOCK_S)
            block(hostname, CCTOOLS_BLOCK_S)


def password_mismatch_error(queue: Any, grace_s: float = REFUSAL_GRACE_S) -> PeersRefusedError | None:
    """The error to raise when only refused workers ever came, ``grace_s`` after the first; else None."""
    refused_peers = getattr(queue, "refused_peers", None)
    if not callable(refused_peers):
        return None  # CCTools' manager does not say
    peers = refused_peers()
    if not peers or _workers_joined(queue) > 0:
        return None
    if time.monotonic() - min(p.first_seen for p in peers) < grace_s:
        return None
    lines = [f"  {p.address}: {p.reason} ({p.count} attempt{'s' if p.count > 1 else ''})" for p in peers]
    kinds = {p.kind for p in peers}
    advice = []
    if "password" in kinds:
        advice.append("the passwords differ: give the workers the executor's password_file (`coffea-wq worker "
                      "--password FILE`, `work_queue_worker -P FILE`), byte for byte (a trailing newline counts)")
    if "tls" in kinds:
        advice.append("TLS differs: with ssl=... start workers with --ssl, without it start them without --ssl")
    return PeersRefusedError("no worker could join the manager: every one that tried was refused\n"
                             + "\n".join(lines) + "\n" + "; ".join(advice))


def _workers_joined(queue: Any) -> int:
    try:
        return int(getattr(queue.stats, "workers_joined", 0) or 0)
    except (AttributeError, TypeError, ValueError):
        return 0
