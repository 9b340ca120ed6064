"""Folding the manager connection's chunked events back into whole ones, to compare streams."""

from __future__ import annotations

from dataclasses import dataclass

from coffea_wq.protocol import messages as m


@dataclass(frozen=True)
class Result:
    """A ``ResultStart`` and its ``ResultOutput`` chunks, joined."""

    status: int
    exit_code: int
    output: bytes
    execution_time_us: int
    task_id: int
    output_truncated: bool = False


def fold(events: list) -> list:
    """Join a result's output chunks into one ``Result``, and consecutive ``FileData`` chunks into
    one (how bytes arrive decides how they are split); drop empty non-final chunks."""
    out: list = []
    start: m.ResultStart | None = None
    output = b""
    for event in events:
        if isinstance(event, m.ResultStart):
            start, output = event, b""
        elif isinstance(event, m.ResultOutput):
            output += event.data
            if event.last:
                assert start is not None
                out.append(Result(start.status, start.exit_code, output, start.execution_time_us, start.task_id,
                                  event.truncated))
                start = None
        elif isinstance(event, m.FileData) and out and isinstance(out[-1], m.FileData):
            out[-1] = m.FileData(out[-1].data + event.data, event.last)
        else:
            out.append(event)
    return [e for e in out if not (isinstance(e, m.FileData) and not e.data and not e.last)]
