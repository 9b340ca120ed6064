"""A simulated pool for ``CallState``: workers with warm slots, partials, losses; no process, no file.

The world carries the state's actions out the way the driver and a real pool would, with random
choices from one ``random.Random``: which task ends next, on which worker, how (a value, a held
record, a hand-back, an error, an exhausted allocation, a refused result), when a worker leaves
(with every partial it holds), which cancelled tasks had started, whether a waiting result is
refused when it is read. A chunk's value is a ``Counter`` of the event ranges it covers, so the
output says exactly which events were merged, and how often.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from coffea_wq.executor.call import model as ev
from coffea_wq.executor.call.model import Returned, TaskStatus
from coffea_wq.executor.call.report import CallOptions
from coffea_wq.executor.call.state import CallState
from coffea_wq.executor.errors import RemoteError
from coffea_wq.executor.results.outcome import OutcomeKind, PartialResult, TaskOutcome


@dataclass(frozen=True)
class Item:
    """A WorkItem's shape: enough for splits, dynamic cuts and descriptions."""

    dataset: str
    filename: str
    entrystart: int
    entrystop: int


@dataclass
class Chaos:
    """How hostile the pool is (probabilities per returned task, per step)."""

    error: float = 0.0  # a task raises (transient)
    exhausted: float = 0.0  # a task exceeds its allocation
    refused: float = 0.0  # a result off the allow-list
    crash: float = 0.0  # the task comes back without output
    loss: float = 0.0  # per step: a worker leaves, with its partials
    lose_all_holders: float = 0.0  # per step: every worker holding a partial leaves at once
    unusable: float = 0.0  # a waiting result is refused when read
    stop_at: int | None = None  # the step at which Ctrl-C comes
    calm_after: int = 300  # steps of chaos; then the pool is calm and the call must end


@dataclass
class Task:
    ticket: int
    kind: str
    item: Item | None = None
    hold: bool = True
    every: int | None = None
    partial_id: str = ""
    feature: str = ""
    inputs: tuple = ()


@dataclass
class Worker:
    token: str
    born: float
    partials: dict[str, tuple[list[int], Counter]] = field(default_factory=dict)  # id -> (keys, value)
    seq: int = 0

    @property
    def feature(self) -> str:
        return f"coffea-wq-worker-{self.token}"


