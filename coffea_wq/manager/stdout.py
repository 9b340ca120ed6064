"""A task's stdout as it arrives: in memory while small, in a spool file beyond that.

Why (docs/manager.md, "Bounded memory"): the protocol hands a result's output out in chunks, up
to ``max-task-stdout-storage`` (1 GB, as CCTools). Kept in memory, N connections that each hold
a task could make the manager keep N GB. So the first ``threshold`` bytes (1 MiB) stay in
memory and the rest go to a file in the manager's spool directory, which ``TaskSpec.read_output``
reads back when the user asks for ``task.output``. Each open spool costs one chunk of memory at
most, whatever the peer announces.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading

SPOOL_THRESHOLD = 1 << 20


class SpoolDirectory:
    """The manager's scratch directory for spooled stdout: made on first use, removed at exit (the
    user may read ``task.output`` after the queue is shut down) or by ``remove``."""

    def __init__(self, parent: str | None = None) -> None:
        self._parent = parent
        self._path: str | None = None
        self._lock = threading.Lock()

    def path(self) -> str:
        with self._lock:
            if self._path is None or not os.path.isdir(self._path):
                self._path = tempfile.mkdtemp(prefix="coffea-wq-stdout-", dir=self._parent)
                atexit.register(shutil.rmtree, self._path, True)
            return self._path

    def remove(self) -> None:
        with self._lock:
            if self._path is not None:
                shutil.rmtree(self._path, ignore_errors=True)
                self._path = None


class StdoutSpool:
    """Collects one result's output: ``write`` chunks, then ``finish`` (or ``discard``)."""

    def __init__(self, directory: SpoolDirectory, task_id: int, threshold: int = SPOOL_THRESHOLD) -> None:
        self._directory = directory
        self._task_id = task_id
        self._threshold = threshold
        self._head = bytearray()
        self._file = None
        self.path: str | None = None
        self.length = 0

    def write(self, data: bytes) -> None:
        """Keep ``data``; an OSError (a full disk) propagates: the caller drops the peer."""
        self.length += len(data)
        if self._file is None and len(self._head) + len(data) <= self._threshold:
            self._head += data
            return
        if self._file is None:
            fd, self.path = tempfile.mkstemp(prefix=f"task-{self._task_id}-", suffix=".stdout",
                                             dir=self._directory.path())
            self._file = os.fdopen(fd, "wb")
            self._file.write(self._head)
            self._head = bytearray()
        self._file.write(data)

    def finish(self) -> tuple[bytes, str | None]:
        """What was kept: the bytes in memory, or ``b""`` and the spool file's path."""
        if self._file is not None:
            self._file.close()
            self._file = None
        return bytes(self._head), self.path

    def discard(self) -> None:
        """Forget a result that will never complete (its peer is gone)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.path is not None:
            remove_quietly(self.path)
            self.path = None
        self._head = bytearray()


def remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
