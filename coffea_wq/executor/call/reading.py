"""A returned task, read once into a ``Returned`` record: what the manager says, and what its record says.

The manager's task object (either Work Queue implementation, any version) is read defensively
(``task_facts.py``), and its output record is opened once: with a tree of accumulation tasks, an
``ok`` record that carries a value, and a partial whose value follows its record, are left
unread and moved to a name of their own in staging (a resubmission of the same key can never
overwrite them); everything else is read under the allow-list (docs/reduction.md, sections 2-3).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import lz4.frame

from coffea_wq.executor.call.model import EnvironmentBroke, Returned, TaskKind, TaskStatus
from coffea_wq.executor.results.outcome import peek_record, read_outcome
from coffea_wq.executor.tasks.accumulation import INPUT_NAME, screened_refusal
from coffea_wq.executor.tasks.culprits import ENV_CORRUPT_EXIT, environment_failure_reason
from coffea_wq.executor.tasks.exhaustion import allocation_text, exhaustion_reason
from coffea_wq.executor.tasks.staging import StagingArea, TaskTemplate
from coffea_wq.executor.tasks.task_facts import (
    FinishedTask,
    exit_status,
    result_name,
    runtime_s,
    task_resources,
    worker_name,
)
from coffea_wq.safe_pickle.allow_list import ResultPolicy, load_result

RESULT_SUCCESS = 0
RESULT_RESOURCE_EXHAUSTION = 16


@dataclass
class RecordReader:
    """Reads returned tasks of one call (see the module doc)."""

    staging: StagingArea
    template: TaskTemplate
    policy: ResultPolicy
    tree: bool  # accumulation tasks on: values that can wait are left unread
    prefix: str  # this call's names in a staging folder calls may share
    success: int = RESULT_SUCCESS
    exhaustion: int = RESULT_RESOURCE_EXHAUSTION
    moved: itertools.count = field(default_factory=itertools.count)

    def read(self, task: FinishedTask, ticket: int, kind: TaskKind, output: Path) -> Returned:
        status = self._status(task)
        facts = dict(ticket=ticket, status=status, result_name=result_name(task), exit_status=exit_status(task),
                     hostname=getattr(task, "hostname", None), address=getattr(task, "host", None),
                     worker=worker_name(task), runtime_s=runtime_s(task), memory_mb=_memory(task),
                     stdout=getattr(task, "output", "") or "")
        if kind is TaskKind.ACCUMULATION:
            return Returned(**facts, **self._accumulation(task, status, output))
        if status is TaskStatus.EXHAUSTED:
            return Returned(**facts, exhaustion=exhaustion_reason(task), allocation=allocation_text(task))
        environment = self._environment(task)
        if environment is not None or status is not TaskStatus.SUCCESS:
            return Returned(**facts, environment=environment)
        if kind is TaskKind.CHUNK and self.tree and self._can_wait(output):
            waiting = self._move(output, f"chunk-{ticket}")
            return Returned(**facts, waiting=waiting, waiting_size=waiting.stat().st_size, record=waiting)
        outcome = read_outcome(output, self.policy, facts["worker"], value=not self.tree)
        partial = outcome.partial
        if partial is not None and partial.value_unread:
            waiting = self._move(output, f"partial-{ticket}")
            return Returned(**facts, outcome=outcome, waiting=waiting, waiting_size=waiting.stat().st_size,
                            record=waiting)
        return Returned(**facts, outcome=outcome, record=output)

    def _status(self, task: FinishedTask) -> TaskStatus:
        result = int(task.result)
        if result == self.success:
            return TaskStatus.SUCCESS
        return TaskStatus.EXHAUSTED if result == self.exhaustion else TaskStatus.FAILED

    def _environment(self, task: FinishedTask) -> EnvironmentBroke | None:
        """The environment runner failed (exit 65): why (culprits.py), and whether a retry can help."""
        environment = self.template.environment
        if environment is None or exit_status(task) != ENV_CORRUPT_EXIT:
            return None
        reason, retry_can_help = environment_failure_reason(environment, self.template.environment_remote_name,
                                                            worker_name(task), getattr(task, "output", ""))
        return EnvironmentBroke(reason, retry_can_help)

    def _can_wait(self, output: Path) -> bool:
        """An ok record with a value that the allow-list would not refuse at a glance: it waits unread."""
        peek = peek_record(output)
        return peek.status == "ok" and not peek.value_is_none and screened_refusal(output, self.policy) is None

    def _move(self, output: Path, name: str) -> Path:
        path = output.with_name(f"{self.prefix}-{name}-{next(self.moved)}.lz4")
        output.replace(path)
        return path

    def _accumulation(self, task: FinishedTask, status: TaskStatus, output: Path) -> dict:
        """An accumulation task's sum (it waits where it is), or the input its error blames."""
        if status is not TaskStatus.SUCCESS:
            return {}
        peek = peek_record(output)
        if peek.status == "ok" and exit_status(task) == 0:
            return {"waiting": output, "waiting_size": output.stat().st_size}
        if peek.status == "error":
            return {"blamed": self._blamed_input(output)}
        return {}

    def _blamed_input(self, output: Path) -> tuple[int, str, str]:
        """(index of the input an accumulation task's error names or -1, the type refused, the message)."""
        try:
            with lz4.frame.open(output, mode="rb") as stream:
                record = load_result(stream, self.policy)
            chain = record.get("exception_chain") or [{}]
            attrs, message = chain[0].get("attrs") or {}, str(record.get("message", ""))
        except Exception as exc:  # a rogue accumulation worker's output: its own task failed
            return -1, "", f"cannot read the accumulation task's error record: {exc!r}"
        name = attrs.get("input")
        prefix, suffix = INPUT_NAME.split("{}")
        number = name[len(prefix):len(name) - len(suffix)] if isinstance(name, str) and name.startswith(prefix) \
            and name.endswith(suffix) else ""
        index = int(number) if number.isdigit() else -1
        refused = attrs.get("refused") if isinstance(attrs.get("refused"), str) else ""
        return index, refused, message


def _memory(task: FinishedTask) -> float | None:
    memory = task_resources(task, "resources_measured").get("memory")
    return float(memory) if isinstance(memory, (int, float)) and memory > 0 else None