@dataclass
class World:
    state: CallState
    rng: random.Random
    chaos: Chaos
    output: Counter = field(default_factory=Counter)
    tasks: dict[int, Task] = field(default_factory=dict)
    workers: list[Worker] = field(default_factory=list)
    files: dict[Path, Counter] = field(default_factory=dict)
    now: float = 0.0
    step: int = 0
    next_worker: int = 0
    finished: bool = False
    merges: int = 0
    departed: list[Worker] = field(default_factory=list)
    chunk_s: float = 0.5  # what a chunk's record says it took

    # ------------------------------------------------------------------ the pool
    def add_worker(self) -> None:
        self.next_worker += 1
        self.workers.append(Worker(f"w{self.next_worker}", self.now))

    def lose_worker(self, worker: Worker) -> None:
        self.workers.remove(worker)  # its partials go with it; tasks it ran are requeued by the manager
        self.departed.append(worker)

    def features(self) -> frozenset[str]:
        return frozenset(w.feature for w in self.workers)

    # ------------------------------------------------------------------ actions
    def run(self, actions: list[ev.Action]) -> None:
        for action in actions:
            self.carry_out(action)

    def carry_out(self, action: ev.Action) -> None:
        if isinstance(action, ev.SubmitChunk):
            self.tasks[action.unit.key] = Task(action.unit.key, "chunk", action.unit.item, action.hold, action.every)
        elif isinstance(action, ev.SubmitFlush):
            self.tasks[action.ticket] = Task(action.ticket, "flush", partial_id=action.partial_id,
                                             feature=action.feature)
        elif isinstance(action, ev.SubmitAccumulation):
            self.tasks[action.ticket] = Task(action.ticket, "accumulation", inputs=tuple(action.job.inputs))
        elif isinstance(action, ev.Cancel):
            self.tasks.pop(action.ticket, None)
        elif isinstance(action, ev.CancelUnstarted):
            unstarted = frozenset(t for t in action.tickets if t in self.tasks and self.rng.random() < 0.5)
            for ticket in unstarted:
                del self.tasks[ticket]
            self.run(self.state.handle(ev.NotStarted(unstarted)))
        elif isinstance(action, ev.MergeValue):
            self.output.update(action.value)
            self.merges += 1
        elif isinstance(action, ev.MergeWaiting):
            for result in action.results:
                if self.rng.random() < self.chaos_now().unusable:
                    self.run(self.state.handle(ev.WaitingUnusable(result, "os.system", "refused in the test")))
                else:
                    self.output.update(self.files.pop(result.path))
                    self.merges += 1
                    self.run(self.state.handle(ev.WaitingMerged(result)))
        elif isinstance(action, ev.Discard) and action.path is not None:
            self.files.pop(action.path, None)
        elif isinstance(action, ev.Finish):
            self.finished = True

    def chaos_now(self) -> Chaos:
        return self.chaos if self.step < self.chaos.calm_after else Chaos()

    # ------------------------------------------------------------------ one step of the world
    def advance(self) -> None:
        self.step += 1
        self.now += self.rng.uniform(0.01, 2.0)
        chaos = self.chaos_now()
        if chaos.stop_at is not None and self.step == chaos.stop_at:
            self.run(self.state.handle(ev.StopRequested(self.now)))
        if self.workers and self.rng.random() < chaos.loss:
            self.lose_worker(self.rng.choice(self.workers))
        if self.rng.random() < chaos.lose_all_holders:
            for worker in [w for w in self.workers if w.partials]:
                self.lose_worker(worker)
        while len(self.workers) < 3:
            self.add_worker()
        self.run(self.state.handle(ev.WorkersSeen(self.features(), self.now)))
        self.run(self.state.handle(ev.Tick(self.now, hungry=self.rng.random() < 0.5, cores=4,
                                           workers=len(self.workers))))
        runnable = [t for t in self.tasks.values() if t.kind != "flush" or t.feature in self.features()]
        if runnable and not self.finished:
            task = self.rng.choice(runnable)
            del self.tasks[task.ticket]
            self.run(self.state.handle(ev.TaskCameBack(self.complete(task, chaos), self.now)))

    def complete(self, task: Task, chaos: Chaos) -> Returned:
        if task.kind == "flush":
            worker = next(w for w in self.workers if w.feature == task.feature)
            return self.flush(task, worker)
        worker = self.rng.choice(self.workers)
        if task.kind == "chunk" and self.departed and self.rng.random() < 0.05:
            worker = self.rng.choice(self.departed)  # its record arrives after the worker was seen leaving
        if task.kind == "accumulation":
            return self.accumulate(task, worker, chaos)
        roll = self.rng.random()
        if roll < chaos.crash:
            return Returned(task.ticket, TaskStatus.FAILED, result_name="SIGNAL", hostname=worker.token)
        roll -= chaos.crash
        if roll < chaos.exhausted:
            return Returned(task.ticket, TaskStatus.EXHAUSTED, hostname=worker.token, exhaustion="memory exceeded")
        roll -= chaos.exhausted
        if roll < chaos.error:
            cause = self.rng.choice([TimeoutError("read timed out"), RuntimeError("the processor's bug"),
                                     OSError("disk full")])
            remote = RemoteError(type(cause).__name__, str(cause), "", cause, worker.token)
            return self.returned(task, worker, TaskOutcome(OutcomeKind.REMOTE_ERROR, remote=remote,
                                                           partial=self.carried(worker)))
        roll -= chaos.error
        if roll < chaos.refused:
            return self.returned(task, worker, TaskOutcome(OutcomeKind.REFUSED, refused="os.system", detail="no"))
        value = Counter({(task.item.filename, task.item.entrystart, task.item.entrystop): 1})
        if self.state.partials is not None and task.hold and self.rng.random() < 0.8:
            return self.hold(task, worker, value)
        if self.state.tree is not None and self.rng.random() < 0.5:
            return self.waiting(task, worker, value)
        return self.returned(task, worker, TaskOutcome(OutcomeKind.OK, value=value, wall_time=self.chunk_s))

    def hold(self, task: Task, worker: Worker, value: Counter) -> Returned:
        current = next(iter(worker.partials), None)
        if current is None:
            current = f"{worker.token}/1/{worker.seq}"
            worker.seq += 1
            worker.partials[current] = ([], Counter())
        keys, total = worker.partials[current]
        keys.append(task.ticket)
        total.update(value)
        if (task.every is not None and len(keys) >= task.every) or self.rng.random() < 0.1:
            del worker.partials[current]
            return self.returned(task, worker, self.partial_outcome(OutcomeKind.PARTIAL, current, keys, total))
        held = PartialResult(current, [task.ticket], count=len(keys))
        return self.returned(task, worker, TaskOutcome(OutcomeKind.HELD, partial=held, key=task.ticket, wall_time=self.chunk_s))

    def flush(self, task: Task, worker: Worker) -> Returned:
        if task.partial_id not in worker.partials:
            return self.returned(task, worker, TaskOutcome(OutcomeKind.LOST, partial=PartialResult(task.partial_id, [])))
        keys, total = worker.partials.pop(task.partial_id)
        return self.returned(task, worker, self.partial_outcome(OutcomeKind.PARTIAL, task.partial_id, keys, total))

    def carried(self, worker: Worker) -> PartialResult | None:
        if not worker.partials or self.rng.random() < 0.5:
            return None
        partial_id = next(iter(worker.partials))
        keys, total = worker.partials.pop(partial_id)
        return PartialResult(partial_id, list(keys), total)

    def partial_outcome(self, kind: OutcomeKind, partial_id: str, keys: list[int], total: Counter) -> TaskOutcome:
        unread = self.state.tree is not None and self.rng.random() < 0.5
        partial = PartialResult(partial_id, list(keys), None if unread else total, value_unread=unread)
        outcome = TaskOutcome(kind, partial=partial, wall_time=self.chunk_s)
        if unread:
            outcome.value = total  # the world's copy, written to a "file" by returned()
        return outcome

    def waiting(self, task: Task, worker: Worker, value: Counter) -> Returned:
        path = Path(f"/sim/wait-{self.step}-{task.ticket}")
        self.files[path] = value
        return Returned(task.ticket, TaskStatus.SUCCESS, hostname=worker.token, worker=worker.token, waiting=path,
                        waiting_size=self.rng.randint(1, 400), runtime_s=self.chunk_s)

    def accumulate(self, task: Task, worker: Worker, chaos: Chaos) -> Returned:
        roll = self.rng.random()
        if roll < chaos.crash:
            return Returned(task.ticket, TaskStatus.FAILED, result_name="SIGNAL", hostname=worker.token)
        if roll < chaos.crash + chaos.unusable and task.inputs:
            index = self.rng.randrange(len(task.inputs))
            return Returned(task.ticket, TaskStatus.SUCCESS, hostname=worker.token,
                            blamed=(index, "os.system", "refused input"))
        total: Counter = Counter()
        for result in task.inputs:
            total.update(self.files[result.path])
        path = Path(f"/sim/sum-{self.step}-{task.ticket}")
        self.files[path] = total
        return Returned(task.ticket, TaskStatus.SUCCESS, hostname=worker.token, waiting=path,
                        waiting_size=self.rng.randint(1, 400))

    def returned(self, task: Task, worker: Worker, outcome: TaskOutcome) -> Returned:
        waiting = None
        partial = outcome.partial
        if partial is not None and partial.value_unread:
            waiting = Path(f"/sim/partial-{self.step}-{task.ticket}")
            self.files[waiting] = outcome.value
            outcome.value = None
        return Returned(task.ticket, TaskStatus.SUCCESS, hostname=worker.token, address=f"{worker.token}:9",
                        worker=worker.token, outcome=outcome,
                        waiting=waiting, waiting_size=self.rng.randint(1, 400) if waiting else 0,
                        record=Path(f"/sim/out-{task.ticket}"), runtime_s=self.chunk_s)


