"""environment_file: tasks run through envtools' coffea_wq_env_run, cold and in warm slots."""

from __future__ import annotations

import io
import os
import sys
import tarfile

import cloudpickle
import pytest
from coffea import processor
from coffea.nanoevents import NanoAODSchema

import coffea_wq
from coffea_wq.executor import last_report
from tests.executor import helpers

pytestmark = pytest.mark.slow
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _tiny_environment(path):
    """A packed 'environment' whose bin/python hands over to this test's interpreter (no 300 MB venv)."""
    script = f'#!/bin/sh\nexec "{sys.executable}" "$@"\n'.encode()
    with tarfile.open(path, "w:gz") as tar:
        for name in ("bin/python", "bin/python3"):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(script), 0o755
            tar.addfile(info, io.BytesIO(script))
    return path


def where_am_i(events):
    return {"virtual_env": {os.environ.get("VIRTUAL_ENV", "")}, "entries": len(events)}


@pytest.mark.parametrize("warm", [True, False])
def test_tasks_run_inside_the_environment(tmp_path, warm):
    fileset = {"ttlike": [str(p) for p in helpers.make_fileset(tmp_path)["ttlike"]]}
    tarball = _tiny_environment(tmp_path / "env_test_fixed.tar.gz")
    executor = coffea_wq.WorkQueueExecutor(local_workers=1, status=False, environment_file=str(tarball),
                                           warm_python=warm)
    runner = processor.Runner(executor=executor, chunksize=helpers.CHUNKSIZE, schema=NanoAODSchema, metadata_cache={})
    out = runner(fileset, where_am_i, treename="Events")
    assert out["entries"] == 2800
    (venv,) = out["virtual_env"]
    assert os.path.basename(venv).startswith("env_test_fixed")  # envtools' unpack directory
    assert last_report("Processing").failed == []
