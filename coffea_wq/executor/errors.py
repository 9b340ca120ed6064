"""Errors a coffea-wq user meets: each names the work item (dataset, file, entry range) it is about."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def describe_item(item: Any) -> str:
    """One line naming a WorkItem or FileMeta: dataset, file and, for chunks, the entry range.

    Example:
        >>> from coffea.processor.executor import WorkItem
        >>> describe_item(WorkItem("ttbar", "a.root", "Events", 0, 100, b""))
        "dataset 'ttbar', file 'a.root', entries [0, 100)"
    """
    if isinstance(item, tuple) and item and hasattr(item[0], "filename"):  # a preprocessing batch of files
        return f"dataset {item[0].dataset!r}, files {item[0].filename!r} ... {item[-1].filename!r} ({len(item)})"
    dataset = getattr(item, "dataset", None)
    filename = getattr(item, "filename", None)
    text = f"dataset {dataset!r}, file {filename!r}"
    start, stop = getattr(item, "entrystart", None), getattr(item, "entrystop", None)
    if start is not None and stop is not None:
        text += f", entries [{start}, {stop})"
    return text


@dataclass
class RemoteError:
    """What the task runner sent back about an exception raised on a worker."""

    type_name: str
    message: str
    traceback: str
    exception: BaseException | None
    host: str


class TaskFailedError(RuntimeError):
    """A work item failed on every attempt.

    Attributes: ``item`` (the WorkItem or FileMeta), ``dataset``, ``filename``, ``entrystart``,
    ``entrystop``, ``attempts``, ``reason`` (why the last attempt failed), ``remote_traceback``
    (the processor's traceback as printed on the worker, or ``None``) and ``host``.
    When the worker could send the original exception back it is this error's ``__cause__``,
    so ``Runner(skipbadfiles=...)`` matches it like any local exception.
    """

    def __init__(self, item: Any, attempts: int, reason: str, remote: RemoteError | None = None,
                 host: str | None = None, stdout: str | None = None):
        self.item = item
        self.dataset = getattr(item, "dataset", None)
        self.filename = getattr(item, "filename", None)
        self.entrystart = getattr(item, "entrystart", None)
        self.entrystop = getattr(item, "entrystop", None)
        self.attempts = attempts
        self.reason = reason
        self.remote_traceback = remote.traceback if remote else None
        self.host = host or (remote.host if remote else None)
        self.stdout = stdout
        where = f" (last on {self.host})" if self.host else ""
        text = f"{describe_item(item)} failed after {attempts} attempt(s){where}: {reason}"
        if remote is not None:
            text += f"\n--- remote traceback ---\n{remote.traceback.rstrip()}"
        elif stdout:
            text += f"\n--- task output ---\n{stdout.rstrip()[-4000:]}"
        super().__init__(text)
        if remote is not None and remote.exception is not None:
            self.__cause__ = remote.exception

    def __reduce__(self):
        # exceptions with keyword-rich __init__ need help to survive pickling (Runner may ship them)
        return (RuntimeError, (str(self),))


class EnvironmentFileError(TaskFailedError):
    """The ``environment_file`` tarball cannot be unpacked: no task can run, whatever the item.

    ``tarball`` is its path on the submit host; the message leads with it, then names the item
    whose task met it (a ``TaskFailedError``, so the partial output is kept as for any failure).
    """

    def __init__(self, tarball: str, item: Any, attempts: int, reason: str, host: str | None = None,
                 stdout: str | None = None):
        super().__init__(item, attempts, reason, host=host, stdout=stdout)
        self.tarball = tarball
        self.args = (f"{reason}\n(met by the task of {describe_item(item)} on {host or '?'})",)


class ExecutorConfigError(ValueError):
    """An executor option or executor_args key is wrong; the message names it."""


class RunInterrupted(InterruptedError):
    """The run stopped before every work item was processed (Ctrl-C); the output is partial.

    Attributes: ``unprocessed`` (the items whose results are not in the output; also
    ``coffea_wq.last_report().unprocessed``), ``processed`` (how many are in it) and ``desc``.
    It is an ``InterruptedError`` (an ``OSError``), so a ``Runner(skipbadfiles=True,
    use_result_type=True)`` returns it as ``Err(exception, value=partial_output)``; see
    docs/executor.md, "Soft termination".
    """

    def __init__(self, unprocessed: list[Any], processed: int, desc: str = "Processing"):
        self.unprocessed = list(unprocessed)
        self.processed = processed
        self.desc = desc
        events = [getattr(i, "entrystop", None) is not None for i in self.unprocessed]
        text = (f"{desc} interrupted: {len(self.unprocessed)} work item(s) not processed, {processed} in the "
                "output")
        if self.unprocessed and all(events):
            text += f" ({sum(i.entrystop - i.entrystart for i in self.unprocessed)} events missing)"
        super().__init__(text + "; coffea_wq.last_report().unprocessed lists the missing items")

    def __reduce__(self):
        return (InterruptedError, (str(self),))
