"""A finished run as one self-contained HTML page (inline CSS and SVG, no script, nothing fetched).

Sections: where the time went (a stacked bar and its advice, per category and per worker), the
worker timelines (one row per worker, one bar per task attempt, split into its phases), task
duration and memory histograms per category, transfers over time, and the debug log's warnings.
The page's elements carry ``id``/``class``/``data-*`` names that tests and users can select:
``.worker-row[data-worker]``, ``.task-bar[data-task]``, ``.histogram[data-category][data-kind]``.
"""

from __future__ import annotations

import html
import math
import time

from coffea_wq.executor.report.history import RunHistory, TaskAttempt
from coffea_wq.executor.results.breakdown import BUSY_PHASES, LABELS, PhaseTotals

COLOURS = {
    "inputs": "#8d6e63", "start_cold": "#e53935", "start_warm": "#ef9a9a", "open": "#fb8c00", "read": "#fdd835",
    "process": "#43a047", "accumulate": "#00897b", "write": "#5e35b1", "other": "#9e9e9e", "send": "#1e88e5",
    "receive": "#3949ab", "decode": "#8e24aa", "merge": "#d81b60", "queue": "#cfd8dc",
}  # fmt: skip (the dashboard's colours, coffea_wq/dashboard/assets/dashboard.js)
ON_WORKER = ("start_cold", "start_warm", "open", "read", "process", "accumulate", "write", "other")
NO_PHASES = "#90a4ae"  # an attempt without a PHASES line (not a coffea-wq chunk, or never returned)
FAILED = "#c62828"
ROW_H, LABEL_W, PLOT_W = 22, 190, 900
BINS = 20

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 1180px; padding: 8px 16px; color: #1d2330; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 24px; }
.muted { color: #667; } table { border-collapse: collapse; } td, th { padding: 2px 10px; text-align: left; }
td.num { text-align: right; } tr:nth-child(even) td { background: #f4f5f7; }
.stack { display: flex; height: 22px; border-radius: 4px; overflow: hidden; background: #e3e6ec; max-width: 900px; }
.stack > span { display: block; height: 100%; }
.minstack { display: inline-flex; width: 300px; height: 10px; background: #e3e6ec; }
.minstack > span { display: block; height: 100%; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 14px; margin: 6px 0; font-size: 12px; }
.legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; border-radius: 2px; }
svg text { font: 11px system-ui, sans-serif; fill: #445; } svg .axis { stroke: #99a; }
.histograms { display: flex; flex-wrap: wrap; gap: 18px; } figure { margin: 0; }
figcaption { font-size: 12px; color: #556; } pre { font-size: 12px; white-space: pre-wrap; }
"""


def render(history: RunHistory) -> str:
    """The report page for ``history``."""
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>coffea-wq report: {_e(history.logdir.name)}</title><style>{CSS}</style></head><body>",
        f"<h1>coffea-wq run report <span class='muted'>{_e(str(history.logdir))}</span></h1>",
        _summary(history), _breakdown(history), _timeline(history), _histograms(history),
        _transfers(history), _messages(history),
        f"<p class='muted'>made {time.strftime('%Y-%m-%d %H:%M:%S')} by coffea-wq report from "
        + ", ".join(f"{kind} log {_e(path.name)}" for kind, path in history.files.items()) + "</p>",
        "</body></html>",
    ]
    return "\n".join(parts)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _seconds(value: float) -> str:
    if value < 1:
        return f"{1000 * value:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min"


def _summary(history: RunHistory) -> str:
    attempts = history.attempts
    done = sum(1 for a in attempts if a.result == "SUCCESS")
    rows = [("run length", _seconds(history.span)), ("workers", len(history.workers)),
            ("task attempts", len(attempts)), ("succeeded", done), ("other results", len(attempts) - done),
            ("debug log", f"{history.warnings} warnings, {history.errors} errors" if "debug" in history.files
             else "not found")]
    cells = "".join(f"<tr><td>{_e(k)}</td><td class='num'>{_e(v)}</td></tr>" for k, v in rows)
    return f"<table id='summary'>{cells}</table>"


def _stack(totals: PhaseTotals, css: str = "stack") -> str:
    pieces = []
    for name, share in totals.shares().items():
        pieces.append(f"<span data-phase='{name}' style='width:{100 * share:.2f}%;background:{COLOURS[name]}' "
                      f"title='{_e(LABELS[name])}: {100 * share:.1f}% ({_seconds(totals.seconds[name])})'></span>")
    return f"<div class='{css}'>{''.join(pieces)}</div>"


def _legend(names: list[str]) -> str:
    return "<div class='legend'>" + "".join(
        f"<span><i style='background:{COLOURS[n]}'></i>{_e(LABELS[n])}</span>" for n in names) + "</div>"


def _breakdown(history: RunHistory) -> str:
    b = history.breakdown
    out = ["<h2>Where the time went</h2>", f"<p id='advice'><b>{_e(b.advice())}</b></p>"]
    if not b.total.tasks:
        out.append("<p class='muted'>No PHASES lines in the transactions log: the run's executor did not time "
                   "its tasks (a CCTools manager, or coffea-wq before docs/executor.md section 10).</p>")
        return "\n".join(out)
    out.append(f"<div id='breakdown'>{_stack(b.total)}</div>")
    out.append(_legend([n for n in BUSY_PHASES if b.total.seconds.get(n)]))
    queued = b.total.seconds.get("queue", 0.0)
    out.append(f"<p class='muted'>{b.total.tasks} tasks timed; {_seconds(b.total.busy())} of task time; "
               f"tasks waited {_seconds(queued / b.total.tasks)} on average for a worker.</p>")
    for title, groups in (("category", b.by_dataset), ("worker", b.by_worker)):
        rows = "".join(f"<tr><td>{_e(name)}</td><td class='num'>{t.tasks}</td><td class='num'>"
                       f"{_seconds(t.busy())}</td><td>{_stack(t, 'minstack')}</td></tr>"
                       for name, t in sorted(groups.items()))
        out.append(f"<table class='per-{title}'><tr><th>{title}</th><th>tasks</th><th>task time</th><th></th></tr>"
                   f"{rows}</table>")
    return "\n".join(out)


def _timeline(history: RunHistory) -> str:
    span = max(history.span, 1e-3)
    scale = PLOT_W / span
    height = ROW_H * len(history.workers) + 30
    rows = []
    for row, worker in enumerate(history.workers):
        y = row * ROW_H
        bars = "".join(_task_bar(a, scale, y) for a in history.attempts if a.worker == worker)
        rows.append(f"<g class='worker-row' data-worker='{_e(worker)}'><text x='0' y='{y + 15}'>{_e(worker)}</text>"
                    f"<line class='axis' x1='{LABEL_W}' x2='{LABEL_W + PLOT_W}' y1='{y + ROW_H - 1}' "
                    f"y2='{y + ROW_H - 1}' stroke-opacity='0.3'/>{bars}</g>")
    axis = _time_axis(span, scale, height - 26)
    return (f"<h2>Workers over time</h2><p class='muted'>One row per worker, one bar per task attempt, coloured by "
            f"phase where the task reported them (grey: no phases; red outline: failed).</p>"
            f"{_legend([n for n in ON_WORKER if history.breakdown.total.seconds.get(n)])}"
            f"<svg id='timeline' width='{LABEL_W + PLOT_W + 20}' height='{height}'>{''.join(rows)}{axis}</svg>")


def _task_bar(attempt: TaskAttempt, scale: float, y: float) -> str:
    x = LABEL_W + attempt.started * scale
    end = attempt.ended if attempt.ended is not None else attempt.started
    width = max(1.0, (end - attempt.started) * scale)
    title = (f"task {attempt.task_id} ({attempt.category}) {attempt.result or 'unfinished'}, "
             f"{_seconds(end - attempt.started)}" + "".join(f"; {LABELS.get(n, n)} {_seconds(s)}"
                                                            for n, s in attempt.phases.items() if n in ON_WORKER))
    on_worker = [(n, attempt.phases[n]) for n in ON_WORKER if attempt.phases.get(n, 0) > 0]
    total = sum(s for _, s in on_worker)
    pieces, at = [], x
    if total > 0:
        for name, seconds in on_worker:
            w = width * seconds / total
            pieces.append(f"<rect x='{at:.2f}' y='{y + 3}' width='{w:.2f}' height='{ROW_H - 7}' "
                          f"fill='{COLOURS[name]}' data-phase='{name}'/>")
            at += w
    else:
        pieces.append(f"<rect x='{x:.2f}' y='{y + 3}' width='{width:.2f}' height='{ROW_H - 7}' fill='{NO_PHASES}'/>")
    outline = "" if attempt.result in ("SUCCESS", None) else \
        f"<rect x='{x:.2f}' y='{y + 3}' width='{width:.2f}' height='{ROW_H - 7}' fill='none' stroke='{FAILED}'/>"
    return (f"<g class='task-bar' data-task='{_e(attempt.task_id)}'><title>{_e(title)}</title>"
            f"{''.join(pieces)}{outline}</g>")


def _time_axis(span: float, scale: float, y: float) -> str:
    step = _nice_step(span / 8)
    ticks, t = [], 0.0
    while t <= span + 1e-9:
        x = LABEL_W + t * scale
        ticks.append(f"<line class='axis' x1='{x:.1f}' x2='{x:.1f}' y1='{y}' y2='{y + 4}'/>"
                     f"<text x='{x:.1f}' y='{y + 16}' text-anchor='middle'>{t:g} s</text>")
        t += step
    return f"<g class='time-axis'><line class='axis' x1='{LABEL_W}' x2='{LABEL_W + PLOT_W}' y1='{y}' y2='{y}'/>" \
           f"{''.join(ticks)}</g>"


def _nice_step(rough: float) -> float:
    if rough <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(rough))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= rough)


def _histograms(history: RunHistory) -> str:
    figures = []
    for category in history.categories():
        attempts = [a for a in history.attempts if a.category == category]
        durations = [d for d in (a.duration for a in attempts) if d is not None]
        memory = [float(a.resources["memory"]) for a in attempts if a.resources.get("memory")]
        figures.append(_histogram(category, "duration", durations, "s"))
        if memory:
            figures.append(_histogram(category, "memory", memory, "MB"))
    return "<h2>Tasks per category</h2><div class='histograms'>" + "".join(figures) + "</div>"


def _histogram(category: str, kind: str, values: list[float], unit: str) -> str:
    w, h, pad = 300, 140, 24
    caption = f"{_e(category)}: {kind} ({len(values)} tasks)"
    if not values:
        return f"<figure><figcaption>{caption}: none measured</figcaption></figure>"
    low, high = min(values), max(values)
    width = (high - low) / BINS or 1.0
    counts = [0] * BINS
    for v in values:
        counts[min(BINS - 1, int((v - low) / width))] += 1
    top = max(counts)
    bars = "".join(f"<rect x='{pad + i * (w - pad) / BINS:.1f}' y='{h - pad - (h - 2 * pad) * c / top:.1f}' "
                   f"width='{(w - pad) / BINS - 1:.1f}' height='{(h - 2 * pad) * c / top:.1f}' fill='#43a047'>"
                   f"<title>{c} tasks in [{low + i * width:.3g}, {low + (i + 1) * width:.3g}) {unit}</title></rect>"
                   for i, c in enumerate(counts) if c)
    labels = (f"<text x='{pad}' y='{h - 6}'>{low:.3g} {unit}</text>"
              f"<text x='{w}' y='{h - 6}' text-anchor='end'>{high:.3g} {unit}</text>"
              f"<text x='2' y='{pad - 6}'>{top}</text>")
    return (f"<figure><figcaption>{caption}</figcaption><svg class='histogram' data-category='{_e(category)}' "
            f"data-kind='{kind}' width='{w + 6}' height='{h}'><line class='axis' x1='{pad}' x2='{w}' "
            f"y1='{h - pad}' y2='{h - pad}'/>{bars}{labels}</svg></figure>")


def _transfers(history: RunHistory) -> str:
    if not history.transfers:
        return "<h2>Transfers over time</h2><p class='muted'>No stats log in the folder (the stats-log option).</p>"
    w, h, pad = PLOT_W, 180, 40
    span = max(max(t for t, _, _ in history.transfers), 1e-3)
    top = max(max(max(s, r) for _, s, r in history.transfers), 1e-6)
    lines = []
    for index, colour, name in ((1, "#1e88e5", "sent to workers"), (2, "#8e24aa", "received from workers")):
        points = " ".join(f"{pad + (w - pad) * p[0] / span:.1f},{h - pad - (h - 2 * pad) * p[index] / top:.1f}"
                          for p in history.transfers)
        lines.append(f"<polyline class='transfer' data-direction='{'sent' if index == 1 else 'received'}' "
                     f"fill='none' stroke='{colour}' stroke-width='2' points='{points}'><title>{name}</title>"
                     "</polyline>")
    labels = (f"<text x='{pad}' y='{h - pad + 16}'>0 s</text><text x='{w}' y='{h - pad + 16}' "
              f"text-anchor='end'>{span:.3g} s</text><text x='0' y='{pad - 8}'>{top:.3g} MB</text>")
    return ("<h2>Transfers over time <span class='muted'>(MB sent to workers: blue; received: purple; "
            "cumulative)</span></h2>"
            f"<svg id='transfers' width='{w + 10}' height='{h}'><line class='axis' x1='{pad}' x2='{w}' "
            f"y1='{h - pad}' y2='{h - pad}'/>{''.join(lines)}{labels}</svg>")


def _messages(history: RunHistory) -> str:
    if not history.messages:
        return ""
    text = "\n".join(_e(m) for m in history.messages)
    return f"<h2>Latest warnings and errors <span class='muted'>(debug log)</span></h2><pre id='messages'>{text}</pre>"
