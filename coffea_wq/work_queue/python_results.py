"""What a ``PythonTask``'s worker sends back, and how it is read without letting the worker run code here.

The wrapper script (``WRAPPER_SOURCE``, cached on workers) calls the function and writes one record,
pickled with the task's serializer (dill or cloudpickle):

* ``{"status": "value", "value": V}`` when the function returned ``V``;
* ``{"status": "error", "exception_chain": [...], "traceback": TEXT, "exception_pickle": B}`` when it
  raised: the exception and its ``__cause__``s described as plain data (classes, args, plain
  attributes), the worker's traceback, and the exception pickled (``B``, None if it cannot be).

The result file comes from a peer on the network, so ``read_record`` unpickles it through the
allow-list of ``coffea_wq.safe_pickle`` (``ResultPolicy``): a worker that sends a pickle whose
``__reduce__`` is ``os.system`` gets ``RefusedResultError`` back, never a shell. The exception is
rebuilt from its description (``rebuild_chain``), never unpickled. A queue or task that is told its
workers are fully trusted (``specify_trusted_results``) reads both with the serializer's own
``load``, as CCTools does. See docs/manager.md, section 8, and README, "Security".
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coffea_wq.safe_pickle.allow_list import ResultPolicy, load_result
from coffea_wq.safe_pickle.remote_exceptions import rebuild_chain

# The wrapper runs on the worker, where coffea-wq may not be installed: it uses only the standard
# library and the serializer named on its command line. Its cached name carries a digest of its
# text, so a worker that cached an older wrapper never runs it for a newer manager.
WRAPPER_SOURCE = '''\
"""Run one coffea-wq PythonTask: python3 THIS_FILE SERIALIZER CALL_FILE RESULT_FILE

