"""CCTools' ``work_queue_futures``: tasks as futures, with an optional worker started for you.

A script written for ``from work_queue_futures import WorkQueueFutures, FutureTask`` runs with
``from coffea_wq.work_queue.futures import WorkQueueFutures, FutureTask``::

    q = WorkQueueFutures(port=0, local_worker={"cores": 1, "memory": 512, "disk": 1000})
    t = FutureTask("/bin/date")
    q.submit(t)
    print(t.result())          # True once the command exited 0; FutureTaskError otherwise
    t.add_done_callback(lambda task: print(task.id, "done"))
    q.join()                   # every submitted task is done

One background thread collects finished tasks and completes their futures; callbacks run in it, so a
callback may submit more tasks. See docs/manager.md, "Futures".
"""

from __future__ import annotations

import atexit
import concurrent.futures
import enum
import logging
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from coffea_wq.protocol.codes import ResultCode
from coffea_wq.work_queue.queue import WorkQueue
from coffea_wq.work_queue.task import Task

log = logging.getLogger("coffea_wq.work_queue")

COLLECT_WAIT_S = 0.5  # how long the collector waits for a task before it checks for shutdown

_RESULT_MESSAGES = {
    ResultCode.SUCCESS: "Success",
    ResultCode.INPUT_MISSING: "Input file is missing",
    ResultCode.OUTPUT_MISSING: "Output file is missing",
    ResultCode.STDOUT_MISSING: "The task's output (stdout) is missing",
    ResultCode.SIGNAL: "The task was stopped by a signal",
    ResultCode.RESOURCE_EXHAUSTION: "The task exhausted its resources",
    ResultCode.TASK_TIMEOUT: "The task passed its end time before completing",
    ResultCode.UNKNOWN: "Unknown error",
    ResultCode.FORSAKEN: "The worker gave the task up",
    ResultCode.MAX_RETRIES: "The task reached its maximum number of retries",
    ResultCode.TASK_MAX_RUN_TIME: "The task ran longer than its maximum running time",
    ResultCode.DISK_ALLOC_FULL: "The task filled its disk allocation",
}


class FutureTaskError(Exception):
    """A FutureTask that did not succeed: its Work Queue result, or its non-zero exit status.

    Attributes: ``task``, ``state`` (the result code, None for an internal error), ``exit_status``,
    ``exception`` (the internal error, if that is what happened).
    """

    def __init__(self, task: FutureTask, exception: BaseException | str | None = None) -> None:
        self.task = task
        self.exception = exception
        self.state = None if exception is not None else task._spec.result
        self.exit_status = None if exception is not None else task.return_status
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.exception is not None:
            return str(self.exception)
        try:
            message = _RESULT_MESSAGES[ResultCode(self.state)]
        except (ValueError, KeyError):
            return f"Work Queue result {self.state}"
        if self.state == ResultCode.SUCCESS and self.exit_status != 0:
            return f"Execution completed with exit status {self.exit_status}"
        return message


class _State(enum.Enum):
    PENDING = "pending"
    RUNNING = "running"
    CANCELLED = "cancelled"
    FINISHED = "finished"


