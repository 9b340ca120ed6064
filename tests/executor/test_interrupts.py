"""InterruptGuard: real SIGINTs sent to this process, in and out of the main thread."""

from __future__ import annotations

import functools
import os
import signal
import threading
import time

import pytest
from coffea.processor.executor import Runner, WorkItem

from coffea_wq.executor.errors import RunInterrupted
from coffea_wq.executor.interrupts import InterruptGuard, plain_runner_call
from coffea_wq.executor.tasks.dynamic_chunks import EntryRanges


def sigint_self() -> None:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.05)  # the handler runs in the main thread at the next bytecode


def test_first_sigint_only_asks_the_second_raises():
    with InterruptGuard() as guard:
        assert guard.installed and not guard.requested
        sigint_self()
        assert guard.requested
        with pytest.raises(KeyboardInterrupt):
            sigint_self()
        sigint_self()  # later ones are only counted
        assert guard.signals == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_second_sigint_during_cleanup_is_raised_after_it():
    with InterruptGuard() as guard:
        sigint_self()
        guard.defer()
        sigint_self()  # must not raise inside cleanup
        cleaned = True
        with pytest.raises(KeyboardInterrupt):
            guard.raise_if_aborted()
    assert cleaned


def test_outside_the_main_thread_and_with_a_users_handler_sigint_is_left_alone():
    seen = []

    def in_thread():
        with InterruptGuard() as guard:
            seen.append(guard.installed)

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(5)
    assert seen == [False]

    def users_handler(signum, frame):
        seen.append("user")

    previous = signal.signal(signal.SIGINT, users_handler)
    try:
        with InterruptGuard() as guard:
            assert not guard.installed
            sigint_self()
            assert not guard.requested and seen[-1] == "user"
    finally:
        signal.signal(signal.SIGINT, previous)


def test_plain_runner_closures_are_recognised():
    plain = functools.partial(Runner.automatic_retries, 0, False, len, use_result_type=False)
    typed = functools.partial(Runner.automatic_retries, 0, True, len, use_result_type=True)
    assert plain_runner_call(plain) and not plain_runner_call(typed) and not plain_runner_call(len)


def test_run_interrupted_counts_the_missing_events_and_is_an_oserror():
    items = [WorkItem("d", "f.root", "Events", 0, 100, b""), WorkItem("d", "f.root", "Events", 100, 150, b"")]
    exc = RunInterrupted(items, processed=3)
    assert isinstance(exc, OSError) and exc.unprocessed == items
    assert "2 work item(s) not processed, 3 in the output (150 events missing)" in str(exc)


def test_uncut_entry_ranges_are_reported_as_work_items():
    items = [WorkItem("d", "f.root", "Events", 0, 100, b""), WorkItem("d", "f.root", "Events", 100, 200, b""),
             WorkItem("d", "g.root", "Events", 0, 50, b"")]
    ranges = EntryRanges(items)
    first = ranges.cut(60)
    rest = ranges.remaining_items()
    assert [(i.filename, i.entrystart, i.entrystop) for i in [first, *rest]] == \
        [("f.root", 0, 60), ("f.root", 60, 200), ("g.root", 0, 50)]


@pytest.mark.slow
def test_run_uproot_job_returns_the_partial_output_on_ctrl_c(tmp_path):
    import coffea_wq
    from tests.executor import helpers, nano

    fileset = helpers.make_fileset(tmp_path)
    calls = []

    def interrupt_after_two_results(queue):
        calls.append(queue)
        if len(calls) != 2:  # the processing call
            return

        before = queue.stats.tasks_done  # the preprocessing tasks

        def watch():
            deadline = time.monotonic() + 120
            while queue.stats.tasks_done < before + 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGINT)

        threading.Thread(target=watch, daemon=True).start()

    with pytest.warns(UserWarning, match="Processing interrupted: .* not processed"):
        out = coffea_wq.run_uproot_job(fileset, "Events", nano.LeptonJetProcessor(sleep=1.0), chunksize=helpers.CHUNKSIZE,
                                       executor_args={"local-workers": 2, "status": False,
                                                      "custom-init": interrupt_after_two_results,
                                                      "filepath": str(tmp_path)})
    done = sum(counts["all"] for counts in out["cutflow"].values())
    report = coffea_wq.last_report("Processing")
    assert 0 < done < 5000 and report.interrupted is not None
    assert done + sum(i.entrystop - i.entrystart for i in report.unprocessed) == 5000
    assert not list(tmp_path.glob("coffea-wq-*"))


def test_sigterm_exits_at_once_or_after_cleanup():
    with InterruptGuard() as guard:
        with pytest.raises(SystemExit) as info:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
        assert info.value.code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    with InterruptGuard() as guard:
        guard.defer()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        with pytest.raises(SystemExit):
            guard.raise_if_aborted()
