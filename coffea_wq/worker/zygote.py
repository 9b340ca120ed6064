"""A warm Python zygote: imports heavy modules once, then runs tasks in long-lived forked slots.

Run by path with any ``python3`` (standard library only; it never imports coffea_wq):

    python3 zygote.py [MODULE ...]

The modules named on the command line are imported at start (the first task's preload set; the
worker reads it from the task's environment, see warm_contract.py). Protocol, one JSON object per line. The zygote reads requests on stdin and answers on the
stdout it started with (its own fd 1 is then pointed at stderr, so a module that prints while
being imported cannot corrupt the channel):

    <- {"op": "run", "id": 7, "argv": ["coffea_wq_task.py", "fn.pkl", "item.pkl", "out.lz4"],
        "cwd": "/w/t.7", "env": {...}, "output": "/w/t.7.out", "preload": ["coffea.processor"]}
    <- {"op": "signal", "id": 7, "signal": 9}             (to the slot running task 7, if it still does)
    -> {"op": "started", "id": 7, "pid": 1234}           or  {"op": "failed", "id": 7, "error": "..."}
    -> {"op": "exit", "id": 7, "pid": 1234, "returncode": 0}   (negative: killed by that signal)
    -> {"op": "queued", "id": 7}     (a flush waits for the busy slot holding its partial; "started" follows)
    -> {"op": "ready", "pid": <zygote pid>, "preloaded": [...], "failed": [...]}   once, at start

Why slots and not a fork per task: a fork of a process holding coffea, awkward and numba pays
for copy-on-write faults, first-use work of the libraries and the teardown of the address
space on every task (~50 ms of a ~150 ms coffea chunk). A *slot* is a child forked once that
runs successive tasks in its own interpreter, as a process pool does, so those costs are paid
once per slot. Each task still gets what ``python3 script args`` would give it: the sandbox as
cwd, the task's environment, stdin from /dev/null, fds 1 and 2 on the task's output file,
``sys.argv``, the script's directory first on ``sys.path``, and the script run as ``__main__``.

A slot leads its own session, so a signal to the task (``signal`` op, or ``killpg`` of the pid
reported in ``started``, which is sent once the slot has taken the task: a slot found dead
before that never started it, and the task goes to another slot) reaches the slot and everything the task started; a killed slot's
task exits with the negative signal number, as ``Popen`` reports it. Signals go through the
zygote, which delivers them only while the slot still runs that task: a slot that moved on to
the next task is never hit by a late kill of the previous one.

A slot retires (exits; the next task forks a fresh one) after a task that did not exit 0, so
a failure never leaves its state to the next task; after ``COFFEA_WQ_SLOT_TASKS`` tasks
(default 100), which bounds what a slow leak can grow to; and after ``COFFEA_WQ_SLOT_IDLE``
seconds without a task (default 60), so an idle worker gives its memory back. Preload modules
named by a request and not yet imported are imported by the zygote before it forks, so the
next slots get them for free; slots serve only requests with their own preload set. End of
stdin ends the zygote and its slots.

The task script ends a task by calling ``coffea_wq_warm_slot.task_finished(code)`` (here: an
exception unwinding to the slot's loop) where a cold run calls ``os._exit``, and may keep what
it unpickled in ``coffea_wq_warm_slot.function_cache`` across the tasks of a slot.

Partials (docs/reduction.md, section 1): the task script keeps a run's partial accumulator in
``coffea_wq_warm_slot.partials`` (id -> partial); before each task the slot sets
``coffea_wq_warm_slot.last_task`` (True when the task count retires it after this task, so the
script hands its partial back), and each ``done`` lists the partial ids the slot then holds. A run
request whose environment names a partial (``COFFEA_WQ_FLUSH``) goes to the slot holding it, and
waits for that slot if it is busy; with no slot holding it, any slot runs it (the script then
writes a "lost" record). A slot holding a partial is let go after ``COFFEA_WQ_SLOT_PARTIAL_IDLE``
seconds without a task (default 600), not the ordinary idle time: the executor flushes partials at
the end of its run, and a partial nobody asks for within that bound belongs to a run that is over.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import runpy
import select
import signal
import socket
import sys
import time
import traceback
import types
from dataclasses import dataclass, field

SLOT_MODULE = "coffea_wq_warm_slot"  # how the task script finds task_finished and its cache
DEFAULT_SLOT_TASKS = 100
DEFAULT_SLOT_IDLE_S = 60.0
DEFAULT_PARTIAL_IDLE_S = 600.0
FLUSH_ENV = "COFFEA_WQ_FLUSH"  # names the partial a flush task hands back (task_script.py)
MAX_TRIES = 3  # slots a request may be handed to that die before taking it


class TaskEnded(BaseException):
    """Raised by ``task_finished(code)`` in a slot: unwinds the task script back to the slot loop."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def preload(modules: list[str], done: set[str], failed: set[str]) -> None:
    for name in modules:
        if not name or name in done or name in failed:
            continue
        try:
            importlib.import_module(name)
            done.add(name)
        except BaseException:  # a module missing in this environment only costs the task its import
            failed.add(name)


