"""Executor building blocks: options, copy-safety, executor_args, splitting, the task runner script."""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings

import cloudpickle
import pytest
from coffea.processor.executor import WorkItem

import coffea_wq
from coffea_wq.executor import WorkQueueExecutor
from coffea_wq.executor.compat import split_executor_args
from coffea_wq.executor.errors import ExecutorConfigError, TaskFailedError, describe_item
from coffea_wq.executor.options import resolved_local_workers
from coffea_wq.executor.results.outcome import OutcomeKind, read_outcome
from coffea_wq.executor.tasks import task_script
from coffea_wq.executor.tasks.splitting import split_work_item

# functions defined here run in a fresh interpreter that cannot import the tests package
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def test_copy_keeps_every_option_and_accepts_overrides():
    ex = WorkQueueExecutor(manager_name="me", port=[9123, 9130], retries=5, extra_input_files=[], cores=1)
    copied = ex.copy(unit="chunk", function_name="Proc")
    assert copied.manager_name == "me" and copied.port == [9123, 9130] and copied.retries == 5
    assert (copied.unit, copied.function_name) == ("chunk", "Proc")
    assert copied.__dict__.keys() == ex.__dict__.keys()


def test_master_name_is_a_deprecated_alias_that_survives_copy():
    with pytest.warns(DeprecationWarning, match="manager_name"):
        ex = WorkQueueExecutor(master_name="old-name")
    assert ex.manager_name == "old-name" and ex.master_name is None
    assert ex.copy(desc="Preprocessing").manager_name == "old-name"


@pytest.mark.parametrize("option, value, culprit", [
    ("resources_mode", "greedy", "resources_mode"),
    ("resource_monitor", "sometimes", "resource_monitor"),
    ("retries", -1, "retries"),
    ("port", [9130, 9123], "port"),
    ("port", "9123", "port"),
    ("local_workers", -2, "local_workers"),
    ("extra_input_files", ["/nonexistent/topeft.py"], "/nonexistent/topeft.py"),
    ("environment_file", "/nonexistent/env.tar.gz", "environment_file"),
])
def test_bad_option_is_named(option, value, culprit):
    with pytest.raises(ExecutorConfigError, match=culprit.replace(".", r"\.")):
        WorkQueueExecutor(**{option: value})


def test_not_implemented_option_is_accepted_with_a_warning():
    with pytest.warns(UserWarning, match="tasks_accum_log"):
        WorkQueueExecutor(tasks_accum_log="accum.log")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        WorkQueueExecutor()  # defaults warn about nothing


def test_local_workers_default_to_cores_unless_named():
    assert resolved_local_workers(WorkQueueExecutor()) >= 1
    assert resolved_local_workers(WorkQueueExecutor(manager_name="x")) == 0
    assert resolved_local_workers(WorkQueueExecutor(manager_name="x", local_workers=3)) == 3


def test_executor_args_are_sorted_without_touching_the_callers_dict():
    args = {"schema": "S", "master-name": "me", "port": [9123, 9130], "extra-input-files": [],
            "cores": 1, "memory": 800, "disk": 900, "resource-monitor": True, "resources-mode": "auto",
            "verbose": False, "debug-log": "d.log", "transactions-log": "t.log", "stats-log": "s.log",
            "skipbadfiles": False, "xrootdtimeout": 180, "savemetrics": True, "retries": 5}
    before = pickle.dumps(args)
    exe, runner = split_executor_args(args)
    assert pickle.dumps(args) == before
    assert runner == {"schema": "S", "skipbadfiles": False, "xrootdtimeout": 180, "savemetrics": True}
    assert exe["master_name"] == "me" and exe["debug_log"] == "d.log" and exe["retries"] == 5
    with pytest.warns(DeprecationWarning):
        WorkQueueExecutor(**exe)  # every executor key is a real option


def test_misspelt_executor_args_key_names_it_and_the_closest_valid_one():
    with pytest.raises(ExecutorConfigError, match=r"'enviroment-file'.*'environment_file'"):
        split_executor_args({"enviroment-file": "env.tar.gz"})
    with pytest.raises(ExecutorConfigError, match="given twice|twice"):
        split_executor_args({"master-name": "a", "master_name": "b"})


def test_trust_options_have_executor_args_keys():
    exe, _ = split_executor_args({"manager-host": "127.0.0.1", "ssl": True, "allowed-result-modules": ["mypkg"]})
    assert exe == {"manager_host": "127.0.0.1", "ssl": True, "allowed_result_modules": ["mypkg"]}
    assert split_executor_args({"bind": "10.0.0.1"})[0] == {"manager_host": "10.0.0.1"}
    assert split_executor_args({"host": "10.0.0.1"})[0] == {"manager_host": "10.0.0.1"}
    with pytest.raises(ExecutorConfigError, match="twice"):
        split_executor_args({"host": "a", "manager-host": "b"})
    with pytest.raises(ExecutorConfigError, match="ssl="):
        WorkQueueExecutor(ssl="yes")
    with pytest.raises(ExecutorConfigError, match="allowed_result_modules"):
        WorkQueueExecutor(allowed_result_modules="mypkg")


