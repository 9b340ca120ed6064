"""Compact rich tables of the example processor's output: yields per dataset x category, cutflow.

Example:
    >>> print_summary(output, elapsed=12.3)                 # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Console
from rich.table import Table

from analysis_examples.topeft.processor import CATEGORIES, CUTFLOW_STEPS

YIELD_HISTOGRAM = "njets_nbtag"


def total_events(output: Mapping) -> int:
    """Events the processor read, summed over datasets."""
    return int(sum(output.get("nevents", {}).values()))


def _weighted_yield(output: Mapping, dataset: str, category: str) -> float | None:
    h = output.get(YIELD_HISTOGRAM)
    if h is None or dataset not in h.axes["dataset"] or category not in h.axes["category"]:
        return None
    return float(h[{"dataset": dataset, "category": category}].sum(flow=True).value)


def yields_table(output: Mapping) -> Table:
    """Rows: datasets; columns: categories; cells: events (sum of weights)."""
    datasets = sorted(output.get("yields", {}))
    table = Table(title="Events per category (sum of weights)", title_justify="left")
    table.add_column("dataset", style="bold")
    for category in CATEGORIES:
        table.add_column(category, justify="right")
    for dataset in datasets:
        counts = output["yields"][dataset]
        cells = []
        for category in CATEGORIES:
            sumw = _weighted_yield(output, dataset, category)
            weighted = "" if sumw is None else f" ({sumw:,.0f})"
            cells.append(f"{counts.get(category, 0):,}{weighted}")
        table.add_row(dataset, *cells)
    return table


def cutflow_table(output: Mapping) -> Table:
    """Rows: cutflow steps; columns: datasets; cells: events passing (and % of all)."""
    cutflow = output.get("cutflow", {})
    datasets = sorted(cutflow)
    table = Table(title="Cutflow (events)", title_justify="left")
    table.add_column("step", style="bold")
    for dataset in datasets:
        table.add_column(dataset, justify="right")
    for step in CUTFLOW_STEPS:
        row = []
        for dataset in datasets:
            passed = cutflow[dataset].get(step, 0)
            everything = cutflow[dataset].get(CUTFLOW_STEPS[0], 0) or 1
            row.append(f"{passed:,} ({100.0 * passed / everything:.1f}%)")
        table.add_row(step, *row)
    return table


def print_summary(output: Mapping, elapsed: float | None = None, console: Console | None = None) -> None:
    """Print events/s (when ``elapsed`` is given), the yields table and the cutflow table."""
    console = console or Console()
    n_events = total_events(output)
    if elapsed is not None:
        rate = n_events / elapsed if elapsed > 0 else float("inf")
        console.print(f"Processed {n_events:,} events in {elapsed:.2f} s: [bold]{rate:,.0f} events/s[/bold]")
    console.print(yields_table(output))
    console.print(cutflow_table(output))
