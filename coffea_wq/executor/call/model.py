"""The vocabulary of one executor call: its work units, the facts of a returned task, events and actions.

``CallState`` (state.py) takes the events and returns the actions; ``CallDriver`` (driver.py) turns
the manager's tasks into events and carries the actions out (docs/design.md, "The executor's call").
Every class here is plain data: no I/O, no pointer to anything that does I/O. Values, waiting
files and checkpoint paths travel through as opaque fields: the state decides what happens to
them, the driver touches them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coffea_wq.executor.errors import TaskFailedError
from coffea_wq.executor.results.outcome import TaskOutcome
from coffea_wq.executor.results.tree import AccumulationJob, WaitingResult


@dataclass
class WorkUnit:
    """A work item and its history in this call; ``key`` names its staged files and its ticket."""

    key: int
    item: Any
    failures: int = 0
    refused: int = 0  # results refused by the allow-list: not failures of the item, but bounded
    losses: int = 0  # times its value was lost with a partial (docs/reduction.md, section 6)
    announced: bool = False  # counted in the Submitted bar (a resubmission is not counted again)
    shown_processed: bool = False  # counted in the Processed bar (held, taken by the tree, or merged)
    workers_tried: list[str] = field(default_factory=list)  # where its failed attempts ran (retry_policy.py)
    avoid: frozenset[str] = frozenset()  # workers its next attempt should not run on
    first_failure: float | None = None  # when it first failed (the state's clock)


class TaskKind(enum.Enum):
    CHUNK = "chunk"  # one work unit
    FLUSH = "flush"  # brings a partial back from the worker that holds it
    ACCUMULATION = "accumulation"  # adds waiting results on a worker


@dataclass
class InFlight:
    """One submitted task, keyed in the state's in-flight table by its ticket."""

    ticket: int
    kind: TaskKind
    key: int | None = None  # CHUNK: the unit's key (the same as the ticket)
    partial_id: str = ""  # FLUSH
    job: AccumulationJob | None = None  # ACCUMULATION
    since: float = 0.0  # when it was submitted (flush deadlines)


class TaskStatus(enum.Enum):
    SUCCESS = "success"  # the task ran and its output came back
    EXHAUSTED = "exhausted"  # stopped for exceeding its allocation
    FAILED = "failed"  # anything else the manager reports (a missing output, a signal, ...)


@dataclass(frozen=True)
class EnvironmentBroke:
    """The environment runner failed (exit 65): why, and whether another worker could do better."""

    reason: str
    retry_can_help: bool


@dataclass(frozen=True)
class Returned:
    """What a returned task says, read once (reading.py): status, worker, record, resources."""

    ticket: int
    status: TaskStatus
    result_name: str = ""
    exit_status: int | None = None
    hostname: str | None = None
    address: str | None = None  # ``host:port`` of the worker, to disconnect it
    worker: str = "?"  # ``hostname (address)``, for messages
    outcome: TaskOutcome | None = None  # the record, read under the allow-list (None: left for the tree)
    record: Path | None = None  # where the record is in staging (checkpoints are copied from it)
    waiting: Path | None = None  # an ok record with a value, left unread and moved here for the tree
    waiting_size: int = 0
    runtime_s: float | None = None
    memory_mb: float | None = None
    stdout: str = ""
    environment: EnvironmentBroke | None = None
    exhaustion: str = ""  # EXHAUSTED: what was exceeded, in words
    allocation: str = ""  # EXHAUSTED: what the task had
    blamed: tuple[int, str, str] | None = None  # ACCUMULATION error: (input index or -1, refused type, message)


# ---------------------------------------------------------------------------------------- events
@dataclass(frozen=True)
class TaskCameBack:
    """A task of this call came back (chunk, flush or accumulation: the state's table says which)."""

    returned: Returned
    now: float = 0.0
    workers: int | None = None  # connected workers now (where a retry may go: retry_policy.py)


@dataclass(frozen=True)
class WorkersSeen:
    """The workers connected now (by their ``coffea-wq-worker-<token>`` feature)."""

    features: frozenset[str]
    now: float


