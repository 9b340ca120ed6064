"""Worker processes an executor starts on 127.0.0.1 (``local_workers=N``) and stops at the end.

The default is coffea-wq's own worker (``python -m coffea_wq worker``, or a fork of this process
running the same code when ``forked.py`` allows it); CCTools' ``work_queue_worker`` is used when
ours is not installed, or on request (``kind="cctools"``).
Workers inherit this process's environment with two additions, so that tasks see what the user's
session sees (as FuturesExecutor's processes do): the directory of this interpreter first on
``PATH`` (``python3`` in a task is this Python), and ``sys.path`` as ``PYTHONPATH`` (the
processor's module imports on the worker).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from coffea_wq.executor.workers.forked import ForkedWorker, discard_forked

log = logging.getLogger(__name__)

IDLE_TIMEOUT_S = 120  # a worker whose manager vanished exits after this (a fallback: see --parent-death)


@dataclass(frozen=True)
class LocalWorkerSpec:
    count: int
    host: str
    port: int
    cores: int = 1
    password_file: str | None = None
    kind: str = "auto"  # "auto", "coffea-wq" or "cctools"
    workdir: Path | None = None
    ssl: bool = False  # the manager uses TLS: connect with --ssl
    # forked workers only (forked.py): the modules of the zygote each forks from itself (None: no such zygote)
    zygote_preload: tuple[str, ...] | None = None


def worker_kind(requested: str = "auto") -> str:
    """``coffea-wq`` when our worker command exists (or is requested), else ``cctools``."""
    if requested in ("coffea-wq", "cctools"):
        return requested
    if importlib.util.find_spec("coffea_wq.cli.worker") is not None:
        return "coffea-wq"
    if shutil.which("work_queue_worker"):
        log.warning("coffea-wq worker not available; local workers are CCTools' work_queue_worker")
        return "cctools"
    raise RuntimeError("local_workers: neither `coffea-wq worker` nor CCTools' work_queue_worker is available")


def worker_command(spec: LocalWorkerSpec, kind: str, index: int) -> list[str]:
    """The argv of local worker number ``index``."""
    if kind == "coffea-wq":
        return [sys.executable, "-m", "coffea_wq", "worker", *worker_arguments(spec, index)]
    return [shutil.which("work_queue_worker") or "work_queue_worker", *worker_arguments(spec, index)]


def worker_arguments(spec: LocalWorkerSpec, index: int) -> list[str]:
    """The options and manager address of local worker number ``index`` (both workers spell them alike)."""
    # --parent-death (both workers have it): a worker exits when this process dies, even by SIGKILL,
    # instead of waiting out its idle timeout (docs/executor.md, "Nothing left behind")
    options = ["--cores", str(spec.cores), "-t", str(IDLE_TIMEOUT_S), "--parent-death"]
    if spec.password_file:
        options += ["--password", str(spec.password_file)]  # the file's path: the secret stays off argv
    if spec.ssl:
        options.append("--ssl")
    if spec.workdir is not None:
        workdir = spec.workdir / f"worker-{index}"
        workdir.mkdir(parents=True, exist_ok=True)
        options += ["--workdir", str(workdir)]
    return [*options, spec.host, str(spec.port)]


def worker_environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    paths = [os.path.abspath(p or os.curdir) for p in sys.path]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p for p in paths if os.path.isdir(p)))
    return env


class LocalWorkerPool:
    """Starts ``spec.count`` workers; ``stop()`` ends them all (they are in their own sessions,
    so a Ctrl-C in the user's terminal reaches the executor, which then stops them in order).

    Example:
        >>> pool = LocalWorkerPool(LocalWorkerSpec(count=0, host="127.0.0.1", port=9123))
        >>> pool.start(); pool.stop(); pool.processes
        []
    """

    def __init__(self, spec: LocalWorkerSpec, forked: list[ForkedWorker] | None = None):
        self.spec = spec
        self.forked = list(forked or [])  # children forked from this process, waiting for their command
        self.processes: list[subprocess.Popen | ForkedWorker] = []

    def start(self) -> None:
        try:
            self._start()
        finally:
            discard_forked(self.forked)  # any not used (fewer workers, an error): they exit
            self.forked = []

    def _start(self) -> None:
        if self.spec.count <= 0:
            return
        kind = worker_kind(self.spec.kind)
        env = worker_environment()
        for index in range(self.spec.count):
            if self.forked and kind == "coffea-wq":
                worker = self.forked.pop(0)
                log.info("local worker %d: forked from this process (pid %d), coffea-wq worker %s", index,
                         worker.pid, " ".join(worker_arguments(self.spec, index)))
                self.processes.append(worker)
                worker.launch(worker_arguments(self.spec, index), env, self._log_path(index), self.spec.zygote_preload)
                continue
            argv = worker_command(self.spec, kind, index)
            log.info("starting local worker %d: %s", index, " ".join(argv))
            with self._log_file(index) as logfile:  # the child keeps its own descriptor
                self.processes.append(subprocess.Popen(argv, env=env, start_new_session=True,
                                                       stdin=subprocess.DEVNULL, stdout=logfile,
                                                       stderr=subprocess.STDOUT))

    def _log_path(self, index: int) -> Path | None:
        # worker chatter goes to a file beside its workspace, not into the user's terminal
        if self.spec.workdir is None:
            return None
        self.spec.workdir.mkdir(parents=True, exist_ok=True)
        return self.spec.workdir / f"worker-{index}.log"

    def _log_file(self, index: int):
        path = self._log_path(index)
        return open(os.devnull if path is None else path, "ab")

    def stop(self, grace: float = 5.0) -> None:
        discard_forked(self.forked)
        self.forked = []
        for proc in self.processes:
            _signal_group(proc, signal.SIGTERM)
        for proc in self.processes:
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=grace)
        self.processes = []

    def alive(self) -> int:
        return sum(1 for p in self.processes if p.poll() is None)


def _signal_group(proc: subprocess.Popen | ForkedWorker, sig: int) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)  # the worker and the tasks it started
    except ProcessLookupError:
        pass
