"""The executor's side of the dashboard: progress per dataset, failures, splits, measurements."""

from __future__ import annotations

from coffea.processor.executor import WorkItem

from coffea_wq.dashboard import tracker as tracker_module
from coffea_wq.dashboard.snapshot import BucketCounts
from coffea_wq.dashboard.tracker import ERROR_LINES, RunTracker, _Sample, throughput_points


def chunk(dataset: str, start: int, stop: int, filename: str = "f.root") -> WorkItem:
    return WorkItem(dataset, filename, "Events", start, stop, b"uuid")


class FakeTask:
    """What the tracker reads from a returned task (the manager's Task has these attributes)."""

    def __init__(self, result=0, memory=None, wall=None, allocated=None, execution_us=2_500_000):
        self.result = result
        self.resources_measured = {"memory": memory, "wall_time": wall} if memory is not None else None
        self.resources_allocated = allocated
        self.cmd_execution_time = execution_us


def test_progress_counts_chunks_and_events_per_dataset():
    tracker = RunTracker()
    items = [chunk("tt", 0, 100), chunk("tt", 100, 150), chunk("dy", 0, 70)]
    tracker.call_started("Processing", "chunk", items)
    tracker.item_processed(items[1])
    tracker.item_processed(items[2])
    progress = tracker.progress()
    assert (progress.chunks_done, progress.chunks_total) == (2, 3)
    assert (progress.events_done, progress.events_total) == (120, 220)
    by_name = {d.name: d for d in progress.datasets}
    assert (by_name["tt"].chunks_done, by_name["tt"].events_done, by_name["tt"].events_total) == (1, 50, 150)
    assert (by_name["dy"].chunks_done, by_name["dy"].events_total) == (1, 70)
    assert tracker.chunks_done_total == 2 and tracker.events_done_total == 120


def test_a_new_call_resets_the_call_progress_but_not_the_run_totals():
    tracker = RunTracker()
    files = [chunk("tt", 0, 0)]
    tracker.call_started("Preprocessing", "file", files)
    tracker.item_processed(files[0])
    tracker.call_started("Processing", "chunk", [chunk("tt", 0, 10)])
    assert tracker.progress().chunks_done == 0 and tracker.progress().phase == "Processing"
    assert tracker.chunks_done_total == 1


def test_failures_keep_dataset_file_range_and_the_first_lines_newest_first():
    tracker = RunTracker()
    item = chunk("tt", 700, 1400, "/data/a2.root")
    long_error = "\n".join(f"line {n}" for n in range(30))
    tracker.attempt_failed(item, long_error, "node12", 1, final=False)
    tracker.attempt_failed(item, "ValueError: bad", "node13", 2, final=True)
    newest, oldest = tracker.failures()
    assert (newest.host, newest.attempt, newest.final, newest.error) == ("node13", 2, True, ["ValueError: bad"])
    assert (oldest.dataset, oldest.file, oldest.entry_start, oldest.entry_stop) == ("tt", "/data/a2.root", 700, 1400)
    assert oldest.error == [f"line {n}" for n in range(ERROR_LINES)]
    assert tracker.retries == 1  # the final failure is not a retry


def test_a_split_adds_a_chunk_to_the_plan_and_counts_for_the_category():
    tracker = RunTracker()
    item = chunk("tt", 0, 100)
    tracker.call_started("Processing", "chunk", [item])
    tracker.item_split(item, [chunk("tt", 0, 50), chunk("tt", 50, 100)], "memory exceeded", "n1", "processing")
    assert tracker.progress().chunks_total == 2 and tracker.progress().events_total == 100
    (category,) = tracker.categories()
    assert (category.name, category.splits, tracker.splits) == ("processing", 1, 1)
    assert "split into 2: memory exceeded" in tracker.failures()[0].error[0]


def test_measurements_fill_histograms_peaks_and_allocation():
    tracker = RunTracker()
    tracker.task_returned(FakeTask(memory=120, wall=3.0, allocated={"cores": 1, "memory": 2000}), "processing")
    tracker.task_returned(FakeTask(memory=900, wall=0.2), "processing")
    tracker.task_returned(FakeTask(result=16, memory=2500, wall=40.0), "processing")
    tracker.task_returned(FakeTask(execution_us=1_500_000), "preprocessing")  # unmonitored: wall time only
    processing, preprocessing = tracker.categories()
    assert processing.peaks == {"memory": 2500.0, "wall_time": 40.0}
    assert processing.allocation == {"cores": 1, "memory": 2000}
    assert processing.exhaustions == 1
    assert processing.memory.observations == 3 and processing.memory.total == 3520
    assert processing.memory.counts[processing.memory.bounds.index(200)] == 1  # 120 MB: (100, 200]
    assert preprocessing.memory.observations == 0
    assert preprocessing.wall_time.counts[preprocessing.wall_time.bounds.index(2.5)] == 1


def test_histogram_puts_values_above_the_last_edge_in_the_overflow_bucket():
    histogram = BucketCounts.empty((1, 10))
    for value in (0.5, 1, 5, 10, 11, 1000):
        histogram.observe(value)
    assert histogram.counts == [2, 2, 2]


def test_throughput_is_the_growth_per_step_on_a_regular_grid():
    samples = [_Sample(100.0, 0, 0), _Sample(101.0, 4, 400), _Sample(104.0, 10, 1000), _Sample(106.0, 10, 1000)]
    points = throughput_points(samples, started=99.0)
    assert [p.t for p in points] == [3.0, 5.0, 7.0]
    assert [p.chunks_s for p in points] == [2.0, 3.0, 0.0]
    assert [p.events_s for p in points] == [200.0, 300.0, 0.0]


def test_throughput_has_a_bounded_number_of_points(monkeypatch):
    monkeypatch.setattr(tracker_module, "THROUGHPUT_POINTS", 10)
    samples = [_Sample(float(t), t, 0) for t in range(1000)]
    points = throughput_points(samples, started=0.0, with_events=False)
    assert len(points) <= 11 and points[-1].t >= 999 - 1e-6
    step = points[1].t - points[0].t
    assert abs(sum(p.chunks_s for p in points) * step - 999) < 1e-6  # every chunk counted once


def test_with_dynamic_chunk_sizes_events_are_planned_and_chunks_counted_as_cut():
    tracker = RunTracker()
    tracker.call_started("Processing", "event", [chunk("tt", 0, 1000)], chunks_known=False)
    assert (tracker.progress().chunks_total, tracker.progress().events_total) == (0, 1000)
    first = chunk("tt", 0, 400)
    tracker.chunks_added([first])
    tracker.item_processed(first)
    progress = tracker.progress()
    assert (progress.chunks_done, progress.chunks_total, progress.events_done) == (1, 1, 400)


def test_restored_items_count_as_planned_and_done():
    tracker = RunTracker()
    stored, remaining = chunk("tt", 0, 100), chunk("tt", 100, 200)
    tracker.call_started("Processing", "chunk", [remaining, stored])
    tracker.item_restored(stored)
    progress = tracker.progress()
    assert (progress.chunks_done, progress.chunks_total, progress.events_done) == (1, 2, 100)
