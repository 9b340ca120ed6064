"""Shared pieces of the executor tests: input files, reference runs, worker command lines."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import cloudpickle
from coffea import processor
from coffea.nanoevents import NanoAODSchema

from tests import support
from tests.executor import nano

# the processor travels by value, so workers need no access to the tests package
cloudpickle.register_pickle_by_value(nano)

CHUNKSIZE = 700


def make_fileset(directory: Path) -> dict[str, list[str]]:
    """Two datasets, three files, 5,000 events: 7 chunks at CHUNKSIZE (2 + 2 + 3)."""
    a1 = nano.write_nano_file(directory / "ttlike_a1.root", 1400, seed=11)
    a2 = nano.write_nano_file(directory / "ttlike_a2.root", 1400, seed=12)
    b1 = nano.write_nano_file(directory / "dylike_b1.root", 2200, seed=13)
    return {"ttlike": [str(a1), str(a2)], "dylike": [str(b1)]}


def iterative_output(fileset: dict, chunksize: int = CHUNKSIZE, proc: processor.ProcessorABC | None = None) -> dict:
    runner = processor.Runner(executor=processor.IterativeExecutor(status=False), chunksize=chunksize,
                              schema=NanoAODSchema)
    return runner(fileset, proc or nano.LeptonJetProcessor(), treename="Events")


def all_chunks(fileset: dict, chunksize: int = CHUNKSIZE) -> set:
    runner = processor.Runner(executor=processor.IterativeExecutor(status=False), chunksize=chunksize,
                              schema=NanoAODSchema)
    return set(runner.preprocess(fileset, treename="Events"))


def worker_environment() -> dict[str, str]:
    """Tasks run ``python3``: make it this interpreter, as a user's activated environment would."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    env["PYTHONPATH"] = str(support.REPO)
    return env


def worker_argv(kind: str, port: int, workdir: Path) -> list[str]:
    """A one-core worker of ``kind`` that measures its memory and disk."""
    return support.worker_argv(kind, port, workdir, cores=1)
