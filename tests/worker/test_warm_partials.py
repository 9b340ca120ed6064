"""Partials in warm slots (docs/reduction.md, section 1): the real task script in real zygote slots.

Chunk tasks add their value to their slot's partial and write "held" records; a flush task reaches
the slot holding its partial (waiting while that slot is busy) or reports the partial lost; a slot's
last task and a failing task hand the partial back.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time

import cloudpickle
import lz4.frame
import pytest

from coffea_wq.executor.results.outcome import OutcomeKind, read_outcome
from coffea_wq.executor.tasks import task_clock, task_script
from coffea_wq.worker import warm
from coffea_wq.worker.warm import WarmProcess, WarmPythonPool

COMMAND = "python3 coffea_wq_task.py fn.pkl item.pkl out.lz4"
TOKEN = "tok0123"


def _count(item):
    if item == "boom":
        raise ValueError("boom")
    if item == "slow":
        time.sleep(1.5)
    return {"n": 1, "seen": {item: 1}}


cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, COFFEA_WQ_WARM="1", COFFEA_WQ_PRELOAD="cloudpickle,lz4.frame,coffea.processor",
               COFFEA_WQ_RUN="run-1")
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env["PATH"]])
    env.update(extra)
    return env


class Tasks:
    """Sandboxes of one run's tasks under ``root``, started in ``pool``."""

    def __init__(self, root, pool: WarmPythonPool, reduce: dict | None = None, **env: str):
        self.root, self.pool, self.env, self.count = root, pool, env, 0
        self.payload = cloudpickle.dumps({"function": _count, "compression": 1, "reduce": reduce or {}})

    def sandbox(self, item) -> os.PathLike:
        self.count += 1
        sandbox = self.root / f"t.{self.count}"
        sandbox.mkdir()
        (sandbox / "coffea_wq_task.py").write_bytes(open(task_script.__file__, "rb").read())
        (sandbox / task_script.CLOCK_SCRIPT).write_bytes(open(task_clock.__file__, "rb").read())
        (sandbox / "fn.pkl").write_bytes(self.payload)
        (sandbox / "item.pkl").write_bytes(pickle.dumps(item))
        return sandbox

    def start(self, item, key: int | None = None, flush: str | None = None, wait: bool = True):
        sandbox = self.sandbox(item)
        env = _env(**self.env, **({"COFFEA_WQ_CHUNK": str(key)} if key is not None else {}),
                   **({"COFFEA_WQ_FLUSH": flush} if flush else {}))
        request = self.pool.parse_warm_command(COMMAND, env)
        if not wait:
            return sandbox, self.pool.start_async(request, sandbox, env, self.root / f"{sandbox.name}.stdout")
        process = self.pool.start(request, sandbox, env, self.root / f"{sandbox.name}.stdout")
        assert isinstance(process, WarmProcess), "the task ran cold: no slot is under test"
        return sandbox, process

    def run(self, item, key: int | None = None, flush: str | None = None) -> dict:
        sandbox, process = self.start(item, key, flush)
        process.wait(timeout=60)
        return record_of(sandbox)


def record_of(sandbox) -> dict:
    """The task's record, with a partial's value (written after the record, task_script.py) put back in."""
    with lz4.frame.open(sandbox / "out.lz4", "rb") as f:
        record = pickle.load(f)
        carrier = record.get("partial") if record.get("status") == "error" else record
        if isinstance(carrier, dict) and carrier.pop(task_script.VALUE_FOLLOWS, False):
            carrier["value"] = pickle.load(f)
    return record


@pytest.fixture
def pool():
    warm = WarmPythonPool(token=TOKEN)
    yield warm
    warm.close()


def test_values_join_the_slot_partial_and_a_flush_reaches_the_busy_slot_holding_it(tmp_path, pool, monkeypatch):
    tasks = Tasks(tmp_path, pool, reduce={"every": None, "seconds": None})
    first = tasks.run("a", key=1)
    # the zygote is up: a start now times out quickly, except a flush waiting for its busy slot
    monkeypatch.setattr(warm, "START_TIMEOUT_S", 0.5)
    assert first["status"] == "held" and first["count"] == 1 and "value" not in first
    held = first["partial"]
    token, slot_pid, seq = held.split("/")
    assert token == TOKEN and seq == "0"

    slow_box, slow = tasks.start("slow", key=3)  # the only idle slot, the holder, is now busy
    assert slow.pid == int(slot_pid)
    flush_box, flush = tasks.start(None, flush=held, wait=False)  # must wait for that slot
    other = tasks.run("b", key=2)  # a second slot is forked for it: its own partial
    assert other["status"] == "held" and other["partial"].split("/")[1] != slot_pid
    slow.wait(timeout=60)
    assert record_of(slow_box)["partial"] == held and record_of(slow_box)["count"] == 2
    assert flush.wait(timeout=60) == 0
    flushed = record_of(flush_box)
    # the flush ran in the holding slot after the slow task: both keys, both values
    assert flushed["status"] == "partial" and flushed["partial"] == held
    assert sorted(flushed["keys"]) == [1, 3] and flushed["value"] == {"n": 2, "seen": {"a": 1, "slow": 1}}
    lost = tasks.run(None, flush=held)  # handed back already: this slot no longer has it
    assert lost["status"] == "lost" and lost["partial"] == held and "value" not in lost
    second = tasks.run(None, flush=other["partial"])
    assert second["status"] == "partial" and second["keys"] == [2] and second["value"]["seen"] == {"b": 1}


