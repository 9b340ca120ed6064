"""read_errors.py and retry_policy.py: what a read error means, and what a retry does about it (pure)."""

from __future__ import annotations

import errno
import functools
import zlib

import pytest
import uproot
from coffea import processor

from coffea_wq.executor.tasks.held_retries import HeldRetries
from coffea_wq.executor.tasks.read_errors import (
    ReadErrorKind,
    classify_read_error,
    unwrap_coffea_retries,
)
from coffea_wq.executor.tasks.retry_policy import RetryPolicy, avoid_workers, decide_retry
from coffea_wq.safe_pickle.remote_exceptions import rebuild_chain

XRD_MISSING = ("Failed to open file: [ERROR] Server responded with an error: [3011] Unable to open /a.root; "
               "no such file or directory")


def _chain(*excs: BaseException) -> BaseException:
    for outer, inner in zip(excs[:-1], excs[1:], strict=False):
        outer.__cause__ = inner
    return excs[0]


@pytest.mark.parametrize(("exc", "kind"), [
    (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), ReadErrorKind.TRANSIENT),
    (BrokenPipeError(errno.EPIPE, "Broken pipe"), ReadErrorKind.TRANSIENT),
    (TimeoutError("The read operation timed out"), ReadErrorKind.TRANSIENT),
    (OSError(errno.ETIMEDOUT, "Connection timed out"), ReadErrorKind.TRANSIENT),
    (OSError("File did not vector_read properly: [ERROR] Operation expired"), ReadErrorKind.TRANSIENT),
    (OSError("Failed to open file: [FATAL] Socket error"), ReadErrorKind.TRANSIENT),
    (OSError("[ERROR] Server responded with an error: [3012] internal error"), ReadErrorKind.TRANSIENT),
    (OSError(XRD_MISSING), ReadErrorKind.PERMANENT),
    (OSError("[ERROR] Server responded with an error: [3010] Unable to open; permission denied"),
     ReadErrorKind.PERMANENT),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "/data/a.root"), ReadErrorKind.MISSING_HERE),
    (uproot.KeyInFileError("Events", file_path="a.root"), ReadErrorKind.PERMANENT),
    (zlib.error("Error -3 while decompressing data: invalid block type"), ReadErrorKind.PERMANENT),
    (OSError(errno.ENOSPC, "No space left on device"), ReadErrorKind.DISK_FULL),
    (ValueError("Jet_pt has the wrong length"), ReadErrorKind.OTHER),
    (ZeroDivisionError("division by zero"), ReadErrorKind.OTHER),
])
def test_each_kind_of_error_is_recognised(exc, kind):
    assert classify_read_error(exc).kind is kind
    if kind is not ReadErrorKind.OTHER:
        assert classify_read_error(exc).reason  # says why, in words


def test_a_cause_deep_in_the_chain_counts_and_permanent_wins_over_transient():
    wrapped = _chain(RuntimeError("processing failed"), ConnectionResetError(errno.ECONNRESET, "reset"))
    assert classify_read_error(wrapped).kind is ReadErrorKind.TRANSIENT
    both = _chain(RuntimeError("x"), TimeoutError("slow"), uproot.KeyInFileError("Events", file_path="a.root"))
    assert classify_read_error(both).kind is ReadErrorKind.PERMANENT
    transient_over_missing = _chain(FileNotFoundError(2, "gone", "/mnt/a.root"), TimeoutError("stale mount"))
    assert classify_read_error(transient_over_missing).kind is ReadErrorKind.TRANSIENT


def test_the_workers_words_count_when_the_class_could_not_be_rebuilt():
    # a class the manager has not imported comes back as a plain Exception; its name and text remain
    verdict = classify_read_error(Exception("?"), "fsspec.exceptions.FSTimeoutError", "Operation expired")
    assert verdict.kind is ReadErrorKind.TRANSIENT and "FSTimeoutError" in verdict.reason
    assert classify_read_error(None, "", "OSError: [Errno 28] No space left on device").kind is ReadErrorKind.DISK_FULL


def test_an_exception_rebuilt_from_a_task_record_is_classified_like_the_original():
    described = [{"classes": [["coffea.processor.executor", "UprootMissTreeError"],
                              ["uproot.exceptions", "KeyInFileError"], ["builtins", "KeyError"]],
                  "args": ["NoSuchTree"], "attrs": {}},
                 {"classes": [["builtins", "OSError"]], "args": [104, "Connection reset by peer"]}]
    rebuilt = rebuild_chain(described)
    assert classify_read_error(rebuilt).kind is ReadErrorKind.PERMANENT  # its __str__ needs attributes it lacks
    assert classify_read_error(rebuild_chain(described[1:])).kind is ReadErrorKind.TRANSIENT


POLICY = RetryPolicy(retries=2, transient_retries=4, missing_retries=5, backoff_base_s=0.5, backoff_max_s=3.0,
                     transient_deadline_s=60.0)


