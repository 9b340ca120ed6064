"""CCTools' ``url_encode``/``url_decode`` for names on the wire (docs/protocol.md, "Names").

Encoded: bytes <= 32, ``%``, ``\\``, ``<``, ``>``, ``'``, ``"`` and bytes > 122, as ``%XX`` in upper-case
hex. We write proper two-digit hex (CCTools pads values below 0x10 with a space, which its own
decoder reads back the same way: ``int(" A", 16) == 10``).
"""

from __future__ import annotations

_SPECIAL = frozenset(b"%\\<>'\"")


def url_encode(name: str) -> str:
    out = []
    for byte in name.encode("utf-8"):
        if byte <= 32 or byte > 122 or byte in _SPECIAL:
            out.append(f"%{byte:02X}")
        else:
            out.append(chr(byte))
    return "".join(out)


def url_decode(name: str) -> str:
    data = name.encode("latin-1")
    out = bytearray()
    i = 0
    while i < len(data):
        if data[i] == ord("%") and i + 2 < len(data):
            try:
                out.append(int(data[i + 1 : i + 3].decode("latin-1"), 16))
                i += 3
                continue
            except ValueError:
                pass
        out.append(data[i])
        i += 1
    return out.decode("utf-8", errors="surrogateescape")
