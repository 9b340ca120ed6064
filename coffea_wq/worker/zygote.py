"""A warm Python zygote: imports heavy modules once, then forks one child per task.

Run by path with any ``python3`` (standard library only; it never imports coffea_wq):

    python3 zygote.py

Protocol, one JSON object per line. The zygote reads requests on stdin and answers on the
stdout it started with (its own fd 1 is then pointed at stderr, so a module that prints while
being imported cannot corrupt the channel):

    <- {"op": "run", "id": 7, "argv": ["coffea_wq_task.py", "fn.pkl", "item.pkl", "out.lz4"],
        "cwd": "/w/t.7", "env": {...}, "output": "/w/t.7.out", "preload": ["coffea.processor"]}
    -> {"op": "started", "id": 7, "pid": 1234}           or  {"op": "failed", "id": 7, "error": "..."}
    -> {"op": "exit", "pid": 1234, "returncode": 0}      (negative: killed by that signal, as Popen)
    -> {"op": "ready", "pid": <zygote pid>, "preloaded": [...], "failed": [...]}   once, at start

A child starts its own session (so a signal to its process group reaches everything it starts),
changes into the sandbox, takes the task's environment, sends fds 1 and 2 to the task's output
file and runs the script as ``__main__``, exactly as ``python3 script args`` would. Preload
modules named by a request and not yet imported are imported by the zygote before it forks, so
the next tasks get them for free. End of stdin ends the zygote.
"""

from __future__ import annotations

import importlib
import json
import os
import runpy
import select
import signal
import sys
import traceback


def preload(modules: list[str], done: set[str], failed: set[str]) -> None:
    for name in modules:
        if not name or name in done or name in failed:
            continue
        try:
            importlib.import_module(name)
            done.add(name)
        except BaseException:  # a module missing in this environment only costs the task its import
            failed.add(name)


def run_child(request: dict, channel_fds: tuple[int, ...]) -> None:
    """In the forked child: become the task and never return."""
    code = 1
    try:
        for fd in channel_fds:
            os.close(fd)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.setsid()
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        if "tempfile" in sys.modules:
            sys.modules["tempfile"].tempdir = None  # found again from this task's TMPDIR
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        out = os.open(request["output"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, 1)
        os.dup2(out, 2)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the process's own descriptors
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        script = request["argv"][0]
        sys.argv = list(request["argv"])
        sys.path.insert(0, os.path.dirname(os.path.abspath(script)))  # as `python3 script` would
        runpy.run_path(script, run_name="__main__")
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        if exit_.code is not None and not isinstance(exit_.code, int):
            print(exit_.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def returncode_of(status: int) -> int:
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


class Zygote:
    def __init__(self, requests_fd: int, answers_fd: int):
        self.requests_fd = requests_fd
        self.answers = os.fdopen(answers_fd, "w", buffering=1)
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        self.buffer = b""
        self.imported: set[str] = set()
        self.failed: set[str] = set()

    def send(self, message: dict) -> None:
        self.answers.write(json.dumps(message) + "\n")

    def serve(self, initial_preload: list[str]) -> None:
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(self.wake_w)
        preload(initial_preload, self.imported, self.failed)
        self.send({"op": "ready", "pid": os.getpid(), "preloaded": sorted(self.imported),
                   "failed": sorted(self.failed)})
        while True:
            readable, _, _ = select.select([self.requests_fd, self.wake_r], [], [], 1.0)
            if self.wake_r in readable:
                os.read(self.wake_r, 4096)
            self.reap_children()
            if self.requests_fd in readable:
                data = os.read(self.requests_fd, 65536)
                if not data:
                    return  # the worker is gone
                self.buffer += data
                while b"\n" in self.buffer:
                    line, self.buffer = self.buffer.split(b"\n", 1)
                    if line.strip():
                        self.handle(json.loads(line))

    def handle(self, request: dict) -> None:
        if request.get("op") != "run":
            self.send({"op": "failed", "id": request.get("id"), "error": f"unknown op {request.get('op')!r}"})
            return
        preload(list(request.get("preload") or []), self.imported, self.failed)
        try:
            pid = os.fork()
        except OSError as exc:
            self.send({"op": "failed", "id": request["id"], "error": f"fork: {exc}"})
            return
        if pid == 0:
            run_child(request, (self.requests_fd, self.answers.fileno(), self.wake_r, self.wake_w))
        self.send({"op": "started", "id": request["id"], "pid": pid})

    def reap_children(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.send({"op": "exit", "pid": pid, "returncode": returncode_of(status)})


def main() -> int:
    answers_fd = os.dup(1)
    os.dup2(2, 1)  # stray prints of imported modules go to stderr, never into the channel
    sys.stdout = sys.stderr
    here = os.path.dirname(os.path.abspath(__file__))
    # our own directory must not shadow top-level modules (this folder has cache.py, resources.py...)
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    modules = [m for m in os.environ.get("COFFEA_WQ_PRELOAD", "").split(",") if m]
    Zygote(0, answers_fd).serve(modules)
    return 0


if __name__ == "__main__":
    sys.exit(main())