def slot_module() -> types.ModuleType:
    """The module the task script looks for: ``task_finished(code)`` and ``function_cache``."""
    module = sys.modules.get(SLOT_MODULE)
    if module is None:
        module = types.ModuleType(SLOT_MODULE)
        module.function_cache = {}  # type: ignore[attr-defined]
        module.partials = {}  # type: ignore[attr-defined]
        module.last_task = False  # type: ignore[attr-defined]
        sys.modules[SLOT_MODULE] = module
    return module


def _end_task(code: int) -> None:
    raise TaskEnded(int(code))


def _env_number(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def _exit_code(exit_: SystemExit) -> int:
    if exit_.code is None:
        return 0
    if isinstance(exit_.code, int):
        return exit_.code & 0xFF
    print(exit_.code, file=sys.stderr)
    return 1


class SlotProcess:
    """In a forked slot: runs the tasks the zygote sends over ``sock_fd``, one at a time."""

    def __init__(self, sock_fd: int):
        self.sock_fd = sock_fd
        self.buffer = b""
        self.base_env = dict(os.environ)
        self.max_tasks = max(1, int(_env_number("COFFEA_WQ_SLOT_TASKS", DEFAULT_SLOT_TASKS)))

    def serve(self) -> None:
        module = slot_module()
        module.task_finished = _end_task  # type: ignore[attr-defined]
        done = 0
        while True:
            request = self.next_request()
            if request is None:
                return  # the zygote let go of us (idle too long) or is gone
            os.write(self.sock_fd, (json.dumps({"op": "took", "id": request["id"]}) + "\n").encode())
            module.last_task = done + 1 >= self.max_tasks  # type: ignore[attr-defined]
            code = self.run_task(request)
            done += 1
            # a failed task's state is never handed to the next one; the count bounds slow leaks
            retiring = code != 0 or done >= self.max_tasks
            partials = sorted(getattr(module, "partials", None) or {}) if not retiring else []
            message = {"op": "done", "id": request["id"], "returncode": code, "retiring": retiring,
                       "partials": partials}
            os.write(self.sock_fd, (json.dumps(message) + "\n").encode())
            if retiring:
                return

    def next_request(self) -> dict | None:
        while b"\n" not in self.buffer:
            data = os.read(self.sock_fd, 65536)
            if not data:
                return None
            self.buffer += data
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def run_task(self, request: dict) -> int:
        code = 1
        task_dir = None
        try:
            os.chdir(request["cwd"])
            os.environ.clear()
            os.environ.update(request["env"])
            self.reset_tempdir()
            self.point_fds(request["output"])
            script = request["argv"][0]
            sys.argv = list(request["argv"])
            task_dir = os.path.dirname(os.path.abspath(script))
            sys.path.insert(0, task_dir)  # as `python3 script` would
            runpy.run_path(script, run_name="__main__")
            code = 0
        except TaskEnded as ended:
            code = ended.code & 0xFF
        except SystemExit as exit_:
            code = _exit_code(exit_)
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            code = self.clean_up(task_dir, code)
        return code

    @staticmethod
    def reset_tempdir() -> None:
        if "tempfile" in sys.modules:
            sys.modules["tempfile"].tempdir = None  # found again from this task's TMPDIR

    @staticmethod
    def point_fds(output: str | None) -> None:
        """fds 0, 1, 2 (and ``sys.std*``) on /dev/null, or 1 and 2 on the task's output file."""
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        target = null if output is None else os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, 1)
        os.dup2(target, 2)
        for fd in {null, target} - {0, 1, 2}:  # the slot closed the zygote's stdin: null may be fd 0
            os.close(fd)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the process's own descriptors
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115

    def clean_up(self, task_dir: str | None, code: int) -> int:
        """Let go of the task: its output file, cwd, environment and path entry."""
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:
            code = code or 1
        self.point_fds(None)
        if task_dir is not None and task_dir in sys.path:
            sys.path.remove(task_dir)
        sys.argv = [SLOT_MODULE]
        os.chdir("/")
        os.environ.clear()
        os.environ.update(self.base_env)
        self.reset_tempdir()
        return code


