"""coffea-wq: run a coffea analysis on a Work Queue of workers anywhere.

Heavy parts (coffea, the manager) load on first use, so ``import coffea_wq`` stays cheap for
workers and command-line tools.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "WorkQueueExecutor": "coffea_wq.executor",
    "RunInterrupted": "coffea_wq.executor",
    "last_report": "coffea_wq.executor",
    "shutdown": "coffea_wq.executor",
    "work_queue_executor": "coffea_wq.executor.compat",
    "run_uproot_job": "coffea_wq.executor.compat",
    "Factory": "coffea_wq.factory.api",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'coffea_wq' has no attribute {name!r}")
