"""A swarm of simulated Work Queue workers: thousands of real TCP connections from a few processes.

Each swarm process is one ``selectors`` loop over many non-blocking sockets to the manager. Every
socket is one simulated worker that speaks protocol 9 through coffea-wq's sans-I/O worker side
(``coffea_wq.protocol.worker_side.ManagerConnection``), as a real worker would:

- it sends the handshake (``workqueue`` line, worker id, features, resources, end time);
- it keeps the files the manager ``put``s (their bytes read and counted, their cache names
  remembered), forgets what it is told to ``unlink``, and answers ``get`` from what it holds;
- a task "runs" for ``sleep N`` seconds when its command says so (else ``task_seconds``), without a
  process: a timer. Then the worker says ``available_results`` and answers ``send_results`` with the
  result line and output; the task's output files appear in its cache, with content that names the
  task (``task <id> wrote <remote name>``); ``echo TEXT`` prints TEXT;
- ``check`` gets ``alive``; ``release`` and ``exit`` end the connection. A connection the manager
  closes without ``release``/``exit`` counts as dropped.

    python benchmarks/swarm.py HOST PORT --workers 5000 --processes 4 [--seconds 60]

As a module: ``with Swarm(SwarmConfig("127.0.0.1", port, workers=1000)) as swarm: ...``;
``swarm.stats()`` sums the processes' counters (``SwarmStats``).
"""

from __future__ import annotations

import argparse
import heapq
import multiprocessing
import os
import re
import resource
import selectors
import socket
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass, field, fields

from coffea_wq.protocol import messages as m
from coffea_wq.protocol.codes import ResultCode
from coffea_wq.protocol.worker_side import ManagerConnection

SLEEP = re.compile(r"\bsleep\s+([0-9]*\.?[0-9]+)")
RECV_SIZE = 1 << 16
CONNECTS_IN_FLIGHT = 256  # per process: more would overflow the manager's listen backlog
CONNECT_RETRIES = 20


@dataclass(frozen=True)
class SwarmConfig:
    """What the swarm connects to and how its workers behave."""

    host: str
    port: int
    workers: int = 1000
    processes: int = 4
    cores: int = 1
    memory: int = 1000  # MB
    disk: int = 10000  # MB
    task_seconds: float = 0.0  # run time of a task whose command has no ``sleep N``
    password: bytes | None = None
    features: tuple[str, ...] = ()
    name: str = "swarm"


