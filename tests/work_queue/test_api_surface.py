"""Every public name of Debian's CCTools Python binding exists in coffea_wq.work_queue (and the
futures module's in coffea_wq.work_queue.futures), so a script written for it finds what it calls."""

from __future__ import annotations

import json
import subprocess

import coffea_wq.work_queue as ours
import coffea_wq.work_queue.futures as ours_futures
from tests.support import SYSTEM_PYTHON, requires_cctools_python

# The SWIG layer's C functions and the module's own imports are not API a script uses.
NOT_API = ("work_queue_", "rmsummary", "rmsummay", "new_rms", "delete_rms", "cctools_", "D_", "category_",
           "timestamp_", "debug_", "categories_", "json_to_rmsummary", "cvar", "specify_debug_log",
           "specify_port_range", "set_debug_flag", "staging_directory", "cleanup_staging_directory")
MODULES = ("atexit", "copy", "distutils", "errno", "json", "os", "shutil", "subprocess", "sys", "tempfile",
           "textwrap", "time", "uuid", "multiprocessing", "threading", "traceback", "futures", "ThreadQueue",
           "work_queue", "dill", "category")

DUMP = """
import inspect, json, work_queue, work_queue_futures
def public(obj):
    return sorted(n for n in dir(obj) if not n.startswith("_"))
print(json.dumps({
    "module": public(work_queue),
    "classes": {c: public(getattr(work_queue, c)) for c in ("WorkQueue", "Task", "PythonTask", "Factory")},
    "futures": public(work_queue_futures),
    "future_classes": {c: public(getattr(work_queue_futures, c)) for c in ("WorkQueueFutures", "FutureTask")},
}))
"""


@requires_cctools_python
def test_every_name_of_debians_binding_is_here():
    theirs = json.loads(subprocess.run([SYSTEM_PYTHON, "-c", DUMP], capture_output=True, text=True, check=True,
                                       timeout=60).stdout)
    missing = [n for n in theirs["module"] if not n.startswith(NOT_API) and n not in MODULES
               and not hasattr(ours, n)]
    for cls, names in theirs["classes"].items():
        missing += [f"{cls}.{n}" for n in names if not hasattr(getattr(ours, cls), n)
                    and not (cls == "Factory")]  # coffea-wq's Factory has its own settings, docs/factory.md
    missing += [f"work_queue_futures.{n}" for n in theirs["futures"] if n not in MODULES
                and not hasattr(ours_futures, n) and n != "Worker"]
    for cls, names in theirs["future_classes"].items():
        missing += [f"{cls}.{n}" for n in names if not hasattr(getattr(ours_futures, cls), n)]
    assert not missing, missing


def test_factory_is_coffea_wq_factory():
    import coffea_wq

    assert ours.Factory is coffea_wq.Factory
    assert "Factory" in ours.__all__ and "PythonTask" in ours.__all__