def chunks(count: int, events: int = 8, files: int = 2) -> list[Item]:
    per_file = max(1, count // files)
    items = []
    for n in range(count):
        start = (n % per_file) * events
        items.append(Item("d", f"f{n // per_file}", start, start + events))
    return items


def run_history(options: CallOptions, chaos: Chaos, items: list[Item], seed: int, big_bytes: int | None = 200,
                max_steps: int = 3000, chunk_s: float = 0.5) -> World:
    """Drive one call through a random history until it finishes (or ``max_steps``)."""
    state = CallState(options, big_bytes=big_bytes)
    state.can_avoid = seed % 2 == 0  # half the histories steer retries away from the workers that failed them
    world = World(state, random.Random(seed), chaos, chunk_s=chunk_s)
    world.run(state.start(list(items), now=0.0))
    while not state.over and world.step < max_steps:
        world.advance()
    return world


def event_ranges(items) -> Counter:
    """How often each event (file, entry) is covered by ``items``."""
    counts: Counter = Counter()
    for item in items:
        for entry in range(item.entrystart, item.entrystop):
            counts[(item.filename, entry)] += 1
    return counts


def merged_events(output: Counter) -> Counter:
    counts: Counter = Counter()
    for (filename, start, stop), times in output.items():
        for entry in range(start, stop):
            counts[(filename, entry)] += times
    return counts


__all__ = ["Item", "Chaos", "World", "run_history", "chunks", "event_ranges", "merged_events", "dataclasses"]
