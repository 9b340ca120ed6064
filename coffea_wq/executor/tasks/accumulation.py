"""Accumulation tasks: the per-chunk results of cold tasks are added on workers, not here.

A chunk task that ran cold (CCTools' ``work_queue_worker``, a coffea-wq worker without warm slots)
sends its value back as a file. With a tree (``treereduction``, docs/reduction.md section 3) that
file is not unpickled in the user's process: ``TreeReduction.take`` peeks at its head (status, and
whether the value is None) and leaves it waiting in staging; ``results/tree.py`` decides which
waiting files an accumulation task adds (category ``accumulating``, the same warm-task command
with an accumulation payload, see ``task_script.py``); the sum waits in their place. A partial
that a warm slot handed back (``take_partial``, its value unread) waits too when it is big
(``BIG_RESULT_BYTES``), else it is merged at once. At the end, results that are big get one last
accumulation task, so that the user's process reads one; small ones are merged here, one at a time.

What can go wrong, and what happens:

* an accumulation task fails (error, crash, exhausted resources): it is retried ``retries``
  times, then its inputs are merged here instead; nothing is lost;
* its worker is lost: the manager requeues it, as any task;
* an input is refused by the allow-list, or is not a result record: the input's producer is the
  culprit. Refused: that worker is disconnected and counted in the report's ``refused``, as for a
  result refused here; otherwise the chunks are retried. Either way the chunks the input covered
  are resubmitted, the task's other inputs wait again, and the refused result is removed from
  ``checkpoint_dir``;
* the call stops early (Ctrl-C, a chunk failed for good): running accumulation tasks are
  cancelled and everything waiting is merged here (``salvage``), so the returned output holds every
  chunk that came back.

Inputs leave staging once their sum is back; a chunk's item file stays until its value is merged
in the output, so a refused sum can resubmit the chunks it covered.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import pickle
import secrets
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import lz4.frame

from coffea_wq.executor.errors import describe_item
from coffea_wq.executor.results.outcome import OutcomeKind, carried_value, peek_record, read_outcome
from coffea_wq.executor.results.tree import AccumulationJob, TreePlanner, WaitingResult
from coffea_wq.executor.tasks.staging import FunctionFile, TaskTemplate, build_task
from coffea_wq.executor.tasks.task_script import ACCUMULATE, SAFE_RESULTS
from coffea_wq.safe_pickle import allow_list
from coffea_wq.safe_pickle.allow_list import ResultPolicy, first_refused_global, load_result

if TYPE_CHECKING:
    from coffea_wq.executor.tasks.task_loop import TaskLoop, WorkUnit

log = logging.getLogger(__name__)

CATEGORY = "accumulating"
PAYLOAD_PREFIX = "accumulate-"  # the FN file of accumulation tasks (its name in their command)
INPUT_NAME = "in-{}.lz4"  # an input's name in the accumulation task's sandbox
# ahead of the chunk tasks queued: results are added while processing goes on, so staging holds
# few of them at a time, instead of all of them until the last chunk is dispatched
PRIORITY = 10
# a result this small (compressed) is screened at once for globals the allow-list refuses, so a
# rogue worker is found when its result arrives, not when an accumulation task reads it; reading
# past SCREEN_READ_BYTES (decompressed) gives up and leaves the judgement to the full read
SCREEN_BYTES = 256 * 1024
SCREEN_READ_BYTES = 32 * 2**20
# a result record at least this big (compressed) is "big": a returned partial waits for an
# accumulation task instead of being merged here, and at the end of a run results that weigh this
# much (all but the largest) are added by one last task, so that this process loads one result
# and never holds the output while it loads another (docs/reduction.md, section 3, for the figures)
BIG_RESULT_BYTES = 128 * 1024


def accumulation_payload(folder: Path, policy: ResultPolicy, compression: int | None) -> FunctionFile:
    """The ``FN`` file of accumulation tasks: the run's allow-list as data (plain pickle, cached on workers)."""
    data = {"packages": sorted(policy.packages), "modules": sorted(policy.modules), "globals": sorted(policy.globals)}
    payload = pickle.dumps({ACCUMULATE: data, "compression": compression or 1}, protocol=pickle.HIGHEST_PROTOCOL)
    remote = f"{PAYLOAD_PREFIX}{hashlib.sha256(payload).hexdigest()[:16]}.pkl"
    path = folder / remote
    if not path.exists():
        path.write_bytes(payload)
    return FunctionFile(path, remote)


