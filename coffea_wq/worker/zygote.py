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

Warmed template: a fresh fork still pays the first-use work of the libraries (~50 ms per coffea
chunk) and the task script unpickles the function again. So the first child of a preload set is
a *candidate*: when its task succeeds (``task_finished(0)``, called by the task script), it forks
a grandchild that drops the task's state (cwd, fds, argv, sys.path) and becomes the *template*:
a zygote of its own, spoken to by this one over a socket, from which the later tasks of that
preload set fork. Task pids, exit codes, signals and sessions are exactly those of a root fork.
A failed or killed candidate never becomes a template (the next fork is the next candidate), and
a template that dies is replaced the same way; requests it had not answered are forked by
this zygote instead. This zygote is made a child subreaper, so orphans of
a dead template are reaped (and reported) here; where that is impossible, no template is made.
"""

from __future__ import annotations

import importlib
import json
import os
import runpy
import select
import signal
import socket
import sys
import traceback
import types

SLOT_MODULE = "coffea_wq_warm_slot"  # how the task script finds task_finished and its cache
PR_SET_CHILD_SUBREAPER = 36


def preload(modules: list[str], done: set[str], failed: set[str]) -> None:
    for name in modules:
        if not name or name in done or name in failed:
            continue
        try:
            importlib.import_module(name)
            done.add(name)
        except BaseException:  # a module missing in this environment only costs the task its import
            failed.add(name)


def become_subreaper() -> bool:
    """Adopt orphaned descendants (a dead template's children), so their exits reach us (Linux)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except Exception:
        return False


def slot_module() -> types.ModuleType:
    """The module the task script looks for: ``task_finished(code)`` and ``function_cache``."""
    module = sys.modules.get(SLOT_MODULE)
    if module is None:
        module = types.ModuleType(SLOT_MODULE)
        module.function_cache = {}  # type: ignore[attr-defined]
        sys.modules[SLOT_MODULE] = module
    return module


def finish_task(code: int, template_fd: int | None) -> None:
    """End a task child; a candidate whose task succeeded first forks the next template."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        code = code or 1
    if code == 0 and template_fd is not None:
        try:
            if os.fork() == 0:
                become_template(template_fd)
        except OSError:
            pass  # no template this time: the root forks the next candidate
    os._exit(code)


def become_template(sock_fd: int) -> None:
    """In the grandchild of a succeeded candidate: drop the task's state, serve forks, never return."""
    code = 0
    try:
        os.setsid()  # out of the finished task's session: a signal to it must not reach us
        os.chdir("/")
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)  # let go of the task's output file
        os.close(null)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the process's own descriptors
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        task_dir = getattr(slot_module(), "task_path_entry", None)
        if task_dir is not None and task_dir in sys.path:
            sys.path.remove(task_dir)
        sys.argv = [SLOT_MODULE]
        Zygote(sock_fd, os.dup(sock_fd), template=True).serve([])
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def run_child(request: dict, channel_fds: tuple[int, ...], template_fd: int | None = None) -> None:
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
        task_dir = os.path.dirname(os.path.abspath(script))
        sys.path.insert(0, task_dir)  # as `python3 script` would
        slot = slot_module()
        slot.task_path_entry = task_dir  # type: ignore[attr-defined]
        slot.task_finished = lambda status: finish_task(status, template_fd)  # type: ignore[attr-defined]
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
    """Serves run requests by forking; the root one also keeps a warmed template (see the module doc)."""

    def __init__(self, requests_fd: int, answers_fd: int, template: bool = False):
        self.requests_fd = requests_fd
        self.answers = os.fdopen(answers_fd, "w", buffering=1)
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        self.buffer = b""
        self.imported: set[str] = set()
        self.failed: set[str] = set()
        self.is_template = template
        self.can_template = not template and become_subreaper()
        self.slot_fd: int | None = None  # our end of the candidate's (later the template's) socket
        self.slot_ready = False
        self.slot_key: tuple[str, ...] = ()
        self.slot_buffer = b""
        self.forwarded: dict = {}  # requests sent to the template and not yet answered, by id

    def send(self, message: dict) -> None:
        self.answers.write(json.dumps(message) + "\n")

    def serve(self, initial_preload: list[str]) -> None:
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(self.wake_w)
        preload(initial_preload, self.imported, self.failed)
        self.send({"op": "ready", "pid": os.getpid(), "preloaded": sorted(self.imported),
                   "failed": sorted(self.failed)})
        while True:
            watched = [self.requests_fd, self.wake_r] + ([self.slot_fd] if self.slot_fd is not None else [])
            readable, _, _ = select.select(watched, [], [], 1.0)
            if self.wake_r in readable:
                os.read(self.wake_r, 4096)
            if self.slot_fd is not None and self.slot_fd in readable:
                self.read_slot()
            self.reap_children()
            if self.requests_fd in readable:
                data = os.read(self.requests_fd, 65536)
                if not data:
                    return  # the worker is gone (a template's own end: the root is gone)
                self.buffer += data
                while b"\n" in self.buffer:
                    line, self.buffer = self.buffer.split(b"\n", 1)
                    if line.strip():
                        self.handle(json.loads(line))

    def read_slot(self) -> None:
        """Answers of the template, passed on; the end of its socket means it (or the candidate) is gone."""
        assert self.slot_fd is not None
        try:
            data = os.read(self.slot_fd, 65536)
        except OSError:
            data = b""
        if not data:
            self.drop_slot()
            return
        self.slot_buffer += data
        while b"\n" in self.slot_buffer:
            line, self.slot_buffer = self.slot_buffer.split(b"\n", 1)
            if not line.strip():
                continue
            message = json.loads(line)
            if message.get("op") == "ready":
                self.slot_ready = True
                continue
            if message.get("op") in ("started", "failed"):
                self.forwarded.pop(message.get("id"), None)
            self.send(message)

    def drop_slot(self) -> None:
        if self.slot_fd is not None:
            os.close(self.slot_fd)
        self.slot_fd, self.slot_ready, self.slot_buffer = None, False, b""
        unanswered, self.forwarded = list(self.forwarded.values()), {}
        for request in unanswered:  # the template died before forking them: fork them here
            self.fork_child(request, tuple(sorted(set(request.get("preload") or []))))

    def handle(self, request: dict) -> None:
        if request.get("op") != "run":
            self.send({"op": "failed", "id": request.get("id"), "error": f"unknown op {request.get('op')!r}"})
            return
        preload(list(request.get("preload") or []), self.imported, self.failed)
        key = tuple(sorted(set(request.get("preload") or [])))
        if self.slot_ready and key == self.slot_key and self.forward(request):
            return
        self.fork_child(request, key)

    def forward(self, request: dict) -> bool:
        assert self.slot_fd is not None
        try:
            os.write(self.slot_fd, (json.dumps(request) + "\n").encode())
        except OSError:
            self.drop_slot()
            return False
        self.forwarded[request["id"]] = request
        return True

    def fork_child(self, request: dict, key: tuple[str, ...]) -> None:
        candidate_fd = None
        if self.can_template and self.slot_fd is None:
            ours, theirs = socket.socketpair()
            self.slot_fd, candidate_fd, self.slot_key = ours.detach(), theirs.detach(), key
        channel = [self.requests_fd, self.answers.fileno(), self.wake_r, self.wake_w]
        if self.slot_fd is not None:
            channel.append(self.slot_fd)
        try:
            pid = os.fork()
        except OSError as exc:
            if candidate_fd is not None:
                os.close(candidate_fd)
                self.drop_slot()
            self.send({"op": "failed", "id": request["id"], "error": f"fork: {exc}"})
            return
        if pid == 0:
            run_child(request, tuple(channel), candidate_fd)
        if candidate_fd is not None:
            os.close(candidate_fd)
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