def _verdict(kind: ReadErrorKind):
    return {ReadErrorKind.TRANSIENT: classify_read_error(TimeoutError("slow")),
            ReadErrorKind.MISSING_HERE: classify_read_error(FileNotFoundError(2, "gone", "/a.root")),
            ReadErrorKind.PERMANENT: classify_read_error(OSError(XRD_MISSING)),
            ReadErrorKind.DISK_FULL: classify_read_error(OSError(errno.ENOSPC, "No space left on device")),
            ReadErrorKind.OTHER: classify_read_error(ValueError("bug"))}[kind]


def test_transient_errors_back_off_exponentially_elsewhere_within_their_own_budget():
    delays = []
    tried: list[str] = []
    for attempt in range(1, 6):
        tried.append(f"w{attempt % 2}")
        decision = decide_retry(_verdict(ReadErrorKind.TRANSIENT), attempt, tried, 3, POLICY)
        delays.append(decision.delay_s if decision.retry else None)
        if decision.retry:
            assert decision.avoid_workers == frozenset(tried)  # a third worker is connected
    assert delays == [0.5, 1.0, 2.0, 3.0, None]  # capped at 3 s; more than retries=2, at most 4
    decision = decide_retry(_verdict(ReadErrorKind.TRANSIENT), 1, ["w0"], 1, POLICY)
    assert decision.retry and decision.avoid_workers == frozenset()  # the only worker: it tries again
    late = decide_retry(_verdict(ReadErrorKind.TRANSIENT), 2, ["w0"], 3, POLICY, failing_for_s=61.0)
    assert not late.retry and late.permanent_reason is None  # retries spent, not "permanent"


def test_permanent_errors_are_never_retried_and_say_why():
    decision = decide_retry(_verdict(ReadErrorKind.PERMANENT), 1, ["w0"], 5, POLICY)
    assert not decision.retry and "no such file" in decision.permanent_reason


def test_a_file_missing_here_is_tried_on_every_other_worker_then_named_missing_everywhere():
    decision = decide_retry(_verdict(ReadErrorKind.MISSING_HERE), 1, ["10.0.0.1:9000"], 2, POLICY)
    assert decision.retry and decision.delay_s == 0 and decision.avoid_workers == {"10.0.0.1:9000"}
    decision = decide_retry(_verdict(ReadErrorKind.MISSING_HERE), 2, ["10.0.0.1:9000", "10.0.0.2:9000"], 2, POLICY)
    assert not decision.retry
    assert "missing on every worker that tried (10.0.0.1:9000, 10.0.0.2:9000)" in decision.permanent_reason
    # CCTools' manager cannot steer a task: the executor's retries, as for any error
    assert decide_retry(_verdict(ReadErrorKind.MISSING_HERE), 2, ["a", "a"], None, POLICY).retry
    assert not decide_retry(_verdict(ReadErrorKind.MISSING_HERE), 3, ["a", "a", "a"], None, POLICY).retry


def test_disk_full_goes_elsewhere_at_once_and_other_errors_keep_the_executors_retries():
    decision = decide_retry(_verdict(ReadErrorKind.DISK_FULL), 1, ["w0"], 2, POLICY)
    assert decision.retry and decision.delay_s == 0 and decision.avoid_workers == {"w0"}
    assert [decide_retry(_verdict(ReadErrorKind.OTHER), n, ["w0"] * n, 2, POLICY).retry for n in (1, 2, 3)] == \
        [True, True, False]
    assert decide_retry(_verdict(ReadErrorKind.OTHER), 1, ["w0"], 2, POLICY).avoid_workers == frozenset()


def test_held_retries_come_back_in_order_when_due():
    held = HeldRetries()
    held.hold("b", 2.0, now=0.0)
    held.hold("a", 1.0, now=0.0)
    held.hold("c", 2.0, now=0.0)
    assert held.due(0.5) == [] and len(held) == 3
    assert held.due(1.0) == ["a"] and held.due(5.0) == ["b", "c"] and not held


def test_avoid_workers_uses_the_managers_call_where_there_is_one():
    class Recorded:
        def __init__(self):
            self.avoided = []

        def specify_avoided_host(self, host):
            self.avoided.append(host)

    task = Recorded()
    avoid_workers(task, frozenset({"b:2", "a:1"}))
    assert task.avoided == ["a:1", "b:2"]
    avoid_workers(object(), frozenset({"a:1"}))  # CCTools' task: nothing to call, nothing fails


def _fetch(item):
    return item


def test_coffeas_retry_wrapper_is_unwrapped_and_its_skipbadfiles_kept():
    wrapped = functools.partial(processor.Runner.automatic_retries, 3, True, _fetch, use_result_type=False)
    assert unwrap_coffea_retries(wrapped) == (_fetch, (OSError,))
    chosen = functools.partial(processor.Runner.automatic_retries, 3, (KeyError,), _fetch)
    assert unwrap_coffea_retries(chosen) == (_fetch, (KeyError,))
    assert unwrap_coffea_retries(functools.partial(processor.Runner.automatic_retries, 3, False, _fetch)) == \
        (_fetch, ())
    with_result_type = functools.partial(processor.Runner.automatic_retries, 3, True, _fetch, use_result_type=True)
    assert unwrap_coffea_retries(with_result_type) == (_fetch, ())  # the Runner wraps the error as Err
    other = functools.partial(_fetch, 1)
    assert unwrap_coffea_retries(other) == (other, ())