class TreeReduction:
    """The accumulation tasks of one ``TaskLoop`` call (see the module doc)."""

    def __init__(self, loop: TaskLoop, template: TaskTemplate, fan_in: int, compression: int | None = None):
        self.loop = loop
        self.staging = loop.session.staging
        self.policy = loop.options.result_policy
        self.planner = TreePlanner(fan_in, BIG_RESULT_BYTES)
        script = self.staging.root / SAFE_RESULTS
        if not script.exists():
            shutil.copyfile(allow_list.__file__, script)
        self.template = dataclasses.replace(
            template, category=CATEGORY,
            function=accumulation_payload(self.staging.root, self.policy, compression),
            extra_inputs=[*template.extra_inputs, (script, SAFE_RESULTS)])
        self.jobs: dict[int, AccumulationJob] = {}  # task id -> job
        self.units: dict[int, WorkUnit] = {}  # chunk key -> its unit, while its value is in the tree
        self.bundles: dict[int, list[WorkUnit]] = {}  # chunk key -> the units of its partial's checkpoint bundle
        self.salvaging = False
        self._moved = 0
        self.prefix = f"tree-{secrets.token_hex(4)}"  # this call's files in a staging folder calls may share

    # ---------------------------------------------------------------- chunks coming back
    def take(self, unit: WorkUnit, task: Any) -> bool:
        """Keep a chunk's output for the tree if it holds a value (True); else the loop reads it."""
        output = self.staging.output_path(unit.key)
        peek = peek_record(output)
        if peek.status != "ok" or peek.value_is_none:
            return False
        if _screened_refusal(output, self.policy) is not None:
            return False  # the loop reads it now, and refuses it as any result refused here
        loop = self.loop
        if not loop.mark_done(unit):
            return True  # a second result for a chunk already counted
        self._moved += 1
        path = output.with_name(f"{self.prefix}-chunk-{unit.key}-{self._moved}.lz4")
        output.replace(path)  # a resubmission of this key can never overwrite what waits
        self.units[unit.key] = unit
        if loop.store is not None:
            loop.store_result(unit.item, path, keep=True)
        loop.count_processed(unit)
        self.planner.add(WaitingResult(f"chunk {describe_item(unit.item)}", path, path.stat().st_size, (unit.key,),
                                       getattr(task, "hostname", None), getattr(task, "host", None)))
        return True

    def take_partial(self, partial_id: str, units: list[WorkUnit], record: Path, task: Any) -> None:
        """A partial the ledger accepted, its value unread in ``record``: it waits if big, else it is merged now."""
        loop = self.loop
        self._moved += 1
        path = record.with_name(f"{self.prefix}-partial-{self._moved}.lz4")
        record.replace(path)  # its staging name may be reused (a retry of the task that carried it)
        for unit in units:
            loop.done_keys.add(unit.key)  # the ledger counted them done
            self.units[unit.key] = unit
        if loop.store is not None:
            self._store_bundle(units, path)
        result = WaitingResult(f"partial {partial_id} of {len(units)} chunk(s)", path, path.stat().st_size,
                               tuple(unit.key for unit in units), getattr(task, "hostname", None),
                               getattr(task, "host", None))
        if result.size < BIG_RESULT_BYTES:
            self._merge_here([result])  # small: no task round trip for it
        else:
            self.planner.add(result)

    def _store_bundle(self, units: list[WorkUnit], path: Path) -> None:
        try:
            self.loop.store.save_bundle([unit.item for unit in units], path, keep=True)
        except OSError as exc:  # merged all the same; only a rerun would redo them
            log.warning("checkpoint_dir: cannot store a partial of %d chunk(s): %s", len(units), exc)
            return
        self.bundles.update(dict.fromkeys((unit.key for unit in units), units))

    # ---------------------------------------------------------------- the loop's turn
    def busy(self) -> bool:
        return bool(self.planner.running or self.planner.waiting)

    def owns(self, task_id: int) -> bool:
        return task_id in self.jobs

    def step(self) -> None:
        """Start the accumulation tasks the planner wants; at the end, merge what is left here."""
        final = self.loop.nothing_more_to_come()
        for job in self.planner.plan(final):
            self._submit(job)
        if self.planner.finished(final) and self.planner.waiting:
            self._merge_here(self.planner.take_waiting())

    def completed(self, task: Any) -> None:
        """An accumulation task came back."""
        job = self.jobs.pop(task.id)
        loop = self.loop
        if loop.tracker:
            loop.tracker.task_returned(task, CATEGORY)
        output = self._output_path(job)
        ok = int(task.result) == loop.success and getattr(task, "return_status", 0) == 0
        peek = peek_record(output) if int(task.result) == loop.success else None
        if ok and peek is not None and peek.status == "ok":
            self._sum_returned(job, task, output)
            return
        if peek is not None and peek.status == "error":
            culprit, refused, message = self._blamed_input(job, output)
            if culprit is not None:
                self._reject_input(job, culprit, refused, message)
                return
            reason = message or "the accumulation task raised"
        else:
            reason = f"task result {getattr(task, 'result_str', task.result)} (exit status {task.return_status})"
        self._job_failed(job, reason, task)

    def salvage(self) -> None:
        """The call stops early: cancel the accumulation tasks and merge every waiting result here."""
        self.salvaging = True
        inputs = [result for job in self.jobs.values() for result in job.inputs]
        self.cancel()
        self.planner.running.clear()
        self._merge_here(sorted(inputs + self.planner.take_waiting(), key=lambda r: r.size))

    def cancel(self) -> None:
        for task_id in list(self.jobs):
            try:
                self.loop.queue.cancel_by_taskid(task_id)
            except Exception as exc:
                log.debug("cancel of accumulation task %s failed: %r", task_id, exc)
        self.jobs.clear()

    # ---------------------------------------------------------------- accumulation tasks
    def _submit(self, job: AccumulationJob) -> None:
        item_path = self.staging.root / "items" / f"{self.prefix}-job-{job.job_id}.pkl"
        item_path.write_bytes(pickle.dumps({"inputs": [INPUT_NAME.format(n) for n in range(len(job.inputs))]}))
        output = self._output_path(job)
        output.unlink(missing_ok=True)
        output.write_bytes(b"")
        task = build_task(self.loop.session.wq, self.template, job.job_id, item_path, output)
        task.specify_tag(f"accumulate-{job.job_id}")
        task.specify_priority(PRIORITY)
        for n, result in enumerate(job.inputs):
            task.specify_input_file(str(result.path), INPUT_NAME.format(n), cache=False)
        task_id = self.loop.queue.submit(task)
        self.jobs[task_id] = job
        if self.loop.options.verbose and self.loop.bars:
            self.loop.bars.print(f"Submitted accumulation task (id #{task_id}): {len(job.inputs)} results, "
                                 f"{len(job.keys)} chunks")

    def _output_path(self, job: AccumulationJob) -> Path:
        return self.staging.root / "outputs" / f"{self.prefix}-sum-{job.job_id}.lz4"

    def _sum_returned(self, job: AccumulationJob, task: Any, output: Path) -> None:
        total = WaitingResult(f"sum of {len(job.keys)} chunks", output, output.stat().st_size, job.keys,
                              getattr(task, "hostname", None), getattr(task, "host", None))
        self.planner.succeeded(job.job_id, total)
        self.loop.report.accumulation_tasks += 1
        for result in job.inputs:  # their sum is safely here
            _remove(result.path)

    def _blamed_input(self, job: AccumulationJob, output: Path) -> tuple[WaitingResult | None, str, str]:
        """The input an accumulation task's error names (if any), the type refused in it, and the message."""
        try:
            with lz4.frame.open(output, mode="rb") as stream:
                record = load_result(stream, self.policy)
            chain = record.get("exception_chain") or [{}]
            attrs, message = chain[0].get("attrs") or {}, str(record.get("message", ""))
        except Exception as exc:  # a rogue accumulation worker's output: its own task failed
            return None, "", f"cannot read the accumulation task's error record: {exc!r}"
        names = {INPUT_NAME.format(n): result for n, result in enumerate(job.inputs)}
        culprit = names.get(attrs.get("input")) if isinstance(attrs.get("input"), str) else None
        refused = attrs.get("refused") if isinstance(attrs.get("refused"), str) else ""
        return culprit, refused, message

    def _job_failed(self, job: AccumulationJob, reason: str, task: Any) -> None:
        host = getattr(task, "hostname", None)
        if job.failures < self.loop.options.retries:
            self.planner.retry(job.job_id)
            log.warning("accumulation task of %d results failed on %s (%s); retry %d of %d", len(job.inputs), host,
                        reason, job.failures, self.loop.options.retries)
            self._submit(job)
            return
        self.planner.abandon(job.job_id)
        log.warning("accumulation task of %d results failed on %s (%s) after %d retries; its inputs are merged in "
                    "this process instead", len(job.inputs), host, reason, job.failures)
        self._merge_here(job.inputs)

    def _reject_input(self, job: AccumulationJob, culprit: WaitingResult, refused: str, message: str) -> None:
        """An input could not be added: redo the chunks it covered; the other inputs wait again."""
        self.planner.give_back(job.job_id, keep=[r for r in job.inputs if r is not culprit])
        self._redo(culprit, refused, message)

    # ---------------------------------------------------------------- merging here
    def _merge_here(self, results: list[WaitingResult]) -> None:
        """Read and add each result in turn (at most the output and one result in memory)."""
        loop = self.loop
        for result in results:
            outcome = read_outcome(result.path, self.policy, _worker(result))
            found, value = carried_value(outcome)
            if found:
                loop.merge_value(value)
                del outcome, value  # not held while the next one loads
                for key in result.keys:
                    self.bundles.pop(key, None)
                    loop.count_accumulated(self.units.pop(key))
                _remove(result.path)
            else:
                self._redo(result, outcome.refused if outcome.kind is OutcomeKind.REFUSED else "",
                           outcome.detail or f"it carries no value ({outcome.kind.value} record)")

    def _redo(self, result: WaitingResult, refused: str, detail: str) -> None:
        """``result`` is unusable: its producer is the culprit, and the chunks it covered run again."""
        _remove(result.path)
        loop = self.loop
        producer = SimpleNamespace(hostname=result.hostname, host=result.address, output="")
        units = [self.units.pop(key) for key in result.keys]
        for unit in units:
            loop.unmark_done(unit)
            if loop.store is not None:
                loop.store.discard(unit.item)
                bundle = self.bundles.pop(unit.key, None)
                if bundle is not None:
                    loop.store.discard_bundle([u.item for u in bundle])
                    for other in bundle:
                        self.bundles.pop(other.key, None)
        if refused:
            loop.report.refused.append(f"{refused} from {_worker(result)}")
            loop.refused_workers.disconnect(producer)
        log.error("%s from %s cannot be used (%s); its %d chunk(s) are resubmitted", result.name, _worker(result),
                  detail, len(units))
        for unit in units:
            if self.salvaging:
                loop.pending.append(unit)  # reported unprocessed: the call is stopping
            elif refused:
                loop.resubmit_refused(unit, producer, detail)
            else:
                loop.retry_or_fail(unit, detail, producer)


