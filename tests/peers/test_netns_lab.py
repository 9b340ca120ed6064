"""The namespace lab itself: hosts reach each other on their own addresses and not the root
namespace; a cut link is silent; everything is gone after close, and after a creator that died."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from tests.netns_lab import NetnsLab, ip, sweep_orphans, unavailable_reason

pytestmark = pytest.mark.skipif(bool(unavailable_reason()), reason=unavailable_reason() or "namespaces work")


def namespaces() -> set[str]:
    return {line.split()[0] for line in ip("netns", "list").splitlines() if line.split()}


def test_hosts_talk_on_their_own_addresses_and_everything_goes_at_close():
    with NetnsLab() as lab:
        a, b = lab.add_host("a"), lab.add_host("b")
        made = {lab.bridge, a.namespace, b.namespace}
        assert made <= namespaces()
        with lab.entered(a):
            listener = socket.create_server((a.address, 0))
        port = listener.getsockname()[1]
        sender = lab.start(b, [sys.executable, "-c", f"import socket; socket.create_connection(('{a.address}', "
                                                     f"{port}), timeout=5).sendall(b'hello')"])
        listener.settimeout(10)
        conn, (peer, _) = listener.accept()
        assert conn.recv(5) == b"hello" and peer == b.address
        assert sender.wait(10) == 0
        lab.cut(b)  # b's side sees its link go, a hears nothing
        probe = lab.start(b, [sys.executable, "-c", f"import socket; socket.create_connection(('{a.address}', "
                                                    f"{port}), timeout=1)"], stderr=subprocess.DEVNULL)
        assert probe.wait(10) != 0
        sleeper = lab.start(a, ["sleep", "60"])
        conn.close()
        listener.close()
    assert not made & namespaces()
    assert sleeper.poll() is not None


def test_a_lab_whose_creator_died_is_swept():
    creator = subprocess.run(  # a process that makes a namespace of a lab and dies without closing it
        [sys.executable, "-c", "import os; from tests.netns_lab import NetnsLab, ip; lab = NetnsLab(); "
                               "ip('netns', 'add', lab.bridge); print(lab.bridge); os._exit(0)"],
        capture_output=True, text=True, timeout=60, check=True)
    left = creator.stdout.strip()
    assert left in namespaces()
    assert left in sweep_orphans()
    assert left not in namespaces()
