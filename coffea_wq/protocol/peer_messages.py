"""Our extension to protocol 9: worker-to-worker transfers of cached files (docs/protocol.md,
"Our extension: peer transfers").

Only a coffea-wq worker advertises it (``info coffea-wq-peer-port PORT`` in its handshake, a line
CCTools' manager ignores) and only our manager answers that advertisement with these messages, so a
CCTools peer on either end never sees one:

- ``cache-report NAME`` (manager -> worker): say whether ``NAME`` is in your cache now; sent after a
  ``put`` it follows in the stream, so the answer comes once the file has arrived;
- ``peer-get NAME SIZE MODE DIGEST HOST PORT`` (manager -> worker): fetch ``NAME`` from the worker
  that serves its cache at HOST:PORT; SIZE bytes whose SHA-256 is DIGEST;
- ``cache-update NAME SIZE`` (worker -> manager): ``NAME`` is in my cache, SIZE bytes;
- ``cache-invalid NAME REASON`` (worker -> manager): ``NAME`` is not (the fetch failed: REASON says why).

The conversation between two workers (``peer-fetch`` over the serving worker's port) is in
``coffea_wq/worker/peers.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

PEER_PORT_INFO = "coffea-wq-peer-port"  # the info field a worker advertises its serving port with


def _check_token(value: str, what: str) -> None:
    if not value or any(c.isspace() for c in value):
        raise ValueError(f"{what} must be one word: {value[:80]!r}")


@dataclass(frozen=True)
class CacheReport:
    """``cache-report NAME``: the manager asks whether the worker holds ``name`` (after a put)."""

    name: str

    def __post_init__(self) -> None:
        _check_token(self.name, "cached name")


@dataclass(frozen=True)
class PeerGet:
    """``peer-get NAME SIZE MODE DIGEST HOST PORT``: fetch a cached file from another worker."""

    name: str
    size: int
    mode: int
    digest: str  # hex SHA-256 of the file's bytes
    host: str
    port: int

    def __post_init__(self) -> None:
        for value, what in ((self.name, "cached name"), (self.digest, "digest"), (self.host, "host")):
            _check_token(value, what)
        if self.size < 0 or not 0 < self.port < 65536:
            raise ValueError(f"peer-get of {self.name!r}: bad size {self.size} or port {self.port}")


@dataclass(frozen=True)
class CacheUpdate:
    """``cache-update NAME SIZE``: the worker holds ``name`` (``size`` bytes)."""

    name: str
    size: int

    def __post_init__(self) -> None:
        _check_token(self.name, "cached name")


@dataclass(frozen=True)
class CacheInvalid:
    """``cache-invalid NAME REASON``: the worker does not hold ``name``; ``reason`` is one line."""

    name: str
    reason: str

    def __post_init__(self) -> None:
        _check_token(self.name, "cached name")
        if "\n" in self.reason:
            raise ValueError(f"cache-invalid reason cannot contain a newline: {self.reason[:80]!r}")
