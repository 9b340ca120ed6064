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

Reduction and accumulation tasks: the record formats (held, partial, lost; an error record
carrying a partial; a partial's value as a second pickle), the environment contract and the
accumulation payload are docs/reduction.md, sections 1, 3 and 6.

Where the time went (docs/executor.md, section 10): every record carries ``"phases": {name:
seconds}`` (``coffea_wq_task_clock.py``, shipped beside this file) after its other keys, and the
file ends with one more pickle ``{"write": seconds}``, the time the record took to write.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pickle
import socket
import sys
import time
import traceback
from collections import OrderedDict

RECORD_VERSION = 3  # 3: a partial's value follows its record as a second pickle
WARM_SLOT_MODULE = "coffea_wq_warm_slot"
ACCUMULATE = "accumulate"  # the payload key of accumulation tasks (docs/reduction.md, section 3)
SAFE_RESULTS = "coffea_wq_safe_results.py"  # the allow-list module they ship
# the reduction contract with the executor (docs/reduction.md); coffea_wq/worker/warm_contract.py
# defines the same names for the worker and the executor, which this file cannot import
CHUNK_ENV = "COFFEA_WQ_CHUNK"
RUN_ENV = "COFFEA_WQ_RUN"
FLUSH_ENV = "COFFEA_WQ_FLUSH"
TOKEN_ENV = "COFFEA_WQ_WORKER_TOKEN"
# per task, the hold bounds in force: they tighten the payload's (docs/reduction.md, section 6)
HOLD_ENV = "COFFEA_WQ_HOLD"
HOLD_EVERY_ENV = "COFFEA_WQ_HOLD_EVERY"
HOLD_SECONDS_ENV = "COFFEA_WQ_HOLD_SECONDS"
STALE_PARTIAL_S = 3600.0  # a partial of another run untouched this long is dropped (its run is over)
VALUE_FOLLOWS = "value_follows"  # in a record whose value is the next pickle of the file
# set by a coffea-wq worker (warm_contract.py): when it launched the task, and its input preparation
CLOCK_SCRIPT = "coffea_wq_task_clock.py"  # task_clock.py, shipped with every task: where its time went


def _write_record(path: str, record: dict, level: int) -> None:
    import lz4.frame

    began = time.perf_counter()
    head, value = _split_partial_value(record)
    with lz4.frame.open(path, mode="wb", compression_level=level) as out:
        pickle.dump(head, out, protocol=pickle.HIGHEST_PROTOCOL)
        if head is not record:
            pickle.dump(value, out, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.dump({"write": time.perf_counter() - began}, out, protocol=pickle.HIGHEST_PROTOCOL)


def _split_partial_value(record: dict) -> tuple[dict, object]:
    """A record carrying a partial's value: the record without it (marked ``value_follows``), and the value.

    Why two pickles: the executor reads the first alone (ids and keys, bytes) and leaves a big
    value unread for an accumulation task (docs/reduction.md, section 2). Other records: unchanged.
    """
    if record.get("status") == "partial" and "value" in record:
        head = {k: v for k, v in record.items() if k != "value"}
        head[VALUE_FOLLOWS] = True
        return head, record["value"]
    carried = record.get("partial")
    if record.get("status") == "error" and isinstance(carried, dict) and "value" in carried:
        head = dict(record)
        head["partial"] = {k: v for k, v in carried.items() if k != "value"}
        head["partial"][VALUE_FOLLOWS] = True
        return head, carried["value"]
    return record, None


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
        payload = pickle.loads(data)
        if ACCUMULATE in payload:
            return payload  # tiny: the run's processor stays cached for the slot's next chunk
        cache.clear()  # one function per run: keep the memory of one
        cache[key] = payload
    return cache[key]


OPEN_FILES_LIMIT = 4  # ROOT files a slot keeps open (least recently used closed first)


class OpenFiles:
    """The ROOT files a warm slot keeps open across its tasks, so that consecutive chunks of one
    file skip uproot's open and the TTree's metadata (its object cache keeps the TTree).

    Only the chunk's own file is kept, and only when opened as coffea's Runner opens it,
    ``uproot.open({item.filename: None}, **options)``: each task puts ``install()``'s wrapper in
    ``uproot.open`` and ``uninstall()`` takes it out. A kept file is used again only if it is the
    same file: same options, a local file still the same (device, inode, size, mtime), the ROOT
    UUID the work item names, and not closed meanwhile. Leaving coffea's ``with`` block does not
    close it (its class becomes a subclass whose ``__exit__`` empties the file's array cache
    instead), so no array outlives its task. ``hits`` and ``opens`` count what happened.
    """

    def __init__(self, limit: int = OPEN_FILES_LIMIT):
        self.limit = limit
        self.files: OrderedDict = OrderedDict()  # key -> (identity, directory)
        self.hits = 0
        self.opens = 0
        self._real_open = None
        self._uproot = None
        self._item = None

    def install(self, uproot_module, item) -> None:
        self._uproot, self._real_open, self._item = uproot_module, uproot_module.open, item
        uproot_module.open = self.open

    def uninstall(self) -> None:
        if self._uproot is not None:
            self._uproot.open = self._real_open
        self._uproot = self._item = None

    def open(self, path, *args, **options):
        key = self._key(path, args, options)
        if key is None:
            return self._real_open(path, *args, **options)
        identity = _file_identity(key[0])
        kept = self.files.get(key)
        if kept is not None and kept[0] == identity and self._still_good(kept[1]):
            self.files.move_to_end(key)
            self.hits += 1
            return kept[1]
        if kept is not None:
            self._forget(key)
        directory = self._real_open(path, *args, **options)
        self.opens += 1
        try:
            directory.__class__ = _kept_open_class(type(directory))
        except TypeError:  # not a plain uproot directory: used once, as without the slot
            return directory
        self.files[key] = (identity, directory)
        while len(self.files) > self.limit:
            self._forget(next(iter(self.files)))
        return directory

    def _key(self, path, args, options):
        item = self._item
        filename = getattr(item, "filename", None)
        if args or not isinstance(path, dict) or len(path) != 1 or not isinstance(filename, str):
            return None
        (name, obj), = path.items()
        if name != filename or obj is not None:
            return None
        try:
            frozen = tuple(sorted(options.items()))
            hash(frozen)
        except TypeError:  # options that cannot be compared: open afresh
            return None
        local = _local_path(name)
        return (local if local is not None else name, frozen)

    def _still_good(self, directory) -> bool:
        try:
            if directory.closed:
                return False
            wanted = getattr(self._item, "fileuuid", b"") or b""
            return not wanted or directory.file.uuid.bytes == bytes(wanted)
        except Exception:  # anything odd: open afresh
            return False

    def _forget(self, key) -> None:
        _identity, directory = self.files.pop(key)
        try:
            directory.close()
        except Exception:
            pass

    def close_all(self) -> None:
        for key in list(self.files):
            self._forget(key)


_KEPT_OPEN_CLASSES: dict = {}


def _kept_open_class(cls):
    """``cls`` whose ``with`` block leaves the file open and its array cache empty."""
    kept = _KEPT_OPEN_CLASSES.get(cls)
    if kept is None:
        if cls.__dict__.get("_kept_open"):
            return cls

        def __exit__(self, exception_type, exception_value, traceback):
            cache = getattr(self.file, "array_cache", None)
            if cache is not None and hasattr(cache, "clear"):
                cache.clear()

        kept = type(cls.__name__, (cls,), {"__exit__": __exit__, "_kept_open": True,
                                           "__module__": cls.__module__})
        _KEPT_OPEN_CLASSES[cls] = kept
    return kept


def _local_path(name: str):
    """The real path of a local file name (``file:`` URLs included), else None (a remote URL)."""
    if name.startswith("file:"):
        name = name[len("file:"):]
        if name.startswith("//"):
            name = name[2:]
    elif "://" in name:
        return None
    return os.path.realpath(name)


def _file_identity(name: str):
    """What tells a local file from its replacement; None for a remote one (the UUID decides)."""
    if "://" in name:
        return None
    try:
        st = os.stat(name)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _open_files():
    """The slot's ``OpenFiles`` (made on its first task), or None when not in a warm slot."""
    slot = sys.modules.get(WARM_SLOT_MODULE)
    if slot is None:
        return None
    files = getattr(slot, "open_files", None)
    if files is None:
        files = slot.open_files = OpenFiles()
    return files


def _apply(function, item, clock):
    """``function(item)``, in a warm slot with the chunk's file kept open for the next chunk."""
    files = _open_files()
    uproot_module = sys.modules.get("uproot") if files is not None else None
    if uproot_module is None:
        return clock.call(function, item)
    files.install(uproot_module, item)
    try:
        return clock.call(function, item)
    finally:
        files.uninstall()


class _NoClock:
    """Stands in when the clock module did not come with this file (a runner copied alone): no phases."""

    seconds: dict = {}
    add = started = staticmethod(lambda *args, **kwargs: None)
    call = staticmethod(lambda function, item: function(item))


def _new_clock(started: float):
    """The task's clock (``coffea_wq_task_clock.py``, shipped beside this file)."""
    try:
        return _shipped_module(CLOCK_SCRIPT).new_clock(started)
    except OSError:
        return _NoClock()

class _Reducer:
    """The slot's partial of this task's run: adds values to it and decides when it goes back."""

    def __init__(self, slot: object, settings: dict, key: int, run: str, token: str):
        self.slot, self.key, self.run, self.token = slot, key, run, token
        self.every = settings.get("every")
        self.seconds = settings.get("seconds")
        self.partials: dict = slot.partials  # type: ignore[attr-defined]

    @staticmethod
    def for_task(payload: dict) -> _Reducer | None:
        """A reducer when the payload asks for reduction and this task runs in a warm slot, else None."""
        settings = payload.get("reduce")
        slot = sys.modules.get(WARM_SLOT_MODULE)
        if not isinstance(settings, dict) or not isinstance(getattr(slot, "partials", None), dict):
            return None
        token, key = os.environ.get(TOKEN_ENV), os.environ.get(CHUNK_ENV)
        if not token or key is None or not key.lstrip("-").isdigit() or os.environ.get(HOLD_ENV) == "0":
            return None
        return _Reducer(slot, _tightened(settings), int(key), os.environ.get(RUN_ENV, ""), token)

    def current_id(self) -> str | None:
        return next((pid for pid, p in self.partials.items() if p["run"] == self.run), None)

    def add(self, value: object, started: float) -> dict:
        """Add ``value`` to the run's partial (started if none); the held or hand-back record."""
        from coffea.processor import accumulate

        partial_id = self.current_id()
        if partial_id is None:
            self._drop_stale()
            seq = getattr(self.slot, "partial_seq", 0)
            self.slot.partial_seq = seq + 1  # type: ignore[attr-defined]
            partial_id = f"{self.token}/{os.getpid()}/{seq}"
            self.partials[partial_id] = {"run": self.run, "keys": [self.key], "value": value,
                                         "started": time.time(), "touched": time.time()}
        else:
            partial = self.partials.pop(partial_id)  # out while it is added to: a failure loses it, not corrupts it
            partial["value"] = accumulate([value], partial["value"])
            partial["keys"].append(self.key)
            partial["touched"] = time.time()
            self.partials[partial_id] = partial
        partial = self.partials[partial_id]
        if self._due(partial):
            return self.hand_back(partial_id, started)
        return {"version": RECORD_VERSION, "status": "held", "partial": partial_id, "key": self.key,
                "count": len(partial["keys"]), "wall_time": time.time() - started}

    def _due(self, partial: dict) -> bool:
        if self.every and len(partial["keys"]) >= int(self.every):
            return True
        if self.seconds is not None and time.time() - partial["started"] >= float(self.seconds):
            return True
        return bool(getattr(self.slot, "last_task", False))

    def hand_back(self, partial_id: str, started: float) -> dict:
        return _partial_record(partial_id, self.partials.pop(partial_id), started)

    def carried_by_error(self) -> dict | None:
        """The run's partial, taken out of the slot for an error record (the slot retires after it)."""
        partial_id = self.current_id()
        if partial_id is None:
            return None
        partial = self.partials.pop(partial_id)
        return {"id": partial_id, "keys": partial["keys"], "value": partial["value"]}

    def _drop_stale(self) -> None:
        now = time.time()
        for pid in [pid for pid, p in self.partials.items() if now - p["touched"] > STALE_PARTIAL_S]:
            del self.partials[pid]


def _partial_record(partial_id: str, partial: dict, started: float) -> dict:
    return {"version": RECORD_VERSION, "status": "partial", "partial": partial_id, "keys": partial["keys"],
            "value": partial["value"], "wall_time": time.time() - started}


def _tightened(settings: dict) -> dict:
    """The payload's bounds, tightened by the task's own (``HOLD_EVERY_ENV``, ``HOLD_SECONDS_ENV``)."""
    bounds = dict(settings)
    for name, variable, kind in (("every", HOLD_EVERY_ENV, int), ("seconds", HOLD_SECONDS_ENV, float)):
        try:
            value = kind(os.environ.get(variable) or -1)
        except ValueError:  # not a number: the payload's bound stands
            value = -1
        if value >= 0:
            bounds[name] = value if bounds.get(name) is None else min(bounds[name], value)
    return bounds


def _flush_record(partial_id: str, started: float) -> dict:
    """A flush task's record: the partial this slot holds under ``partial_id``, or that it is lost."""
    slot = sys.modules.get(WARM_SLOT_MODULE)
    partials = getattr(slot, "partials", None)
    if isinstance(partials, dict) and partial_id in partials:
        return _partial_record(partial_id, partials.pop(partial_id), started)
    return {"version": RECORD_VERSION, "status": "lost", "partial": partial_id, "host": socket.gethostname(),
            "wall_time": time.time() - started}


def _compute_record(fn_path: str, item_path: str, started: float) -> tuple[dict, int]:
    """Run the function on the item: the record to write (with its ``phases``) and the compression level."""
    clock = _new_clock(started)
    record, level = _record_of(fn_path, item_path, started, clock)
    record["phases"] = clock.seconds
    return record, level


def _record_of(fn_path: str, item_path: str, started: float, clock) -> tuple[dict, int]:
    level, reducer, added = 1, None, False
    try:
        payload = _load_function(fn_path)
        level = int(payload.get("compression") or 1)
        flush = os.environ.get(FLUSH_ENV)
        if flush:
            return _flush_record(flush, started), level
        reducer = _Reducer.for_task(payload)
        with open(item_path, "rb") as f:
            item = pickle.load(f)
        clock.started(warm=WARM_SLOT_MODULE in sys.modules)
        value = _task_value(payload, item, clock)
        if reducer is not None and value is not None:  # None: skipped by skipbadfiles, sent as is
            added, began = True, time.perf_counter()
            record = reducer.add(value, started)
            clock.add("accumulate", time.perf_counter() - began)
            return record, level
        return {"version": RECORD_VERSION, "status": "ok", "value": value, "wall_time": time.time() - started}, level
    except BaseException as exc:  # the remote traceback is the whole point: report anything
        record = _error_record(exc, started)
        if reducer is not None and not added:  # a failed addition may have half-changed the partial: not sent
            carried = reducer.carried_by_error()
            if carried is not None:
                record["partial"] = carried
        return record, level


def run_task(fn_path: str, item_path: str, out_path: str) -> int:
    """Apply the function in ``fn_path`` to the item in ``item_path``; write the record to ``out_path``."""
    started = time.time()
    record, level = _compute_record(fn_path, item_path, started)
    try:
        _write_record(out_path, record, level)
    except BaseException as exc:  # e.g. an output that cannot be pickled
        try:
            _write_record(out_path, {**_error_record(exc, started), "phases": record["phases"]}, level)
        except BaseException:
            traceback.print_exc()
            return 2
        return 1
    if record["status"] == "error":
        sys.stderr.write(record["traceback"])
        return 1
    return 0


class AccumulationInputError(Exception):
    """An accumulation task's input that could not be added: ``input`` names it, ``refused`` the
    type it tried to build when the allow-list refused it (else "")."""

    def __init__(self, message: str, input_name: str, refused: str = ""):
        super().__init__(message)
        self.input = input_name
        self.refused = refused


def _task_value(payload: dict, item: object, clock) -> object:
    """The task's value: the function applied to the item, or the sum of an accumulation task's inputs."""
    if ACCUMULATE in payload:
        began = time.perf_counter()
        try:
            return _accumulate_inputs(payload[ACCUMULATE], item)
        finally:
            clock.add("accumulate", time.perf_counter() - began)
    return _apply(payload["function"], item, clock)


def _accumulate_inputs(policy_data: dict, item: dict) -> object:
    from coffea.processor import accumulate

    safe = _shipped_module(SAFE_RESULTS)
    policy = safe.ResultPolicy(frozenset(policy_data["packages"]), frozenset(policy_data["modules"]),
                               frozenset(policy_data["globals"]))
    total = None
    for name in item["inputs"]:
        record = _read_input(safe, policy, name)
        total = accumulate([record.pop("value")], total)  # in place from the second input on
        del record
    return total


def _read_input(safe: object, policy: object, name: str) -> dict:
    """An input's record as ``{"value": ...}``: an ok record, or a record carrying a partial's value."""
    import lz4.frame

    try:
        with lz4.frame.open(name, mode="rb") as stream:
            record = safe.load_result(stream, policy)
            if record_value_follows(record):
                return {"value": safe.load_result(stream, policy)}
    except safe.RefusedResultError as exc:
        raise AccumulationInputError(f"input {name}: {exc}", name, exc.qualified) from None
    except Exception as exc:
        raise AccumulationInputError(f"input {name} cannot be read: {exc!r}", name) from None
    if not isinstance(record, dict) or record.get("status") not in ("ok", "partial") or "value" not in record:
        raise AccumulationInputError(f"input {name} is not a result record with a value", name)
    return record


def record_value_follows(record: object) -> bool:
    """A partial record, or an error record carrying a partial, whose value is the file's next pickle."""
    if not isinstance(record, dict):
        return False
    if record.get("status") == "partial":
        return record.get(VALUE_FOLLOWS) is True
    carried = record.get("partial")
    return record.get("status") == "error" and isinstance(carried, dict) and carried.get(VALUE_FOLLOWS) is True


def _shipped_module(filename: str) -> object:
    """A module shipped with the task as ``filename``, loaded once per content (a warm slot keeps it)."""
    with open(filename, "rb") as f:
        source = f.read()
    name = filename.removesuffix(".py") + "_" + hashlib.sha256(source).hexdigest()[:16]
    module = sys.modules.get(name)
    if module is None:
        module = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader=None))
        sys.modules[name] = module  # dataclasses look their module up while the class is made
        try:
            exec(compile(source, os.path.abspath(filename), "exec"), module.__dict__)
        except BaseException:
            del sys.modules[name]
            raise
    return module


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
