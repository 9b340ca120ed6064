"""What a failed chunk task means for the ``TaskLoop``: a retry, a split, a refusal, or the end of the call.

A mixin of ``TaskLoop`` (task_loop.py), split off by responsibility: these methods read and set
the loop's state (``options``, ``report``, ``failure``, ``tracker``, ``bars``...) and call
``submit_unit`` and ``_new_unit``. Retries are spent only on failures of the chunk itself; a
refused result (a rogue worker's) and a lost partial (docs/reduction.md) are not the chunk's fault.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from coffea_wq.executor.errors import EnvironmentFileError, RemoteError, TaskFailedError, describe_item
from coffea_wq.executor.tasks.culprits import ENV_CORRUPT_EXIT, environment_failure_reason
from coffea_wq.executor.tasks.exhaustion import exhaustion_reason
from coffea_wq.executor.tasks.read_errors import ReadErrorClass, ReadErrorKind, exception_chain
from coffea_wq.executor.tasks.retry_policy import RetryDecision, decide_retry
from coffea_wq.executor.tasks.splitting import split_work_item
from coffea_wq.executor.tasks.task_facts import connected_workers, exit_status, worker_name

if TYPE_CHECKING:
    from coffea_wq.executor.tasks.task_loop import WorkUnit

log = logging.getLogger("coffea_wq.executor.tasks.task_loop")  # the loop's log, as before the split

NOT_A_READ_ERROR = ReadErrorClass(ReadErrorKind.OTHER)
MAX_REFUSED_RESULTS = 3  # refused results of one item (each from a worker then dropped) before it fails


class FailureHandling:
    """The ``TaskLoop`` methods for tasks that did not bring a usable value back."""

    def _environment_broke(self, task: Any, unit: WorkUnit) -> bool:
        """A task that the environment runner failed (exit 65): fail the run if the tarball itself is
        bad, else retry elsewhere (its copy was damaged on the way); see culprits.py."""
        environment = self.template.environment
        if environment is None or exit_status(task) != ENV_CORRUPT_EXIT:
            return False
        reason, retry_can_help = environment_failure_reason(environment, self.template.environment_remote_name,
                                                            worker_name(task), getattr(task, "output", ""))
        if retry_can_help:
            self.retry_or_fail(unit, reason, task)
            return True
        self.fail(unit, reason, task)
        self.failure = EnvironmentFileError(str(environment), unit.item, unit.failures, reason,
                                            host=getattr(task, "hostname", None), stdout=getattr(task, "output", None))
        return True

    def refuse_result(self, unit: WorkUnit, task: Any, refused: str, detail: str) -> None:
        """A result off the allow-list was not loaded: drop the worker that sent it, run the item elsewhere.

        Not a failure of the item (the processor did nothing wrong where it ran honestly), so
        retries are not spent; but an item whose results keep being refused (a result type of
        the user's that is not allowed) fails after MAX_REFUSED_RESULTS with the refusal as reason.
        """
        self.report.refused.append(f"{refused} from {worker_name(task)}")
        log.error("%s: %s; that worker is disconnected and the item resubmitted", describe_item(unit.item), detail)
        self.refused_workers.disconnect(task)
        self.resubmit_refused(unit, task, detail)

    def resubmit_refused(self, unit: WorkUnit, task: Any, detail: str) -> None:
        """Run a unit whose result was refused again, unless MAX_REFUSED_RESULTS of its results were."""
        unit.refused += 1
        if unit.refused >= MAX_REFUSED_RESULTS:
            self.fail(unit, f"{detail} ({unit.refused} results refused)", task)
            return
        self.submit_unit(unit)

    def retry_or_fail(self, unit: WorkUnit, reason: str, task: Any, remote: RemoteError | None = None,
                      verdict: ReadErrorClass = NOT_A_READ_ERROR) -> None:
        """Retry (later, elsewhere), fail, or skip under ``skipbadfiles``: as retry_policy.py decides."""
        unit.failures += 1
        host = getattr(task, "hostname", None)
        decision = self.retry_decision(unit, task, verdict)
        if decision.retry:
            self.report.retried += 1
            if decision.kind is not ReadErrorKind.OTHER:
                self.report.read_retries[decision.kind.value] = self.report.read_retries.get(decision.kind.value, 0) + 1
                reason = f"{reason} [{decision.kind.value}]"
            if self.tracker:
                self.tracker.attempt_failed(unit.item, reason, host, unit.failures, final=False)
            log.warning("%s failed on %s (%s); retry %d%s", describe_item(unit.item), host, reason,
                        unit.failures, f" in {decision.delay_s:.1f} s" if decision.delay_s else "")
            unit.avoid = decision.avoid_workers
            self.held.hold(unit, decision.delay_s, time.monotonic()) if decision.delay_s else self.submit_unit(unit)
            return
        if decision.permanent_reason is not None:
            reason = f"{reason} (not retried: {decision.permanent_reason})"
        if not self.skip_bad_file(unit, reason, remote):
            self.fail(unit, reason, task, remote)

    def retry_decision(self, unit: WorkUnit, task: Any, verdict: ReadErrorClass) -> RetryDecision:
        host = getattr(task, "host", None) or getattr(task, "hostname", None) or "?"
        unit.workers_tried.append(str(host))
        if unit.first_failure is None:
            unit.first_failure = time.monotonic()
        avoiding = callable(getattr(task, "specify_avoided_host", None))  # coffea-wq's manager only
        return decide_retry(verdict, unit.failures, unit.workers_tried, connected_workers(self.queue) if avoiding
                            else None, self.retry_policy, time.monotonic() - unit.first_failure)

    def skip_bad_file(self, unit: WorkUnit, reason: str, remote: RemoteError | None) -> bool:
        """Under coffea's ``skipbadfiles``: an item whose error it names is skipped and listed, not failed."""
        types = self.options.skipbadfiles
        if not types or remote is None or not any(isinstance(e, types) for e in exception_chain(remote.exception)):
            return False
        self.report.bad_files.append(f"{describe_item(unit.item)}: {reason}")
        self.accept_value(unit, None)
        return True

    def fail(self, unit: WorkUnit, reason: str, task: Any, remote: RemoteError | None = None) -> None:
        """Stop the call softly: the item failed for good."""
        if unit.failures == 0:
            unit.failures = 1
        if self.tracker:
            self.tracker.attempt_failed(unit.item, reason, getattr(task, "hostname", None), unit.failures, final=True)
        self.session.staging.discard(unit.key)
        self.failed_unit = unit
        self.failure = TaskFailedError(unit.item, unit.failures, reason, remote=remote,
                                       host=getattr(task, "hostname", None), stdout=getattr(task, "output", None))

    def _can_split(self, unit: WorkUnit) -> bool:
        item = unit.item
        return (self.options.split_on_exhaustion and hasattr(item, "entrystart")
                and item.entrystop - item.entrystart > 1)

    def _why_not_split(self, unit: WorkUnit) -> str:
        if not hasattr(unit.item, "entrystart"):
            return "not a chunk of events"
        if not self.options.split_on_exhaustion:
            return "split_on_exhaustion is off"
        return "a single event cannot be split"

    def split_unit(self, unit: WorkUnit, task: Any) -> None:
        """Replace an item that exhausted its resources by two halves (fresh retries each)."""
        pieces = split_work_item(unit.item, 2)
        self.session.staging.discard(unit.key)
        self.units.pop(unit.key, None)
        if self.reduction is not None:
            self.reduction.ledger.forget(unit.key)
        self.report.split.append((unit.item, pieces))
        if self.tracker:
            self.tracker.item_split(unit.item, pieces, exhaustion_reason(task), getattr(task, "hostname", None),
                                    self.template.category)
        log.warning("%s exhausted its resources on %s (%s); split into %d pieces", describe_item(unit.item),
                    getattr(task, "hostname", "?"), exhaustion_reason(task), len(pieces))
        if self.model is not None:
            self.model.lower_to(max(1, self._amount(unit.item) // 2))  # later chunks shrink too
        if self.bars:
            if self.ranges is None:
                self.bars.grow(len(pieces) - 1)
            self.bars.advance("submitted", -self._amount(unit.item))  # each piece counts as submitted on its own
        for piece in pieces:
            self.submit_unit(self._new_unit(piece))
