"""Reading the research proxy logs (samples/tools/wqproxy.py format) back into raw byte streams."""

from __future__ import annotations

import codecs
import re
from pathlib import Path

SAMPLES = Path("/work/shared/research/samples")
_HEADER = re.compile(r"^\[\+\d+\.\d+\] conn#(\d+) (W->M|M->W)(?: len=(\d+)| (EOF|error.*))$")


def read_proxy_log(path: Path) -> dict[int, dict[str, bytes]]:
    """``{conn: {"M->W": bytes, "W->M": bytes}}`` as the proxy saw them, in order.

    Each record is rendered as lines joined by a literal ``\\n`` + newline, Python-escaped, with
    one newline added at the end; we undo exactly that and check the lengths it states.
    """
    streams: dict[int, dict[str, bytearray]] = {}
    lines = path.read_text(encoding="latin-1").split("\n")
    i = 0
    while i < len(lines):
        match = _HEADER.match(lines[i])
        i += 1
        if not match or match.group(3) is None:
            continue
        conn, direction, length = int(match.group(1)), match.group(2), int(match.group(3))
        body = []
        while i < len(lines) and not _HEADER.match(lines[i]) and " OPEN client=" not in lines[i]:
            body.append(lines[i])
            i += 1
        text = "\n".join(body)
        data = b"\n".join(codecs.escape_decode(part.encode("latin-1"))[0] for part in text.split("\\n\n"))
        # the research notes replaced host names and paths with placeholders, changing lengths
        sanitized = any(mark in data for mark in (b"<host>", b"<host-ip>", b"<workdir>", b"<tmp>", b"<bindir>"))
        assert sanitized or len(data) == length, f"{path}: record of conn#{conn} {direction} decoded to {len(data)} != {length}"
        streams.setdefault(conn, {"M->W": bytearray(), "W->M": bytearray()})[direction] += data
    return {conn: {d: bytes(b) for d, b in pair.items()} for conn, pair in streams.items()}
