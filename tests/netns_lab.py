"""Hosts that are really apart: network namespaces joined by a bridge, for tests and benchmarks.

Each host is a namespace of its own (``cwqpeers-<pid>x<random>-<name>``) with one interface ``eth0`` and its
own address in 10.231.0.0/24; a veth pair joins it to a bridge that lives in one more namespace of the
lab. Nothing is routed out of the machine: the root namespace gets no interface and no route. ``tbf``
sets a link's bandwidth (this kernel has no netem); ``cut`` takes a host's link down at the bridge, so
its connections vanish without a FIN or a reset, as when a machine loses power.

Processes run inside a host with ``ip netns exec`` (:meth:`NetnsLab.start`); the test's own thread can
enter a host for a while (:meth:`NetnsLab.entered`), so an in-process manager listens there and every
thread it starts stays there. ``close`` (also on failure: use the lab as a context manager) kills every
process the lab started, by its id, and deletes every namespace it made; a lab whose test was killed
outright is swept by the next one (``sweep_orphans``: its creator's pid is in its names).

Example::

    with NetnsLab() as lab:
        manager = lab.add_host("manager")
        worker = lab.add_host("w1")
        lab.start(worker, [sys.executable, "-m", "coffea_wq", "worker", manager.address, "9123"])
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field

PREFIX = "cwqpeers-"
SUBNET = "10.231.0"
CLONE_NEWNET = 0x40000000
COMMAND_TIMEOUT = 30


class LabError(RuntimeError):
    """A namespace command failed; the message has the command and its error output."""


def ip(*args: str) -> str:
    """Run ``ip ARGS`` (or another command when args start with a program) and return its output."""
    argv = ["ip", *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False)
    if done.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def unavailable_reason() -> str:
    """Why namespaces cannot be made here ("" when they can): needs root, ``ip`` and ``tc``."""
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_SYS_ADMIN and CAP_NET_ADMIN)"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"the {tool!r} command (iproute2) is not installed"
    probe = f"{PREFIX}{secrets.token_hex(3)}-probe"
    try:
        ip("netns", "add", probe)
        ip("netns", "exec", probe, "ip", "link", "set", "lo", "up")
    except (LabError, OSError, subprocess.TimeoutExpired) as error:
        return f"cannot create a network namespace here: {error}"
    finally:
        with contextlib.suppress(LabError, OSError, subprocess.TimeoutExpired):
            ip("netns", "del", probe)
    return ""


@dataclass
class Host:
    """One namespace of the lab: its name, address and the bridge's end of its link."""

    name: str
    namespace: str
    address: str
    bridge_port: str


_libc = ctypes.CDLL(None, use_errno=True)


def _set_netns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"setns({path}): {os.strerror(error)}")
    finally:
        os.close(fd)


def sweep_orphans() -> list[str]:
    """Delete the namespaces (and kill their processes) left by labs whose process died without
    ``close`` (killed by a timeout); their names carry the creator's pid. Returns the names deleted."""
    swept = []
    try:
        listed = ip("netns", "list")
    except (LabError, OSError, subprocess.TimeoutExpired):
        return swept
    for line in listed.splitlines():
        name = line.split()[0] if line.split() else ""
        match = re.match(rf"^{PREFIX}(\d+)x", name)
        if match is None or _alive(int(match[1])):
            continue
        with contextlib.suppress(LabError, OSError, subprocess.TimeoutExpired):
            for pid in ip("netns", "pids", name).split():
                with contextlib.suppress(ProcessLookupError, PermissionError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            ip("netns", "del", name)
            swept.append(name)
    return swept


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class NetnsLab:
    """A bridge and the hosts on it; everything goes at ``close``."""

    # the creator's pid in every name lets a later lab sweep what a killed test left behind
    suffix: str = field(default_factory=lambda: f"{os.getpid()}x{secrets.token_hex(2)}")
    hosts: dict[str, Host] = field(default_factory=dict)
    processes: list[subprocess.Popen] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.bridge = f"{PREFIX}{self.suffix}-br"

    def __enter__(self) -> NetnsLab:
        sweep_orphans()
        try:
            self._add_namespace(self.bridge)
            ip("-n", self.bridge, "link", "add", "br0", "type", "bridge")
            ip("-n", self.bridge, "link", "set", "br0", "up")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _add_namespace(self, name: str) -> None:
        ip("netns", "add", name)
        self.namespaces.append(name)
        ip("-n", name, "link", "set", "lo", "up")

    def add_host(self, name: str) -> Host:
        """A new namespace with ``eth0`` on the bridge and the next free address."""
        index = len(self.hosts) + 1
        if index > 250:
            raise LabError("a lab holds at most 250 hosts")
        namespace = f"{PREFIX}{self.suffix}-{name}"
        self._add_namespace(namespace)
        port = f"p{index}"
        ip("-n", self.bridge, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", namespace)
        ip("-n", self.bridge, "link", "set", port, "master", "br0", "up")
        address = f"{SUBNET}.{index}"
        ip("-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
        ip("-n", namespace, "link", "set", "eth0", "up")
        host = Host(name, namespace, address, port)
        self.hosts[name] = host
        return host

    def shape(self, host: Host, rate: str, both_ways: bool = True) -> None:
        """Limit the host's link to ``rate`` (tc's units: ``1gbit``, ``200mbit``): what it sends, and
        with ``both_ways`` also what it receives (shaped on the bridge's end)."""
        queue = ["root", "tbf", "rate", rate, "burst", "512kb", "latency", "200ms"]
        ip("netns", "exec", host.namespace, "tc", "qdisc", "replace", "dev", "eth0", *queue)
        if both_ways:
            ip("netns", "exec", self.bridge, "tc", "qdisc", "replace", "dev", host.bridge_port, *queue)

    def cut(self, host: Host) -> None:
        """Take the host's link down at the bridge: its peers see silence, no FIN, no reset."""
        ip("-n", self.bridge, "link", "set", host.bridge_port, "down")

    def start(self, host: Host, argv: list[str], **kwargs) -> subprocess.Popen:
        """Run ``argv`` inside ``host`` (its own session, environment inherited); stopped at ``close``."""
        kwargs.setdefault("start_new_session", True)
        proc = subprocess.Popen(["ip", "netns", "exec", host.namespace, *map(str, argv)], **kwargs)
        self.processes.append(proc)
        return proc

    @contextlib.contextmanager
    def entered(self, host: Host) -> Iterator[None]:
        """Run this thread inside ``host`` for the block (threads started meanwhile stay there)."""
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            _set_netns(f"/run/netns/{host.namespace}")
            try:
                yield
            finally:
                if _libc.setns(home, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "could not return to the original network namespace")
        finally:
            os.close(home)

    def close(self) -> None:
        for proc in reversed(self.processes):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
        self.processes.clear()
        for namespace in reversed(self.namespaces):
            with contextlib.suppress(LabError, OSError, subprocess.TimeoutExpired):
                ip("netns", "del", namespace)
        self.namespaces.clear()
