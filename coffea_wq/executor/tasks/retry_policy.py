"""Whether a failed chunk runs again, when, and where not (docs/executor.md, "When things go wrong").

A pure decider: ``decide_retry`` takes what is known about a failure (its ``ReadErrorClass`` from
read_errors.py, the attempts so far, the workers that tried, how many are connected) and returns a
``RetryDecision``. It does no I/O and keeps no state, so the executor's call loop (or any driver)
carries out the decision: submit again after ``delay_s``, steer the task away from
``avoid_workers``, or fail (or skip, under coffea's ``skipbadfiles``) naming ``permanent_reason``.

The rules, by kind:

* transient (reset, timeout, server error): retried with exponential backoff, on another worker
  where one is connected, up to ``max(retries, transient_retries)`` times: flaky storage is the
  common case in real runs and costs nothing but time, while a server that is gone for good still
  ends the chunk after a bounded wait (``transient_deadline_s``);
* disk full on a worker: retried at once on another worker, with the same budget;
* a local path missing here: retried on a worker that has not tried, while one is connected (up to
  ``missing_retries``); missing on every worker that tried, it is permanent;
* permanent (no such file on the server, no such tree, a corrupt basket): never retried;
* anything else (the processor's own error): the executor's ``retries``, at once, anywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from coffea_wq.executor.tasks.read_errors import ReadErrorClass, ReadErrorKind

TRANSIENT_RETRIES = 5  # transient failures of one chunk retried (at least; ``retries`` if larger)
MISSING_RETRIES = 8  # workers tried for a local path missing before it counts as missing everywhere
BACKOFF_BASE_S = 0.5  # first delay; doubled on every further transient failure
BACKOFF_MAX_S = 8.0
TRANSIENT_DEADLINE_S = 300.0  # transient failures of one chunk stop being retried after this long


@dataclass(frozen=True)
class RetryPolicy:
    """The knobs; ``retries`` is the executor option (failures of the chunk itself)."""

    retries: int = 2
    transient_retries: int = TRANSIENT_RETRIES
    missing_retries: int = MISSING_RETRIES
    backoff_base_s: float = BACKOFF_BASE_S
    backoff_max_s: float = BACKOFF_MAX_S
    transient_deadline_s: float = TRANSIENT_DEADLINE_S

    def backoff(self, attempts: int) -> float:
        """The wait before attempt ``attempts + 1``: base, 2 x base, 4 x base... capped."""
        return min(self.backoff_max_s, self.backoff_base_s * 2 ** max(0, attempts - 1))


@dataclass(frozen=True)
class RetryDecision:
    """What to do with a failed chunk: ``retry`` (after ``delay_s``, away from ``avoid_workers``)
    or not, in which case ``permanent_reason`` says why no retry can help (None: retries used up)."""

    retry: bool
    kind: ReadErrorKind
    delay_s: float = 0.0
    avoid_workers: frozenset[str] = frozenset()
    permanent_reason: str | None = None


def decide_retry(verdict: ReadErrorClass, attempts: int, workers_tried: Sequence[str],
                 workers_connected: int | None, policy: RetryPolicy, failing_for_s: float = 0.0) -> RetryDecision:
    """Decide about a chunk whose attempt number ``attempts`` just failed with ``verdict``.

    ``workers_tried``: the workers (addresses) its attempts ran on, this one last; ``workers_connected``:
    how many are connected now (None: unknown, e.g. CCTools' manager); ``failing_for_s``: time since
    its first failure.

    Example:
        >>> from coffea_wq.executor.tasks.read_errors import classify_read_error
        >>> d = decide_retry(classify_read_error(TimeoutError("read timed out")), 2, ["w1", "w2"], 3,
        ...                  RetryPolicy(retries=2))
        >>> d.retry, d.delay_s, sorted(d.avoid_workers)
        (True, 1.0, ['w1', 'w2'])
    """
    kind = verdict.kind
    tried = frozenset(workers_tried)
    if kind is ReadErrorKind.PERMANENT:
        return RetryDecision(False, kind, permanent_reason=verdict.reason or "no retry can change it")
    if kind is ReadErrorKind.MISSING_HERE:
        untried_left = workers_connected is None or workers_connected > len(tried)
        if not untried_left or attempts > policy.missing_retries:
            where = ", ".join(sorted(tried)) or "?"
            return RetryDecision(False, kind, permanent_reason=f"{verdict.reason}: missing on every worker that "
                                                                  f"tried ({where})")
        if workers_connected is None and attempts > policy.retries:
            return RetryDecision(False, kind)
        return RetryDecision(True, kind, avoid_workers=tried)
    if kind in (ReadErrorKind.TRANSIENT, ReadErrorKind.DISK_FULL):
        budget = max(policy.retries, policy.transient_retries)
        if attempts > budget or failing_for_s > policy.transient_deadline_s:
            return RetryDecision(False, kind)
        delay = policy.backoff(attempts) if kind is ReadErrorKind.TRANSIENT else 0.0
        return RetryDecision(True, kind, delay_s=delay, avoid_workers=_others_left(tried, workers_connected))
    return RetryDecision(attempts <= policy.retries, kind)


def _others_left(tried: frozenset[str], workers_connected: int | None) -> frozenset[str]:
    """Avoid the workers that tried while another is connected; when every one has tried, avoid none."""
    if workers_connected is not None and workers_connected <= len(tried):
        return frozenset()
    return tried


def avoid_workers(task: object, workers: frozenset[str]) -> None:
    """Steer ``task`` away from ``workers`` where the manager can (coffea-wq's ``specify_avoided_host``;
    CCTools' has no such call, so there a retry may land anywhere)."""
    specify = getattr(task, "specify_avoided_host", None)
    if callable(specify):
        for worker in sorted(workers):
            specify(worker)