@dataclass
class SwarmStats:
    """Counters of the whole swarm (summed over processes)."""

    connected: int = 0  # connections up now, handshake sent
    ever_connected: int = 0
    connect_failures: int = 0  # connection attempts refused or timed out (retried)
    gave_up: int = 0  # workers that never connected
    dropped: int = 0  # connections the manager closed without release/exit
    released: int = 0  # released or told to exit
    protocol_errors: int = 0
    tasks_received: int = 0
    tasks_reported: int = 0  # results sent
    tasks_killed: int = 0  # killed while still running
    missing_inputs: int = 0  # tasks that named an input the worker did not hold
    files_received: int = 0
    bytes_received: int = 0
    gets_answered: int = 0
    keepalives_answered: int = 0

    def add(self, other: SwarmStats) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE towards ``wanted`` (never above the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


# ------------------------------------------------------------------------------ one simulated worker
@dataclass(eq=False)
class SimWorker:
    """One connection and what a real worker would hold: its cache and its tasks."""

    index: int
    sock: socket.socket | None = None
    conn: ManagerConnection | None = None
    connected: bool = False
    attempts: int = 0
    out: bytearray = field(default_factory=bytearray)
    cache: dict[str, bytes | int] = field(default_factory=dict)  # cached name -> content (outputs) or size
    running: dict[int, m.TaskAssignment] = field(default_factory=dict)
    finished: deque = field(default_factory=deque)  # (task id, start time) of tasks done, not reported
    announced: bool = False
    incoming: str | None = None
    incoming_size: int = 0
    last_tag: int = 0
    writing: bool = False


class SwarmLoop:
    """One swarm process: its workers, its selector, its task timers."""

    def __init__(self, config: SwarmConfig, indices: range, control=None) -> None:
        self.config = config
        self.workers = [SimWorker(i) for i in indices]
        self.selector = selectors.DefaultSelector()
        self.timers: list[tuple[float, int, int, int]] = []  # (due, seq, worker slot, task id)
        self.stats = SwarmStats()
        self.control = control
        self.to_connect: deque[int] = deque(range(len(self.workers)))
        self.retry_at: list[tuple[float, int]] = []
        self.connecting = 0
        self.stopping = False
        self._seq = 0
        if control is not None:
            self.selector.register(control.fileno(), selectors.EVENT_READ, "control")

    # -------------------------------------------------------------- the loop
    def run(self, until: float | None = None) -> None:
        while not self.stopping and (until is None or time.monotonic() < until):
            self._open_connections()
            for key, mask in self.selector.select(self._timeout()):
                if key.data == "control":
                    self._on_control()
                    continue
                worker = self.workers[key.data]
                if not worker.connected:
                    self._finish_connect(worker)
                    continue
                if mask & selectors.EVENT_READ:
                    self._read(worker)
                if mask & selectors.EVENT_WRITE and worker.sock is not None:
                    self._flush(worker)
            self._fire_timers()
        self._close_all()

    def _timeout(self) -> float:
        waits = [0.2]
        if self.timers:
            waits.append(self.timers[0][0] - time.monotonic())
        if self.retry_at:
            waits.append(self.retry_at[0][0] - time.monotonic())
        if self.to_connect and self.connecting < CONNECTS_IN_FLIGHT:
            waits.append(0.0)
        return max(0.0, min(waits))

    def _on_control(self) -> None:
        try:
            request = self.control.recv()
        except EOFError:
            self.stopping = True
            return
        if request == "stop":
            self.stopping = True
        self.control.send(asdict(self.stats))

    # -------------------------------------------------------------- connecting
    def _open_connections(self) -> None:
        now = time.monotonic()
        while self.retry_at and self.retry_at[0][0] <= now:
            self.to_connect.append(heapq.heappop(self.retry_at)[1])
        while self.to_connect and self.connecting < CONNECTS_IN_FLIGHT:
            worker = self.workers[self.to_connect.popleft()]
            worker.attempts += 1
            sock = socket.socket(socket.AF_INET6 if ":" in self.config.host else socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            worker.sock = sock
            sock.connect_ex((self.config.host, self.config.port))
            self.selector.register(sock, selectors.EVENT_WRITE, self._slot(worker))
            self.connecting += 1

    def _finish_connect(self, worker: SimWorker) -> None:
        self.connecting -= 1
        error = worker.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error:
            self.stats.connect_failures += 1
            self._discard_socket(worker)
            if worker.attempts >= CONNECT_RETRIES:
                self.stats.gave_up += 1
            else:
                heapq.heappush(self.retry_at, (time.monotonic() + 0.2 * worker.attempts, self._slot(worker)))
            return
        worker.connected = True
        worker.conn = ManagerConnection(password=self.config.password)
        self.selector.modify(worker.sock, selectors.EVENT_READ, self._slot(worker))
        self.stats.connected += 1
        self.stats.ever_connected += 1
        opening = worker.conn.start()
        if self.config.password is None:
            self._send_handshake(worker)
        else:
            self._send(worker, opening)

    def _slot(self, worker: SimWorker) -> int:
        return worker.index - self.workers[0].index

    def _send_handshake(self, worker: SimWorker) -> None:
        c = self.config
        identity = m.WorkerIdentity(f"{c.name}-{worker.index}", "Linux", "x86_64", f"{c.name}-{os.getpid()}-{worker.index}")
        totals = m.ResourceTotals(cores=c.cores, memory=c.memory, disk=c.disk, gpus=0, tag=worker.last_tag)
        self._say(worker, *m.handshake_messages(identity, totals, 0, 0, c.features))

    # -------------------------------------------------------------- bytes in and out
    def _read(self, worker: SimWorker) -> None:
        try:
            data = worker.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        worker.conn.receive_data(data)
        while worker.sock is not None:
            event = worker.conn.next_event()
            reply = worker.conn.data_to_send()
            if reply:
                self._send(worker, reply)
            if event is m.NEED_DATA:
                return
            handler = _HANDLERS.get(type(event))
            if handler is not None:
                handler(self, worker, event)

    def _say(self, worker: SimWorker, *messages: object) -> None:
        self._send(worker, b"".join(worker.conn.send(message) for message in messages))

    def _send(self, worker: SimWorker, data: bytes) -> None:
        if worker.sock is None:
            return
        worker.out += data
        if not worker.writing:
            self._flush(worker)

    def _flush(self, worker: SimWorker) -> None:
        try:
            while worker.out:
                sent = worker.sock.send(worker.out)
                del worker.out[:sent]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self._lost(worker)
            return
        writing = bool(worker.out)
        if writing != worker.writing:
            worker.writing = writing
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if writing else 0)
            self.selector.modify(worker.sock, events, self._slot(worker))

    def _lost(self, worker: SimWorker, released: bool = False) -> None:
        """The connection is over: the manager closed it (dropped) or sent release/exit."""
        if worker.sock is None:
            return
        if released:
            self.stats.released += 1
        else:
            self.stats.dropped += 1
        self.stats.connected -= 1
        self._discard_socket(worker)
        worker.running.clear()
        worker.finished.clear()
        worker.cache.clear()  # the C worker wipes its cache on every disconnect

    def _discard_socket(self, worker: SimWorker) -> None:
        try:
            self.selector.unregister(worker.sock)
        except (KeyError, ValueError):
            pass
        worker.sock.close()
        worker.sock = None
        worker.out.clear()
        worker.writing = False

    def _close_all(self) -> None:
        for worker in self.workers:
            if worker.sock is not None:
                if worker.connected:
                    self.stats.connected -= 1
                self._discard_socket(worker)

    # -------------------------------------------------------------- what the manager asks
    def on_put(self, worker: SimWorker, event: m.PutFile) -> None:
        worker.incoming, worker.incoming_size = event.path, 0

    def on_chunk(self, worker: SimWorker, event: m.FileChunk) -> None:
        worker.incoming_size += len(event.data)
        self.stats.bytes_received += len(event.data)

    def on_file_end(self, worker: SimWorker, event: m.FileEnd) -> None:
        worker.cache[event.path] = worker.incoming_size
        worker.incoming = None
        self.stats.files_received += 1

    def on_dir(self, worker: SimWorker, event: m.DirStart) -> None:
        if event.top_level:
            worker.cache[event.path] = 0

    def on_url(self, worker: SimWorker, event: m.UrlFile) -> None:
        worker.cache[event.name] = 0
        self.stats.files_received += 1

    def on_task(self, worker: SimWorker, event: m.TaskReceived) -> None:
        task = event.task
        self.stats.tasks_received += 1
        worker.last_tag = task.taskid
        if any(f.cached_name not in worker.cache for f in task.inputs):
            self.stats.missing_inputs += 1
        worker.running[task.taskid] = task
        found = SLEEP.search(task.command)
        seconds = float(found.group(1)) if found else self.config.task_seconds
        self._seq += 1
        heapq.heappush(self.timers, (time.monotonic() + seconds, self._seq, self._slot(worker), task.taskid))
        self._say(worker, m.Info("tasks_running", str(len(worker.running))))

    def _fire_timers(self) -> None:
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now:
            due, _, slot, task_id = heapq.heappop(self.timers)
            worker = self.workers[slot]
            if worker.sock is None or task_id not in worker.running:
                continue
            worker.finished.append((task_id, due))
            if not worker.announced:
                worker.announced = True
                self._say(worker, m.ResultsAvailable())

    def on_send_results(self, worker: SimWorker, _event: m.SendResults) -> None:
        worker.announced = False
        parts = []
        while worker.finished:
            task_id, _due = worker.finished.popleft()
            task = worker.running.pop(task_id, None)
            if task is None:
                continue
            output = task.command[5:].encode() + b"\n" if task.command.startswith("echo ") else b""
            for spec in task.outputs:
                worker.cache[spec.cached_name] = f"task {task_id} wrote {spec.remote_name}\n".encode()
            parts += [m.ResultStart(ResultCode.SUCCESS, 0, len(output), 1000, task_id),
                      m.ResultOutput(output, True),
                      m.Info("tasks_running", str(len(worker.running)))]
            self.stats.tasks_reported += 1
        self._say(worker, *parts, m.ReplyEnd())

    def on_get(self, worker: SimWorker, event: m.GetRequest) -> None:
        held = worker.cache.get(event.name)
        self.stats.gets_answered += 1
        if held is None:
            self._say(worker, m.FileMissing(event.name, 2), m.ReplyEnd())
            return
        data = held if isinstance(held, bytes) else b"\0" * held
        self._say(worker, m.FileReply(event.name, len(data)))
        self._send(worker, data)
        self._say(worker, m.ReplyEnd())

    def on_kill(self, worker: SimWorker, event: m.KillTask) -> None:
        if worker.running.pop(event.taskid, None) is not None:
            self.stats.tasks_killed += 1

    def on_unlink(self, worker: SimWorker, event: m.UnlinkFile) -> None:
        worker.cache.pop(event.name, None)

    def on_check(self, worker: SimWorker, _event: m.Check) -> None:
        self.stats.keepalives_answered += 1
        self._say(worker, m.Alive(), m.Info("tasks_running", str(len(worker.running))))

    def on_release(self, worker: SimWorker, _event: object) -> None:
        self._lost(worker, released=True)

    def on_closed(self, worker: SimWorker, _event: m.ConnectionClosed) -> None:
        self._lost(worker)

    def on_failed(self, worker: SimWorker, event: m.ConnectionFailed) -> None:
        self.stats.protocol_errors += 1
        self._lost(worker)

    def on_auth(self, worker: SimWorker, _event: m.AuthSucceeded) -> None:
        self._send_handshake(worker)

    def on_third_party(self, worker: SimWorker, event: m.ThirdParty) -> None:
        if event.put:
            self._say(worker, m.ThirdPutComplete(False))


_HANDLERS = {
    m.PutFile: SwarmLoop.on_put,
    m.FileChunk: SwarmLoop.on_chunk,
    m.FileEnd: SwarmLoop.on_file_end,
    m.DirStart: SwarmLoop.on_dir,
    m.UrlFile: SwarmLoop.on_url,
    m.TaskReceived: SwarmLoop.on_task,
    m.SendResults: SwarmLoop.on_send_results,
    m.GetRequest: SwarmLoop.on_get,
    m.KillTask: SwarmLoop.on_kill,
    m.UnlinkFile: SwarmLoop.on_unlink,
    m.Check: SwarmLoop.on_check,
    m.Release: SwarmLoop.on_release,
    m.Exit: SwarmLoop.on_release,
    m.ConnectionClosed: SwarmLoop.on_closed,
    m.ConnectionFailed: SwarmLoop.on_failed,
    m.AuthSucceeded: SwarmLoop.on_auth,
    m.ThirdParty: SwarmLoop.on_third_party,
}


def _process_main(config: SwarmConfig, indices: range, control) -> None:
    raise_fd_limit(len(indices) + 64)
    SwarmLoop(config, indices, control).run()


# ------------------------------------------------------------------------------ the swarm: a few processes
class Swarm:
    """``config.workers`` simulated workers in ``config.processes`` processes; stop() ends them."""

    def __init__(self, config: SwarmConfig) -> None:
        self.config = config
        self._procs: list = []
        self._controls: list = []
        self._final: SwarmStats | None = None

    def start(self) -> Swarm:
        context = multiprocessing.get_context("spawn")  # the caller may hold threads (a manager)
        count = max(1, min(self.config.processes, self.config.workers))
        bounds = [self.config.workers * n // count for n in range(count + 1)]
        for n in range(count):
            ours, theirs = context.Pipe()
            proc = context.Process(target=_process_main, args=(self.config, range(bounds[n], bounds[n + 1]), theirs),
                                   name=f"{self.config.name}-{n}", daemon=True)
            proc.start()
            theirs.close()
            self._procs.append(proc)
            self._controls.append(ours)
        return self

    def stats(self, timeout: float = 30.0) -> SwarmStats:
        """The processes' counters, summed (after stop(): their last counters)."""
        if self._final is not None:
            return self._final
        return self._ask("stats", timeout)

    def _ask(self, request: str, timeout: float) -> SwarmStats:
        total = SwarmStats()
        for control in self._controls:
            control.send(request)
        for control, proc in zip(self._controls, self._procs, strict=True):
            if not control.poll(timeout):
                raise TimeoutError(f"swarm process {proc.name} did not answer within {timeout:g} s")
            total.add(SwarmStats(**control.recv()))
        return total

    def wait_connected(self, count: int | None = None, timeout: float = 120.0) -> SwarmStats:
        """Wait until ``count`` (default: all) workers are connected; TimeoutError after ``timeout`` s."""
        wanted = self.config.workers if count is None else count
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if stats.connected >= wanted:
                return stats
            if stats.gave_up or time.monotonic() > deadline:
                raise TimeoutError(f"{stats.connected} of {wanted} swarm workers connected "
                                   f"({stats.connect_failures} refused attempts, {stats.gave_up} gave up)")
            time.sleep(0.1)

    def stop(self, timeout: float = 30.0) -> SwarmStats:
        if self._final is None:
            try:
                self._final = self._ask("stop", timeout) if self._procs else SwarmStats()
            except (OSError, EOFError, TimeoutError):
                self._final = SwarmStats()
            for proc in self._procs:
                proc.join(timeout)
                if proc.is_alive():
                    proc.kill()
                    proc.join()
        return self._final

    def __enter__(self) -> Swarm:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--workers", type=int, default=1000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--cores", type=int, default=1)
    parser.add_argument("--task-seconds", type=float, default=0.0)
    parser.add_argument("--seconds", type=float, default=0.0, help="stop after this long (0: until Ctrl-C)")
    args = parser.parse_args(argv)
    config = SwarmConfig(args.host, args.port, workers=args.workers, processes=args.processes, cores=args.cores,
                         task_seconds=args.task_seconds)
    deadline = time.monotonic() + args.seconds if args.seconds > 0 else None
    with Swarm(config) as swarm:
        try:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(2.0)
                print(swarm.stats(), flush=True)
        except KeyboardInterrupt:
            pass
        print(swarm.stop(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
