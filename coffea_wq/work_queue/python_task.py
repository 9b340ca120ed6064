"""``PythonTask``: a Python function call run on a worker (CCTools' ``work_queue.PythonTask``).

The function and its arguments are pickled into one input file; a small wrapper script (cached on
the worker) unpickles them with the worker's ``python3``, calls the function and pickles what it
returned, or a description of the exception it raised, into the task's output file.
``task.output`` reads it through the allow-list of ``coffea_wq.safe_pickle``, since it comes from a
peer on the network (``python_results.py``).

Pickling uses ``dill`` when it is importable on the submit side, else ``cloudpickle`` (coffea
depends on it, so it is always there); the worker's ``python3`` needs the same module. See
docs/manager.md, "Python functions as tasks".
"""

from __future__ import annotations

import atexit
import importlib
import logging
import pickle
import shutil
import tempfile
import threading
import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from coffea_wq.protocol.codes import ResultCode
from coffea_wq.safe_pickle.allow_list import RefusedResultError, ResultPolicy, user_modules_of
from coffea_wq.work_queue.python_results import (
    WRAPPER_NAME,
    WRAPPER_SOURCE,
    PythonTaskNoResult,
    PythonTaskRefusedResult,
    ResultSettings,
    outcome_of,
    read_record,
)
from coffea_wq.work_queue.task import Task

__all__ = ["PythonTask", "PythonTaskNoResult", "PythonTaskRefusedResult", "RemoteTask", "choose_serializer"]

log = logging.getLogger("coffea_wq.work_queue")

CALL_NAME = "coffea_wq_call.pkl"
RESULT_NAME = "coffea_wq_result.pkl"
SERIALIZERS = ("dill", "cloudpickle")

def choose_serializer() -> str:
    """``"dill"`` when it can be imported here, else ``"cloudpickle"`` (CCTools 7 used dill, 8 cloudpickle)."""
    for name in SERIALIZERS:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
        return name
    raise RuntimeError("PythonTask needs dill or cloudpickle: pip install cloudpickle")


