"""The catalog's table of records: decoding updates, keys, expiry, the update and history logs.

Semantics follow CCTools' catalog_server (docs/catalog.md, "Formats"): the server adds ``address``
(the sender's IP) and ``lastheardfrom`` (unix seconds), sets ``name`` to the reverse DNS of the
sender (keeping the sent name, or the IP, when that fails), and keys records by
``address:port:name[:uuid]``. A record is dropped once it has not been heard from for
``min(server lifetime, record's "lifetime")`` seconds.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import zlib
from pathlib import Path

log = logging.getLogger(__name__)

COMPRESSED_MARK = 0x1A  # a leading byte 0x1A means zlib data follows (CCTools)


class UpdateError(ValueError):
    """An update that is not a record; says why."""


def decode_update(payload: bytes) -> dict:
    """A record from an update datagram/stream: JSON, 0x1A+zlib JSON, or legacy ``key value`` lines.

    Raises:
        UpdateError: the payload is none of those.

    Example:
        >>> decode_update(b'{"type":"wq_master","port":9123}')
        {'type': 'wq_master', 'port': 9123}
    """
    if payload[:1] == bytes([COMPRESSED_MARK]):
        try:
            payload = zlib.decompress(payload[1:])
        except zlib.error as exc:
            raise UpdateError(f"compressed update does not decompress: {exc}") from None
    text = payload.decode("utf-8", "replace").strip()
    if not text:
        raise UpdateError("empty update")
    if text.startswith("{"):
        try:
            record = json.loads(text)
        except ValueError as exc:
            raise UpdateError(f"update is not valid JSON: {exc}") from None
        if not isinstance(record, dict):
            raise UpdateError("update is not a JSON object")
        return record
    return _decode_nvpairs(text)


def _decode_nvpairs(text: str) -> dict:
    record: dict = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if not key:
            continue
        value = value.strip()
        try:
            record[key] = int(value)
        except ValueError:
            try:
                record[key] = float(value)
            except ValueError:
                record[key] = value
    if not record:
        raise UpdateError("update has no fields")
    return record


class ReverseDns:
    """Reverse DNS with a cache, so a busy sender costs one lookup."""

    def __init__(self) -> None:
        self._cache: dict[str, str | None] = {}

    def name_of(self, address: str) -> str | None:
        if address not in self._cache:
            try:
                self._cache[address] = socket.gethostbyaddr(address)[0]
            except (OSError, UnicodeError):
                self._cache[address] = None
        return self._cache[address]


def record_key(record: dict) -> str:
    key = f"{record.get('address')}:{record.get('port', 0)}:{record.get('name')}"
    if record.get("uuid"):
        key += f":{record['uuid']}"
    return key


class RecordTable:
    """Records by key, thread-safe, with expiry and optional logs.

    Args:
        lifetime: seconds a record lives without an update (CCTools' ``-l``, default 1800).
        update_log: a file getting one JSON line per *new* record (CCTools' ``-L``).
        history_dir: a directory getting every accepted update as a JSON line (``-H``), one
            file per day: ``<dir>/<YYYY-MM-DD>.jsonl``.
    """

    def __init__(
        self,
        lifetime: float = 1800.0,
        update_log: str | os.PathLike[str] | None = None,
        history_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.lifetime = lifetime
        self.update_log = Path(update_log) if update_log else None
        self.history_dir = Path(history_dir) if history_dir else None
        if self.history_dir:
            self.history_dir.mkdir(parents=True, exist_ok=True)
        self._records: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._dns = ReverseDns()

    def accept_update(self, payload: bytes, sender_ip: str, now: float | None = None) -> dict:
        """Decode and store an update from ``sender_ip``; returns the stored record.

        Raises:
            UpdateError: the payload is not a record.
        """
        record = decode_update(payload)
        now = time.time() if now is None else now
        record["address"] = sender_ip
        record["lastheardfrom"] = int(now)
        record["name"] = self._dns.name_of(sender_ip) or record.get("name") or sender_ip
        self.put(record, now)
        return record

    def put(self, record: dict, now: float | None = None, logged: bool = True) -> None:
        """Store ``record`` under its key; ``logged=False`` keeps it out of the update/history logs."""
        key = record_key(record)
        with self._lock:
            is_new = key not in self._records
            self._records[key] = record
        if is_new and logged and self.update_log:
            self._append(self.update_log, json.dumps(record, separators=(",", ":")))
        if logged and self.history_dir:
            day = time.strftime("%Y-%m-%d", time.gmtime(now or time.time()))
            self._append(self.history_dir / f"{day}.jsonl", json.dumps({"key": key, "record": record}))

    @staticmethod
    def _append(path: Path, line: str) -> None:
        try:
            with open(path, "a", encoding="utf-8") as f:
                f.write(line + "\n")
        except OSError as exc:
            log.warning("cannot write %s: %s", path, exc)

    def expire(self, now: float | None = None) -> int:
        """Drop stale records; returns how many were dropped."""
        now = time.time() if now is None else now
        with self._lock:
            stale = [key for key, r in self._records.items() if now - r.get("lastheardfrom", 0) > self._life_of(r)]
            for key in stale:
                del self._records[key]
        return len(stale)

    def _life_of(self, record: dict) -> float:
        own = record.get("lifetime")
        if isinstance(own, (int, float)) and not isinstance(own, bool) and own > 0:
            return min(self.lifetime, own)
        return self.lifetime

    def records(self) -> list[dict]:
        """Live records, newest update first."""
        self.expire()
        with self._lock:
            records = list(self._records.values())
        return sorted(records, key=lambda r: -r.get("lastheardfrom", 0))

    def get(self, key: str) -> dict | None:
        self.expire()
        with self._lock:
            return self._records.get(key)
