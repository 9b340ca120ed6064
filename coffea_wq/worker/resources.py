"""What this machine offers a manager: cores, memory (MB), disk (MB) and gpus.

Like ``work_queue_worker``: cores are the CPUs this process may use, memory the total RAM,
disk the free space of the filesystem holding the workspace. A value given on the command
line replaces the measured one, except disk, which is capped by what is actually free.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerResources:
    """Whole-number totals the worker reports (memory and disk in MB)."""

    cores: int
    memory: int
    disk: int
    gpus: int

    def fits(self, cores: int, memory: int, disk: int, gpus: int) -> bool:
        """Whether a request of that size could ever run here."""
        return cores <= self.cores and memory <= self.memory and disk <= self.disk and gpus <= self.gpus


def measure_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def measure_memory_mb() -> int:
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // (1024 * 1024))
    except (ValueError, OSError, AttributeError):
        return 1024


def measure_gpus() -> int:
    """NVIDIA devices visible here (``/dev/nvidia0``, ``/dev/nvidia1``, ...)."""
    try:
        return sum(1 for name in os.listdir("/dev") if name.startswith("nvidia") and name[6:].isdigit())
    except OSError:
        return 0


def measure_disk_mb(path: Path) -> int:
    """Free MB on the filesystem of ``path``."""
    return int(shutil.disk_usage(path).free // (1024 * 1024))


def measure_resources(
    workspace: Path,
    cores: float | None = None,
    memory: float | None = None,
    disk: float | None = None,
    gpus: float | None = None,
) -> WorkerResources:
    """The totals to report; ``None`` (or 0 for cores/memory/disk) means "measure".

    Example::

        measure_resources(Path("/tmp/ws"), cores=2)   # WorkerResources(cores=2, memory=..., ...)
    """
    free_disk = measure_disk_mb(workspace)
    disk_total = free_disk if not disk else min(int(disk), free_disk)
    if disk and int(disk) > free_disk:
        log.warning("--disk %d MB is more than the %d MB free under %s; reporting %d MB", disk, free_disk, workspace, free_disk)
    return WorkerResources(
        cores=int(cores) if cores else measure_cores(),
        memory=int(memory) if memory else measure_memory_mb(),
        disk=disk_total,
        gpus=int(gpus) if gpus is not None else measure_gpus(),
    )