def test_a_failing_task_carries_the_partial_and_the_slots_last_task_hands_it_back(tmp_path, pool):
    tasks = Tasks(tmp_path, pool, reduce={"every": None, "seconds": None}, COFFEA_WQ_SLOT_TASKS="3")
    assert tasks.run("a", key=1)["status"] == "held"
    failed = tasks.run("boom", key=2)
    assert failed["status"] == "error" and "boom" in failed["message"]
    assert failed["partial"]["keys"] == [1] and failed["partial"]["value"] == {"n": 1, "seen": {"a": 1}}
    # the failed task retired its slot; the next one starts a fresh partial in a fresh slot
    records = [tasks.run(item, key=key) for key, item in ((3, "c"), (4, "d"), (5, "e"))]
    assert [r["status"] for r in records] == ["held", "held", "partial"]
    assert records[2]["keys"] == [3, 4, 5] and records[2]["value"]["n"] == 3
    assert records[0]["partial"] != failed["partial"]["id"]


def test_every_n_chunks_hands_the_partial_back_and_skipped_chunks_stay_out(tmp_path, pool):
    tasks = Tasks(tmp_path, pool, reduce={"every": 2, "seconds": None})
    first, second, third = (tasks.run(item, key=key) for key, item in ((1, "a"), (2, "b"), (3, "c")))
    assert (first["status"], second["status"], third["status"]) == ("held", "partial", "held")
    assert second["keys"] == [1, 2] and third["partial"] != first["partial"]
    # without a chunk key (a task the executor does not reduce) the value comes back as before
    plain = tasks.run("z")
    assert plain["status"] == "ok" and plain["value"] == {"n": 1, "seen": {"z": 1}}


def test_a_cold_run_of_a_reducing_task_writes_its_value(tmp_path):
    tasks = Tasks(tmp_path, pool=None, reduce={"every": None, "seconds": None})
    sandbox = tasks.sandbox("a")
    env = _env(COFFEA_WQ_CHUNK="1", COFFEA_WQ_WORKER_TOKEN=TOKEN)
    subprocess.run(COMMAND, shell=True, cwd=sandbox, env=env, check=True, timeout=120)
    assert record_of(sandbox)["status"] == "ok" and record_of(sandbox)["value"]["n"] == 1


def test_a_slot_holding_a_partial_outlives_the_ordinary_idle_time(tmp_path, pool):
    tasks = Tasks(tmp_path, pool, reduce={"every": None, "seconds": None}, COFFEA_WQ_SLOT_IDLE="0.3",
                  COFFEA_WQ_SLOT_PARTIAL_IDLE="60")
    held = tasks.run("a", key=1)["partial"]
    plain = tasks.run("z")  # a second slot would only be forked if the first were let go
    time.sleep(1.5)  # five ordinary idle times
    flushed = tasks.run(None, flush=held)
    assert plain["status"] == "ok" and flushed["status"] == "partial" and flushed["keys"] == [1]


def test_held_partial_ok_and_error_records_all_carry_their_phases(tmp_path, pool):
    """Where the time went (docs/executor.md, section 10): every kind of record says it."""
    tasks = Tasks(tmp_path, pool, reduce={"every": 2, "seconds": None})
    outcomes = []
    for key, item in ((1, "slow"), (2, "b"), (3, "boom")):
        sandbox, process = tasks.start(item, key=key)
        process.wait(timeout=60)
        outcomes.append(read_outcome(sandbox / "out.lz4"))
    plain = Tasks(tmp_path / "plain", pool)  # no reduction: an ok record
    (tmp_path / "plain").mkdir()
    sandbox, process = plain.start("a")
    process.wait(timeout=60)
    outcomes.append(read_outcome(sandbox / "out.lz4"))
    assert [o.kind for o in outcomes] == [OutcomeKind.HELD, OutcomeKind.PARTIAL, OutcomeKind.REMOTE_ERROR,
                                          OutcomeKind.OK]
    for outcome in outcomes:
        assert outcome.phases["start_warm"] > 0 and "process" in outcome.phases and outcome.phases["write"] > 0
    held, partial = outcomes[0], outcomes[1]
    assert 1.5 <= held.phases["process"] < 3  # the slow item sleeps 1.5 s in the function
    assert partial.phases["process"] < 1 and partial.phases["accumulate"] > 0  # added into the partial