def become_slot(sock_fd: int, inherited: list[int]) -> None:
    """In a freshly forked child: serve tasks until retired, never return."""
    code = 0
    try:
        for fd in inherited:
            os.close(fd)
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        os.setsid()  # signals to the task's process group reach the slot and what the task started
        SlotProcess(sock_fd).serve()
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def signal_slot(pid: int, sig: int) -> None:
    """Signal a slot's session (what its task started too), or the slot alone if it has none yet."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def returncode_of(status: int) -> int:
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


@dataclass
class Slot:
    """The zygote's view of one slot process."""

    pid: int
    fd: int  # our end of the slot's socket
    key: tuple[str, ...]  # the preload set it was forked with
    task: int | None = None  # id of the request it runs, None when idle
    request: dict | None = None  # that request, until the slot says it took it
    buffer: bytes = b""
    retiring: bool = False  # said it exits after its task: never given another
    idle_since: float = 0.0
    partials: tuple[str, ...] = ()  # the partial ids it said it holds after its last task
    waiting: list[dict] = field(default_factory=list)  # flush requests for its partials, until it is idle


class Zygote:
    """Serves run requests with slots forked from this process (see the module doc)."""

    def __init__(self, requests_fd: int, answers_fd: int):
        self.requests_fd = requests_fd
        self.answers = os.fdopen(answers_fd, "w", buffering=1)
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        self.buffer = b""
        self.imported: set[str] = set()
        self.failed: set[str] = set()
        self.slots: dict[int, Slot] = {}  # by pid
        self.let_go: set[int] = set()  # pids of slots told to exit (socket closed), not yet reaped
        self.idle_s = max(0.1, _env_number("COFFEA_WQ_SLOT_IDLE", DEFAULT_SLOT_IDLE_S))
        self.partial_idle_s = max(self.idle_s, _env_number("COFFEA_WQ_SLOT_PARTIAL_IDLE", DEFAULT_PARTIAL_IDLE_S))

    def send(self, message: dict) -> None:
        self.answers.write(json.dumps(message) + "\n")

    def serve(self, initial_preload: list[str]) -> None:
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(self.wake_w)
        preload(initial_preload, self.imported, self.failed)
        self.send({"op": "ready", "pid": os.getpid(), "preloaded": sorted(self.imported),
                   "failed": sorted(self.failed)})
        try:
            self.loop()
        finally:
            self.stop_slots()

    def loop(self) -> None:
        while True:
            watched = [self.requests_fd, self.wake_r, *(slot.fd for slot in self.slots.values())]
            readable, _, _ = select.select(watched, [], [], 1.0)
            if self.wake_r in readable:
                os.read(self.wake_r, 4096)
            for slot in list(self.slots.values()):
                if slot.fd in readable:
                    self.read_slot(slot)
            self.reap_slots()
            self.let_go_of_idle_slots()
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
        op = request.get("op")
        if op == "signal":
            self.signal_task(request.get("id"), int(request.get("signal", signal.SIGKILL)))
        elif op == "run":
            self.run(request)
        else:
            self.send({"op": "failed", "id": request.get("id"), "error": f"unknown op {op!r}"})

    def run(self, request: dict) -> None:
        preload(list(request.get("preload") or []), self.imported, self.failed)
        key = tuple(sorted(set(request.get("preload") or [])))
        holder = self.holder_of(request)
        if holder is not None and holder.task is not None:
            holder.waiting.append(request)  # a flush: given to the slot holding the partial once it is idle
            self.send({"op": "queued", "id": request["id"]})  # the worker then waits past its start timeout
            return
        while True:
            request["tries"] = request.get("tries", 0) + 1
            if request["tries"] > MAX_TRIES:  # slots die before taking it: the worker runs it cold
                self.send({"op": "failed", "id": request["id"], "error": f"{MAX_TRIES} slots died before starting it"})
                return
            slot = holder or self.idle_slot(key) or self.fork_slot(key)
            holder = None  # a holder that cannot take it died: any slot then (the script reports "lost")
            if slot is None:
                self.send({"op": "failed", "id": request["id"], "error": "fork failed"})
                return
            payload = {k: request[k] for k in ("id", "argv", "cwd", "env", "output")}
            try:
                os.write(slot.fd, (json.dumps(payload) + "\n").encode())
            except OSError:
                self.forget(slot)  # it retired or died while idle: try the next one
                continue
            slot.task, slot.request = request["id"], request  # "started" is sent when the slot takes it
            return

    def holder_of(self, request: dict) -> Slot | None:
        """The live slot holding the partial a flush request names (None: not a flush, or nobody)."""
        partial_id = (request.get("env") or {}).get(FLUSH_ENV)
        if not partial_id:
            return None
        return next((s for s in self.slots.values() if partial_id in s.partials and not s.retiring), None)

    def run_waiting(self, slot: Slot) -> None:
        """A slot became idle (or died): the flush requests that waited for it run now."""
        waiting, slot.waiting = slot.waiting, []
        for request in waiting:
            self.run(request)

    def idle_slot(self, key: tuple[str, ...]) -> Slot | None:
        return next((s for s in self.slots.values() if s.task is None and not s.retiring and s.key == key), None)

    def let_go_of_idle_slots(self) -> None:
        """Close the socket of slots idle for ``idle_s`` (``partial_idle_s`` when they hold a partial):
        they exit, and an idle worker gives memory back."""
        now = time.monotonic()
        for slot in list(self.slots.values()):
            limit = self.partial_idle_s if slot.partials else self.idle_s
            if slot.task is None and now - slot.idle_since > limit:
                self.let_go.add(slot.pid)
                self.forget(slot)

    def fork_slot(self, key: tuple[str, ...]) -> Slot | None:
        ours, theirs = socket.socketpair()
        inherited = [self.requests_fd, self.answers.fileno(), self.wake_r, self.wake_w, ours.fileno(),
                     *(slot.fd for slot in self.slots.values())]
        # what the zygote holds (coffea, awkward, numba: ~10^6 objects) moves out of the collector's
        # sight: a slot's collections then never walk it, nor write to (and so copy) its pages
        gc.freeze()
        try:
            pid = os.fork()
        except OSError:
            ours.close()
            theirs.close()
            return None
        if pid == 0:
            become_slot(theirs.detach(), inherited)
        theirs.close()
        slot = Slot(pid=pid, fd=ours.detach(), key=key)
        self.slots[pid] = slot
        return slot

    def read_slot(self, slot: Slot) -> bool:
        """A slot's ``took``/``done`` messages; False at the end of its socket (it is exiting)."""
        try:
            data = os.read(slot.fd, 65536)
        except OSError:
            data = b""
        slot.buffer += data
        while b"\n" in slot.buffer:
            line, slot.buffer = slot.buffer.split(b"\n", 1)
            message = json.loads(line)
            if message.get("op") == "took" and message.get("id") == slot.task:
                slot.request = None
                self.send({"op": "started", "id": slot.task, "pid": slot.pid})
            elif message.get("op") == "done" and message.get("id") == slot.task:
                self.send({"op": "exit", "id": slot.task, "pid": slot.pid, "returncode": message["returncode"]})
                slot.task, slot.idle_since = None, time.monotonic()
                slot.retiring = bool(message.get("retiring"))
                slot.partials = tuple(str(p) for p in message.get("partials") or ())
                self.run_waiting(slot)
        return bool(data)

    def signal_task(self, request_id: object, sig: int) -> None:
        for waiting_for in self.slots.values():
            queued = next((r for r in waiting_for.waiting if r["id"] == request_id), None)
            if queued is not None:  # a flush still waiting for its slot: it ends as killed at its start
                waiting_for.waiting.remove(queued)
                self.send({"op": "started", "id": request_id, "pid": waiting_for.pid})
                self.send({"op": "exit", "id": request_id, "pid": waiting_for.pid, "returncode": -abs(sig)})
                return
        slot = next((s for s in self.slots.values() if s.task is not None and s.task == request_id), None)
        if slot is None:
            return  # already finished: the signal must not reach the slot's next task
        signal_slot(slot.pid, sig)

    def reap_slots(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.let_go.discard(pid)
            slot = self.slots.get(pid)
            if slot is None:
                continue
            self.drain(slot)  # a "done" written just before it retired is still in the socket
            self.forget(slot)
            if slot.request is not None:
                self.run(slot.request)  # it died before taking the task (killed while idle): not started
            elif slot.task is not None:
                self.send({"op": "exit", "id": slot.task, "pid": pid, "returncode": returncode_of(status)})
            slot.partials = ()  # died with it: waiting flushes run elsewhere and report them lost
            self.run_waiting(slot)

    def drain(self, slot: Slot) -> None:
        try:
            while select.select([slot.fd], [], [], 0)[0] and self.read_slot(slot):
                pass
        except OSError:
            pass

    def forget(self, slot: Slot) -> None:
        self.slots.pop(slot.pid, None)
        try:
            os.close(slot.fd)
        except OSError:
            pass

    def stop_slots(self) -> None:
        """End of requests: no slot outlives the zygote."""
        pids = set(self.slots) | self.let_go
        for slot in list(self.slots.values()):
            self.forget(slot)
        for pid in pids:
            signal_slot(pid, signal.SIGKILL)
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def main() -> int:
    answers_fd = os.dup(1)
    os.dup2(2, 1)  # stray prints of imported modules go to stderr, never into the channel
    sys.stdout = sys.stderr
    here = os.path.dirname(os.path.abspath(__file__))
    # our own directory must not shadow top-level modules (this folder has cache.py, resources.py...)
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    modules = [m for m in sys.argv[1:] if m]
    Zygote(0, answers_fd).serve(modules)
    return 0


if __name__ == "__main__":
    exit_code = main()
    sys.stderr.flush()
    # no interpreter teardown: with coffea loaded, finalisers and the threads of libraries took
    # ~1.4 s, which every run paid at its end waiting for its local workers to stop
    os._exit(exit_code)