The record written holds plain data and the value: the manager reads results through an
allow-list of types, so exceptions travel as a description (classes, args, plain attributes).
"""
import importlib
import sys
import traceback

PLAIN = (str, int, float, bool, bytes, type(None))


def plain(value, depth=0):
    if isinstance(value, PLAIN):
        return True
    return (isinstance(value, (tuple, list)) and depth < 3 and len(value) <= 64
            and all(plain(v, depth + 1) for v in value))


def describe(exc):
    attrs = {k: v for k, v in getattr(exc, "__dict__", {}).items()
             if isinstance(k, str) and not k.startswith("__") and plain(v)}
    return {"classes": [[k.__module__, k.__qualname__] for k in type(exc).__mro__ if issubclass(k, BaseException)],
            "args": list(exc.args) if plain(exc.args) else [str(exc)], "attrs": attrs}


def cause_chain(exc):
    chain, seen = [], set()
    while isinstance(exc, BaseException) and id(exc) not in seen and len(chain) < 20:
        seen.add(id(exc))
        try:
            chain.append(describe(exc))
        except Exception:  # a broken __str__ or __dict__: the class still helps
            chain.append({"classes": [[type(exc).__module__, type(exc).__qualname__]], "args": [], "attrs": {}})
        exc = exc.__cause__
    return chain


def error_record(serializer, error):
    try:
        pickled = serializer.dumps(error)  # read back only by a manager that trusts its workers
    except Exception:
        pickled = None
    return {"status": "error", "exception_chain": cause_chain(error), "traceback": traceback.format_exc(),
            "exception_pickle": pickled}


def main(serializer_name, call_file, result_file):
    serializer = importlib.import_module(serializer_name)
    with open(call_file, "rb") as handle:
        function, args, kwargs = serializer.load(handle)
    try:
        data = serializer.dumps({"status": "value", "value": function(*args, **kwargs)})
    except Exception as error:  # raised by the function, or its value cannot be pickled
        traceback.print_exc()
        data = serializer.dumps(error_record(serializer, error))
    with open(result_file, "wb") as handle:
        handle.write(data)


if __name__ == "__main__":
    main(*sys.argv[1:4])
'''
WRAPPER_NAME = f"coffea_wq_pytask_{hashlib.sha256(WRAPPER_SOURCE.encode()).hexdigest()[:12]}.py"


class PythonTaskNoResult(Exception):
    """A PythonTask's function produced no result: the task itself failed (its ``result_str`` says how),
    or what came back cannot be read."""


class PythonTaskRefusedResult(PythonTaskNoResult):
    """The worker sent a result that would build something off the allow-list; nothing of it was loaded.

    Attributes: ``refused`` (``module.name`` of what it would build), ``task_id``, ``worker``
    (``"hostname (address:port)"``).
    """

    def __init__(self, message: str, *, refused: str, task_id: int, worker: str) -> None:
        super().__init__(message)
        self.refused, self.task_id, self.worker = refused, task_id, worker


def checked_module_names(modules: str | Iterable[str]) -> list[str]:
    """``modules`` as a list of ``"package"`` or ``"module:name"`` strings; a single string is one name.

    Example:
        >>> checked_module_names("mypkg"), checked_module_names(["a.b", "c:D"])
        (['mypkg'], ['a.b', 'c:D'])
    """
    names = [modules] if isinstance(modules, str) else list(modules)
    for name in names:
        if not isinstance(name, str) or not name or name.count(":") > 1:
            raise TypeError(f"allowed result modules are names like 'mypkg' or 'mypkg.mod:Name', not {name!r}")
    return names


@dataclass
class ResultSettings:
    """What PythonTask results may contain beyond the built-in allow-list, set on a queue or a task.

    ``trusted``: None where not said (a task then follows its queue; a queue's default is False).
    """

    allowed_modules: list[str] = field(default_factory=list)
    trusted: bool | None = None

    def allow(self, modules: str | Iterable[str]) -> None:
        self.allowed_modules.extend(m for m in checked_module_names(modules) if m not in self.allowed_modules)


@dataclass
class RemoteOutcome:
    """A result record read back: the function's ``value``, or the ``error`` it raised (rebuilt here)."""

    value: Any = None
    error: BaseException | None = None
    remote_traceback: str = ""
    problem: str = ""  # the record is not a PythonTask record, or its exception cannot be rebuilt


def read_record(path: Path, serializer_name: str, policy: ResultPolicy | None) -> Any:
    """Unpickle the result file at ``path`` under ``policy`` (None: trusted, the serializer's ``load``).

    Raises ``RefusedResultError`` for anything off the allow-list, before anything of it is built.
    """
    with open(path, "rb") as handle:
        if policy is None:
            return importlib.import_module(serializer_name).load(handle)
        return load_result(handle, policy)


def outcome_of(record: Any, serializer_name: str, trusted: bool) -> RemoteOutcome:
    """What a record says: the value, or the exception rebuilt from its description (``trusted``: from
    its pickle when there is one)."""
    if not isinstance(record, dict) or record.get("status") not in ("value", "error"):
        return RemoteOutcome(problem="the result file is not a coffea-wq PythonTask record")
    if record["status"] == "value":
        return RemoteOutcome(value=record.get("value"))
    text = record.get("traceback") if isinstance(record.get("traceback"), str) else ""
    error = _trusted_exception(record.get("exception_pickle"), serializer_name) if trusted else None
    if error is None:
        error = rebuild_chain(record.get("exception_chain"))
    if error is None:
        return RemoteOutcome(remote_traceback=text, problem="the record of the function's exception is malformed")
    if not isinstance(error, Exception):  # the wrapper catches Exceptions only: raise nothing else here
        return RemoteOutcome(remote_traceback=text, problem=f"the record says the function raised "
                                                            f"{type(error).__name__}, which is not an Exception")
    return RemoteOutcome(error=error, remote_traceback=text)


def _trusted_exception(pickled: Any, serializer_name: str) -> BaseException | None:
    if not isinstance(pickled, bytes):
        return None
    try:
        found = importlib.import_module(serializer_name).loads(pickled)
    except Exception:  # a class missing here: the description still tells
        return None
    return found if isinstance(found, BaseException) else None
