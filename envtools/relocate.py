"""Making packed files independent of where they were built.

* Scripts in ``bin/`` get a shebang that finds the interpreter next to the script at run time (the
  ``/bin/sh`` + ``'''exec'`` trampoline pip itself uses for long paths): nothing to fix at unpack.
* Text that must name the absolute prefix (``bin/activate*``) gets a placeholder, replaced by the
  runner with the unpack directory.
"""

from __future__ import annotations

PREFIX_PLACEHOLDER = "/__coffea_wq_env_prefix_placeholder__"
# Runs the script with the python beside it: sh executes line 2; Python sees lines 2-3 as a string.
TRAMPOLINE = b"#!/bin/sh\n'''exec' \"$(dirname -- \"$0\")/python\" \"$0\" \"$@\"\n' '''\n"


def is_python_script(head: bytes) -> bool:
    """True when ``head`` (the first bytes of a file) is a script run by python."""
    if not head.startswith(b"#!"):
        return False
    first_line = head.split(b"\n", 1)[0]
    return b"python" in first_line or head.startswith(b"#!/bin/sh\n'''exec'")


def relocatable_script(content: bytes) -> bytes:
    """``content`` with its python shebang (or pip's sh trampoline) replaced by ours."""
    lines = content.split(b"\n")
    body = lines[1:]
    if content.startswith(b"#!/bin/sh\n'''exec'") and len(lines) >= 3:
        body = lines[3:]
    return TRAMPOLINE + b"\n".join(body)


def with_placeholder(content: bytes, prefix: str) -> bytes:
    """``content`` with the absolute ``prefix`` replaced by the placeholder the runner fills in."""
    return content.replace(prefix.encode(), PREFIX_PLACEHOLDER.encode())