@dataclass(frozen=True)
class Tick:
    """The driver's turn: how much the manager would take, and the time (deadlines)."""

    now: float
    hungry: bool = True  # the manager wants more tasks than it has
    cores: int = 0  # connected cores (dynamic chunk sizes cut only as many chunks as can run)
    workers: int | None = None  # connected workers (None: not known; retries steered elsewhere need it)


@dataclass(frozen=True)
class StopRequested:
    """Ctrl-C: stop softly (the driver calls it once)."""

    now: float = 0.0


@dataclass(frozen=True)
class NotStarted:
    """The answer to ``CancelUnstarted``: which of the asked chunk tickets no worker has started (now cancelled)."""

    tickets: frozenset[int]


@dataclass(frozen=True)
class WaitingMerged:
    """A waiting result was read and added to the output (``MergeWaiting``)."""

    result: WaitingResult


@dataclass(frozen=True)
class WaitingUnusable:
    """A waiting result could not be merged: refused by the allow-list, or not a usable record."""

    result: WaitingResult
    refused: str
    detail: str


@dataclass(frozen=True)
class HandBackCost:
    """Seconds this process spent reading and merging one partial (an input of the hold bounds)."""

    seconds: float


Event = TaskCameBack | WorkersSeen | Tick | StopRequested | NotStarted | WaitingMerged | WaitingUnusable | HandBackCost


# ---------------------------------------------------------------------------------------- actions
@dataclass(frozen=True)
class SubmitChunk:
    unit: WorkUnit
    every: int | None = None  # hand the partial back at this many chunks (None: no count bound)
    seconds: float | None = None  # ... or at this age
    hold: bool = True  # False: do not merge this chunk into a partial
    avoid: frozenset[str] = frozenset()  # workers (``host:port``) it should not run on (a retry's)


@dataclass(frozen=True)
class SubmitFlush:
    ticket: int
    partial_id: str
    feature: str
    urgent: bool = False  # past the hold bounds: ahead of the queued chunk tasks


@dataclass(frozen=True)
class SubmitAccumulation:
    ticket: int
    job: AccumulationJob


@dataclass(frozen=True)
class Cancel:
    ticket: int


@dataclass(frozen=True)
class CancelUnstarted:
    """Cancel those of ``tickets`` that no worker has started; answer with ``NotStarted``."""

    tickets: frozenset[int]


@dataclass(frozen=True)
class MergeValue:
    """Add a value that is in memory to the output (a chunk's, or a partial's read whole)."""

    value: Any
    partial: bool = False  # a partial: its merge time is measured (``HandBackCost``)


@dataclass(frozen=True)
class MergeWaiting:
    """Read these waiting results and add them, one at a time; answer each with an event."""

    results: tuple[WaitingResult, ...]


@dataclass(frozen=True)
class StoreResult:
    """Keep a record in ``checkpoint_dir``: one chunk's (``items`` of one) or a partial's bundle."""

    items: tuple[Any, ...]
    path: Path
    bundle: bool = False
    keep: bool = False  # the record stays in staging as well (it waits for the tree)


@dataclass(frozen=True)
class Unstore:
    items: tuple[Any, ...]
    bundle: bool = False


@dataclass(frozen=True)
class Discard:
    """Staging files that are no longer needed: a ticket's (item and output) or one file."""

    ticket: int | None = None
    path: Path | None = None
    output_only: bool = False


@dataclass(frozen=True)
class Disconnect:
    """Release a worker whose result was refused."""

    hostname: str | None
    address: str | None


@dataclass(frozen=True)
class Note:
    """Progress for the bars, the dashboard and the log: ``what`` is one of the names below."""

    what: str  # submitted, processed, unprocessed, accumulated, skipped, failed, split, cut, say, grow
    item: Any = None
    amount: int = 0
    text: str = ""
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Finish:
    """The call is over: return the output, with ``failure`` (or an interruption) if any."""

    failure: TaskFailedError | None = None


Action = (SubmitChunk | SubmitFlush | SubmitAccumulation | Cancel | CancelUnstarted | MergeValue | MergeWaiting
          | StoreResult | Unstore | Discard | Disconnect | Note | Finish)
