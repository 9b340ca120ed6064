"""``PythonTask``: a Python function call run on a worker (CCTools' ``work_queue.PythonTask``).

The function and its arguments are pickled into one input file; a small wrapper script (cached on
the worker) unpickles them with the worker's ``python3``, calls the function and pickles what it
returned, or the exception it raised, into the task's output file. ``task.output`` unpickles it.

Pickling uses ``dill`` when it is importable on the submit side, else ``cloudpickle`` (coffea
depends on it, so it is always there); the worker's ``python3`` needs the same module. See
docs/manager.md, "Python functions as tasks".
"""

from __future__ import annotations

import atexit
import importlib
import shutil
import tempfile
import threading
import weakref
from pathlib import Path
from typing import Any

from coffea_wq.protocol.codes import ResultCode
from coffea_wq.work_queue.task import Task

WRAPPER_NAME = "coffea_wq_pytask.py"
CALL_NAME = "coffea_wq_call.pkl"
RESULT_NAME = "coffea_wq_result.pkl"
SERIALIZERS = ("dill", "cloudpickle")

# The wrapper runs on the worker, where coffea-wq may not be installed: it uses only the standard
# library and the serializer named on its command line.
WRAPPER_SOURCE = '''\
"""Run one coffea-wq PythonTask: python3 coffea_wq_pytask.py SERIALIZER CALL_FILE RESULT_FILE"""
import importlib
import sys
import traceback

serializer = importlib.import_module(sys.argv[1])
with open(sys.argv[2], "rb") as handle:
    function, args, kwargs = serializer.load(handle)
try:
    outcome = ("value", function(*args, **kwargs))
except Exception as error:
    traceback.print_exc()
    outcome = ("error", error, traceback.format_exc())
with open(sys.argv[3], "wb") as handle:
    serializer.dump(outcome, handle)
'''


class PythonTaskNoResult(Exception):
    """A PythonTask's function produced no result: the task itself failed (its ``result_str`` says how)."""


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

    Example::

        t = PythonTask(pow, 2, 10)
        t.specify_cores(1)
        q.submit(t)
        t = q.wait(60)
        print(t.output)  # 1024
    """

    __slots__ = ("_directory", "_serializer", "_loaded", "_value", "_error", "remote_traceback", "_cleanup")

    def __init__(self, func: Any, *args: Any, **kwargs: Any) -> None:
        self._serializer = choose_serializer()
        self._directory = Path(tempfile.mkdtemp(prefix="task-", dir=_STAGING.root()))
        self._cleanup = weakref.finalize(self, shutil.rmtree, str(self._directory), True)
        serializer = importlib.import_module(self._serializer)
        with open(self._directory / CALL_NAME, "wb") as handle:
            serializer.dump((func, args, kwargs), handle)
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
        try:
            serializer = importlib.import_module(self._serializer)
            with open(path, "rb") as handle:
                outcome = serializer.load(handle)
        except (OSError, EOFError, ValueError, ImportError, AttributeError) as error:
            self._error = PythonTaskNoResult(
                f"PythonTask {self.id}: cannot read its result {path} ({error}); exit status "
                f"{self.return_status}; its output:\n{self.std_output}")
            return
        if outcome[0] == "value":
            self._value = outcome[1]
        else:
            self._error, self.remote_traceback = outcome[1], outcome[2]
            if hasattr(self._error, "add_note"):
                self._error.add_note(f"raised by PythonTask {self.id} on {self.hostname}:\n{self.remote_traceback}")

    def __repr__(self) -> str:
        return f"<PythonTask {self.id or '(unsubmitted)'} {self._spec.state.log_name}>"


class RemoteTask(Task):
    """CCTools 8's task for a function already loaded in a worker coprocess: not supported here."""

    __slots__ = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("RemoteTask needs CCTools 8's worker coprocesses, which coffea-wq does not "
                                  "have; PythonTask runs a function on any worker")