def _screened_refusal(path: Path, policy: ResultPolicy) -> str | None:
    """A global the allow-list refuses in a small result (``first_refused_global``), or None."""
    try:
        if path.stat().st_size > SCREEN_BYTES:
            return None
        with lz4.frame.open(path, mode="rb") as stream:
            return first_refused_global(_CappedReader(stream, SCREEN_READ_BYTES), policy)
    except Exception:  # unreadable: the full read says why
        return None


class _CappedReader:
    """``read``/``readline`` of a stream that fail once more than ``limit`` bytes were read."""

    def __init__(self, stream: Any, limit: int):
        self.stream, self.left = stream, limit

    def read(self, size: int = -1) -> bytes:
        return self._count(self.stream.read(size if size >= 0 else self.left + 1))

    def readline(self, size: int = -1) -> bytes:
        return self._count(self.stream.readline(size if size >= 0 else self.left + 1))

    def _count(self, data: bytes) -> bytes:
        self.left -= len(data)
        if self.left < 0:
            raise OSError("screening limit reached")
        return data


def _worker(result: WaitingResult) -> str:
    hostname, address = result.hostname or "?", result.address
    return f"{hostname} ({address})" if address and address != hostname else hostname


def _remove(path: Path | None) -> None:
    if path is not None:
        path.unlink(missing_ok=True)
