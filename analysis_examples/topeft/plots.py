"""One PNG per histogram of the example's output, in mplhep's CMS style (``--plots DIR``).

Each histogram has ``dataset`` and ``category`` axes. A 1D variable (``lep0pt``, ``lep0eta``, ``ht``)
is summed over categories and drawn as a stack of the simulated samples with the data samples as
points on top, as a physicist draws a control plot. Simulated events weigh their cross-section
(processor.py) and the demo has no luminosity, so with data present the stack is scaled to the
data's total ("MC scaled to data" in the legend). ``njets_nbtag`` (two variables) cannot be
stacked: it is drawn as a 2D histogram of the simulated samples together.

Drawing goes through matplotlib's Agg canvas on a ``Figure`` of its own, never ``pyplot``'s global
state, so it works without a display and inside a program that uses another backend.

Example:
    >>> paths = write_plots(output, "plots", data_datasets={"data_like"})   # doctest: +SKIP
    >>> [p.name for p in paths]                                              # doctest: +SKIP
    ['lep0eta.png', 'lep0pt.png', 'ht.png', 'njets_nbtag.png']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import hist

FIGSIZE_IN = (8.0, 6.0)
DPI = 100  # 800 x 600 pixels: small enough for a README, sharp enough to read
EXPERIMENT_LABEL = "Work Queue"


def histogram_names(output: Mapping) -> list[str]:
    """The output's ``hist.Hist`` entries, in the output's order."""
    return [name for name, value in output.items() if isinstance(value, hist.Hist)]


def write_plots(output: Mapping, directory: str | Path, data_datasets: Iterable[str] = ()) -> list[Path]:
    """Write ``DIRECTORY/<name>.png`` for every histogram in ``output``; return the paths written."""
    import matplotlib.style
    import mplhep

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    data = set(data_datasets)
    paths = []
    with matplotlib.style.context(mplhep.style.CMS):
        for name in histogram_names(output):
            path = directory / f"{name}.png"
            figure = _draw(output[name], name, data)
            figure.savefig(path, dpi=DPI)
            paths.append(path)
    return paths


def _draw(histogram: hist.Hist, name: str, data: set[str]):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=FIGSIZE_IN)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    variables = [axis for axis in histogram.axes if axis.name not in ("dataset", "category")]
    if len(variables) == 1:
        _stack(ax, histogram, variables[0], data)
    else:
        _two_dimensional(ax, histogram, variables, data)
    _label(ax, name, has_data=bool(data & set(_datasets(histogram))))
    figure.tight_layout()
    return figure


def _datasets(histogram: hist.Hist) -> list[str]:
    return list(histogram.axes["dataset"])


def _stack(ax, histogram: hist.Hist, variable, data: set[str]) -> None:
    import mplhep

    per_dataset = histogram[{"category": sum}]
    simulated = [d for d in _datasets(histogram) if d not in data]
    observed = [d for d in _datasets(histogram) if d in data]
    stack = [per_dataset[{"dataset": d}] for d in simulated]
    data_total = sum(per_dataset[{"dataset": d}].sum().value for d in observed)
    mc_total = sum(h.sum().value for h in stack)
    scaled = bool(observed) and mc_total > 0
    if scaled:
        stack = [h * (data_total / mc_total) for h in stack]
    if stack:
        mplhep.histplot(stack, ax=ax, stack=True, histtype="fill", label=simulated, edgecolor="black", linewidth=0.5)
    for dataset in observed:
        mplhep.histplot(per_dataset[{"dataset": dataset}], ax=ax, histtype="errorbar", color="black",
                        label=dataset)
    ax.set_xlabel(variable.label or variable.name)
    ax.set_ylabel("Events (sum of weights)")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper right", title="MC scaled to data" if scaled else None)


def _two_dimensional(ax, histogram: hist.Hist, variables, data: set[str]) -> None:
    """The simulated samples together (data, weighing 1 per event, would not add up with them)."""
    import mplhep

    simulated = [d for d in _datasets(histogram) if d not in data] or _datasets(histogram)
    summed = sum(histogram[{"dataset": d, "category": sum}] for d in simulated)
    # the colour bar is added on this figure: mplhep's own goes through pyplot's current figure
    artists = mplhep.hist2dplot(summed, ax=ax, cbar=False)
    ax.figure.colorbar(artists.pcolormesh, ax=ax)
    ax.set_xlabel(variables[0].label or variables[0].name)
    ax.set_ylabel(variables[1].label or variables[1].name)


def _label(ax, name: str, has_data: bool) -> None:
    import mplhep

    mplhep.cms.label(EXPERIMENT_LABEL, data=has_data, ax=ax, loc=0, rlabel=name)
