"""Warm Python slots: coffea tasks run by long-lived processes forked from a zygote, not a cold ``python3``.

A cold interpreter pays ~0.7 s importing coffea for every task (docs/executor.md, "What a task is,
and why it is fast"); a warm slot pays it once. The worker asks
``WarmPythonPool.parse_warm_command(command, env)`` about each task; the executor marks its tasks
with ``COFFEA_WQ_WARM=1`` and runs one of exactly two commands, the contract that
``warm_contract.py`` builds for the executor and parses here:

    python3 coffea_wq_task.py FN ITEM OUT
    ./coffea_wq_env_run ENV python3 coffea_wq_task.py FN ITEM OUT

either as they are or wrapped by the manager's monitor (``./cctools-monitor ... --sh 'CMD'``),
whose job the worker then does itself (``warm_monitor.py``). Anything else runs cold. ``start``
finds the interpreter (``python3`` on the task's PATH, or the environment tarball's
``bin/python`` unpacked once with ``envtools.ensure_unpacked``), keeps one zygote per
interpreter (``zygote.py``, standard library only) and returns a Popen-like ``WarmProcess``
(``start_async``: the same, started in a thread). If a zygote cannot start or dies, the task runs cold: results never depend on
which path ran them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from coffea_wq.resources.rmon.runner import MonitorPlan, plan_from_args
from coffea_wq.worker.execution import start_cold
from coffea_wq.worker.forked_zygote import ForkedChild, fork_zygote
from coffea_wq.worker.pending import PendingStart
from coffea_wq.worker.wakeup import Wakeup
from coffea_wq.worker.warm_contract import WORKER_TOKEN_ENV, marked_warm, parse_warm_command, preload_modules
from coffea_wq.worker.warm_monitor import MonitoredWarmProcess, split_monitored

log = logging.getLogger(__name__)

ZYGOTE_SCRIPT = Path(__file__).with_name("zygote.py")
START_TIMEOUT_S = 300.0  # the first request waits for the zygote's imports (minutes on a busy node)
PER_TASK_VARIABLES = ("TMPDIR", "TEMP", "TMP")


@dataclass(frozen=True)
class WarmRequest:
    """A task command the pool can run warm."""

    command: str
    python: str  # "python3" (looked up on the task's PATH) unless an environment provides one
    argv: tuple[str, ...]  # the script and its arguments
    preload: tuple[str, ...]
    env_tarball: str | None = None  # relative to the sandbox
    # the options of ./cctools-monitor when the command is wrapped in it (measured by the worker)
    monitor: argparse.Namespace | None = field(default=None, compare=False)


class WarmProcess:
    """A task running in a child of a zygote, with the part of ``subprocess.Popen`` the worker uses."""

    def __init__(self, zygote: _Zygote, request_id: int, pid: int, command: str):
        self.zygote = zygote
        self.request_id = request_id
        self.pid = pid  # the slot's: it leads the session the task runs in
        self.args = command
        self.returncode: int | None = None

    event_driven = True  # its zygote's reader wakes the worker's loop when it ends

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.zygote.returncode(self.request_id, self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise subprocess.TimeoutExpired(self.args, timeout)
            self.zygote.wait_for_news(0.1 if remaining is None else min(0.1, remaining))
        return self.returncode  # type: ignore[return-value]

    def send_signal(self, sig: int) -> None:
        if self.poll() is not None:
            return
        if self.zygote.signal(self.request_id, sig):
            return  # the zygote delivers it only while the slot still runs this task
        try:
            os.killpg(self.pid, sig)  # no zygote to ask: the slot leads the task's session
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class _Zygote:
    """One zygote process and the thread that reads its answers."""

    def __init__(self, python: str, proc: subprocess.Popen | ForkedChild):
        self.python = python
        self.proc = proc
        self.on_news: Callable[[], None] = _nothing  # the pool's wake-up of the worker's loop (wakeup.py)
        self.cond = threading.Condition()
        self.started: dict[int, dict] = {}
        self.exits: dict[int, int] = {}
        self.queued: set[int] = set()  # requests waiting in the zygote for their slot (a flush): no start timeout
        self.dead = False
        self.next_id = 0
        self.write_lock = threading.Lock()
        self.reader = threading.Thread(target=self._read_answers, args=(self.proc.stdout,), daemon=True,
                                       name=f"zygote-{self.proc.pid}")
        self.reader.start()

    @classmethod
    def spawn(cls, python: str, env: dict[str, str], cwd: Path, preload: tuple[str, ...] = ()) -> _Zygote:
        """A fresh ``python zygote.py`` that imports ``preload`` first."""
        return cls(python, subprocess.Popen([python, str(ZYGOTE_SCRIPT), *preload], stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, cwd=cwd, env=env, start_new_session=True))

    def _read_answers(self, stream: IO[bytes]) -> None:
        for line in stream:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            with self.cond:
                op = message.get("op")
                if op in ("started", "failed"):
                    self.started[message["id"]] = message
                elif op == "queued":
                    self.queued.add(message["id"])
                elif op == "exit":
                    # keyed by request: a slot runs many tasks under one pid
                    self.exits[message["id"]] = int(message["returncode"])
                self.cond.notify_all()
            self.on_news()
        with self.cond:
            self.dead = True
            self.cond.notify_all()
        self.on_news()

    def run(self, argv: list[str], cwd: Path, env: dict[str, str], output: Path,
            preload: tuple[str, ...]) -> tuple[int, int]:
        """Start one task in a slot; its request id and the slot's pid. RuntimeError when impossible."""
        with self.cond:
            self.next_id += 1
            request_id = self.next_id
        request = {"op": "run", "id": request_id, "argv": argv, "cwd": str(cwd), "env": env,
                   "output": str(output), "preload": list(preload)}
        try:
            self._send(request)
        except (BrokenPipeError, OSError) as exc:
            raise RuntimeError(f"zygote {self.proc.pid} is gone: {exc}") from exc
        deadline = time.monotonic() + START_TIMEOUT_S
        with self.cond:
            while request_id not in self.started:
                if self.dead or (time.monotonic() > deadline and request_id not in self.queued):
                    raise RuntimeError(f"zygote {self.proc.pid} did not start the task (exit {self.proc.poll()})")
                self.cond.wait(0.5)
            answer = self.started.pop(request_id)
            self.queued.discard(request_id)
            if answer["op"] == "failed":
                raise RuntimeError(f"zygote {self.proc.pid}: {answer.get('error')}")
            return request_id, int(answer["pid"])

    def _send(self, message: dict) -> None:
        assert self.proc.stdin is not None
        with self.write_lock:
            self.proc.stdin.write((json.dumps(message) + "\n").encode())
            self.proc.stdin.flush()

    def signal(self, request_id: int, sig: int) -> bool:
        """Ask the zygote to signal the slot running ``request_id``; False when it cannot be asked."""
        if self.dead:
            return False
        try:
            self._send({"op": "signal", "id": request_id, "signal": int(sig)})
            return True
        except (BrokenPipeError, OSError, ValueError):
            return False

    def returncode(self, request_id: int, pid: int) -> int | None:
        with self.cond:
            if request_id in self.exits:
                return self.exits.pop(request_id)
            if not self.dead:
                return None
        # the zygote died before reporting: the slot is no longer ours to wait for
        try:
            os.kill(pid, 0)
            return None
        except ProcessLookupError:
            return -int(signal.SIGKILL)

    def wait_for_news(self, timeout: float) -> None:
        with self.cond:
            self.cond.wait(timeout)

    def alive(self) -> bool:
        return not self.dead and self.proc.poll() is None

    def close(self) -> None:
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()  # end of requests: the zygote exits
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=5)


