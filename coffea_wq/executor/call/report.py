"""What one executor call is asked to do (``CallOptions``) and what it did (``CallReport``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from coffea_wq.executor.errors import RunInterrupted, TaskFailedError
from coffea_wq.executor.results.breakdown import Breakdown
from coffea_wq.safe_pickle.allow_list import ResultPolicy


@dataclass
class CallOptions:
    retries: int = 2
    split_on_exhaustion: bool = False
    verbose: bool = False
    print_stdout: bool = False
    status: bool = True
    desc: str = "Processing"
    unit: str = "items"
    resources_mode: str = "fixed"
    dynamic_chunksize: dict[str, float] | None = None  # targets (parsed); None: chunks as given
    result_policy: ResultPolicy = field(default_factory=ResultPolicy)  # what results may contain
    treereduction: int | None = None  # fan-in of accumulation tasks; None: every result is merged here
    compression: int | None = None  # lz4 level of the sums accumulation tasks send back
    reduce: bool = False  # partials on the workers (docs/reduction.md); the template's payload says when
    skipbadfiles: tuple[type[BaseException], ...] = ()  # coffea's, applied here (read_errors.py)


@dataclass
class CallReport:
    """What happened in one call (``coffea_wq.executor.last_report()`` returns the latest)."""

    desc: str = ""
    items: int = 0
    tasks_submitted: int = 0
    tasks_returned: int = 0
    retried: int = 0
    read_retries: dict[str, int] = field(default_factory=dict)  # of ``retried``: by kind of read error
    bad_files: list[str] = field(default_factory=list)  # skipped items (skipbadfiles), each with its error
    accumulated: list[Any] = field(default_factory=list)  # items whose result was merged, in order
    restored: list[Any] = field(default_factory=list)  # those of them read from checkpoint_dir
    skipped: list[Any] = field(default_factory=list)  # items skipped by skipbadfiles (result None)
    split: list[tuple[Any, list[Any]]] = field(default_factory=list)
    duplicates_ignored: int = 0
    failed: list[TaskFailedError] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # "CLASS from WORKER" for each refused result
    # items whose results are not in the returned output (interrupted or failed call): with
    # ``accumulated`` and ``skipped`` they cover the call's items, none twice
    unprocessed: list[Any] = field(default_factory=list)
    interrupted: RunInterrupted | None = None
    wall_time: float = 0.0
    merged_in_process: int = 0  # results this process unpickled and added to the output
    accumulation_tasks: int = 0  # accumulation tasks that sent a sum back (docs/reduction.md, section 3)
    partials_returned: int = 0  # partials of warm slots accepted: merged here or by accumulation tasks (docs/reduction.md)
    partials_lost: int = 0  # partials lost or dropped: their chunks ran again
    flush_tasks_submitted: int = 0  # flush tasks sent for partials (not in tasks_submitted, which counts chunks)
    flush_tasks_returned: int = 0  # those that came back (the others were cancelled)
    breakdown: Breakdown = field(default_factory=Breakdown)  # where the time went (docs/executor.md, section 10)
    # churn (docs/reduction.md, section 6): chunk runs redone because the partial holding them was
    # lost or dropped, workers seen leaving, and the hand-back bounds in force at the end
    chunks_redone_after_loss: int = 0
    workers_lost: int = 0
    mean_worker_lifetime_s: float | None = None
    hold_bound: str = ""
