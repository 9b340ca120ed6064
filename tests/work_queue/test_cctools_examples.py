"""Acceptance: the Python examples Debian ships with CCTools run, unchanged, on coffea_wq.work_queue.

Each example is run from where ``coop-computing-tools-doc`` puts it (gunzipped into the test's
directory if Debian compressed it). A shim directory on ``PYTHONPATH`` maps ``import work_queue``
and ``import work_queue_futures`` to coffea-wq's modules; nothing of the examples is copied. They
listen on CCTools' fixed port 9123, so each run gets a network namespace of its own (``unshare
--net``, loopback only): runs never collide with each other or with anything else on the machine.
Where the machine forbids network namespaces, they run on its own loopback while port 9123 is free.

Every example runs against CCTools' ``work_queue_worker`` and against ``coffea-wq worker``, and,
as a control, under Debian's own binding (``/usr/bin/python3``, no shim) with the real worker. The
futures example also runs with CCTools' own ``work_queue_futures`` module on top of our
``work_queue`` (it reads ``task._task.result``).
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import (
    REAL_WORKER,
    SYSTEM_PYTHON,
    requires_cctools,
    requires_cctools_python,
    skip_not_installed,
    stop_process,
)

DOCS = Path("/usr/share/doc/coop-computing-tools")
EXAMPLES = {
    "gzip": DOCS / "work_queue_example.py",
    "futures": DOCS / "work_queue_futures_example.py",
    "function": DOCS / "manuals" / "work_queue" / "examples" / "work_queue_function_example.py",
}
VENV_BIN = Path(sys.executable).parent
SYSTEM_PATH = "/usr/bin:/bin"
DEBIAN_FUTURES = Path("/usr/lib/python3/dist-packages/work_queue_futures.py")
RUN_TIMEOUT_S = 300
EXAMPLE_PORT = 9123  # fixed in CCTools' examples

SHIMS = {
    "work_queue.py": "import sys\nimport coffea_wq.work_queue\nsys.modules[__name__] = coffea_wq.work_queue\n",
    "work_queue_futures.py": "import sys\nimport coffea_wq.work_queue.futures\n"
                             "sys.modules[__name__] = coffea_wq.work_queue.futures\n",
}


def example_path(name: str, tmp_path: Path) -> Path:
    """Where Debian put the example, or its gunzipped copy when only ``.py.gz`` is installed."""
    path = EXAMPLES[name]
    if path.exists():
        return path
    packed = path.with_name(path.name + ".gz")
    if not packed.exists():
        skip_not_installed(f"CCTools' example {path}", "coop-computing-tools-doc")
    unpacked = tmp_path / path.name
    unpacked.write_bytes(gzip.decompress(packed.read_bytes()))
    return unpacked


def network_namespace_prefix() -> list[str]:
    """``unshare`` into a new network namespace (a user namespace too when not root).

    Where the machine forbids one (a container without CAP_SYS_ADMIN), the example runs on this
    machine's own loopback instead, as long as its port is free there: [] is the prefix then.
    """
    if shutil.which("ip") is None:  # unshare is util-linux's, an Essential package
        skip_not_installed("ip (to bring up loopback in a private network namespace for port 9123)", "iproute2")
    prefix = ["unshare", "--net"] if os.geteuid() == 0 else ["unshare", "--net", "--map-root-user"]
    probe = subprocess.run([*prefix, "ip", "link", "set", "lo", "up"], capture_output=True, timeout=30)
    if probe.returncode == 0:
        return prefix
    if example_port_is_free():
        return []
    pytest.skip(f"this machine forbids a private network namespace (unshare --net: "
                f"{probe.stderr.decode().strip()}) and the example's port {EXAMPLE_PORT} is in use on it")


def example_port_is_free() -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # as the example's manager binds it: a connection of a previous run in TIME_WAIT is no obstacle
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", EXAMPLE_PORT))
        except OSError:
            return False
    return True


def make_shims(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in SHIMS.items():
        (directory / name).write_text(text)
    return directory


def worker_argv(kind: str, workdir: Path) -> list[str]:
    # started before the example listens: retry every 2 s at most (the default back-off grows to 60 s)
    options = ["--cores", "4", "--memory", "2000", "--disk", "2000", "-t", "120", "-b", "2", "-s", str(workdir)]
    if kind == "cctools":
        return [REAL_WORKER, *options, "127.0.0.1", str(EXAMPLE_PORT)]
    # started as a batch script would: the venv's entry point, nothing activated
    return [str(VENV_BIN / "coffea-wq"), "worker", *options, "127.0.0.1", str(EXAMPLE_PORT)]


def run_in_namespace(manager: list[str], worker: list[str] | None, *, cwd: Path, env: dict[str, str],
                     worker_env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run the example (and a worker beside it) in a fresh network namespace (or on this machine's loopback,
    see network_namespace_prefix); all is stopped after."""
    prefix = network_namespace_prefix()
    script = (
        ('ip link set lo up || exit 97\n' if prefix else '') +
        'if [ -n "$WORKER_ARGV" ]; then env -i $WORKER_ENV $WORKER_ARGV > worker.log 2>&1 & wpid=$!; fi\n'
        '"$@"; rc=$?\n'
        'if [ -n "$WORKER_ARGV" ]; then kill "$wpid" 2>/dev/null; wait "$wpid" 2>/dev/null; fi\n'
        'exit $rc\n'
    )
    env = {**env, "WORKER_ARGV": " ".join(worker or []),
           "WORKER_ENV": " ".join(f"{k}={v}" for k, v in worker_env.items())}
    proc = subprocess.Popen([*prefix, "sh", "-c", script, "sh", *manager], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        stop_process(proc)
        log = (cwd / "worker.log").read_text(errors="replace") if (cwd / "worker.log").exists() else ""
        pytest.fail(f"{manager} did not finish within {RUN_TIMEOUT_S} s; worker log:\n{log[-3000:]}")
    finally:
        stop_process(proc)
    return subprocess.CompletedProcess(manager, proc.returncode, out.decode(errors="replace"), "")


def run_example(name: str, binding: str, worker_kind: str | None, tmp_path: Path, *args: str) -> str:
    """The example's output; ``binding`` is "coffea-wq" (shim) or "cctools" (Debian's, the control)."""
    script = example_path(name, tmp_path)
    workdir = tmp_path / "worker"
    workdir.mkdir()
    if binding == "coffea-wq":
        manager = [sys.executable, str(script), *args]
        env = {**os.environ, "PYTHONPATH": str(make_shims(tmp_path / "shims"))}
    elif binding == "coffea-wq+debian-futures":
        # CCTools' own work_queue_futures module (linked from where Debian puts it) on our work_queue
        shims = make_shims(tmp_path / "shims")
        (shims / "work_queue_futures.py").unlink()
        (shims / "work_queue_futures.py").symlink_to(DEBIAN_FUTURES)
        manager = [sys.executable, str(script), *args]
        env = {**os.environ, "PYTHONPATH": str(shims)}
    else:
        manager = [SYSTEM_PYTHON, str(script), *args]
        env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["PATH"] = SYSTEM_PATH
    # the worker's tasks run `python3` (ours) or `python` (Debian's PythonTask): with CCTools' worker the
    # PATH decides, as a user's activated environment would; coffea-wq's worker puts its own python first
    worker_path = SYSTEM_PATH
    if worker_kind == "cctools" and binding.startswith("coffea-wq"):
        worker_path = f"{VENV_BIN}:{SYSTEM_PATH}"
    elif binding == "cctools":
        python_dir = tmp_path / "python-is-python3"
        python_dir.mkdir()
        (python_dir / "python").symlink_to(SYSTEM_PYTHON)
        worker_path = f"{python_dir}:{SYSTEM_PATH}"
    if name == "futures":
        # this example starts its own worker, `work_queue_worker` from PATH
        env["PATH"] = futures_worker_path(worker_kind, tmp_path, env.get("PATH", SYSTEM_PATH))
        worker = None
    else:
        worker = worker_argv(worker_kind or "cctools", workdir)
    result = run_in_namespace(manager, worker, cwd=tmp_path, env=env,
                              worker_env={"PATH": worker_path, "HOME": str(tmp_path)})
    assert result.returncode == 0, f"{name} exited with {result.returncode}:\n{result.stdout[-4000:]}"
    return result.stdout


def futures_worker_path(kind: str | None, tmp_path: Path, path: str) -> str:
    if kind != "coffea-wq":
        return path
    # the example's local worker is whatever `work_queue_worker` PATH finds: here, ours
    bindir = tmp_path / "ours-as-work_queue_worker"
    bindir.mkdir()
    wrapper = bindir / "work_queue_worker"
    wrapper.write_text(f'#!/bin/sh\nexec "{VENV_BIN / "coffea-wq"}" worker "$@"\n')
    wrapper.chmod(0o755)
    return f"{bindir}:{path}"


def check_gzip(tmp_path: Path, output: str) -> None:
    for name in ("one.txt", "two.txt"):
        assert gzip.decompress((tmp_path / f"{name}.gz").read_bytes()) == (tmp_path / name).read_bytes()
    assert "all tasks complete!" in output


def check_futures(output: str, callbacks: int = 3) -> None:
    finished = re.findall(r"^task (\d+) finished: (.*)$", output, re.M)
    from_callbacks = re.findall(r"^task (\d+) finished\. printing from callback: True$", output, re.M)
    assert [result for _, result in finished] == ["True"] * 3 + [
        "Execution completed with exit status 127", "Input file is missing", "Output file is missing"]
    assert len(from_callbacks) >= callbacks


def check_function(output: str) -> None:
    results = {int(task): int(value) for task, value in
               re.findall(r"^task (\d+) completed with result (\d+)$", output, re.M)}
    assert sorted(results.values()) == [2 * v for v in range(1, 100)]
    assert "all done." in output


CASES = [
    pytest.param("coffea-wq", "cctools", id="ours-with-work_queue_worker"),
    pytest.param("coffea-wq", "coffea-wq", id="ours-with-coffea-wq-worker"),
    pytest.param("cctools", "cctools", id="debian-binding-control", marks=requires_cctools_python),
]


@pytest.fixture
def gzip_inputs(tmp_path):
    (tmp_path / "one.txt").write_text("first file\n" * 100)
    (tmp_path / "two.txt").write_text("second file\n" * 50)
    return ["one.txt", "two.txt"]


@requires_cctools
@pytest.mark.slow
@pytest.mark.parametrize(("binding", "worker"), CASES)
def test_work_queue_example(binding, worker, tmp_path, gzip_inputs):
    check_gzip(tmp_path, run_example("gzip", binding, worker, tmp_path, *gzip_inputs))


@requires_cctools
@pytest.mark.slow
@pytest.mark.parametrize(("binding", "worker"), [
    *CASES, pytest.param("coffea-wq+debian-futures", "cctools", id="debian-futures-module-on-ours",
                         marks=requires_cctools_python)])
def test_work_queue_futures_example(binding, worker, tmp_path):
    # under Debian's own binding the last callback can be lost as the interpreter exits (its Future's
    # __del__ raises during teardown): the control asks for two of the three; ours must print all three
    check_futures(run_example("futures", binding, worker, tmp_path), 2 if binding == "cctools" else 3)


@requires_cctools
@pytest.mark.slow
@pytest.mark.parametrize(("binding", "worker"), CASES)
def test_work_queue_function_example(binding, worker, tmp_path):
    if binding == "cctools" and subprocess.run([SYSTEM_PYTHON, "-c", "import dill"]).returncode != 0:
        skip_not_installed("dill for the system python3 (Debian's PythonTask pickles with it)", "python3-dill")
    check_function(run_example("function", binding, worker, tmp_path))