class FutureTask(Task):
    """A ``Task`` that is also a future (the methods of ``concurrent.futures.Future``).

    ``result(timeout)`` returns True when the command exited 0 with Work Queue result SUCCESS, and
    raises ``FutureTaskError`` otherwise (as CCTools). The result code is ``result_str``/``result_code``
    here, since ``result`` is the future's method.
    """

    valid_runtime_envs = ("conda", "singularity")

    def __init__(self, command: str) -> None:
        super().__init__(command)
        self._queue: WorkQueueFutures | None = None
        self._state = _State.PENDING
        self._value: Any = None
        self._exception: BaseException | None = None
        self._done = threading.Event()
        self._callbacks: list[Callable[[FutureTask], Any]] = []
        self._callbacks_lock = threading.Lock()

    @property
    def queue(self) -> WorkQueueFutures | None:
        return self._queue

    def _submitted_to(self, queue: WorkQueueFutures) -> None:
        self._queue = queue

    @property
    def result_code(self) -> int:
        """The Work Queue result code (``Task.result``, which this class uses for the future)."""
        return int(self._spec.result)

    # ---------------------------------------------------------------- the future
    def cancel(self) -> bool:
        """Remove the task from its queue (killing it if it runs); its callbacks run."""
        if self._state is _State.FINISHED:
            return False
        if self._queue is not None and self._state is _State.RUNNING:
            self._queue._cancel(self)
        self._finish(_State.CANCELLED)
        return True

    def cancelled(self) -> bool:
        return self._state is _State.CANCELLED

    def running(self) -> bool:
        return self._state is _State.RUNNING

    def done(self) -> bool:
        return self._done.is_set()

    def result(self, timeout: float | None = None) -> Any:
        self._wait_done(timeout)
        if self._exception is not None:
            raise self._exception
        return self._value

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._wait_done(timeout)
        return self._exception

    def add_done_callback(self, fn: Callable[[FutureTask], Any]) -> None:
        """Call ``fn(task)`` when the task is done or cancelled (now, if it already is)."""
        with self._callbacks_lock:
            if not self.done():
                self._callbacks.append(fn)
                return
        self._call(fn)

    def set_result(self, value: Any) -> None:
        self._value = value
        self._finish(_State.FINISHED)

    def set_exception(self, exception: BaseException) -> None:
        self._exception = exception
        self._finish(_State.FINISHED)

    def set_running_or_notify_cancel(self) -> bool:
        if self._state is _State.CANCELLED:
            return False
        self._state = _State.RUNNING
        return True

    def set_result_or_exception(self) -> None:
        """Complete the future from the task's Work Queue result (called when the task comes back)."""
        self._complete_from_queue()

    def specify_runtime_env(self, type: str, filename: str) -> None:
        """Run the command inside a conda-pack tarball (``"conda"``) or a Singularity image
        (``"singularity"``) sent with the task, as CCTools' futures module does."""
        if type == "conda":
            self.specify_input_file(filename, "conda_env.tar.gz", cache=True)
            self.specify_command("mkdir -p conda_env && tar xf conda_env.tar.gz -C conda_env && "
                                 f". conda_env/bin/activate && {self.command}")
        elif type == "singularity":
            self.specify_input_file(filename, "sin_env.img", cache=True)
            self.specify_command(f"singularity exec -B $(pwd):/wq-sandbox --pwd /wq-sandbox sin_env.img -- "
                                 f"{self.command}")
        else:
            raise FutureTaskError(self, f"runtime environment {type!r} is not one of {self.valid_runtime_envs}")

    # ---------------------------------------------------------------- internals
    def _wait_done(self, timeout: float | None) -> None:
        if self.cancelled():
            raise concurrent.futures.CancelledError(f"task {self.id} was cancelled")
        if not self._done.wait(timeout):
            raise concurrent.futures.TimeoutError(f"task {self.id} not done after {timeout} s")
        if self.cancelled():
            raise concurrent.futures.CancelledError(f"task {self.id} was cancelled")

    def _complete_from_queue(self) -> None:
        """Set the outcome from the task's Work Queue result and exit status."""
        if self._spec.result == ResultCode.SUCCESS and self.return_status == 0:
            self.set_result(True)
        else:
            self.set_exception(FutureTaskError(self))

    def _finish(self, state: _State) -> None:
        with self._callbacks_lock:
            if self._done.is_set():
                return
            self._state = state
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
        for fn in callbacks:
            self._call(fn)

    def _call(self, fn: Callable[[FutureTask], Any]) -> None:
        try:
            fn(self)
        except Exception:
            log.exception("callback %r of task %s failed", fn, self.id)


