"""Talking to a catalog server: where it is, advertising a manager, and finding managers.

Compatible with CCTools (docs/catalog.md, "Formats"): a manager sends its record as one JSON object in a
UDP datagram to the catalog's port (or over TCP to port+1 when ``CATALOG_UPDATE_PROTOCOL=tcp``);
clients read all records with ``GET /query.json``. Nothing here may block or crash a manager:
the advertiser runs in its own daemon thread and only logs failures.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from coffea_wq.catalog.http import HttpError, http_get

log = logging.getLogger(__name__)

DEFAULT_CATALOG_HOSTS = ("catalog.cse.nd.edu", "backup-catalog.cse.nd.edu")
DEFAULT_CATALOG_PORT = 9097
UDP_PAYLOAD_MAX = 65536 - 100  # DATAGRAM_PAYLOAD_MAX less IP/UDP headers
MANAGER_TYPES = ("wq_master", "wq_manager")
# The keys CCTools keeps when a record is too big for one datagram (queue_lean_to_jx).
LEAN_KEYS = (
    "version", "type", "port", "owner", "project", "starttime", "manager_preferred_connection",
    "network_interfaces", "tasks_waiting", "tasks_running", "tasks_complete", "tasks_on_workers",
    "tasks_left", "capacity_tasks", "capacity_cores", "capacity_memory", "capacity_disk",
    "capacity_gpus", "capacity_weighted", "manager_load", "tasks_total_cores", "tasks_total_memory",
    "tasks_total_disk", "tasks_total_gpus", "workers", "workers_connected", "workers_blocked",
    "my_manager", "lifetime",
)  # fmt: skip

Address = tuple[str, int]


class CatalogError(ConnectionError):
    """No catalog server answered."""


def _env_port() -> int:
    text = os.environ.get("CATALOG_PORT", "").strip()
    if not text:
        return DEFAULT_CATALOG_PORT
    return _parse_port(text, "environment variable CATALOG_PORT")


def _parse_port(text: str, where: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{where}: {text!r} is not a TCP/UDP port (1-65535)")
    return int(text)


def parse_address_list(text: str, default_port: int, where: str) -> list[Address]:
    """``"host[:port][,host[:port]...]"`` as a list of (host, port); ``[v6]:port`` works too.

    Raises:
        ValueError: naming ``where`` and the bad entry.

    Example:
        >>> parse_address_list("a:1,b", 9097, "--catalog")
        [('a', 1), ('b', 9097)]
    """
    addresses = []
    for entry in text.split(","):
        entry = entry.strip()
        if not entry:
            continue
        if entry.startswith("["):  # [::1]:9097
            host, _, rest = entry[1:].partition("]")
            port = _parse_port(rest[1:], f"{where} entry {entry!r}") if rest.startswith(":") else default_port
        elif entry.count(":") == 1:
            host, _, port_text = entry.partition(":")
            port = _parse_port(port_text, f"{where} entry {entry!r}")
        else:  # a bare name, or a bare IPv6 address
            host, port = entry, default_port
        if not host:
            raise ValueError(f"{where}: entry {entry!r} has no host")
        addresses.append((host, port))
    if not addresses:
        raise ValueError(f"{where}: {text!r} names no catalog host")
    return addresses


def catalog_addresses(option: str | None = None) -> list[Address]:
    """The catalog servers to use, in order of preference.

    ``option`` ("HOST:PORT[,HOST:PORT]", from ``--catalog`` or the executor's ``catalog``)
    wins; else the environment (``CATALOG_HOST``, a comma list of host[:port], and
    ``CATALOG_PORT``); else CCTools' defaults, catalog.cse.nd.edu and backup-catalog.cse.nd.edu
    on port 9097.

    Raises:
        ValueError: a malformed option or environment variable, named in the message.

    Example:
        >>> catalog_addresses("127.0.0.1:9097")
        [('127.0.0.1', 9097)]
    """
    if option:
        return parse_address_list(option, _env_port(), "catalog option")
    env_hosts = os.environ.get("CATALOG_HOST", "").strip()
    if env_hosts:
        return parse_address_list(env_hosts, _env_port(), "environment variable CATALOG_HOST")
    port = _env_port()
    return [(host, port) for host in DEFAULT_CATALOG_HOSTS]


def encode_record(record: dict) -> bytes:
    """The compact JSON text CCTools sends; a too-big record is cut down to its lean keys."""
    text = json.dumps(record, separators=(",", ":"), default=str).encode()
    if len(text) <= UDP_PAYLOAD_MAX:
        return text
    lean = {key: record[key] for key in LEAN_KEYS if key in record}
    return json.dumps(lean, separators=(",", ":"), default=str).encode()


def send_update(address: Address, payload: bytes, use_tcp: bool = False, timeout: float = 5.0) -> None:
    """Send one record to one catalog: UDP to its port, or TCP to port+1 (CCTools' choice).

    Raises:
        OSError: the name did not resolve or the send failed.
    """
    host, port = address
    if use_tcp:
        with socket.create_connection((host, port + 1), timeout=timeout) as sock:
            sock.sendall(payload)
        return
    family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.sendto(payload, sockaddr)


class CatalogAdvertiser:
    """Sends a manager's record to the catalog: at start, on change (rate-limited), periodically.

    A daemon thread does all the sending, so the caller never waits on DNS or the network, and
    an unreachable catalog is only logged (once per address until it works again).

    Args:
        addresses: catalogs to send to (all of them, as CCTools does).
        record_fn: called in the advertiser's thread to build the current record (a dict).
        interval: seconds between periodic updates (CCTools: 60).
        min_interval: at least this many seconds between updates caused by changes.

    Example:
        >>> adv = CatalogAdvertiser([("127.0.0.1", 9097)], lambda: {"type": "wq_master"})
        >>> adv.start(); adv.notify_change(); adv.stop()  # doctest: +SKIP
    """

    def __init__(
        self,
        addresses: list[Address],
        record_fn: Callable[[], dict],
        interval: float = 60.0,
        min_interval: float = 1.0,
    ) -> None:
        self.addresses = list(addresses)
        self.record_fn = record_fn
        self.interval = interval
        self.min_interval = min_interval
        self.updates_sent = 0
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self._changed = False
        self._failing: set[Address] = set()
        self._thread: threading.Thread | None = None

    @property
    def use_tcp(self) -> bool:
        return os.environ.get("CATALOG_UPDATE_PROTOCOL", "udp").strip().lower() == "tcp"

    def start(self) -> None:
        """Start the thread; the first update goes out at once."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="catalog-advertiser", daemon=True)
        self._thread.start()

    def notify_change(self) -> None:
        """Ask for an update soon (at most one per ``min_interval``); never blocks."""
        self._changed = True
        self._wakeup.set()

    def stop(self, final_update: bool = True, timeout: float = 2.0) -> None:
        """Stop the thread, sending a last update first (CCTools does at shutdown)."""
        if self._thread is None:
            return
        self._changed = final_update
        self._stopping.set()
        self._wakeup.set()
        self._thread.join(timeout)
        self._thread = None

    def _run(self) -> None:
        last_sent = float("-inf")
        while True:
            now = time.monotonic()
            due_periodic = now - last_sent >= self.interval
            due_change = self._changed and now - last_sent >= self.min_interval
            if due_periodic or due_change or (self._stopping.is_set() and self._changed):
                self._changed = False
                self.send_now()
                last_sent = time.monotonic()
            if self._stopping.is_set():
                return
            self._wakeup.clear()
            wait = self.interval - (time.monotonic() - last_sent)
            if self._changed:
                wait = min(wait, self.min_interval - (time.monotonic() - last_sent))
            self._wakeup.wait(max(wait, 0.0))

    def send_now(self) -> None:
        """Build the record and send it to every catalog; failures are logged, not raised."""
        try:
            payload = encode_record(self.record_fn())
        except Exception:  # a broken record must not kill the advertiser
            log.exception("could not build the catalog record")
            return
        use_tcp = self.use_tcp
        for address in self.addresses:
            try:
                send_update(address, payload, use_tcp=use_tcp)
            except OSError as exc:
                if address not in self._failing:
                    self._failing.add(address)
                    log.warning("cannot send catalog update to %s:%d: %s", address[0], address[1], exc)
                continue
            if address in self._failing:
                self._failing.discard(address)
                log.info("catalog %s:%d reachable again", *address)
        self.updates_sent += 1
        log.debug("sent catalog update (%d bytes) via %s", len(payload), "tcp" if use_tcp else "udp")


def query_catalog(addresses: list[Address], timeout: float = 5.0) -> list[dict]:
    """All records of the first catalog that answers ``GET /query.json``.

    Args:
        addresses: catalogs to try, in order.
        timeout: seconds allowed for each catalog.

    Raises:
        CatalogError: no catalog answered with a JSON array; the message lists each failure.

    Example:
        >>> query_catalog([("127.0.0.1", 9097)])  # doctest: +SKIP
        [{'type': 'wq_master', 'project': 'test', ...}]
    """
    failures = []
    for host, port in addresses:
        try:
            reply = http_get(host, port, "/query.json", timeout=timeout)
            records = json.loads(reply.body.decode("utf-8", "replace"))
        except (HttpError, ValueError) as exc:
            failures.append(f"{host}:{port}: {exc}")
            continue
        if isinstance(records, list):
            return [r for r in records if isinstance(r, dict)]
        failures.append(f"{host}:{port}: reply is not a JSON array")
    raise CatalogError("no catalog server answered (" + "; ".join(failures) + ")")


@dataclass
class ManagerRecord:
    """A manager found in the catalog: its project, where to try connecting, and the raw record."""

    project: str
    candidates: list[Address]
    record: dict = field(repr=False)


def manager_candidates(record: dict) -> list[Address]:
    """Where a worker should try to connect: ``network_interfaces`` hosts, then ``address``."""
    port = record.get("port")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        return []
    hosts = []
    if record.get("manager_preferred_connection") == "by_hostname" and isinstance(record.get("name"), str):
        hosts.append(record["name"])
    interfaces = record.get("network_interfaces")
    for interface in interfaces if isinstance(interfaces, list) else []:
        if isinstance(interface, dict) and isinstance(interface.get("host"), str):
            hosts.append(interface["host"])
    if isinstance(record.get("address"), str):
        hosts.append(record["address"])
    unique = list(dict.fromkeys(hosts))
    return [(host, port) for host in unique]


def match_managers(regex: str, records: list[dict]) -> list[ManagerRecord]:
    """The manager records whose project matches ``regex`` as a whole, shuffled.

    Raises:
        ValueError: ``regex`` is not a valid regular expression.
    """
    try:
        pattern = re.compile(regex)
    except re.error as exc:
        raise ValueError(f"manager name {regex!r} is not a valid regular expression: {exc}") from exc
    found = []
    for record in records:
        project = record.get("project")
        if record.get("type") not in MANAGER_TYPES or not isinstance(project, str):
            continue
        if pattern.fullmatch(project):
            candidates = manager_candidates(record)
            if candidates:
                found.append(ManagerRecord(project, candidates, record))
    random.shuffle(found)
    return found


def find_managers(regex: str, addresses: list[Address], timeout: float = 5.0) -> list[ManagerRecord]:
    """Managers advertised in the catalog whose project fully matches ``regex`` (shuffled).

    As ``work_queue_worker -M``: records of type wq_master or wq_manager only; an unreachable
    catalog gives an empty list (and a warning), so the caller simply retries later.

    Raises:
        ValueError: ``regex`` is not a valid regular expression.

    Example:
        >>> for m in find_managers("test-.*", [("127.0.0.1", 9097)]):  # doctest: +SKIP
        ...     print(m.project, m.candidates)
    """
    try:
        records = query_catalog(addresses, timeout=timeout)
    except CatalogError as exc:
        log.warning("%s", exc)
        return []
    return match_managers(regex, records)
