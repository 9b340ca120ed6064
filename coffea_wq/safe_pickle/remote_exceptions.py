"""Rebuild a worker's exception from the plain data ``coffea_wq_task.py`` sends (never from a pickle).

Why: results are unpickled through an allow-list (``allow_list.py``), and exception classes
cannot be on it (any library defines them, and building one runs its ``__init__``). So the task
runner describes each exception of the ``__cause__`` chain as data: its classes, most derived
first, its args and plain attributes. Here the most derived class that this process has
*already imported* is instantiated without running its ``__init__`` (the built-in base's
``__new__`` does the work, as for any exception); nothing is imported, and a class unknown here
falls back to its nearest known base (``uproot``'s ``KeyInFileError`` becomes a ``KeyError``
when uproot is not loaded). coffea's ``skipbadfiles`` matches the rebuilt chain like a local one.
"""

from __future__ import annotations

import builtins
import sys
from typing import Any

_PLAIN = (str, int, float, bool, bytes, type(None))


def rebuild_chain(described: Any) -> BaseException | None:
    """The first exception of ``described`` (a list of descriptions), its ``__cause__``s re-linked.

    Example:
        >>> exc = rebuild_chain([{"classes": [["builtins", "KeyError"]], "args": ["Jet_pt"]},
        ...                      {"classes": [["builtins", "OSError"]], "args": [2, "gone"]}])
        >>> type(exc).__name__, type(exc.__cause__).__name__, exc.__cause__.errno
        ('KeyError', 'FileNotFoundError', 2)
    """
    chain = [rebuild_exception(d) for d in described] if isinstance(described, list) else []
    chain = [e for e in chain if e is not None]
    for exc, cause in zip(chain[:-1], chain[1:], strict=False):
        exc.__cause__ = cause
    return chain[0] if chain else None


def rebuild_exception(description: Any) -> BaseException | None:
    """One exception from its description, or None when nothing in it can be rebuilt here."""
    if not isinstance(description, dict):
        return None
    args = description.get("args")
    args = tuple(a for a in args if isinstance(a, _PLAIN)) if isinstance(args, list) else ()
    attrs = description.get("attrs") if isinstance(description.get("attrs"), dict) else {}
    for names in description.get("classes") or []:
        if not (isinstance(names, list) and len(names) == 2 and all(isinstance(n, str) for n in names)):
            continue
        cls = loaded_exception_class(*names)
        if cls is None:
            continue
        exc = _instantiate(cls, args)
        if exc is not None:
            if cls.__module__ != "builtins":
                exc.__dict__.update((k, v) for k, v in attrs.items() if isinstance(k, str) and isinstance(v, _PLAIN))
            return exc
    return None


def loaded_exception_class(module: str, qualname: str) -> type[BaseException] | None:
    """``module.qualname`` if that module is already imported and it is an exception class defined there."""
    owner: Any = builtins if module == "builtins" else sys.modules.get(module)
    if owner is None or "<" in qualname:
        return None
    for part in qualname.split("."):
        owner = owner.__dict__.get(part) if hasattr(owner, "__dict__") else None
        if owner is None:
            return None
    if isinstance(owner, type) and issubclass(owner, BaseException) and owner.__module__ == module:
        return owner
    return None


def _instantiate(cls: type[BaseException], args: tuple) -> BaseException | None:
    if cls.__module__ == "builtins":
        try:
            return cls(*args)
        except Exception:
            return None
    # the nearest class that defines __new__ must be a built-in one: then no library code runs
    maker = next((k for k in cls.__mro__ if "__new__" in k.__dict__), BaseException)
    if maker.__module__ != "builtins":
        return None
    try:
        exc = maker.__new__(cls, *args)
        exc.args = args
        return exc
    except Exception:
        return None
