"""Read the byte streams back out of the captured proxy logs (samples/tools/wqproxy.py's format)."""

from __future__ import annotations

import codecs
import re
from pathlib import Path

SAMPLES = Path("/work/shared/research/samples")
_HEADER = re.compile(r"^\[\+[\d.]+\] conn#(\d+) (W->M|M->W) len=(\d+)$")
_NOTE = re.compile(r"^\[\+[\d.]+\] conn#\d+ ")


def _decode_block(lines: list[str]) -> bytes:
    text = "\n".join(lines)
    pieces = text.split("\\n\n")
    return b"\n".join(codecs.escape_decode(piece.encode("latin-1"))[0] for piece in pieces)


def read_chunks(path: Path) -> list[tuple[int, str, bytes]]:
    """Every logged TCP read as (connection, direction, bytes), in order."""
    chunks: list[tuple[int, str, bytes]] = []
    current: tuple[int, str, int] | None = None
    block: list[str] = []

    def close_block() -> None:
        if current is None:
            return
        conn, direction, _length = current  # lengths are pre-anonymisation (<host>), so unused
        chunks.append((conn, direction, _decode_block(block)))

    for line in path.read_text(encoding="latin-1").splitlines():
        header = _HEADER.match(line)
        if header:
            close_block()
            current = (int(header.group(1)), header.group(2), int(header.group(3)))
            block = []
        elif _NOTE.match(line):
            close_block()
            current = None
            block = []
        elif current is not None:
            block.append(line)
    close_block()
    return chunks


def stream(path: Path, conn: int, direction: str) -> list[bytes]:
    return [data for c, d, data in read_chunks(path) if c == conn and d == direction]
