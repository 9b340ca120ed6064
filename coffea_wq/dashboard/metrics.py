"""``/metrics``: the run in Prometheus' text format, built with ``prometheus_client``.

The numbers already exist as cumulative counters in the manager's status record and the executor's
tracker, so a custom collector reads one ``Snapshot`` per scrape and yields metric families
(prometheus_client's recommended way to export counters kept elsewhere) instead of keeping a
second copy in ``Counter`` objects. Each dashboard has its own ``CollectorRegistry``: several runs
or tests in one process never share or collide in the global default registry.

Names follow Prometheus conventions (``_total`` counters, base units in names), prefixed
``coffea_wq_``; docs/dashboard.md lists them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from coffea_wq.dashboard.snapshot import BucketCounts, Snapshot

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class SnapshotCollector(Collector):
    """Metric families of one snapshot, read at scrape time from ``snapshot()``."""

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        tasks, progress = snap.tasks, snap.progress
        state = GaugeMetricFamily("coffea_wq_tasks", "Tasks in the manager by state", labels=["state"])
        for name in ("waiting", "running", "on_workers"):
            state.add_metric([name], getattr(tasks, name))
        yield state
        for name, value, text in (
            ("tasks_submitted", tasks.submitted, "Tasks submitted to the manager"),
            ("tasks_dispatched", tasks.dispatched, "Task attempts sent to workers"),
            ("tasks_done", tasks.done, "Tasks returned to the application"),
            ("tasks_failed", tasks.failed, "Tasks returned with a failure result"),
            ("tasks_cancelled", tasks.cancelled, "Tasks cancelled"),
            ("task_exhaustions", tasks.exhaustions, "Task attempts stopped for exceeding their allocation"),
            ("task_retries", tasks.retries or 0, "Failed attempts the executor resubmitted"),
            ("chunk_splits", tasks.splits or 0, "Chunks split in two after exhausting their resources"),
            ("partials_lost", tasks.partials_lost or 0, "Partials on workers lost or dropped (their chunks ran again)"),
            ("chunks_redone_after_loss", tasks.chunks_redone or 0,
             "Chunk runs redone because the partial holding them was lost"),
            ("bytes_sent", tasks.bytes_sent, "Bytes sent to workers"),
            ("bytes_received", tasks.bytes_received, "Bytes received from workers"),
        ):
            yield _counter(name, text, value)
        workers = GaugeMetricFamily("coffea_wq_workers", "Workers by state", labels=["state"])
        connected = [w for w in snap.workers if w.connected]
        workers.add_metric(["connected"], len(connected))
        workers.add_metric(["busy"], sum(1 for w in connected if w.running))
        workers.add_metric(["idle"], sum(1 for w in connected if not w.running))
        yield workers
        yield _counter("workers_left", "Workers that disconnected (seen by this dashboard)",
                       sum(1 for w in snap.workers if not w.connected))
        for resource, unit in (("cores", ""), ("memory", "_megabytes"), ("disk", "_megabytes")):
            gauge = GaugeMetricFamily(f"coffea_wq_worker_{resource}{unit}",
                                      f"{resource} of the connected workers", labels=["kind"])
            gauge.add_metric(["total"], sum(getattr(w, resource) for w in connected))
            yield gauge
        if snap.source.kind == "executor":
            yield _counter("chunks_processed", "Work items accumulated (or skipped) by the executor",
                           _run_total(snap, "chunks"))
            yield _counter("events_processed", "Events in the accumulated chunks", _run_total(snap, "events"))
            planned = GaugeMetricFamily("coffea_wq_call_items", "Items of the current executor call",
                                        labels=["phase", "kind"])
            planned.add_metric([progress.phase, "done"], progress.chunks_done)
            planned.add_metric([progress.phase, "total"], progress.chunks_total)
            yield planned
            phases = CounterMetricFamily("coffea_wq_phase_seconds", "Seconds of task time by phase "
                                         "(where the time went, docs/executor.md section 10)", labels=["phase"])
            for name, seconds in sorted(snap.breakdown.get("seconds", {}).items()):
                phases.add_metric([name], seconds)
            yield phases
            yield _counter("phase_tasks", "Tasks whose phases were reported", snap.breakdown.get("tasks", 0))
        wall = HistogramMetricFamily("coffea_wq_task_wall_time_seconds", "Wall time of returned task attempts",
                                     labels=["category"])
        memory = HistogramMetricFamily("coffea_wq_task_memory_megabytes", "Measured peak memory of task attempts",
                                       labels=["category"])
        for category in snap.categories:
            if category.wall_time is not None:
                wall.add_metric([category.name], _buckets(category.wall_time), category.wall_time.total)
            if category.memory is not None:
                memory.add_metric([category.name], _buckets(category.memory), category.memory.total)
        yield wall
        yield memory


def _run_total(snap: Snapshot, kind: str) -> int:
    """Chunks or events processed over the whole run (every call), as the tracker counted them."""
    return int(snap.run_totals.get(kind, 0))


def _counter(name: str, text: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(f"coffea_wq_{name}", text, value=value)


def _buckets(histogram: BucketCounts) -> list[tuple[str, float]]:
    """Cumulative counts per upper edge, ending with +Inf, as Prometheus expects."""
    buckets, running = [], 0
    for bound, count in zip([*histogram.bounds, float("inf")], histogram.counts, strict=True):
        running += count
        buckets.append(("+Inf" if bound == float("inf") else _edge(bound), running))
    return buckets


def _edge(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)


def new_registry(snapshot: Callable[[], Snapshot]) -> CollectorRegistry:
    """A registry of its own holding the snapshot collector (never the global default registry)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
