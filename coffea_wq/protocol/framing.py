"""Sans-IO framing of the Work Queue control channel, and the numbers in its lines.

Rules (docs/protocol.md, "Framing"):
- a control message is one ASCII line ending in LF; CR bytes are dropped anywhere in it (as
  CCTools' ``link_readline`` does); at most ``MAX_LINE`` (4095) bytes precede the LF;
- a header line may announce a binary payload of N bytes that follows immediately, unframed.

This module only splits bytes and reads numbers. It knows nothing about which line announces
a payload: the connection state machines (``manager_side``, ``worker_side``) ask for a line or
for N bytes. Both sides read every number of a line through ``parse_int``/``parse_number``/
``parse_mode`` below, so a malformed number is the same ``ProtocolError`` on either side.
"""

from __future__ import annotations

import math

MAX_LINE = 4095


class ProtocolError(Exception):
    """The peer sent something that breaks the protocol; the connection must be closed."""


class LineTooLong(ProtocolError):
    """A line longer than MAX_LINE bytes (CCTools treats it as a dead connection)."""


class ByteStream:
    """Received bytes, handed out as complete lines or as exact-length payloads."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._buffer = bytearray()
        self._max_line = max_line
        self._scan_from = 0  # bytes already known to contain no LF
        self.closed = False

    def feed(self, data: bytes) -> None:
        """Append received bytes; ``b""`` means the peer closed the connection."""
        if data:
            self._buffer += data
        else:
            self.closed = True

    def __len__(self) -> int:
        return len(self._buffer)

    def read_line(self) -> str | None:
        """The next complete line without its LF (and without CR), or None if incomplete."""
        end = self._buffer.find(b"\n", self._scan_from)
        if end < 0:
            self._scan_from = len(self._buffer)
            if len(self._buffer) > self._max_line:
                raise LineTooLong(f"line longer than {self._max_line} bytes")
            return None
        if end > self._max_line + self._buffer.count(b"\r", 0, end):
            raise LineTooLong(f"line of {end} bytes is longer than {self._max_line}")
        raw = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        self._scan_from = 0
        # latin-1 never fails and keeps bytes 1:1, so a malformed line reaches the parser intact
        return raw.replace(b"\r", b"").decode("latin-1")

    def read_exact(self, size: int) -> bytes | None:
        """Exactly ``size`` bytes, or None until that many have arrived."""
        if len(self._buffer) < size:
            return None
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        self._scan_from = 0
        return data

    def read_upto(self, size: int) -> bytes:
        """Up to ``size`` bytes available now (for streaming large payloads to disk)."""
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        self._scan_from = 0
        return data

    def skip(self, size: int) -> int:
        """Drop up to ``size`` bytes available now without copying them; returns how many."""
        count = min(size, len(self._buffer))
        del self._buffer[:count]
        self._scan_from = 0
        return count


def encode_line(text: str) -> bytes:
    """One control line as bytes; refuses lines the C peers could not read."""
    data = text.encode("latin-1")
    if b"\n" in data:
        raise ValueError(f"a control line cannot contain a newline: {text!r}")
    if len(data) > MAX_LINE:
        raise LineTooLong(f"line of {len(data)} bytes is longer than {MAX_LINE}: {text[:80]!r}...")
    return data + b"\n"


# ---------------------------------------------------------------- numbers in a line


def parse_number(text: str, line: str) -> float:
    """A finite number, or ProtocolError naming the line (a NaN resource would compare false
    with everything and silently starve matching)."""
    try:
        value = float(text)
    except ValueError:
        raise ProtocolError(f"expected a number, got {text[:20]!r} in {line[:80]!r}") from None
    if not math.isfinite(value):
        raise ProtocolError(f"expected a finite number, got {text[:20]!r} in {line[:80]!r}")
    return value


def parse_int(text: str, line: str, allow_float: bool = False) -> int:
    """An integer, or ProtocolError naming the line. ``allow_float``: the C worker prints some
    counts with ``%lf``, so the manager also takes ``2.000000`` (truncated; never inf/nan)."""
    try:
        return int(text)
    except ValueError:
        if allow_float:
            return int(parse_number(text, line))
        raise ProtocolError(f"expected an integer, got {text[:20]!r} in {line[:80]!r}") from None


def parse_mode(text: str, line: str) -> int:
    """An octal file mode (``0644``, ``777``)."""
    try:
        return int(text, 8)
    except ValueError:
        raise ProtocolError(f"expected an octal file mode, got {text[:20]!r} in {line[:80]!r}") from None


def split_fields(line: str, count: int) -> list[str]:
    """The line's whitespace-separated fields; ProtocolError if there are fewer than ``count``."""
    parts = line.split()
    if len(parts) < count:
        raise ProtocolError(f"message {line[:80]!r} needs {count - 1} argument(s)")
    return parts
