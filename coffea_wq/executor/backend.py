"""Which Work Queue implementation the executor drives: chosen here and nowhere else.

Both speak the CCTools Python API (``WorkQueue``, ``Task``, ``WORK_QUEUE_*`` constants):
* ``coffea-wq``: ``coffea_wq.work_queue``, the pure-Python manager embedded in this process
  (the default whenever it is importable);
* ``cctools``: Debian's ``work_queue`` module (python3-workqueue), built for the system Python
  3.11 and importable from a 3.11 virtual environment through ``/usr/lib/python3/dist-packages``.

``COFFEA_WQ_MANAGER=coffea-wq|cctools|auto`` overrides the choice (auto: coffea-wq first).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from types import ModuleType

log = logging.getLogger(__name__)

CCTOOLS_PYTHON_DIRS = ("/usr/lib/python3/dist-packages",)
ENV_CHOICE = "COFFEA_WQ_MANAGER"

# CCTools' numeric constants, for an implementation that does not export them
ALLOCATION_MODES = {"fixed": 0, "max": 1, "min-waste": 2, "max-throughput": 3}


def load_work_queue_module(choice: str | None = None) -> ModuleType:
    """The module providing ``WorkQueue`` and ``Task``.

    Example:
        >>> wq = load_work_queue_module()
        >>> hasattr(wq, "WorkQueue") and hasattr(wq, "Task")
        True
    """
    choice = (choice or os.environ.get(ENV_CHOICE) or "auto").lower()
    if choice not in ("auto", "coffea-wq", "cctools"):
        raise ValueError(f"{ENV_CHOICE}={choice!r}: expected one of auto, coffea-wq, cctools")
    if choice in ("auto", "coffea-wq"):
        try:
            module = importlib.import_module("coffea_wq.work_queue")
            if hasattr(module, "WorkQueue") and hasattr(module, "Task"):
                return module
            raise ImportError("coffea_wq.work_queue has no WorkQueue/Task yet")
        except ImportError as exc:
            if choice == "coffea-wq":
                raise
            log.debug("coffea_wq.work_queue unavailable (%s); using CCTools' work_queue", exc)
    return _import_cctools_module()


def _import_cctools_module() -> ModuleType:
    if "work_queue" in sys.modules:
        return sys.modules["work_queue"]
    try:
        return importlib.import_module("work_queue")
    except ImportError:
        pass
    added = [d for d in CCTOOLS_PYTHON_DIRS if os.path.isdir(d) and d not in sys.path]
    # appended, and removed again, so Debian's other packages never shadow the environment's
    sys.path.extend(added)
    loaded_before = set(sys.modules)
    try:
        return importlib.import_module("work_queue")
    except ImportError as exc:
        raise ImportError(
            "no Work Queue implementation: coffea_wq.work_queue is not importable and neither is "
            "CCTools' work_queue module (apt-get install python3-workqueue)"
        ) from exc
    finally:
        for d in added:
            sys.path.remove(d)
        _forget_modules_loaded_from(added, set(sys.modules) - loaded_before)


def _forget_modules_loaded_from(dirs: list[str], names: set[str]) -> None:
    """Drop from ``sys.modules`` what CCTools' module pulled in from ``dirs`` (Debian's ``dill``, say).

    CCTools' module keeps its own references; left in ``sys.modules`` they would look importable to
    code that then relies on them on workers whose Python lacks them (``PythonTask`` picks ``dill``
    when it can import it)."""
    kept = {"work_queue", "_work_queue"}
    for name in names - kept:
        origin = getattr(sys.modules.get(name), "__file__", None) or ""
        if any(origin.startswith(d + os.sep) for d in dirs):
            del sys.modules[name]


def module_constant(module: ModuleType, name: str, default: int) -> int:
    """``module.name`` when the implementation exports it, else CCTools' value ``default``."""
    return int(getattr(module, name, default))
