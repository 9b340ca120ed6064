"""Read the captured proxy logs (samples/tools/wqproxy.py's format) back into raw bytes.

Each logged TCP read is rendered as lines joined by a literal ``\\n`` + newline, Python-escaped;
we undo exactly that. The research notes replaced host names and paths with placeholders, so a
record's stated length is checked only where no placeholder was substituted.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path

from tests.support import SAMPLES

__all__ = ["SAMPLES", "read_chunks", "read_proxy_log", "stream"]

_RECORD = re.compile(r"^\[\+[\d.]+\] conn#(\d+) (W->M|M->W) len=(\d+)$")
_OTHER_NOTE = re.compile(r"^\[\+[\d.]+\] conn#\d+ ")
_PLACEHOLDERS = (b"<host>", b"<host-ip>", b"<workdir>", b"<tmp>", b"<bindir>")


def _decode_block(lines: list[str]) -> bytes:
    text = "\n".join(lines)
    return b"\n".join(codecs.escape_decode(piece.encode("latin-1"))[0] for piece in text.split("\\n\n"))


def read_chunks(path: Path) -> list[tuple[int, str, bytes]]:
    """Every logged TCP read as (connection, direction, bytes), in order."""
    chunks: list[tuple[int, str, bytes]] = []
    current: tuple[int, str, int] | None = None
    block: list[str] = []

    def close_block() -> None:
        if current is None:
            return
        conn, direction, length = current
        data = _decode_block(block)
        sanitized = any(mark in data for mark in _PLACEHOLDERS)
        assert sanitized or len(data) == length, f"{path}: conn#{conn} {direction} decoded to {len(data)} != {length}"
        chunks.append((conn, direction, data))

    for line in path.read_text(encoding="latin-1").split("\n"):
        record = _RECORD.match(line)
        if record:
            close_block()
            current = (int(record.group(1)), record.group(2), int(record.group(3)))
            block = []
        elif _OTHER_NOTE.match(line):
            close_block()
            current, block = None, []
        elif current is not None:
            block.append(line)
    close_block()
    return chunks


def stream(path: Path, conn: int, direction: str) -> list[bytes]:
    """The reads of one connection in one direction."""
    return [data for c, d, data in read_chunks(path) if c == conn and d == direction]


def read_proxy_log(path: Path) -> dict[int, dict[str, bytes]]:
    """``{conn: {"M->W": bytes, "W->M": bytes}}``: each direction's whole byte stream."""
    streams: dict[int, dict[str, bytearray]] = {}
    for conn, direction, data in read_chunks(path):
        streams.setdefault(conn, {"M->W": bytearray(), "W->M": bytearray()})[direction] += data
    return {conn: {d: bytes(b) for d, b in pair.items()} for conn, pair in streams.items()}
