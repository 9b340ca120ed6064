"""The churn benchmark's own pieces: the pool's kill and stop, the execution log, chunk plans, idle intervals.

The churn runs themselves are tests/executor/test_churn.py (small) and ``make bench`` (at scale).
"""

from __future__ import annotations

import argparse
import signal
import time

import pytest

from tests import support
from tests.benchmarks.test_bench_helpers import _import_benchmark


@pytest.fixture(scope="module")
def churn():
    return _import_benchmark("churn")


@pytest.fixture(scope="module")
def bench_churn():
    return _import_benchmark("bench_churn")


def test_replace_sigkills_the_worker_and_starts_one_of_its_kind_and_stop_ends_all(churn, tmp_path):
    # no manager on the port: the workers keep trying to connect, which is all this needs
    with churn.ChurnPool(support.free_port(), ["coffea-wq", "coffea-wq"], tmp_path) as pool:
        first = [w.proc for w in pool.workers]
        time.sleep(0.5)
        kill = pool.replace(1)
        assert first[1].wait(timeout=10) == -signal.SIGKILL
        assert first[0].poll() is None  # the other worker is untouched
        assert (kill.slot, kill.kind, pool.kills) == (1, "coffea-wq", 1) and kill.lifetime >= 0.5
        assert pool.workers[1].proc.pid != first[1].pid and pool.workers[1].proc.poll() is None
        assert pool.workers[1].kind == "coffea-wq"
        pool.start_churning(churn.ChurnSchedule(every=(0.1, 0.2)))
        support.wait_until(lambda: pool.kills >= 3, 20, "the churn thread's kills")
        live = [w.proc for w in pool.workers]
    assert all(proc.poll() is not None for proc in [*first, *live])  # stopped and reaped
    assert pool.replace() is None  # a stopped pool replaces nothing


def test_churn_with_min_chunks_kills_only_workers_whose_processes_ran_as_many(churn, tmp_path):
    log = tmp_path / "executions.log"
    with churn.ChurnPool(support.free_port(), ["coffea-wq", "coffea-wq"], tmp_path / "w", executions_log=log) as pool:
        worked = pool.workers[1].proc
        # as if worker 1 had run two chunks, worker 0 one
        log.write_text("".join(f"ds\tf.root\t{i}\t50\t{pool.workers[w].proc.pid}\n" for i, w in ((0, 1), (1, 0), (2, 1))))
        pool.start_churning(churn.ChurnSchedule(every=(0.1, 0.2), min_chunks=2))
        support.wait_until(lambda: pool.kills >= 1, 20, "the kill of the worker that worked")
        time.sleep(1.0)  # its replacement has run nothing, the other worker one chunk: no further kill
        assert [(k.slot, pool.kills) for k in pool.killed] == [(1, 1)]
        assert worked.wait(timeout=10) == -signal.SIGKILL and pool.workers[0].proc.poll() is None
    with pytest.raises(ValueError, match="needs the pool's executions_log"):
        churn.ChurnPool(1, ["coffea-wq"], tmp_path).start_churning(churn.ChurnSchedule((1, 2), min_chunks=1))


def test_unknown_worker_kinds_and_bad_schedules_are_refused(churn, tmp_path):
    with pytest.raises(ValueError, match="unknown worker kind 'condor'"):
        churn.ChurnPool(1, ["coffea-wq", "condor"], tmp_path)
    with pytest.raises(ValueError, match="0 < low <= high"):
        churn.ChurnSchedule(every=(1.0, 0.5))


def test_read_executions_counts_each_chunk_and_names_a_bad_line(churn, tmp_path):
    log = tmp_path / "executions.log"
    assert churn.read_executions(log) == {}  # no execution yet: no file
    log.write_text("ds\tf.root\t0\t50\t11\nds\tf.root\t50\t100\t11\nds\tf.root\t0\t50\t12\n")
    assert churn.read_executions(log) == {("ds", "f.root", 0, 50): 2, ("ds", "f.root", 50, 100): 1}
    log.write_text("ds\tf.root\t0\t50\t11\ngarbage\n")
    with pytest.raises(ValueError, match=r"executions.log:2: not an execution line"):
        churn.read_executions(log)


def test_longest_idle_interval_runs_to_the_next_busy_sample_or_the_end(churn):
    def sample(at, idle, waiting=0):
        return churn.StatusSample(at, 4, idle, 4 - idle, waiting, 4 - idle)

    samples = [sample(0, 0), sample(1, 1, 3), sample(2, 1), sample(5, 0), sample(6, 2, 1), sample(8, 1, 1)]
    assert churn.longest_idle_interval(samples) == 4.0  # from 1 to the busy sample at 5
    assert churn.longest_idle_interval(samples, waiting_only=True) == 2.0  # from 6 to the last sample
    assert churn.longest_idle_interval([]) == 0.0


def test_scenarios_cut_the_bundled_sample_into_the_chunks_asked_for(bench_churn):
    assert bench_churn.plan_chunks(300).chunks == 300  # 50 events each
    capped = bench_churn.plan_chunks(2000)  # 6 events each, the first 667 chunks of each dataset
    assert (capped.chunksize, capped.maxchunks, capped.chunks) == (6, 667, 2001)


def test_flags_override_every_chosen_scenario(bench_churn, monkeypatch):
    monkeypatch.setattr("sys.argv", ["bench_churn.py", "--scenario", "heavy,pool", "--workers", "6",
                                     "--kill-every", "2-3", "--cap", "40"])
    heavy, pool = bench_churn.chosen_scenarios(bench_churn.parse_args())
    assert (heavy.workers, heavy.kill_every, heavy.replace, heavy.cap_s, heavy.reductions) == \
        (6, (2.0, 3.0), 1, 40.0, (True, False))
    assert (pool.workers, pool.replace, pool.chunks) == (6, 2, 2000)  # a third of the pool, as by default


def test_bad_flags_are_named(bench_churn, monkeypatch):
    with pytest.raises(argparse.ArgumentTypeError, match="expected 0 < LOW <= HIGH, not '1-0.5'"):
        bench_churn.parse_interval("1-0.5")
    monkeypatch.setattr("sys.argv", ["bench_churn.py", "--scenario", "heavy,nope"])
    with pytest.raises(SystemExit, match="unknown nope"):
        bench_churn.chosen_scenarios(bench_churn.parse_args())


def test_the_heavy_targets_say_which_run_did_not_finish(bench_churn, capsys):
    heavy = bench_churn.SCENARIOS["heavy"]

    def run(reduction, wall, finished, equal=None):
        return bench_churn.RunResult("heavy", reduction, 300, wall_s=wall, finished=finished, equal=equal)

    bench_churn.print_targets(heavy, {True: run(True, 60.0, True, True), False: run(False, 50.0, True, True)})
    out = capsys.readouterr().out
    assert "reduction on finishes: yes (met); equal to Iterative: yes (met)" in out
    assert "= 1.20x (target <= 1.5x: met)" in out
    bench_churn.print_targets(heavy, {True: run(True, 300.0, False), False: run(False, 42.0, True, True)})
    out = capsys.readouterr().out
    assert "finishes: no (MISSED); equal to Iterative: - (not finished)" in out
    assert "> 7.14x (reduction on did not finish) (target <= 1.5x: MISSED)" in out
    bench_churn.print_targets(heavy, {True: run(True, 300.0, False), False: run(False, 300.0, False)})
    assert "n/a (neither finished) (target <= 1.5x: MISSED)" in capsys.readouterr().out
