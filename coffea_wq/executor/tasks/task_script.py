"""Run one coffea work item inside a Work Queue task: ``python3 coffea_wq_task.py FN ITEM OUT``.

This file is shipped to workers as ``coffea_wq_task.py`` and runs under whatever ``python3``
the worker offers, so it imports only the standard library, cloudpickle and lz4 (all coffea
dependencies), never coffea_wq.

* ``FN``: a cloudpickled dict ``{"function": callable, "compression": int}``, the same file for
  every task of a run (cached on the worker).
* ``ITEM``: a pickled WorkItem (or FileMeta for preprocessing).
* ``OUT``: written as an lz4 frame holding a pickled record, either
  ``{"status": "ok", "value": <function(item)>}`` or
  ``{"status": "error", "type", "message", "traceback", "exception_chain", "host", "python"}``
  where ``exception_chain`` describes the exception and its ``__cause__``s as plain data (classes,
  args, attributes), so the manager can rebuild the chain coffea's ``skipbadfiles`` inspects
  without unpickling exception classes (it reads results through an allow-list of types).

Exit status: 0 when the function returned, 1 when the error record was written, 2 when not
even that was possible (the manager then reports the missing output with the task's stdout).
The process ends with ``os._exit`` so that library finalisers (xrootd is known to crash in
them) cannot turn a finished task into a failed one, and so that a warm slot's forked child
never runs the zygote's exit handlers.

In a warm slot (``coffea_wq/worker/zygote.py``) the zygote provides a module
``coffea_wq_warm_slot``: its ``function_cache`` keeps the unpickled function across the tasks
a slot runs one after another (keyed by the file's size and SHA-256, so a changed file is
loaded again), and its ``task_finished(code)`` ends the task instead of ``os._exit`` (it hands
the slot back for the next task). Run cold, neither exists and nothing changes.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import socket
import sys
import time
import traceback

RECORD_VERSION = 2
WARM_SLOT_MODULE = "coffea_wq_warm_slot"


def _write_record(path: str, record: dict, level: int) -> None:
    import lz4.frame

    with lz4.frame.open(path, mode="wb", compression_level=level) as out:
        pickle.dump(record, out, protocol=pickle.HIGHEST_PROTOCOL)


_PLAIN = (str, int, float, bool, bytes, type(None))


def _plain(value: object, depth: int = 0) -> bool:
    """Data the manager rebuilds without running code: scalars, and short tuples/lists of them."""
    if isinstance(value, _PLAIN):
        return True
    if isinstance(value, (tuple, list)) and depth < 3 and len(value) <= 64:
        return all(_plain(v, depth + 1) for v in value)
    return False


def _describe_exception(exc: BaseException) -> dict:
    """An exception as plain data: its classes (most derived first), args and plain attributes.

    The manager unpickles results through an allow-list of types (docs/executor.md, Security), so
    exceptions travel as data and are rebuilt there from classes it has already imported.
    """
    attrs = {k: v for k, v in getattr(exc, "__dict__", {}).items()
             if isinstance(k, str) and not k.startswith("__") and _plain(v)}
    return {
        "classes": [[k.__module__, k.__qualname__] for k in type(exc).__mro__ if issubclass(k, BaseException)],
        "args": list(exc.args) if _plain(exc.args) else [str(exc)],
        "attrs": attrs,
        "text": str(exc),
    }


def _cause_chain(exc: BaseException) -> list:
    """The exception and its ``__cause__``s, each described as data (pickle would drop ``__cause__``)."""
    chain, seen = [], set()
    while isinstance(exc, BaseException) and id(exc) not in seen and len(chain) < 20:
        seen.add(id(exc))
        try:
            chain.append(_describe_exception(exc))
        except Exception:  # a broken __str__: the type still helps
            chain.append({"classes": [[type(exc).__module__, type(exc).__qualname__]], "args": [], "attrs": {},
                          "text": "?"})
        exc = exc.__cause__
    return chain


def _error_record(exc: BaseException, started: float) -> dict:
    return {
        "version": RECORD_VERSION,
        "status": "error",
        "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
        "exception_chain": _cause_chain(exc),
        "host": socket.gethostname(),
        "python": sys.executable,
        "wall_time": time.time() - started,
    }


def _load_function(fn_path: str) -> dict:
    """The function file's payload; in a warm slot, unpickled once per distinct file content."""
    with open(fn_path, "rb") as f:
        data = f.read()
    slot = sys.modules.get(WARM_SLOT_MODULE)
    cache = getattr(slot, "function_cache", None)
    if not isinstance(cache, dict):
        return pickle.loads(data)
    key = (len(data), hashlib.sha256(data).hexdigest())
    if key not in cache:
        cache.clear()  # one function per run: keep the memory of one
        cache[key] = pickle.loads(data)
    return cache[key]


def run_task(fn_path: str, item_path: str, out_path: str) -> int:
    """Apply the function in ``fn_path`` to the item in ``item_path``; write the record to ``out_path``."""
    started = time.time()
    level = 1
    try:
        payload = _load_function(fn_path)
        level = int(payload.get("compression") or 1)
        with open(item_path, "rb") as f:
            item = pickle.load(f)
        value = payload["function"](item)
        record = {"version": RECORD_VERSION, "status": "ok", "value": value, "wall_time": time.time() - started}
    except BaseException as exc:  # the remote traceback is the whole point: report anything
        record = _error_record(exc, started)
    try:
        _write_record(out_path, record, level)
    except BaseException as exc:  # e.g. an output that cannot be pickled
        try:
            _write_record(out_path, _error_record(exc, started), level)
        except BaseException:
            traceback.print_exc()
            return 2
        return 1
    if record["status"] != "ok":
        sys.stderr.write(record["traceback"])
        return 1
    return 0


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        sys.stderr.write(f"usage: {argv[0]} FUNCTION_FILE ITEM_FILE OUTPUT_FILE (got {argv[1:]!r})\n")
        return 2
    return run_task(argv[1], argv[2], argv[3])


if __name__ == "__main__":
    code = main(sys.argv)
    sys.stdout.flush()
    sys.stderr.flush()
    finished = getattr(sys.modules.get(WARM_SLOT_MODULE), "task_finished", None)
    if callable(finished):
        finished(code)  # never returns
    os._exit(code)
