"""The coffea executor: coffea's Runner on a Work Queue of workers.

Public names (loaded on first use, so importing a submodule such as ``errors`` stays cheap):
``WorkQueueExecutor``, ``RunInterrupted``, ``last_report``, ``shutdown`` (from ``core``) and
coffea 0.7's ``run_uproot_job`` and ``work_queue_executor`` (from ``compat``).

Modules:

* ``core``: the ``WorkQueueExecutor`` dataclass of options and one call of it; ``last_report``.
* ``compat``: ``run_uproot_job(..., executor_args={...})`` and coffea 0.7's option names.
* ``errors``: the exceptions a user meets, naming dataset, file and entry range.
* ``session``: the manager, staging area and local workers that must outlive ``copy()``.
* ``backend``: which Work Queue implementation the executor drives.
* ``interrupts``: Ctrl-C and SIGTERM during a call (partial output, nothing left behind).
* ``verbose``: the per-task report lines of ``verbose=True``.
* ``call/``: one executor call as a state machine: ``state`` and ``settling`` (``CallState``: events
  in, actions out, no I/O), ``partials`` and ``bounds`` (partials on workers under churn),
  ``model`` (units, events, actions), ``reading`` (a returned task read once), ``driver`` (the
  thin I/O loop), ``report`` (``CallOptions``, ``CallReport``).
* ``tasks/``: what one task carries: ``task_script`` (shipped with every task as
  ``coffea_wq_task.py``; it runs under any ``python3`` that has coffea, cloudpickle and lz4,
  without coffea_wq installed), ``staging`` (the staging directory and one Work Queue task per
  work item), ``accumulation`` (accumulation tasks), ``splitting`` and ``exhaustion`` (split on
  exhaustion), ``dynamic_chunks``, ``culprits`` (which file or environment broke a task),
  ``progress`` (the rich progress bars).
* ``results/``: what a task sends back: ``outcome`` (a result or a remote error record),
  ``checkpoint`` (``checkpoint_dir``), ``ledger`` and ``tree`` (reduction). The unpickling
  allow-list and the rebuilding of remote exceptions are ``coffea_wq.safe_pickle``'s, shared with
  ``coffea_wq.work_queue.PythonTask``.
* ``workers/``: where the workers come from: ``local_workers`` (processes on 127.0.0.1),
  ``factory_pool`` (the ``factory={...}`` option), ``run_secrets`` (the run's password file),
  ``refused`` (peers the manager turned away).
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> submodule that defines it
_LAZY = {
    "WorkQueueExecutor": "coffea_wq.executor.core",
    "RunInterrupted": "coffea_wq.executor.errors",
    "TaskFailedError": "coffea_wq.executor.errors",
    "ExecutorConfigError": "coffea_wq.executor.errors",
    "last_report": "coffea_wq.executor.core",
    "shutdown": "coffea_wq.executor.core",
    "work_queue_executor": "coffea_wq.executor.compat",
    "run_uproot_job": "coffea_wq.executor.compat",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'coffea_wq.executor' has no attribute {name!r}")
