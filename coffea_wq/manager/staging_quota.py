"""Whether an output file may be written where the manager keeps it (docs/manager.md, section 3).

A worker announces each output file's size before its bytes (``file NAME SIZE``). An honest but
large output (a histogram that grew to gigabytes) would otherwise fill the submit host's disk, the
one the user's whole session lives on. With a quota set (``q.tune("output-quota", q)``), a file
larger than the quota is refused: its bytes are read and dropped, the task's result is
OUTPUT_MISSING and its output names the file, its size and the quota. A quota up to 1 is a fraction
of the disk space free where the file would land at that moment; above 1 it is bytes.
"""

from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger("coffea_wq.manager")


def quota_bytes(quota: float, local_path: str) -> int | None:
    """The largest output allowed at ``local_path`` under ``quota``, or None when there is no quota."""
    if quota <= 0:
        return None
    if quota > 1:
        return int(quota)
    folder = os.path.dirname(os.path.abspath(local_path))
    while folder and not os.path.isdir(folder):  # the output's folder may not exist yet
        folder = os.path.dirname(folder)
    try:
        stat = os.statvfs(folder or "/")
    except OSError:
        return None
    return int(stat.f_bavail * stat.f_frsize * quota)


def over_quota(quota: float, local_path: str, size: int) -> str | None:
    """Why an output of ``size`` bytes may not be written at ``local_path``, or None.

    Example:
        >>> over_quota(1000, "/tmp/out.lz4", 4096)
        'over the staging quota of 1000 bytes'
        >>> over_quota(0, "/tmp/out.lz4", 4096) is None
        True
    """
    limit = quota_bytes(quota, local_path)
    if limit is None or size <= limit:
        return None
    if quota > 1:
        return f"over the staging quota of {limit} bytes"
    return f"over the staging quota of {limit} bytes ({quota:g} of the disk space free there)"


def refuse_over_quota(quota: float, task: Any, writer: Any, size: int) -> bool:
    """Refuse an output of ``size`` bytes over the quota: nothing is written (the writer drops the
    bytes), the task's result becomes OUTPUT_MISSING and its output names the file; True if refused."""
    why = over_quota(quota, writer.local_path, size)
    if why is None:
        return False
    text = f"coffea-wq manager: output {writer.local_path} ({size} bytes) refused: {why}"
    log.warning("task %s: %s", task.task_id if task is not None else "?", text)
    writer.close()
    writer.missing = True
    if task is not None:
        task.output = (task.output or "") + "\n" + text + "\n"
    return True
