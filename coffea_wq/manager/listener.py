"""The listening socket: a port, a ``[low, high]`` range, ``"low-high"``, or 0 for any."""

from __future__ import annotations

import errno
import logging
import os
import resource
import socket

log = logging.getLogger("coffea_wq.manager")

DEFAULT_PORT = 9123


def parse_port_spec(port: int | str | tuple[int, int] | list[int] | None) -> tuple[int, int]:
    """``(low, high)`` for a port option; ``(0, 0)`` means "any free port".

    Example::

        >>> parse_port_spec("9123-9130")
        (9123, 9130)
        >>> parse_port_spec([9000, 9010])
        (9000, 9010)
        >>> parse_port_spec(0)
        (0, 0)
    """
    if port is None:
        port = int(os.environ.get("WORK_QUEUE_PORT", DEFAULT_PORT))
    if isinstance(port, str):
        text = port.strip()
        low_text, sep, high_text = text.partition("-")
        try:
            low = int(low_text)
            high = int(high_text) if sep else low
        except ValueError:
            raise ValueError(f"port {port!r} is neither a number nor a range like '9123-9130'") from None
    elif isinstance(port, int):
        low = high = port
    else:
        try:
            low, high = (int(p) for p in port)
        except (TypeError, ValueError):
            raise ValueError(f"port {port!r} should be an int, [low, high] or 'low-high'") from None
    if not (0 <= low <= 65535 and 0 <= high <= 65535) or low > high:
        raise ValueError(f"port range {low}-{high} is not a valid range of TCP ports")
    if low == 0 and high != 0:
        raise ValueError(f"port range {low}-{high}: a range cannot start at 0")
    return low, high


# thousands of workers may connect at once (a batch system starting them): connections waiting to be
# accepted queue here, not in SYN retries (the kernel caps it at net.core.somaxconn)
LISTEN_BACKLOG = 4096
# one descriptor per connected worker: the manager's process may hold this many (within the hard limit)
WANTED_OPEN_FILES = 65536


def raise_open_files_limit(wanted: int = WANTED_OPEN_FILES) -> int:
    """Raise the process's soft RLIMIT_NOFILE towards ``wanted`` (never above the hard limit, never
    lowered); returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as error:
            log.info("cannot raise the open-files limit from %d to %d: %s", soft, target, error)
    return soft


def bind_listener(port: int | str | tuple[int, int] | list[int] | None, host: str = "") -> socket.socket:
    """A non-blocking listening socket on the first free port of the range.

    Raises OSError naming the range when every port is taken.
    """
    low, high = parse_port_spec(port)
    last_error: OSError | None = None
    for candidate in range(low, high + 1):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, candidate))
        except OSError as error:
            sock.close()
            last_error = error
            if error.errno in (errno.EADDRINUSE, errno.EACCES):
                continue
            raise
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
        return sock
    where = f"port {low}" if low == high else f"any port in {low}-{high}"
    raise OSError(errno.EADDRINUSE, f"cannot listen on {where}: {last_error}")
