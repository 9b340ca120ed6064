"""The local back-end end to end: a real CCTools manager, `coffea-wq factory -T local`, real workers."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.factory.helpers import STATUS_RE, CCToolsManager, statuses
from tests.support import LineReader, coffea_wq_command, requires_cctools, requires_cctools_python

pytestmark = [requires_cctools, requires_cctools_python, pytest.mark.slow]


def start_factory(processes, port: int, scratch, *options: str) -> tuple[subprocess.Popen, LineReader]:
    argv = coffea_wq_command("factory", "-T", "local", "127.0.0.1", str(port), "-S", str(scratch),
                             "--cycle-interval", "1", *options)
    proc = processes.start(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc, LineReader(proc.stdout)


def status_where(submitted: int, needed: int | None = None):
    def predicate(line: str) -> bool:
        match = STATUS_RE.search(line)
        return bool(match) and int(match.group(1)) == submitted and (
            needed is None or int(match.group(2)) == needed)
    return predicate


def stop_factory(proc: subprocess.Popen, output: LineReader) -> None:
    proc.send_signal(2)  # SIGINT, as Ctrl-C
    assert proc.wait(timeout=30) == 0
    output.wait_for(lambda s: s == "all workers removed.", 10, "the factory's clean-up message")


def test_scales_from_min_to_max_and_back_as_workers_time_out(processes, tmp_path):
    manager = CCToolsManager(processes, "fac-scale")
    factory, output = start_factory(processes, manager.port, tmp_path / "scratch", "--min-workers", "1",
                                    "--max-workers", "3", "--workers-per-cycle", "3", "--cores", "1",
                                    "--timeout", "3")
    output.wait_for(status_where(1, 1), 60, "the minimum of one worker")
    manager.submit(6, 3)
    index, _ = output.wait_for(status_where(3, 3), 60, "the pool to grow to max-workers=3")
    # 6 one-core tasks want 6 workers: the pool never exceeds max-workers.
    assert max(s for s, _ in statuses(output.snapshot())) == 3
    output.wait_for(lambda s: manager.done_count() == 6, 120, "the six tasks to finish")
    # Idle workers time out after 3 s; the factory keeps (re-submits) the minimum.
    output.wait_for(status_where(1, 1), 60, "the pool to shrink back to min-workers=1", start=index + 1)
    stop_factory(factory, output)


def test_json_edit_changes_the_pool_within_two_cycles_and_a_broken_edit_is_reported(processes, tmp_path):
    manager = CCToolsManager(processes, "fac-json")
    manager.submit(20, 60)
    config = tmp_path / "fac.json"
    config.write_text(json.dumps({"min-workers": 1, "max-workers": 1, "workers-per-cycle": 5, "cores": 1,
                                  "timeout": 30}))
    factory, output = start_factory(processes, manager.port, tmp_path / "scratch", "-C", str(config))
    output.wait_for(lambda s: "has been loaded" in s, 30, "the config to be loaded")
    output.wait_for(status_where(1, 1), 60, "one worker (max-workers=1)")

    config.write_text(json.dumps({"min-workers": 1, "max-workers": 3, "workers-per-cycle": 5, "cores": 1,
                                  "timeout": 30}))
    edit = len(output.snapshot())
    index, _ = output.wait_for(lambda s: "max-workers: 3" in s, 30, "the edited config to be loaded", edit)
    output.wait_for(status_where(3, 3), 30, "three workers after raising max-workers", edit)
    cycles = [line for line in output.snapshot()[edit:] if STATUS_RE.search(line)]
    reached = next(i for i, line in enumerate(cycles) if status_where(3)(line))
    assert reached <= 2, f"the pool reached 3 only after {reached} cycles: {cycles}"

    config.write_text('{"max-workers": 3, "min-workers": ')  # a half-written edit
    edit = len(output.snapshot())
    output.wait_for(lambda s: "not valid JSON" in s and str(config) in s, 30, "the broken edit to be reported",
                    edit)
    # The last good configuration is kept: the pool stays at three.
    output.wait_for(status_where(3, 3), 30, "the pool to keep three workers", edit)
    assert factory.poll() is None

    config.write_text(json.dumps({"min-workers": 1, "max-workers": 1, "cores": 1, "timeout": 30}))
    edit = len(output.snapshot())
    output.wait_for(status_where(1, 1), 30, "the pool to shrink after lowering max-workers", edit)
    cycles = [line for line in output.snapshot()[edit:] if STATUS_RE.search(line)]
    assert len(cycles) <= 3, f"the pool took more than two cycles to follow the edit: {cycles}"
    stop_factory(factory, output)
