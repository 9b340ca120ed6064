"""Helpers of the factory tests: a real CCTools manager, reading a factory's status lines."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.support import SYSTEM_PYTHON, LineReader, Processes

HERE = Path(__file__).resolve().parent
STATUS_RE = re.compile(r"\|submitted: (\d+) \|needed: (\d+) \|waiting connection: (\d+) \|requested: (\d+)")


def statuses(lines: list[str]) -> list[tuple[int, int]]:
    """(submitted, needed) of every factory status line."""
    found = []
    for line in lines:
        match = STATUS_RE.search(line)
        if match:
            found.append((int(match.group(1)), int(match.group(2))))
    return found


class CCToolsManager:
    """A real CCTools manager (Debian's python3-workqueue) driven through stdin."""

    def __init__(self, processes: Processes, name: str, catalog: str | None = None,
                 initial_tasks: tuple[int, float] | None = None) -> None:
        argv = [SYSTEM_PYTHON, str(HERE / "cctools_manager.py"), name]
        if catalog:
            argv += [catalog] + ([str(v) for v in initial_tasks] if initial_tasks else [])
        self.proc = processes.start(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
        self.output = LineReader(self.proc.stdout)
        _, line = self.output.wait_for(lambda s: s.startswith("port "), 30, "the CCTools manager's port")
        self.port = int(line.split()[1])

    def submit(self, count: int, seconds: float) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"submit {count} {seconds}\n")
        self.proc.stdin.flush()

    def done_count(self) -> int:
        return sum(1 for line in self.output.snapshot() if line.startswith("done "))
