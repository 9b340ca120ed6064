"""A rogue manager (raw socket) cannot make a real ``coffea-wq worker`` write or read outside its workspace
through a symlink it planted (docs/worker.md, "Sandbox")."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

from coffea_wq.worker.cache import CacheError, FileCache
from tests.support import LOOPBACK, coffea_wq_command
from tests.worker.fake_manager import FakeManager

SECRET = b"SECRET-CONTENT-OUTSIDE"


@pytest.fixture
def outside(tmp_path) -> Path:
    path = tmp_path / "elsewhere"
    path.mkdir()
    (path / "secret").write_bytes(SECRET)
    return path


@pytest.fixture
def rogue(processes, tmp_path):
    """A listening rogue manager and the accepted connection of a real worker, handshake done."""
    manager = FakeManager()
    processes.start(coffea_wq_command("worker", "--cores", "1", "--memory", "500", "--disk", "500", "-s",
                                      str(tmp_path / "w"), "-t", "30", LOOPBACK, str(manager.port)),
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        peer = manager.accept(60)
        peer.handshake(60)
        yield peer
        peer.close()
    finally:
        manager.close()


def _plant_link(peer, outside: Path) -> None:
    target = str(outside).encode()
    peer.send(b"dir d\n" + f"symlink link {len(target)}\n".encode() + target + b"end\n")


def test_get_through_a_planted_symlink_reads_nothing_outside(rogue, outside):
    _plant_link(rogue, outside)
    assert rogue.get("d/link/secret") == [(f"missing d/link/secret {errno.EACCES}", None)]
    assert rogue.get("d/link") == [(f"missing d/link {errno.EACCES}", None)]
    assert rogue.get("d") == [("dir d 0", None)]  # the link is left out of the tree
    rogue.send(b"check\n")
    assert rogue.read_until(lambda line: line == "alive")  # still serving


def test_put_through_a_planted_symlink_writes_nothing_outside(rogue, outside):
    _plant_link(rogue, outside)
    rogue.put("d/link/f", b"owned")
    assert rogue.closed_by_worker(30), "the worker kept serving a manager that writes through a symlink"
    assert sorted(os.listdir(outside)) == ["secret"]


def test_a_task_input_through_a_linked_directory_stays_in_the_sandbox(rogue, outside):
    """Input ``x`` is the directory holding the link; input ``x/link/f`` would land outside: the task
    fails with INPUT_MISSING and nothing is written there."""
    _plant_link(rogue, outside)
    rogue.put("f1", b"owned")
    rogue.task(1, "true", inputs=[("d", "x", 0), ("f1", "x/link/f", 0)],
               resources={"cores": 1, "memory": 10, "disk": 10})
    (result,) = rogue.results(1, timeout=60)
    assert result.status == 1 and b"out of the sandbox" in result.output  # INPUT_MISSING, naming why
    assert sorted(os.listdir(outside)) == ["secret"]


def test_cache_names_resolve_inside(tmp_path, outside):
    cache = FileCache(tmp_path / "cache")
    (cache.root / "d").mkdir()
    os.symlink(outside, cache.root / "d" / "link")
    for name in ("d/link/f", "d/link/sub/f", "../x", "d/../../x"):
        with pytest.raises(CacheError):
            cache.path_of(name)
    assert cache.path_of("d/link") == cache.root / "d" / "link"  # the link itself may be replaced or removed
    cache.remove("d/link")
    assert (outside / "secret").read_bytes() == SECRET