def test_split_work_item_keeps_metadata_and_covers_the_range():
    item = WorkItem("ds", "f.root", "Events", 10, 17, b"u" * 16, usermeta={"k": 1}, preload=frozenset({"Jet_pt"}))
    pieces = split_work_item(item)
    assert [(p.entrystart, p.entrystop) for p in pieces] == [(10, 13), (13, 17)]
    assert all(p.usermeta == {"k": 1} and p.preload == frozenset({"Jet_pt"}) for p in pieces)
    assert split_work_item(WorkItem("ds", "f", "t", 3, 4, b"")) == [WorkItem("ds", "f", "t", 3, 4, b"")]
    assert len(split_work_item(WorkItem("ds", "f", "t", 0, 100, b""), 8)) == 8


def _run_script(tmp_path, function, item):
    (tmp_path / "fn.pkl").write_bytes(cloudpickle.dumps({"function": function, "compression": 1}))
    (tmp_path / "item.pkl").write_bytes(pickle.dumps(item))
    proc = subprocess.run([sys.executable, task_script.__file__, "fn.pkl", "item.pkl", "out.lz4"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    return proc, read_outcome(tmp_path / "out.lz4")


def test_task_script_writes_the_value(tmp_path):
    proc, outcome = _run_script(tmp_path, lambda item: {"n": item * 2}, 21)
    assert proc.returncode == 0 and outcome.kind is OutcomeKind.OK and outcome.value == {"n": 42}


def _explode(item):
    raise KeyError(f"no such column for {item}")


def test_task_script_sends_back_the_remote_traceback(tmp_path):
    proc, outcome = _run_script(tmp_path, _explode, "chunk-7")
    assert proc.returncode == 1 and outcome.kind is OutcomeKind.REMOTE_ERROR
    assert "KeyError" in outcome.remote.type_name and "chunk-7" in outcome.remote.message
    assert "_explode" in outcome.remote.traceback and isinstance(outcome.remote.exception, KeyError)


def test_task_script_reports_an_unpicklable_result(tmp_path):
    proc, outcome = _run_script(tmp_path, lambda item: (x for x in range(3)), 0)
    assert proc.returncode == 1 and outcome.kind is OutcomeKind.REMOTE_ERROR
    assert "generator" in outcome.remote.message


def test_task_script_usage_error_names_the_arguments(tmp_path):
    proc = subprocess.run([sys.executable, task_script.__file__, "only-one"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "FUNCTION_FILE ITEM_FILE OUTPUT_FILE" in proc.stderr


def test_missing_or_foreign_output_is_reported(tmp_path):
    assert read_outcome(tmp_path / "none.lz4").kind is OutcomeKind.MISSING
    (tmp_path / "junk.lz4").write_bytes(b"not lz4 at all")
    outcome = read_outcome(tmp_path / "junk.lz4")
    assert outcome.kind is OutcomeKind.UNREADABLE and "junk.lz4" in outcome.detail


def test_task_failed_error_names_the_chunk_and_keeps_the_cause():
    from coffea_wq.executor.errors import RemoteError

    item = WorkItem("ttbar", "/data/a.root", "Events", 100, 200, b"")
    cause = OSError("disk on fire")
    err = TaskFailedError(item, 3, "OSError: disk on fire",
                          remote=RemoteError("builtins.OSError", "disk on fire", "Traceback...\nOSError", cause, "w1"))
    text = str(err)
    assert "dataset 'ttbar'" in text and "'/data/a.root'" in text and "[100, 200)" in text
    assert "3 attempt" in text and "Traceback..." in text and err.__cause__ is cause
    assert describe_item(item) in text


def test_public_names_are_exported():
    assert coffea_wq.WorkQueueExecutor is WorkQueueExecutor
    assert coffea_wq.work_queue_executor is WorkQueueExecutor
    assert callable(coffea_wq.run_uproot_job)


def _wrapped(item):
    try:
        raise FileNotFoundError(f"missing {item}")
    except FileNotFoundError as exc:
        raise RuntimeError("Failed to open file") from exc


def test_task_script_keeps_the_cause_chain(tmp_path):
    proc, outcome = _run_script(tmp_path, _wrapped, "a.root")
    exc = outcome.remote.exception
    assert isinstance(exc, RuntimeError) and isinstance(exc.__cause__, FileNotFoundError)
    assert "missing a.root" in str(exc.__cause__)
