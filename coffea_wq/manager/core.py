"""What the manager does with workers and tasks, apart from moving bytes.

The walk of one task: ``dispatch_ready_tasks`` -> ``commit_task`` (inputs + task block) -> the
worker's ``available_results`` -> ``request_results`` -> ``handle_result_start`` and
``handle_result_output`` (the output, spooled when large) -> ``handle_result`` (gets, kill, unlinks)
-> ``handle_reply_end`` of the last ``get`` -> ``finish_task`` -> ``TaskQueue.retrieve`` -> ``wait``.

A worker that disconnects goes through ``remove_worker``: its tasks are requeued (or fail with
MAX_RETRIES) and its cache is forgotten (the C worker wipes it on every disconnect).

Everything here runs on the manager's loop thread, with the manager lock held.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from coffea_wq.manager.logs import ManagerLogs
from coffea_wq.manager.monitoring import MonitorSettings, apply_summary, monitor_files, wrapped_command
from coffea_wq.manager.outputs import OutputWriter, RefusedName
from coffea_wq.manager.peers import PeerPlanner
from coffea_wq.manager.queue import TaskQueue
from coffea_wq.manager.stdout import SpoolDirectory, StdoutSpool
from coffea_wq.manager.task import Direction, FileKind, TaskSpec
from coffea_wq.manager.transfers import InputMissing, input_pieces, inputs_to_send
from coffea_wq.manager.workers import HeldTask, Peer, PeerKind, now_us, oldest_first
from coffea_wq.protocol import messages as msg
from coffea_wq.protocol.codes import FileFlags, ResultCode, TaskState
from coffea_wq.resources.allocation import AllocationMode, add_resources, fits, subtract_resources, task_box
from coffea_wq.resources.categories import DEFAULT_STEADY_N_TASKS, Category, RequestLabel
from coffea_wq.resources.types import Resources

log = logging.getLogger("coffea_wq.manager")

SCHEDULE_DEPTH = 1000  # ready tasks examined per dispatch pass when none fits (bounds the cost)


@dataclass
class OutputFetch:
    """What the manager notes with each ``get`` it sends: the reply comes back with it."""

    task: TaskSpec
    writer: OutputWriter
    last_for_task: bool = False


class ManagerCore:
    """Tasks, workers and the rules between them."""

    def __init__(self, queue: TaskQueue, logs: ManagerLogs, on_retrieved: Callable[[], None]) -> None:
        self.queue = queue
        self.logs = logs
        self.peers: dict[int, Peer] = {}
        self.categories: dict[str, Category] = {}
        self.monitor: MonitorSettings | None = None
        self.output_quota = 0.0  # outputs refused beyond it: see staging_quota.py (0: none)
        # completions a category needs before it computes a first allocation (tune category-steady-n-tasks)
        self.steady_n_tasks = DEFAULT_STEADY_N_TASKS
        # CCTools' tunes proportional-resources and proportional-whole-tasks, both on by default;
        # coffea's executor turns the first off (undeclared resources = the whole worker)
        self.proportional_resources = True
        self.proportional_whole_tasks = True
        self._on_retrieved = on_retrieved
        # workers that may have room for a task, oldest-served first: a dispatch pass looks at these,
        # not at every connection (docs/manager.md, "Scale"); a worker is put back when it says something
        self._candidates: dict[int, Peer] = {}
        self._rescan = True  # next pass: every connected worker is a candidate again
        self._largest: Resources | None = None  # largest_worker(), until a worker comes, goes or changes
        self.spool = SpoolDirectory()  # where large task stdout goes (manager/stdout.py)
        # which worker gets a cached file from which other worker (manager/peers.py)
        self.planner = PeerPlanner(self.peers, self.queue.counters)

    def category(self, name: str) -> Category:
        category = self.categories.get(name)
        if category is None:
            category = self.categories[name] = Category(name, steady_n_tasks=self.steady_n_tasks)
        return category

    def set_steady_n_tasks(self, count: int) -> None:
        """``tune("category-steady-n-tasks", n)``: for every category, present and future."""
        self.steady_n_tasks = max(1, int(count))
        for category in self.categories.values():
            category.steady_n_tasks = self.steady_n_tasks

    def largest_worker(self) -> Resources:
        """Field-wise largest of the connected workers (for categories' first/min allocations)."""
        if self._largest is None:
            ready = [p.largest for p in self.peers.values() if p.ready_for_tasks]
            self._largest = Resources() if not ready else Resources(
                *(max((getattr(r, n) or 0.0) for r in ready) for n in ("cores", "memory", "disk", "gpus")))
        return self._largest

    def rescan_workers(self) -> None:
        """Something may have changed what any worker can take (a worker came, went, or changed; a
        setting): the next dispatch pass considers every worker again."""
        self._rescan = True
        self._largest = None

    def forget_largest_worker(self) -> None:
        """A worker's size or end time changed: largest_worker() is computed again when next asked."""
        self._largest = None

    def consider_worker(self, peer: Peer) -> None:
        """``peer`` may have room again (it sent a result, or anything): the next pass looks at it."""
        if peer.key not in self._candidates and peer.key in self.peers:
            self._candidates[peer.key] = peer

    # ------------------------------------------------------------------ dispatch
    def dispatch_ready_tasks(self) -> int:
        """Send ready tasks to workers where they fit; returns how many were sent.

        Workers are taken in turn (the one that got a task goes to the back of the candidates), and
        a pass costs what it dispatches plus the stale candidates it drops, not the number of workers.
        """
        if not self.queue.ready_count:
            return 0
        if self._rescan:
            self._rescan = False
            self._candidates = dict(self.peers)
        if not self._candidates:
            return 0
        sent = unfit = 0
        slots = self._category_slots_left()
        for task in self.queue.ready_in_order():
            full = slots.get(task.category, 1) <= 0
            worker = None if full else self._find_worker(task)
            if worker is None:
                unfit += 1
                if unfit >= SCHEDULE_DEPTH or not self._candidates:
                    break
                continue
            self.commit_task(task, worker)
            sent += 1
            if task.category in slots:
                slots[task.category] -= 1
            del self._candidates[worker.key]
            if _has_room(worker):
                self._candidates[worker.key] = worker  # to the back: the next task tries the next worker
            elif not self._candidates:
                break
        return sent

    def _category_slots_left(self) -> dict[str, int]:
        """For categories with a ``max_concurrent``: how many more of their tasks may start now."""
        limits = {name: c.max_concurrent for name, c in self.categories.items() if c.max_concurrent >= 0}
        if not limits:
            return {}
        for peer in self.peers.values():
            for task in peer.tasks.values():
                if task.category in limits:
                    limits[task.category] -= 1
        return limits

    def _find_worker(self, task: TaskSpec) -> Peer | None:
        category = self.categories.get(task.category)
        if category is None:  # the common case: no category settings, the task's own request
            requested, minimum, mode = task.requested, None, None
        else:
            label = RequestLabel(task.label)
            max_worker = self.largest_worker()
            requested = category.task_max_resources(task.requested, label, max_worker)
            minimum = category.task_min_resources(task.requested, label, max_worker)
            mode = category.mode
        avoid = self._avoidable(task.avoid_hosts) if task.avoid_hosts else None
        found = None
        stale = []
        for worker in (oldest_first(self._candidates.values()) if task.prefer_oldest else self._candidates.values()):
            if not worker.ready_for_tasks or not _has_room(worker) or worker.key not in self.peers:
                stale.append(worker.key)  # back when it next says something (or at the next rescan)
                continue
            if task.features and not set(task.features) <= worker.features:
                continue
            if avoid and worker.address in avoid:
                continue
            if task.end_time > 0 and worker.end_time > 0 and task.end_time > worker.end_time:
                continue
            box = task_box(requested, worker.largest, mode or AllocationMode.FIXED, minimum,
                           proportional=self.proportional_resources, whole_tasks=self.proportional_whole_tasks)
            if fits(box, worker.inuse, worker.total):
                task.allocated = box
                found = worker
                break
        for key in stale:
            del self._candidates[key]
        return found

    def _avoidable(self, hosts: list[str]) -> set[str] | None:
        """``hosts`` to pass over, or None when no other worker is connected (then any will do)."""
        avoid = set(hosts)
        others = any(p.kind is PeerKind.WORKER and not p.closing and p.address not in avoid for p in self.peers.values())
        return avoid if others else None

    def commit_task(self, task: TaskSpec, worker: Peer) -> None:
        """Send the task's missing inputs and its task block to ``worker``."""
        self.queue.remove_ready(task)
        box = task.allocated or Resources(0.0, 0.0, 0.0, 0.0)
        command = task.command
        if self.monitor is not None:
            task.attempt_files = monitor_files(self.monitor, task)
            command = wrapped_command(self.monitor, task, box)
        try:
            wanted = inputs_to_send(task, worker.cache)
            pieces = [(spec, signature, list(input_pieces(spec))) for spec, signature in wanted]
        except InputMissing as error:
            log.warning("task %d: %s", task.task_id, error)
            task.result = ResultCode.INPUT_MISSING
            self.finish_task(task)
            return
        task.time_when_commit_start = now_us()
        on_their_way = set()
        for spec, signature, parts in pieces:
            if self.planner.take(spec, signature, worker):
                on_their_way.add(spec.cached_name)  # from another worker: the task block waits for it
                continue
            for part in parts:
                worker.send(part)
            size = signature[0] if signature else 0
            task.bytes_sent += size
            worker.bytes_sent += size
            self.queue.counters.bytes_sent += size
            self.planner.sent_by_manager(spec, signature, worker)  # before the cache changes: it reads the old version
            worker.cache[spec.cached_name] = signature
        message = _task_message(task, box, command, self.monitor is not None)
        if on_their_way:
            worker.held_tasks[task.task_id] = HeldTask(message, on_their_way)
        else:
            worker.send(worker.conn.send(message))
        task.state = TaskState.RUNNING
        task.try_count += 1
        task.worker_key = worker.key
        task.host = worker.address
        task.hostname = worker.hostname
        task.time_when_commit_end = now_us()
        worker.tasks[task.task_id] = task
        worker.inuse = add_resources(worker.inuse, box)
        self.queue.counters.tasks_dispatched += 1
        self.queue.count_for_category(task.category, "tasks_dispatched")
        self.logs.task_running(task, worker.address)

    # ------------------------------------------------------------------ results
    def request_results(self, peer: Peer) -> None:
        """Answer ``available_results`` with ``send_results -1`` (one request at a time)."""
        if peer.results_available and not peer.conn.awaits(msg.SendResults) and not peer.closing:
            peer.results_available = False
            peer.send(peer.conn.send(msg.SendResults(-1)))

    def handle_result_start(self, peer: Peer, start: msg.ResultStart) -> None:
        """A ``result`` line: its output follows as ``ResultOutput`` chunks, kept in a spool."""
        peer.result = start
        peer.result_spool = StdoutSpool(self.spool, start.task_id)

    def handle_result_output(self, peer: Peer, chunk: msg.ResultOutput) -> None:
        spool, start = peer.result_spool, peer.result
        if spool is None or start is None:
            raise ValueError("task output with no result line")
        try:
            spool.write(chunk.data)
        except OSError:
            spool.discard()
            raise
        if chunk.last:
            peer.result, peer.result_spool = None, None
            self.handle_result(peer, start, spool, chunk.truncated)

    def handle_result(self, peer: Peer, result: msg.ResultStart, spool: StdoutSpool, truncated: bool) -> None:
        """A whole result: the task waits for its outputs to be fetched (or is requeued)."""
        task = peer.tasks.get(result.task_id)
        if task is None or task.state is not TaskState.RUNNING:
            log.debug("worker %s: result for unknown task %d ignored", peer.address, result.task_id)
            spool.discard()
            return
        self._release_box(peer, task)
        elapsed = max(0, now_us() - task.time_when_commit_end)
        exec_time = min(result.execution_time_us, elapsed) if elapsed else result.execution_time_us
        if result.status == ResultCode.FORSAKEN:
            # the worker could not run it (resources): requeue without counting it against the task
            peer.tasks.pop(task.task_id, None)
            self._cleanup_on_worker(peer, task, kill=False)
            task.try_count = max(0, task.try_count - 1)
            self._requeue(task)
            spool.discard()
            return
        task.result = _result_code(result.status)
        if truncated and task.result is ResultCode.SUCCESS:
            # as CCTools: output beyond what the manager keeps is dropped and the task says so
            task.result = ResultCode.STDOUT_MISSING
        task.return_status = result.exit_code
        head, task.output_path = spool.finish()
        task.output = head.decode("utf-8", errors="replace")
        task.cmd_execution_time = exec_time
        task.total_cmd_execution_time += exec_time
        task.bytes_received += spool.length
        task.state = TaskState.WAITING_RETRIEVAL
        counters = self.queue.counters
        counters.time_workers_execute += exec_time
        counters.bytes_received += spool.length
        if task.result is ResultCode.SUCCESS:
            counters.time_workers_execute_good += exec_time
        peer.bytes_received += spool.length
        self.logs.task_waiting_retrieval(task, peer.address)
        self._fetch_outputs(peer, task)

    def _fetch_outputs(self, peer: Peer, task: TaskSpec) -> None:
        """One ``get`` per wanted output, then ``kill`` and ``unlink``s, all pipelined."""
        succeeded = task.result is ResultCode.SUCCESS and task.return_status == 0
        wanted = []
        for spec in task.outputs():
            if not spec.flags & (FileFlags.FAILURE_ONLY if succeeded else FileFlags.SUCCESS_ONLY):
                wanted.append(spec)
        for index, spec in enumerate(wanted):
            writer = OutputWriter(str(spec.local), spec.cached_name, quota=self.output_quota, task=task)
            last = index == len(wanted) - 1
            fetch = OutputFetch(task, writer, last_for_task=last)
            peer.send(peer.conn.send(msg.GetRequest(spec.cached_name), context=fetch))
        self._cleanup_on_worker(peer, task, kill=True)
        if not wanted:
            peer.tasks.pop(task.task_id, None)
            self.finish_task(task, peer)

    def _cleanup_on_worker(self, peer: Peer, task: TaskSpec, kill: bool) -> None:
        """``kill`` the task's sandbox and ``unlink`` its uncached files from the worker's cache."""
        if kill:
            peer.send(peer.conn.send(msg.KillTask(task.task_id)))
        for spec in task.all_files():
            if spec.kind is FileKind.DIRECTORY or spec.cached:
                continue
            if spec.direction is Direction.INPUT or kill:
                peer.send(peer.conn.send(msg.UnlinkFile(spec.cached_name)))
                peer.cache.pop(spec.cached_name, None)

    # ------------------------------------------------------------------ get replies
    def handle_get_event(self, peer: Peer, event: msg.ManagerEvent) -> None:
        """A line or chunk of a ``get`` reply (the connection checked that a ``get`` is owed)."""
        head = event.context
        if not isinstance(head, OutputFetch):
            raise ValueError(f"unexpected {type(event).__name__}: not the reply to an output's get")
        writer = head.writer
        try:
            if isinstance(event, msg.FileReply):
                writer.start_file(event.name, event.size)  # refused over the output quota (staging_quota.py)
            elif isinstance(event, msg.FileData):
                writer.write(event.data, event.last)
                if head.task is not None:
                    head.task.bytes_received += len(event.data)
                peer.bytes_received += len(event.data)
                self.queue.counters.bytes_received += len(event.data)
            elif isinstance(event, msg.DirectoryStart):
                writer.make_directory(event.name)
            elif isinstance(event, msg.FileMissing):
                writer.missing = True
        except RefusedName as error:
            # a hostile or broken peer: the server drops it, its tasks go back to the queue
            raise RefusedName(f"task {head.task and head.task.task_id}, output {writer.local_path}: {error}; "
                              "refused") from None
        except OSError as error:
            log.warning("task %s: cannot write output %s: %s", head.task and head.task.task_id, writer.local_path, error)
            writer.close()
            writer.missing = True

    def handle_reply_end(self, peer: Peer, event: msg.ReplyEnd) -> None:
        head = event.context
        if not isinstance(head, OutputFetch):  # the end of a send_results reply
            self.request_results(peer)
            return
        head.writer.close()
        task = head.task
        if head.writer.missing:
            task.missing_outputs += 1
            if task.result is ResultCode.SUCCESS or task.result is ResultCode.STDOUT_MISSING:
                task.result = ResultCode.OUTPUT_MISSING
        if head.last_for_task:
            peer.tasks.pop(task.task_id, None)
            self.finish_task(task, peer)

    def finish_task(self, task: TaskSpec, peer: Peer | None = None) -> None:
        if task.state is TaskState.CANCELED:
            return
        if task.attempt_files and self.monitor is not None and task.state is TaskState.WAITING_RETRIEVAL:
            apply_summary(self.monitor, task)
            if self._retry_after_exhaustion(task):
                return
            self._learn_from(task)
        task.time_when_done = now_us()
        if peer is not None:
            peer.tasks_completed += 1
        self.logs.task_done(task)
        self.queue.retrieve(task)
        self._on_retrieved()

    def _retry_after_exhaustion(self, task: TaskSpec) -> bool:
        """An exhausted task goes back with the category's maximum, unless that cannot help."""
        if task.result is not ResultCode.RESOURCE_EXHAUSTION:
            return False
        task.exhausted_attempts += 1
        self.queue.counters.tasks_exhausted_attempts += 1
        self.queue.counters.time_workers_execute_exhaustion += task.cmd_execution_time
        category = self.category(task.category)
        category.accumulate(task.measured, "limits", task.cmd_execution_time / 1e6, self.largest_worker(),
                            task.limits_exceeded)
        measured = {k: v for k, v in (task.measured or {}).items() if isinstance(v, (int, float))}
        following = category.next_label(RequestLabel(task.label), task.requested, measured)
        box = _box_text(task.allocated)
        if following is RequestLabel.ERROR:
            log.warning("task %d (category %s) exhausted its allocation %s on %s: %s; no larger allocation "
                        "to retry with (%s mode, %s attempt): it fails", task.task_id, task.category, box,
                        task.hostname, task.exhaustion_message or "no measurement", category.mode.name.lower(),
                        RequestLabel(task.label).log_name)
            return False
        # expected in the automatic modes (the first allocation is a bet): info, not a warning
        log.info("task %d (category %s) exhausted its allocation %s on %s: %s; retrying with the category "
                 "maximum", task.task_id, task.category, box, task.hostname,
                 task.exhaustion_message or "no measurement")
        # CCTools logs the exhausted attempt as RETRIEVED before the task waits again with MAX_RESOURCES
        self.logs.task_done(task)
        task.label = following.value
        self._requeue(task)
        return True

    def _learn_from(self, task: TaskSpec) -> None:
        if task.measured:
            category = self.category(task.category)
            exit_type = "normal" if task.result is ResultCode.SUCCESS else "signal"
            category.accumulate(dict(task.measured), exit_type, task.cmd_execution_time / 1e6, self.largest_worker())

    # ------------------------------------------------------------------ failures
    def remove_worker(self, peer: Peer, reason: str) -> None:
        """Forget a worker: requeue its tasks (or fail them after max_retries)."""
        self.peers.pop(peer.key, None)
        self._candidates.pop(peer.key, None)
        self._largest = None
        for fetch in peer.conn.abandon_replies():
            if isinstance(fetch, OutputFetch):
                fetch.writer.abort()  # an unfinished reply leaves nothing behind
        if peer.result_spool is not None:
            peer.result_spool.discard()
            peer.result, peer.result_spool = None, None
        peer.outbox.close()
        counters = self.queue.counters
        if peer.kind is PeerKind.WORKER:
            counters.workers_removed += 1
            if reason == "FAILURE":
                counters.workers_lost += 1
            elif reason == "IDLE_OUT":
                counters.workers_idled_out += 1
            self.logs.worker_disconnection(peer, reason)
        for task in list(peer.tasks.values()):
            if task.state is TaskState.CANCELED:
                continue
            task.allocated = None
            if task.max_retries > 0 and task.try_count > task.max_retries:
                task.result = ResultCode.MAX_RETRIES
                self.finish_task(task)
            else:
                self._requeue(task)
        peer.tasks.clear()
        peer.held_tasks.clear()
        peer.cache.clear()
        if peer.kind is PeerKind.WORKER:
            self.planner.forget_worker(peer)
        peer.inuse = Resources(0.0, 0.0, 0.0, 0.0)

    def _requeue(self, task: TaskSpec) -> None:
        task.reset_results()
        task.allocated = None
        self.queue.make_ready(task)
        self.logs.task_waiting(task)

    def _release_box(self, peer: Peer, task: TaskSpec) -> None:
        if task.allocated is not None and task.worker_key == peer.key:
            peer.inuse = subtract_resources(peer.inuse, task.allocated)
            self.consider_worker(peer)
        task.worker_key = 0

    # ------------------------------------------------------------------ cancel
    def cancel(self, task_id: int) -> TaskSpec | None:
        task = self.queue.tasks.get(task_id)
        if task is None:
            return None
        if task.state in (TaskState.RUNNING, TaskState.WAITING_RETRIEVAL):
            peer = self.peers.get(task.worker_key) or self._peer_holding(task)
            if peer is not None:
                if task.state is TaskState.RUNNING:
                    self._release_box(peer, task)
                    self._cleanup_on_worker(peer, task, kill=True)
                peer.tasks.pop(task.task_id, None)
                peer.held_tasks.pop(task.task_id, None)
        self.queue.forget(task)
        self.logs.task_canceled(task)
        return task

    def _peer_holding(self, task: TaskSpec) -> Peer | None:
        return next((p for p in self.peers.values() if task.task_id in p.tasks), None)

    # ------------------------------------------------------------------ telling workers to leave
    def release_workers(self, chosen: Callable[[Peer], bool], limit: int = 0) -> int:
        """Send ``release`` to the peers ``chosen`` picks (at most ``limit``; 0: no limit) and close
        each once that is sent: the worker goes back to its pool, its tasks are requeued. How many."""
        return self._tell_to_leave(chosen, limit, msg.Release())

    def exit_workers(self, chosen: Callable[[Peer], bool], limit: int = 0) -> int:
        """As ``release_workers``, with ``exit``: the worker process ends."""
        return self._tell_to_leave(chosen, limit, msg.Exit())

    def _tell_to_leave(self, chosen: Callable[[Peer], bool], limit: int, message: msg.Release | msg.Exit) -> int:
        told = 0
        for peer in list(self.peers.values()):
            if limit > 0 and told >= limit:
                break
            if chosen(peer):
                peer.send(peer.conn.send(message))
                peer.closing = True
                peer.disconnect_reason = "EXPLICIT"
                told += 1
        return told

    def forget_cached_file(self, cached_name: str) -> int:
        """Make every worker holding ``cached_name`` in its cache unlink it; how many did."""
        count = 0
        self.planner.forget(cached_name)
        for peer in self.peers.values():
            if peer.cache.pop(cached_name, None) is not None:
                peer.send(peer.conn.send(msg.UnlinkFile(cached_name)))
                count += 1
        return count


def _has_room(peer: Peer) -> bool:
    """Whether the smallest possible box (1 core or 1 gpu, 1 MB, 1 MB) still fits."""
    total = peer.total
    unit = Resources(min(1.0, total.cores or 0), min(1.0, total.memory or 0), min(1.0, total.disk or 0), 0.0)
    if fits(unit, peer.inuse, total):
        return True
    gpu_unit = Resources(0.0, unit.memory, unit.disk, min(1.0, total.gpus or 0))
    return bool(total.gpus) and fits(gpu_unit, peer.inuse, total)


def _box_text(box: Resources | None) -> str:
    """``cores 1, memory 100 MB, disk 500 MB`` for log messages."""
    if box is None:
        return "(none)"
    units = {"memory": " MB", "disk": " MB"}
    return "(" + ", ".join(f"{name} {getattr(box, name):g}{units.get(name, '')}"
                           for name in ("cores", "memory", "disk", "gpus") if getattr(box, name)) + ")"


def _result_code(status: int) -> ResultCode:
    try:
        return ResultCode(status)
    except ValueError:
        return ResultCode.UNKNOWN


def _task_message(task: TaskSpec, box: Resources, command: str, monitored: bool) -> msg.TaskMessage:
    """The task block; a monitored task's time limits are the monitor's to enforce (as CCTools)."""
    inputs, outputs, dirs = [], [], []
    for spec in task.all_files():
        if spec.kind is FileKind.DIRECTORY:
            dirs.append(spec.remote)
        elif spec.direction is Direction.INPUT:
            inputs.append(msg.TaskFile(spec.cached_name, spec.remote, spec.flags & FileFlags.CACHE))
        else:
            outputs.append(msg.TaskFile(spec.cached_name, spec.remote, spec.flags & (FileFlags.CACHE | FileFlags.WATCH)))
    return msg.TaskMessage(
        task_id=task.task_id,
        command=command,
        category=task.category,
        cores=box.cores or 0,
        gpus=box.gpus or 0,
        memory=box.memory or 0,
        disk=box.disk or 0,
        end_time=0 if monitored else task.end_time,
        wall_time=0 if monitored else task.running_time_max,
        env=tuple(task.env),
        empty_dirs=tuple(dirs),
        inputs=tuple(inputs),
        outputs=tuple(outputs),
    )
