"""The worker's cache, sandboxes, machine measurement and options, on real files."""

from __future__ import annotations

import argparse
import os
import subprocess

import pytest

from coffea_wq.protocol.codes import FileFlags
from coffea_wq.protocol.messages import TaskAssignment, TaskFile
from coffea_wq.worker.cache import CacheError, FileCache
from coffea_wq.worker.options import OptionError, configure, options_from_args, parse_manager_addresses
from coffea_wq.worker.resources import measure_resources
from coffea_wq.worker.sandbox import (
    MissingInput,
    Workspace,
    directory_size_mb,
    move_outputs_to_cache,
    prepare_sandbox,
)
from tests.support import coffea_wq_command
from tests.worker.fake_manager import FakeManager


def receive(cache: FileCache, name: str, data: bytes, mode: int = 0o644) -> None:
    incoming = cache.begin_file(name, len(data), mode)
    incoming.write(data)
    incoming.finish()


def test_a_resent_file_does_not_change_a_sandbox_that_links_the_old_one(tmp_path):
    workspace = Workspace(tmp_path / "ws")
    cache = FileCache(workspace.cache_dir)
    receive(cache, "file-0-a", b"version 1")
    task = TaskAssignment(1, "true", inputs=(TaskFile("file-0-a", "sub/a.txt", FileFlags.CACHE),))
    sandbox = prepare_sandbox(workspace, cache, task)
    assert (sandbox / "sub/a.txt").read_bytes() == b"version 1"
    assert os.stat(sandbox / "sub/a.txt").st_ino == os.stat(cache.path_of("file-0-a")).st_ino  # hard link
    receive(cache, "file-0-a", b"version 2", mode=0o400)
    assert (sandbox / "sub/a.txt").read_bytes() == b"version 1"
    assert cache.path_of("file-0-a").read_bytes() == b"version 2"
    assert os.stat(cache.path_of("file-0-a")).st_mode & 0o777 == 0o600  # the owner can always read and write
    assert not [p for p in workspace.cache_dir.iterdir() if p.name.startswith(".incoming")]


def test_directories_symlinks_outputs_and_disk_use(tmp_path):
    workspace = Workspace(tmp_path / "ws")
    cache = FileCache(workspace.cache_dir)
    cache.make_dir("file-1-d", top_level=True)
    cache.make_dir("file-1-d/sub", top_level=False)
    receive(cache, "file-1-d/sub/x", b"x" * 100)
    cache.make_symlink("file-1-d/link", "sub/x")
    task = TaskAssignment(2, "true", empty_dirs=("empty",), inputs=(TaskFile("file-1-d", "d"),),
                    outputs=(TaskFile("file-2-o", "o.txt"), TaskFile("file-3-never", "never.txt")))
    sandbox = prepare_sandbox(workspace, cache, task)
    assert (sandbox / "d/sub/x").read_bytes() == b"x" * 100 and os.readlink(sandbox / "d/link") == "sub/x"
    assert (sandbox / "empty").is_dir()
    assert directory_size_mb(sandbox) == 0, "linked inputs take no new space"
    (sandbox / "o.txt").write_bytes(b"o" * 2_000_000)
    assert 1.9 < directory_size_mb(sandbox) < 2
    move_outputs_to_cache(sandbox, cache, task)
    assert cache.path_of("file-2-o").stat().st_size == 2_000_000 and not cache.contains("file-3-never")
    entries = cache.describe_for_get("file-1-d")
    assert [(e.kind, e.name) for e in entries] == [
        ("dir", "file-1-d"), ("file", "file-1-d/link"), ("dir", "file-1-d/sub"), ("file", "file-1-d/sub/x")]
    cache.make_dir("file-1-d", top_level=True)  # sent again: replaced, not an error
    assert not cache.contains("file-1-d/sub")
    workspace.wipe()
    assert os.listdir(workspace.root) == ["cache"] and not os.listdir(workspace.cache_dir)


def test_missing_inputs_and_escaping_names(tmp_path):
    workspace = Workspace(tmp_path / "ws")
    cache = FileCache(workspace.cache_dir)
    with pytest.raises(MissingInput, match=r"'in.txt' \(cached as 'file-0-x'\) was never sent"):
        prepare_sandbox(workspace, cache, TaskAssignment(3, "true", inputs=(TaskFile("file-0-x", "in.txt"),)))
    with pytest.raises(CacheError, match="leaves the cache"):
        cache.path_of("../outside")
    assert cache.describe_for_get("../outside")[0].kind == "missing"
    cache.remove("never-there")  # a missing name is fine


def test_measured_resources(tmp_path):
    measured = measure_resources(tmp_path)
    assert measured.cores == len(os.sched_getaffinity(0))
    assert measured.memory > 100 and measured.disk > 0
    given = measure_resources(tmp_path, cores=3, memory=500, disk=10**12, gpus=2)
    assert (given.cores, given.memory, given.gpus) == (3, 500, 2)
    assert given.disk == measured.disk or abs(given.disk - measured.disk) < 100  # capped at the free space


def parse(*argv: str):
    parser = argparse.ArgumentParser()
    configure(parser)
    return options_from_args(parser.parse_args(list(argv)))


def test_options():
    options = parse("-t", "30", "--idle-timeout", "5", "--cores", "2", "host", "9123")
    assert options.managers == [("host", 9123)]
    assert (options.idle_timeout, options.connect_timeout, options.cores) == (5, 30, 2)
    assert parse_manager_addresses(["h1:1;h2:2"]) == [("h1", 1), ("h2", 2)]
    assert parse("-M", "proj-.*", "-C", "127.0.0.1:9097").project_regex == "proj-.*"
    for argv, message in [
        (("host",), "is not HOST:PORT"),
        (("host", "99999"), "not a TCP port"),
        ((), "give a manager address"),
        (("-M", "x", "h", "1"), "not both"),
        (("--cores", "-1", "h", "1"), "--cores must not be negative"),
        (("-P", "/nonexistent/pw", "h", "1"), "password file '/nonexistent/pw'"),
        (("-M", "(bad"), "not a valid regular expression"),
    ]:
        with pytest.raises(OptionError, match=message):
            parse(*argv)


def test_python_dash_m_entry_point(processes, tmp_path):
    manager = FakeManager()
    try:
        worker = processes.start(
            [*coffea_wq_command()[:2], "coffea_wq.worker", "--single-shot", "--cores", "1", "--workdir",
             str(tmp_path), "127.0.0.1", str(manager.port)], stderr=subprocess.DEVNULL)
        peer = manager.accept()
        assert "resource cores 1 1 1" in peer.handshake()
        peer.close()
        assert worker.wait(timeout=15) == 0
    finally:
        manager.close()
