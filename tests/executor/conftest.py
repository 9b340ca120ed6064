"""Fixtures of the executor tests: the small NanoAOD fileset and its reference output, made once per module."""

from __future__ import annotations

import pytest

from tests.executor import helpers


@pytest.fixture(scope="module")
def fileset(tmp_path_factory):
    return helpers.make_fileset(tmp_path_factory.mktemp("nano"))


@pytest.fixture(scope="module")
def reference(fileset):
    """What coffea's own IterativeExecutor makes of ``fileset``: the output every executor must match."""
    return helpers.iterative_output(fileset)
