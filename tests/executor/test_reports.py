"""last_report's store (executor/core.py CallReports): newest last, bounded, and safe across threads."""

from __future__ import annotations

import threading

from coffea_wq.executor.call.report import CallReport
from coffea_wq.executor.core import CallReports


def test_keeps_the_newest_reports_and_finds_the_latest_of_a_phase():
    reports = CallReports(kept=3)
    assert reports.latest() is None
    made = [CallReport(desc=desc) for desc in ("Preprocessing", "Processing", "Preprocessing", "Processing")]
    for report in made:
        reports.add(report)
    assert len(reports) == 3
    assert reports.latest() is made[3] and reports.latest("Preprocessing") is made[2]
    reports.add(CallReport(desc="Processing"))
    reports.add(CallReport(desc="Processing"))
    assert reports.latest("Preprocessing") is None  # dropped with the oldest


class _ReportThatWaitsWhileRead(CallReport):
    """A report whose ``desc`` lets another thread add a report while a reader is looking at it."""

    def __init__(self, desc: str, reading: threading.Event, added: threading.Event):
        super().__init__()
        self._desc, self.reading, self.added = desc, reading, added

    @property
    def desc(self) -> str:
        self.reading.set()
        self.added.wait(timeout=0.5)  # a store that locks makes the writer wait: this times out
        return self._desc

    @desc.setter
    def desc(self, value: str) -> None:
        self._desc = value


def test_a_report_added_while_another_thread_reads_hides_no_report():
    reading, added = threading.Event(), threading.Event()
    reports = CallReports(kept=4)
    processing = CallReport(desc="Processing")
    reports.add(processing)
    for _ in range(3):
        reports.add(_ReportThatWaitsWhileRead("Preprocessing", reading, added))

    def add_one_more():
        assert reading.wait(timeout=10)
        reports.add(CallReport(desc="Preprocessing"))
        added.set()

    writer = threading.Thread(target=add_one_more)
    writer.start()
    try:
        # read while the writer drops the oldest report: the reader sees the list before or after
        # the write, never a shifted list in which "Processing" slips past it
        assert reports.latest("Processing") is processing
    finally:
        writer.join(timeout=10)
    assert not writer.is_alive()
    assert len(reports) == 4 and reports.latest("Processing") is None