class WarmPythonPool:
    """The zygotes of one worker, one per Python interpreter.

    Example (what the worker does for each task):
        >>> pool = WarmPythonPool()
        >>> env = {"COFFEA_WQ_WARM": "1", "PATH": os.environ["PATH"]}
        >>> request = pool.parse_warm_command("python3 coffea_wq_task.py fn.pkl item.pkl out.lz4", env)
        >>> request.argv
        ('coffea_wq_task.py', 'fn.pkl', 'item.pkl', 'out.lz4')
        >>> process = pool.start(request, sandbox, env, sandbox_output)          # doctest: +SKIP
        >>> process.wait()                                                       # doctest: +SKIP
        >>> pool.close()
    """

    def __init__(self, token: str = "", adopted: _Zygote | None = None) -> None:
        # the worker's token (docs/reduction.md): warm tasks get it, so their partials are named after it
        self.token = token
        # a zygote forked from this worker at its start (forked_zygote.py): it serves the first
        # tasks whose interpreter is the one this process runs
        self.adopted = adopted
        self.zygotes: dict[str, _Zygote] = {}
        self.wakeup = Wakeup()  # in the worker's selector: warm tasks' news wake its loop
        self.lock = threading.Lock()
        self.generation = 0  # counts close() calls: the pool serves one manager session after another

    @classmethod
    def with_forked_zygote(cls, token: str, preload: tuple[str, ...]) -> WarmPythonPool:
        """A pool whose first zygote is a fork of this process (forked_zygote.py), for tasks run by
        this interpreter; call it while this process has no thread but the main one."""
        python = sys.executable if _is_venv_python(sys.executable) else os.path.realpath(sys.executable)
        return cls(token, _Zygote(python, fork_zygote(preload)))

    @staticmethod
    def parse_warm_command(command: str, env: dict[str, str]) -> WarmRequest | None:
        """The warm form of ``command``, or None when it must run cold (no marker, other shape)."""
        if not marked_warm(env):
            return None
        split = split_monitored(command)
        if split is not None:
            options, inner_command = split
            inner = WarmPythonPool.parse_warm_command(inner_command, env)
            return None if inner is None else replace(inner, command=command, monitor=options)
        warm = parse_warm_command(command)
        if warm is None:
            return None
        return WarmRequest(command=command, python=warm.python, argv=warm.argv, preload=preload_modules(env),
                           env_tarball=warm.env_tarball)

    def start_async(self, request: WarmRequest, cwd: Path, env: dict[str, str], output_path: Path) -> PendingStart:
        """``start`` in a thread: the worker's loop never waits for unpacking or imports (pending.py)."""
        generation = self.generation
        return PendingStart(lambda: self.start(request, cwd, env, output_path, generation), request.command,
                            Path(output_path), on_done=self.wakeup.notify)

    def start(self, request: WarmRequest, cwd: Path, env: dict[str, str], output_path: Path,
              generation: int | None = None) -> Any:
        """Run ``request`` in a warm slot; falls back to a cold process if that is impossible.

        With ``generation`` (``start_async``), a pool closed since then starts nothing: raises.
        """
        cwd = Path(cwd)
        self._check_generation(generation)
        try:
            # a bad monitor option is found before the task starts: the wrapper, run cold, reports it
            plan = None if request.monitor is None else plan_from_args(request.monitor, str(cwd))
            python, task_env = self._interpreter(request, cwd, env)
            if self.token:
                task_env = {**task_env, WORKER_TOKEN_ENV: self.token}
            zygote = self._zygote(python, task_env, cwd.parent, request.preload)
            started = time.time()
            request_id, pid = zygote.run(list(request.argv), cwd, task_env, Path(output_path), request.preload)
            process = WarmProcess(zygote, request_id, pid, request.command)
            return process if plan is None else self._monitor(process, plan, started)
        except Exception as exc:
            self._check_generation(generation)  # a zygote stopped by close() is no reason to run cold
            log.warning("warm slot unavailable (%s); running the task cold", exc)
            return start_cold(request.command, cwd, env, output_path)

    def _check_generation(self, generation: int | None) -> None:
        if generation is not None and generation != self.generation:
            raise RuntimeError("the worker's session ended before the task started")

    @staticmethod
    def _monitor(process: WarmProcess, plan: MonitorPlan, started: float) -> MonitoredWarmProcess:
        try:
            return MonitoredWarmProcess(process, plan, started)
        except Exception:
            process.kill()  # never run a task twice: stop the unmonitored one before the cold start
            process.wait(timeout=30)
            raise

    def _interpreter(self, request: WarmRequest, cwd: Path, env: dict[str, str]) -> tuple[str, dict[str, str]]:
        if request.env_tarball is None:
            found = shutil.which(request.python, path=env.get("PATH", os.defpath))
            if found is None:
                raise RuntimeError(f"{request.python} is not on the task's PATH")
            return os.path.realpath(found) if not _is_venv_python(found) else found, env
        import envtools

        envs_root = Path(env.get("COFFEA_WQ_ENVS_DIR") or cwd.parent / "coffea-wq-envs")
        env_dir = envtools.ensure_unpacked(cwd / request.env_tarball, envs_root)
        return str(env_dir / "bin" / "python"), envtools.activation_environ(env_dir, env)

    def _zygote(self, python: str, env: dict[str, str], workspace: Path, preload: tuple[str, ...]) -> _Zygote:
        with self.lock:
            zygote = self.zygotes.get(python)
            if zygote is not None and not zygote.alive():
                log.warning("zygote for %s died (exit %s); starting a new one", python, zygote.proc.poll())
                zygote = None
            if zygote is None:
                zygote_env = {k: v for k, v in env.items() if k not in PER_TASK_VARIABLES}
                zygote = self._adopt(python) or _Zygote.spawn(python, zygote_env, workspace, preload)
                zygote.on_news = self.wakeup.notify
                self.zygotes[python] = zygote
            return zygote

    def _adopt(self, python: str) -> _Zygote | None:
        """The adopted zygote, once, if ``python`` is the interpreter it was forked from and it lives."""
        zygote, self.adopted = self.adopted, None
        if zygote is None:
            return None
        if zygote.alive() and same_interpreter(python, zygote.python):
            log.info("tasks for %s run in the zygote forked from this worker (pid %d)", python, zygote.proc.pid)
            return zygote
        self.adopted = zygote if zygote.alive() else None  # another interpreter's tasks: keep it
        if self.adopted is None:
            zygote.close()
        return None

    def close(self) -> None:
        self.generation += 1  # a start not yet under way in its thread fails instead of starting a task
        with self.lock:
            zygotes, self.zygotes = list(self.zygotes.values()), {}
            if self.adopted is not None:
                zygotes.append(self.adopted)
                self.adopted = None
        for zygote in zygotes:
            zygote.close()


def _nothing() -> None:
    pass


def same_interpreter(a: str, b: str) -> bool:
    """Whether two paths run the same Python with the same packages: the same virtual environment
    (``.venv/bin/python`` and ``.venv/bin/python3``), or the same executable outside one.

    Example:
        >>> same_interpreter("/usr/bin/python3", "/usr/bin/python3")
        True
    """
    def identity(path: str) -> tuple[str, str]:
        if _is_venv_python(path):
            return "venv", os.path.realpath(Path(path).parent.parent)
        return "python", os.path.realpath(path)

    return identity(a) == identity(b)


def _is_venv_python(path: str) -> bool:
    # a virtual environment's python is a symlink whose target would lose the environment: keep it
    return (Path(path).parent.parent / "pyvenv.cfg").exists()
