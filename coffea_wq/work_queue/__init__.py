"""CCTools' ``work_queue`` Python API, on coffea-wq's pure-Python manager.

A script written for ``import work_queue as wq`` runs with ``import coffea_wq.work_queue as wq``::

    import coffea_wq.work_queue as wq

    q = wq.WorkQueue(port=9123)
    t = wq.Task("wc -l < data.txt > count.txt")
    t.specify_input_file("data.txt", cache=True)
    t.specify_output_file("count.txt")
    q.submit(t)
    while not q.empty():
        t = q.wait(5)
        if t:
            print(t.id, t.result, t.return_status, t.output)

Workers are the real ``work_queue_worker`` or ``coffea-wq worker``:
``work_queue_worker 127.0.0.1 9123``. See docs/manager.md.

Modules: ``constants`` (CCTools' ``WORK_QUEUE_*`` values), ``task`` (``Task``), ``python_task``
(``PythonTask``) and ``python_results`` (its result records, read through an allow-list),
``queue`` (``WorkQueue``), ``workers`` and ``categories`` (the parts of ``WorkQueue`` acting on
workers and on categories/monitoring), ``functional`` (``map``, ``pair``, ``tree_reduce``),
``futures`` (CCTools' ``work_queue_futures``).
``Factory`` is coffea-wq's worker factory (``coffea_wq.Factory``), loaded on first use.
"""

from __future__ import annotations

import importlib
import importlib.util
import socket
from typing import Any

from coffea_wq.work_queue.constants import *  # noqa: F403 (CCTools' module exports every WORK_QUEUE_* name)
from coffea_wq.work_queue.python_task import (
    PythonTask,
    PythonTaskNoResult,
    PythonTaskRefusedResult,
    RemoteTask,
)
from coffea_wq.work_queue.queue import WorkQueue
from coffea_wq.work_queue.task import Task, work_queue_result_str

#: CCTools' flag: PythonTask can pickle functions here (dill or cloudpickle importable)
pythontask_available = importlib.util.find_spec("dill") is not None or importlib.util.find_spec("cloudpickle") is not None

_CONSTANTS = [name for name in dir() if name.startswith(("WORK_QUEUE_", "CATEGORY_ALLOCATION_", "RESOURCES_"))]
__all__ = ["WorkQueue", "Task", "PythonTask", "PythonTaskNoResult", "PythonTaskRefusedResult", "RemoteTask",  # noqa: F405 (Factory: lazy)
           "Factory", "work_queue_result_str", "hostname", "pythontask_available", *_CONSTANTS]


def __getattr__(name: str) -> Any:
    # the factory pulls in its batch back-ends: loaded only by scripts that use it
    if name == "Factory":
        return importlib.import_module("coffea_wq.factory.api").Factory
    raise AttributeError(f"module 'coffea_wq.work_queue' has no attribute {name!r}")


def hostname() -> str:
    return socket.gethostname()
