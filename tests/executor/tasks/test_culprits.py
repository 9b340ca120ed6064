"""Errors that name the culprit and spend no retries when a retry cannot help.

A truncated environment tarball (a real gzip stream cut in half) on both worker kinds, warm and
cold; a tarball that is not gzip at all; a missing input file and a missing tree with retries left.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
from coffea import processor
from coffea.nanoevents import NanoAODSchema

import coffea_wq
from coffea_wq.executor.errors import EnvironmentFileError, ExecutorConfigError, TaskFailedError
from coffea_wq.executor.tasks.culprits import environment_failure_reason
from tests import support
from tests.executor import helpers, nano


def packed_environment(path: Path, with_python: bool = True, truncate: bool = False) -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        payload = os.urandom(100_000)  # incompressible, so that half the stream is half the file
        info = tarfile.TarInfo("bin/python" if with_python else "lib/nothing")
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    data = buffer.getvalue()
    path.write_bytes(data[: len(data) // 2] if truncate else data)
    return path


@pytest.fixture(scope="module")
def one_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nano")
    return {"ttlike": [str(nano.write_nano_file(folder / "ttlike_a1.root", 1400, seed=11))]}


def _run(executor: coffea_wq.WorkQueueExecutor, fileset: dict, **runner_options):
    runner = processor.Runner(executor=executor, chunksize=helpers.CHUNKSIZE, schema=NanoAODSchema,
                              metadata_cache={}, **runner_options)
    return runner(fileset, nano.LeptonJetProcessor(), treename="Events")


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "warm"), [("coffea-wq", True), ("coffea-wq", False), ("cctools", False)],
                         ids=["coffea-wq-warm", "coffea-wq-cold", "work_queue_worker"])
def test_a_truncated_environment_tarball_fails_the_run_naming_it(tmp_path, one_file, kind, warm):
    if kind == "cctools" and not support.REAL_WORKER:
        support.skip_not_installed("work_queue_worker", "coop-computing-tools")
    tarball = packed_environment(tmp_path / "my_env.tar.gz", truncate=True)
    executor = coffea_wq.WorkQueueExecutor(local_workers=1, local_worker_kind=kind, warm_python=warm, status=False,
                                           environment_file=str(tarball), retries=2, filepath=str(tmp_path))
    with pytest.raises(EnvironmentFileError) as info:
        _run(executor, one_file)
    text = str(info.value)
    assert text.startswith(f"environment_file {str(tarball)!r} is corrupt or truncated"), text
    assert "coffea_wq_env_run" in text  # what the worker said
    assert info.value.tarball == str(tarball) and info.value.attempts == 1  # no retry on a broken tarball
    assert coffea_wq.last_report().retried == 0


def test_a_tarball_that_is_not_gzip_is_refused_before_any_task(tmp_path, one_file):
    tarball = tmp_path / "env.tar.gz"
    tarball.write_bytes(b"PK\x03\x04 a zip file renamed")
    executor = coffea_wq.WorkQueueExecutor(local_workers=0, port=0, status=False, environment_file=str(tarball),
                                           filepath=str(tmp_path))
    with pytest.raises(ExecutorConfigError, match=r"env\.tar\.gz.*is not a gzip file"):
        _run(executor, one_file)


def test_a_sound_tarball_here_means_a_damaged_copy_there_which_a_retry_can_fix(tmp_path):
    sound = packed_environment(tmp_path / "sound.tar.gz")
    reason, retry = environment_failure_reason(sound, "sound-1-2.tar.gz", "node7 (10.0.0.7:9000)",
                                               "coffea_wq_env_run: ... is corrupt or truncated: tar: EOF")
    assert retry and str(sound) in reason and "node7" in reason and "arrived damaged" in reason
    no_python = packed_environment(tmp_path / "data.tar.gz", with_python=False)
    reason, retry = environment_failure_reason(no_python, "data-1-2.tar.gz", "node7", "")
    assert not retry and "no bin/python" in reason and str(no_python) in reason


@pytest.mark.slow
def test_a_missing_file_and_a_missing_tree_spend_no_retries(tmp_path, one_file):
    executor = coffea_wq.WorkQueueExecutor(local_workers=1, status=False, retries=2, filepath=str(tmp_path))
    missing = {"ttlike": [str(tmp_path / "gone.root")]}
    with pytest.raises(TaskFailedError, match="gone.root") as info:
        _run(executor, missing)
    assert info.value.attempts == 1 and "not retried: the input file does not exist" in str(info.value)
    assert coffea_wq.last_report().retried == 0
    no_tree = {"ttlike": {"files": one_file["ttlike"], "treename": "NoSuchTree"}}
    with pytest.raises(TaskFailedError, match="ttlike_a1.root") as info:
        _run(executor, no_tree)
    assert info.value.attempts == 1 and "not retried: the file has no such tree" in str(info.value)
    assert coffea_wq.last_report().retried == 0
