"""Which Work Queue module the executor drives (coffea_wq/executor/backend.py)."""

from __future__ import annotations

import subprocess
import sys

from tests import support

# run in a fresh interpreter: the test process must not import CCTools' module itself
CHILD = """
import sys
from coffea_wq.executor.backend import load_work_queue_module
wq = load_work_queue_module("cctools")
assert wq.__file__.startswith("/usr/lib/python3/dist-packages/"), wq.__file__
leaked = sorted(name for name, module in list(sys.modules.items())
                if (getattr(module, "__file__", None) or "").startswith("/usr/lib/python3/dist-packages/")
                and name not in ("work_queue", "_work_queue"))
print("leaked:", leaked)
"""


@support.requires_cctools
def test_cctools_module_leaves_none_of_debians_other_packages_in_sys_modules():
    # Debian's work_queue imports Debian's dill; left in sys.modules, PythonTask would pick dill
    # although the workers' Python (the environment's) cannot import it
    proc = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120,
                          cwd=support.REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "leaked: []" in proc.stdout, proc.stdout
