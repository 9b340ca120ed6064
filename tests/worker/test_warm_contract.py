"""The warm-task contract (coffea_wq/worker/warm_contract.py): what the executor builds, the worker parses back."""

from __future__ import annotations

import pytest

from coffea_wq.executor.tasks.staging import FunctionFile, TaskTemplate
from coffea_wq.worker.warm_contract import (
    WarmCommand,
    build_warm_command,
    marked_warm,
    parse_warm_command,
    preload_modules,
    warm_environment,
)

ROUND_TRIPS = [
    WarmCommand("python3", "fn.pkl", "item.pkl", "out.lz4"),
    WarmCommand("python3", "fn-x-1a2b.pkl", "item.pkl", "out.lz4", env_tarball="3f9e.tar.gz"),
    WarmCommand("/opt/env/bin/python", "fn.pkl", "item.pkl", "out.lz4"),
    WarmCommand("python", "fn with space.pkl", "item.pkl", "out.lz4", env_tarball="env 1.tar.gz"),
]


@pytest.mark.parametrize("command", ROUND_TRIPS)
def test_build_then_parse_gives_the_same_command_back(command):
    assert parse_warm_command(build_warm_command(command)) == command


def test_the_executor_tasks_commands_are_warm_commands(tmp_path):
    function = FunctionFile(tmp_path / "fn.pkl", "fn-proc-0123.pkl")
    plain = TaskTemplate(function=function, script=tmp_path / "coffea_wq_task.py", category="processing")
    assert parse_warm_command(plain.command()) == WarmCommand("python3", "fn-proc-0123.pkl", "item.pkl", "out.lz4")
    with_env = TaskTemplate(function=function, script=tmp_path / "coffea_wq_task.py", category="processing",
                            environment=tmp_path / "env.tar.gz", env_runner=tmp_path / "run",
                            environment_name="abc.tar.gz")
    parsed = parse_warm_command(with_env.command())
    assert parsed is not None and parsed.env_tarball == "abc.tar.gz" and parsed.function == "fn-proc-0123.pkl"


@pytest.mark.parametrize("command", [
    "python3 coffea_wq_task.py fn.pkl item.pkl out.lz4 > log",  # redirection: another shape
    "python3 coffea_wq_task.py fn.pkl item.pkl out.lz4; rm -rf /",
    "python3 other.py fn.pkl item.pkl out.lz4",  # another script
    "perl coffea_wq_task.py fn.pkl item.pkl out.lz4",  # not a python
    "python3 coffea_wq_task.py fn.pkl item.pkl",  # a word short
    "python3 coffea_wq_task.py -c item.pkl out.lz4",  # an option where a file belongs
    "python3 coffea_wq_task.py '' item.pkl out.lz4",  # an empty file name
    "./coffea_wq_env_run env.tar.gz sh -c x y z w",
    "coffea_wq_env_run env.tar.gz python3 coffea_wq_task.py f i o",  # the runner must be ./
    "./coffea_wq_env_run env.tar.gz python3 coffea_wq_task.py f i",
    "python3 coffea_wq_task.py 'unterminated item.pkl out.lz4",  # not even shell words
    "",
])
def test_foreign_commands_are_not_warm(command):
    assert parse_warm_command(command) is None


def test_the_environment_marker_and_preload_list_round_trip():
    env = warm_environment(["coffea.processor", "numpy"])
    assert marked_warm(env) and preload_modules(env) == ("coffea.processor", "numpy")
    assert not marked_warm({}) and not marked_warm({"COFFEA_WQ_WARM": "0"})
    assert preload_modules({}) == () and preload_modules(warm_environment([])) == ()