class LocalWorker:
    """One worker process on this host for the queue (``local_worker=`` of ``WorkQueueFutures``).

    ``executable`` is ``work_queue_worker`` as in CCTools (coffea-wq's own worker when that is not
    installed, or with ``executable="coffea-wq"``). It runs ``--single-shot`` and is started again
    whenever it exits cleanly; a worker that fails is not restarted.
    """

    def __init__(self, port: int, executable: str = "work_queue_worker", cores: int = 1, memory: int = 512,
                 disk: int = 1000) -> None:
        self.port = port
        self.argv_prefix = _worker_argv(executable)
        self.options = ["--single-shot", "--cores", str(cores), "--memory", str(memory), "--disk", str(disk),
                        "--timeout", "300"]
        self.process: subprocess.Popen | None = None
        self.failure: str | None = None
        self.ensure_running()

    def ensure_running(self) -> None:
        if self.failure is not None:
            return
        if self.process is not None:
            code = self.process.poll()
            if code is None:
                return
            if code != 0:
                self.failure = f"the local worker {' '.join(self.argv_prefix)} exited with status {code}"
                log.error("%s", self.failure)
                return
        self.process = subprocess.Popen([*self.argv_prefix, *self.options, "127.0.0.1", str(self.port)],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)

    def stop(self, grace: float = 5.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(grace)


def _worker_argv(executable: str) -> list[str]:
    if executable in ("coffea-wq", "coffea-wq worker"):
        return [sys.executable, "-m", "coffea_wq", "worker"]
    found = shutil.which(executable)
    if found:
        return [found]
    if executable == "work_queue_worker":
        log.info("work_queue_worker is not installed; the local worker is coffea-wq's")
        return [sys.executable, "-m", "coffea_wq", "worker"]
    raise FileNotFoundError(f"local_worker executable {executable!r} not found on PATH")


class WorkQueueFutures:
    """A ``WorkQueue`` whose tasks are ``FutureTask``s (CCTools' ``work_queue_futures.WorkQueueFutures``).

    Args:
        *args, **kwargs: those of ``WorkQueue`` (``port``, ``name``, ...).
        local_worker: True (1 core, 512 MB, 1000 MB disk) or a dict of ``LocalWorker`` options
            (``cores``, ``memory``, ``disk``, ``executable``): start a worker on this host.

    Other ``WorkQueue`` methods are reachable on this object; ``wait`` is not (use the futures).
    """

    def __init__(self, *args: Any, local_worker: bool | dict | None = None, **kwargs: Any) -> None:
        self._queue = WorkQueue(*args, **kwargs)
        self._lock = threading.Condition()
        self._active: dict[int, FutureTask] = {}
        self._stop = threading.Event()
        self._local_worker: LocalWorker | None = None
        if local_worker:
            options = {} if local_worker is True else dict(local_worker)
            self._local_worker = LocalWorker(self._queue.port, **options)
        self._collector = threading.Thread(target=self._collect, name="coffea-wq-futures", daemon=True)
        self._collector.start()
        atexit.register(self.shutdown)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._queue, name)

    def submit(self, task: FutureTask) -> int | None:
        """Queue ``task``; returns its id (None for a task cancelled before it was submitted)."""
        if not isinstance(task, FutureTask):
            raise TypeError(f"WorkQueueFutures.submit takes a FutureTask, not {type(task).__name__}")
        if not task.set_running_or_notify_cancel():
            return None
        with self._lock:
            task_id = self._queue.submit(task)
            task._submitted_to(self)
            self._active[task_id] = task
            self._lock.notify_all()
        return task_id

    def wait(self, *args: Any, **kwargs: Any) -> None:
        raise AttributeError("wait cannot be used with the futures interface: use task.result() or join()")

    def empty(self) -> bool:
        with self._lock:
            return not self._active

    def join(self, timeout: float | None = None) -> bool:
        """Block until every submitted task is done; False if ``timeout`` s passed first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._active:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._lock.wait(left)
        return True

    def shutdown(self) -> None:
        """Stop collecting, stop the local worker and shut the queue down (also run at exit)."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._collector is not threading.current_thread():
            self._collector.join(timeout=10)
        if self._local_worker is not None:
            self._local_worker.stop()
        self._queue.shutdown()

    def __enter__(self) -> WorkQueueFutures:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.shutdown()

    def _cancel(self, task: FutureTask) -> None:
        with self._lock:
            self._active.pop(task.id, None)
            self._lock.notify_all()
        self._queue.cancel_by_taskid(task.id)

    def _collect(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                while not self._active and not self._stop.is_set():
                    self._lock.wait(COLLECT_WAIT_S)
                    self._check_local_worker()
            if self._stop.is_set():
                return
            done = self._queue.wait(COLLECT_WAIT_S)
            with self._lock:
                self._check_local_worker()
                future = self._active.get(done.id) if done is not None else None
            if isinstance(future, FutureTask):
                future._complete_from_queue()  # callbacks run here, before join() returns
                with self._lock:
                    self._active.pop(future.id, None)
                    self._lock.notify_all()

    def _check_local_worker(self) -> None:
        if self._local_worker is None:
            return
        self._local_worker.ensure_running()
        if self._local_worker.failure is not None:
            failed, self._active = list(self._active.values()), {}
            for task in failed:
                task.set_exception(FutureTaskError(task, self._local_worker.failure))
