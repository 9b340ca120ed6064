"""The worker's tasks: admission, resource accounting, start, completion, and forgetting.

A task goes WAITING (received, waiting for room) -> RUNNING -> FINISHED (result not yet sent)
-> REPORTED (result sent; sandbox kept until the manager's ``kill``). A task that can never
fit this worker is FORSAKEN at once (result status 40: the manager requeues it elsewhere).
"""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass

from coffea_wq.protocol.codes import ResultCode
from coffea_wq.protocol.messages import TaskAssignment
from coffea_wq.worker.cache import CacheError, FileCache
from coffea_wq.worker.execution import (
    ProcessOutcome,
    RunningTask,
    TaskObserver,
    start_task_process,
    task_environment,
)
from coffea_wq.worker.resources import WorkerResources
from coffea_wq.worker.sandbox import (
    MissingInput,
    Workspace,
    directory_size_mb,
    make_task_tmpdir,
    move_outputs_to_cache,
    prepare_sandbox,
    remove_sandbox,
)
from coffea_wq.worker.warm import WarmPythonPool
from coffea_wq.worker.warm_contract import INPUTS_ENV, LAUNCHED_ENV

log = logging.getLogger(__name__)


class TaskPhase(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"
    REPORTED = "reported"


@dataclass(frozen=True)
class Request:
    """The whole-number resources a task occupies on this worker."""

    cores: int
    memory: int
    disk: int
    gpus: int

    @classmethod
    def of(cls, task: TaskAssignment, total: WorkerResources) -> Request:
        """A task that declares nothing takes the whole worker (CCTools' rule)."""
        declared = (task.cores, task.memory, task.disk, task.gpus)
        if all(value is None for value in declared):
            return cls(total.cores, total.memory, total.disk, total.gpus)
        return cls(*(max(0, value or 0) for value in declared))

    def __add__(self, other: Request) -> Request:
        return Request(self.cores + other.cores, self.memory + other.memory, self.disk + other.disk, self.gpus + other.gpus)

    def __sub__(self, other: Request) -> Request:
        return Request(self.cores - other.cores, self.memory - other.memory, self.disk - other.disk, self.gpus - other.gpus)


NOTHING = Request(0, 0, 0, 0)


@dataclass
class TaskRecord:
    spec: TaskAssignment
    request: Request
    phase: TaskPhase = TaskPhase.WAITING
    run: RunningTask | None = None
    outcome: ProcessOutcome | None = None


class TaskTable:
    """Every task the manager gave this worker during one connection."""

    def __init__(
        self,
        workspace: Workspace,
        cache: FileCache,
        resources: WorkerResources,
        warm_pool: WarmPythonPool | None = None,
        observer: TaskObserver | None = None,
    ) -> None:
        self.workspace = workspace
        self.cache = cache
        self.resources = resources
        self.warm_pool = warm_pool
        self.observer = observer
        self.records: dict[int, TaskRecord] = {}
        self.in_use = NOTHING

    # -- counts

    @property
    def running(self) -> int:
        return sum(1 for r in self.records.values() if r.phase is TaskPhase.RUNNING)

    @property
    def active(self) -> int:
        """Tasks waiting or running (they keep the connection busy for the idle timeout)."""
        return sum(1 for r in self.records.values() if r.phase in (TaskPhase.WAITING, TaskPhase.RUNNING))

    def needs_polling(self) -> bool:
        """Whether a running task's end would go unnoticed without polling (a cold process): the
        loop then wakes every few ms; warm tasks wake it themselves (wakeup.py)."""
        return any(r.phase is TaskPhase.RUNNING and r.run is not None
                   and not getattr(r.run.handle, "event_driven", False) for r in self.records.values())

    def has_unreported(self) -> bool:
        return any(r.phase is TaskPhase.FINISHED for r in self.records.values())

    # -- life cycle

    def admit(self, spec: TaskAssignment) -> bool:
        """Record a new task; False if it can never fit here (it is then finished as FORSAKEN)."""
        if spec.taskid in self.records:
            log.warning("task %d sent again: replacing the old one", spec.taskid)
            self.kill(spec.taskid)
        request = Request.of(spec, self.resources)
        record = TaskRecord(spec, request)
        self.records[spec.taskid] = record
        if not self.resources.fits(request.cores, request.memory, request.disk, request.gpus):
            log.warning("task %d asks for %s, more than this worker has (%s): forsaking it", spec.taskid, request,
                        self.resources)
            self._finish(record, ProcessOutcome(int(ResultCode.FORSAKEN), 0, 0))
            return False
        return True

    def start_ready(self) -> list[int]:
        """Start every waiting task that fits in what is free now, oldest first."""
        started = []
        for record in list(self.records.values()):
            if record.phase is TaskPhase.WAITING and self._fits_now(record.request):
                self._start(record)
                started.append(record.spec.taskid)
        return started

    def poll(self) -> list[int]:
        """Enforce time limits and collect finished processes; returns the ids that finished."""
        finished = []
        now = time.time()
        for record in list(self.records.values()):
            if record.phase is not TaskPhase.RUNNING or record.run is None:
                continue
            record.run.enforce_limits(now)
            outcome = record.run.finished()
            if outcome is not None:
                self._complete(record, outcome)
                finished.append(record.spec.taskid)
        return finished

    def take_unreported(self) -> list[tuple[int, ProcessOutcome]]:
        """Results to send now; the tasks are then REPORTED and wait for the manager's ``kill``."""
        out = []
        for record in self.records.values():
            if record.phase is TaskPhase.FINISHED and record.outcome is not None:
                record.phase = TaskPhase.REPORTED
                out.append((record.spec.taskid, record.outcome))
        return out

    def kill(self, taskid: int) -> None:
        """Stop (if running) and forget a task, deleting its sandbox; -1 means all tasks."""
        ids = list(self.records) if taskid == -1 else [taskid]
        for tid in ids:
            record = self.records.pop(tid, None)
            if record is None:
                continue
            if record.phase is TaskPhase.RUNNING and record.run is not None:
                record.run.kill()
                self._release(record)
                if self.observer is not None:
                    self.observer.task_finished(tid)
            remove_sandbox(self.workspace, tid)

    def kill_all(self) -> None:
        self.kill(-1)

    # -- internals

    def _fits_now(self, request: Request) -> bool:
        after = self.in_use + request
        total = self.resources
        return after.cores <= total.cores and after.memory <= total.memory and after.disk <= total.disk and (
            after.gpus <= total.gpus
        )

    def _start(self, record: TaskRecord) -> None:
        spec = record.spec
        output_path = self.workspace.output_file(spec.taskid)
        started = time.monotonic()
        try:
            sandbox = prepare_sandbox(self.workspace, self.cache, spec)
            env = task_environment(spec, self.workspace.root, sandbox, make_task_tmpdir(sandbox, spec.taskid))
            # where the task's time went (docs/executor.md, section 10): inputs, and when it was launched
            env.setdefault(INPUTS_ENV, f"{time.monotonic() - started:.6f}")
            env.setdefault(LAUNCHED_ENV, repr(time.time()))
            handle = start_task_process(spec, sandbox, env, output_path, self.warm_pool)
        except (MissingInput, CacheError) as exc:
            log.warning("task %d: %s", spec.taskid, exc)
            output_path.write_text(f"coffea-wq worker: {exc}\n")
            self._finish(record, ProcessOutcome(int(ResultCode.INPUT_MISSING), 1, _elapsed_us(started), output_path))
            return
        except OSError as exc:
            # the worker itself is at fault (disk full, fork failed): let the manager retry elsewhere
            log.error("task %d: could not start it: %s; forsaking it", spec.taskid, exc)
            self._finish(record, ProcessOutcome(int(ResultCode.FORSAKEN), 0, _elapsed_us(started)))
            return
        record.run = RunningTask(spec, sandbox, output_path, handle)
        record.phase = TaskPhase.RUNNING
        self.in_use = self.in_use + record.request
        log.debug("task %d started as pid %d in %s", spec.taskid, handle.pid, sandbox)
        if self.observer is not None:
            self.observer.task_started(spec.taskid, handle.pid)

    def _complete(self, record: TaskRecord, outcome: ProcessOutcome) -> None:
        self._release(record)
        if self.observer is not None:
            self.observer.task_finished(record.spec.taskid)
        assert record.run is not None
        sandbox = record.run.sandbox
        requested_disk = record.spec.disk
        if requested_disk and directory_size_mb(sandbox) > requested_disk:
            log.info("task %d: its sandbox outgrew the %d MB of disk it asked for", record.spec.taskid, requested_disk)
            outcome.status |= int(ResultCode.RESOURCE_EXHAUSTION)
        move_outputs_to_cache(sandbox, self.cache, record.spec)
        log.debug("task %d finished: status %d exit %d", record.spec.taskid, outcome.status, outcome.exit_code)
        self._finish(record, outcome)

    def _release(self, record: TaskRecord) -> None:
        if record.phase is TaskPhase.RUNNING:
            self.in_use = self.in_use - record.request

    @staticmethod
    def _finish(record: TaskRecord, outcome: ProcessOutcome) -> None:
        record.outcome = outcome
        record.phase = TaskPhase.FINISHED


def _elapsed_us(started: float) -> int:
    return int((time.monotonic() - started) * 1e6)
