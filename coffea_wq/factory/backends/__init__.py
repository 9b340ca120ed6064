"""Batch back-ends, one module each behind ``BatchBackend`` (submit N, list, remove)."""

from __future__ import annotations

from pathlib import Path

from coffea_wq.factory.backends.base import BatchBackend, BatchError, JobId
from coffea_wq.factory.backends.condor import CondorBackend
from coffea_wq.factory.backends.local import LocalBackend
from coffea_wq.factory.backends.sge import SgeBackend
from coffea_wq.factory.backends.slurm import SlurmBackend

BACKENDS: dict[str, type] = {
    "local": LocalBackend,
    "slurm": SlurmBackend,
    "condor": CondorBackend,
    "sge": SgeBackend,
}

__all__ = ["BACKENDS", "BatchBackend", "BatchError", "JobId", "make_backend"]


def make_backend(batch_type: str, scratch_dir: Path, batch_options: str = "") -> BatchBackend:
    """The back-end for ``batch_type`` (local, slurm, condor, sge).

    Example:
        >>> make_backend("local", Path("/tmp/s")).name
        'local'
    """
    try:
        cls = BACKENDS[batch_type]
    except KeyError:
        raise ValueError(f"unknown batch type {batch_type!r}; choose one of {', '.join(BACKENDS)}") from None
    return cls(Path(scratch_dir), batch_options)