class _Staging:
    """One directory per process for the pickles and the wrapper; removed at exit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._root: Path | None = None

    def root(self) -> Path:
        with self._lock:
            if self._root is None or not self._root.is_dir():
                self._root = Path(tempfile.mkdtemp(prefix="coffea-wq-pytask-"))
                (self._root / WRAPPER_NAME).write_text(WRAPPER_SOURCE)
                atexit.register(shutil.rmtree, self._root, True)
            return self._root


_STAGING = _Staging()


class PythonTask(Task):
    """Run ``func(*args, **kwargs)`` on a worker; ``task.output`` is what it returned.

    Args:
        func: a function (a lambda or a closure works too: it is pickled with dill or cloudpickle).
        *args, **kwargs: its arguments, pickled with it.

    ``output`` returns the function's value. If the function raised, ``output`` raises that
    exception again (the worker's traceback is in ``remote_traceback``); if the task did not
    complete (missing input, worker lost, ...), it raises ``PythonTaskNoResult``. CCTools returns
    these exceptions instead of raising them (docs/manager.md lists the difference).

    The value is read through an allow-list (README, "Security"): builtins containers, numbers and
    strings, numpy arrays, awkward arrays, hist histograms, coffea accumulators, classes of your own
    modules that the call refers to, and what ``specify_allowed_result_modules`` (here or on the
    queue) adds. Anything else raises ``PythonTaskRefusedResult`` naming it and the worker, and
    nothing of it is built. ``specify_trusted_results()`` reads results as CCTools does, for a pool
    of workers you fully trust.

    Example::

        t = PythonTask(pow, 2, 10)
        t.specify_cores(1)
        q.submit(t)
        t = q.wait(60)
        print(t.output)  # 1024
    """

    __slots__ = ("_directory", "_serializer", "_loaded", "_value", "_error", "remote_traceback", "_cleanup",
                 "_user_modules", "_call_modules", "_settings", "_queue_settings")

    def __init__(self, func: Any, *args: Any, **kwargs: Any) -> None:
        self._serializer = choose_serializer()
        self._directory = Path(tempfile.mkdtemp(prefix="task-", dir=_STAGING.root()))
        self._cleanup = weakref.finalize(self, shutil.rmtree, str(self._directory), True)
        call = importlib.import_module(self._serializer).dumps((func, args, kwargs))
        (self._directory / CALL_NAME).write_bytes(call)
        # the user's own modules whose classes may come back: the function's now; those its pickled
        # arguments name only when a result needs them (reading a big pickle costs ~1 us an opcode)
        self._user_modules = user_modules_of(func)
        self._call_modules: frozenset[str] | None = None
        self._settings = ResultSettings()
        self._queue_settings = ResultSettings(trusted=False)
        self._loaded = False
        self._value: Any = None
        self._error: BaseException | None = None
        self.remote_traceback = ""
        super().__init__(self._python_command())
        self.specify_input_file(str(_STAGING.root() / WRAPPER_NAME), WRAPPER_NAME, cache=True)
        self.specify_input_file(str(self._directory / CALL_NAME), CALL_NAME, cache=False)
        self.specify_output_file(str(self._directory / RESULT_NAME), RESULT_NAME, cache=False)

    def _python_command(self, prefix: str = "") -> str:
        return f"{prefix}python3 {WRAPPER_NAME} {self._serializer} {CALL_NAME} {RESULT_NAME}"

    # ---------------------------------------------------------------- what a result may contain
    def specify_allowed_result_modules(self, modules: str | Iterable[str]) -> int:
        """Let this task's result also contain classes of ``modules`` (coffea-wq; not in CCTools).

        Each entry is a package (``"mypkg"``: its classes and its submodules') or one global
        (``"mypkg.mod:make_thing"``, of any kind). Adds to what the queue allows.
        """
        self._settings.allow(modules)
        return 1

    def specify_trusted_results(self, trusted: bool = True) -> int:
        """Read this task's result with the serializer's own ``load``, as CCTools does (coffea-wq).

        Only for workers you trust completely: such a result can run any code in this process.
        ``False`` restores the allow-list even where the queue trusts its workers.
        """
        self._settings.trusted = bool(trusted)
        return 1

    def follow_queue_result_settings(self, settings: ResultSettings) -> None:
        """Use the settings of the queue the task is submitted to (``WorkQueue.submit`` calls this)."""
        self._queue_settings = settings

    def result_policy(self) -> ResultPolicy | None:
        """The allow-list this task's result is read through now; None when its workers are trusted."""
        trusted = self._settings.trusted if self._settings.trusted is not None else self._queue_settings.trusted
        if trusted:
            return None
        allowed = [*self._queue_settings.allowed_modules, *self._settings.allowed_modules]
        return ResultPolicy.build(allowed, user_modules=self._user_modules | (self._call_modules or frozenset()))

    def specify_environment(self, env_file: str) -> int:
        """Run the function inside a packed environment (``coffea-wq env pack``), sent with the task.

        CCTools unpacks with ``poncho_package_run``; coffea-wq uses its own ``coffea_wq_env_run``.
        """
        import envtools

        tarball = Path(env_file).resolve()
        remote = f"{envtools.unpack_key(tarball)}.tar.gz"
        self.specify_input_file(str(envtools.runner_script_path()), "coffea_wq_env_run", cache=True)
        self.specify_input_file(str(tarball), remote, cache=True)
        self.specify_command(self._python_command(f"./coffea_wq_env_run {remote} "))
        return 1

    @property
    def output(self) -> Any:
        """The function's return value; raises its exception, or ``PythonTaskNoResult``."""
        if not self._loaded:
            self._load_outcome()
        if self._error is not None:
            raise self._error
        return self._value

    def _load_outcome(self) -> None:
        self._loaded = True
        if self.result != int(ResultCode.SUCCESS):
            self._error = PythonTaskNoResult(
                f"PythonTask {self.id} has no result: the task ended with {self.result_str}"
                f" (exit status {self.return_status}); its output:\n{self.std_output}")
            return
        path = self._directory / RESULT_NAME
        policy = self.result_policy()
        try:
            record = self._read_record(path, policy)
        except RefusedResultError as refused:
            self._error = self._refusal(refused)
            log.info("%s", self._error)
            return
        except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, ImportError, AttributeError,
                IndexError, KeyError) as error:  # truncated, foreign, or a class this side lacks
            self._error = PythonTaskNoResult(
                f"PythonTask {self.id}: cannot read its result {path} from worker {self._worker()} ({error!r}); "
                f"exit status {self.return_status}; its output:\n{self.std_output}")
            return
        outcome = outcome_of(record, self._serializer, trusted=policy is None)
        self.remote_traceback = outcome.remote_traceback
        if outcome.problem:
            self._error = PythonTaskNoResult(f"PythonTask {self.id}: {outcome.problem} (worker {self._worker()});"
                                             f" the worker's traceback:\n{outcome.remote_traceback}")
        elif outcome.error is not None:
            self._error = outcome.error
            if hasattr(self._error, "add_note"):  # Python 3.11+
                self._error.add_note(f"raised by PythonTask {self.id} on {self.hostname}:\n{self.remote_traceback}")
        else:
            self._value = outcome.value

    def _read_record(self, path: Path, policy: ResultPolicy | None) -> Any:
        """The record under ``policy``; on a refusal, once more with the user modules that the call's
        pickle names (read opcode by opcode, nothing run) if that adds any."""
        try:
            return read_record(path, self._serializer, policy)
        except RefusedResultError:
            if policy is None or self._call_modules is not None:
                raise
            self._call_modules = user_modules_of((self._directory / CALL_NAME).read_bytes())
            if not self._call_modules - self._user_modules:
                raise
        return read_record(path, self._serializer, self.result_policy())

    def _worker(self) -> str:
        return f"{self.hostname or '?'} ({self.host or 'address unknown'})"

    def _refusal(self, refused: RefusedResultError) -> PythonTaskRefusedResult:
        root = refused.module.split(".")[0]
        if root in ("cloudpickle", "dill"):  # code sent by value: no module to allow
            advice = ("functions, and classes defined in a script, come back as code, which only "
                      "queue.specify_trusted_results() reads (for workers you trust completely)")
        else:
            entry = f"builtins:{refused.name}" if root == "builtins" else root
            advice = (f"if you trust that type, allow it with task.specify_allowed_result_modules(['{entry}']) "
                      "or queue.specify_allowed_result_modules(...)")
        return PythonTaskRefusedResult(
            f"PythonTask {self.id}: refused the result sent by worker {self._worker()}: {refused}; nothing of it "
            f"was loaded; {advice} (docs/manager.md, section 8)",
            refused=refused.qualified, task_id=self.id, worker=self._worker())

    def __repr__(self) -> str:
        return f"<PythonTask {self.id or '(unsubmitted)'} {self._spec.state.log_name}>"


class RemoteTask(Task):
    """CCTools 8's task for a function already loaded in a worker coprocess: not supported here."""

    __slots__ = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("RemoteTask needs CCTools 8's worker coprocesses, which coffea-wq does not "
                                  "have; PythonTask runs a function on any worker")
