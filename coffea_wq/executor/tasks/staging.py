"""The manager-side staging directory and the construction of one Work Queue task per work item.

Layout of a staging directory (a fresh ``coffea-wq-*`` directory under the executor's ``filepath``):

    owner                      "PID START HOST" of the process that made it (stale-folder cleanup)
    coffea_wq_task.py          the task runner (cached on workers)
    fn-<name>-<hash>.pkl       the cloudpickled function of a call (cached on workers)
    items/item-<key>.pkl       one pickled WorkItem per task (not cached)
    outputs/out-<key>.lz4      what each task sends back (deleted once accumulated)

The command a task runs is the contract the coffea-wq worker's warm slots recognise, built by
``coffea_wq.worker.warm_contract`` (which the worker parses it with): ``python3 coffea_wq_task.py
FN ITEM OUT``, or with an environment tarball ``./coffea_wq_env_run ENV python3 coffea_wq_task.py FN
ITEM OUT``.

The folder is removed when its session closes (every exit path of an executor call, and at
interpreter exit). A process killed outright cannot do that: the next ``StagingArea`` made under
the same ``filepath`` removes the folders whose owner process is gone (same host, pid dead or
reused by a process that started later). See docs/executor.md, "Nothing left behind".
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import shutil
import socket
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import cloudpickle

from coffea_wq.executor.errors import ExecutorConfigError
from coffea_wq.executor.tasks import task_clock, task_script
from coffea_wq.worker.warm_contract import (
    ENV_RUNNER,
    FLUSH_ENV,
    TASK_SCRIPT,
    WarmCommand,
    build_warm_command,
    warm_environment,
)

log = logging.getLogger(__name__)

STAGING_PREFIX = "coffea-wq-"
OWNER_FILE = "owner"
ITEM_REMOTE_NAME = "item.pkl"
FLUSH_PRIORITY = 20  # urgent flushes go before queued chunk tasks (0) and accumulation tasks (10)
OUTPUT_REMOTE_NAME = "out.lz4"
X509_REMOTE_NAME = "x509up"
DEFAULT_PRELOAD = ("coffea.processor", "coffea.nanoevents", "awkward", "uproot", "numpy", "cloudpickle", "lz4.frame")


class BuiltTask(Protocol):
    """A Work Queue task being built (either implementation's ``Task``): what staging calls on it."""

    def specify_input_file(self, local_name: str, remote_name: str | None = None, cache: bool = True) -> None: ...

    def specify_environment_variable(self, name: str, value: str) -> None: ...


@dataclass(frozen=True)
class FunctionFile:
    """A function cloudpickled once per call; ``remote_name`` changes whenever its bytes do."""

    path: Path
    remote_name: str


@dataclass
class TaskTemplate:
    """Everything the tasks of one executor call share (files, command prefix, resources)."""

    function: FunctionFile
    script: Path
    category: str
    python: str = "python3"
    environment: Path | None = None
    env_runner: Path | None = None
    # the tarball's name on workers (its content key), so a rebuilt tarball is never mistaken for
    # an older one a long-lived worker cached under the same file name
    environment_name: str | None = None
    extra_inputs: Sequence[tuple[Path, str]] = ()
    # send data files given by relative paths with the tasks (coffea 0.7's rule; shipped_input_name)
    ship_input_files: bool = True
    x509_proxy: Path | None = None
    cores: int | None = None
    memory: int | None = None
    disk: int | None = None
    gpus: int | None = None
    warm: bool = True
    preload: Sequence[str] = DEFAULT_PRELOAD
    environment_variables: dict[str, str] = field(default_factory=dict)

    def command(self) -> str:
        """The shell command of every task of this template."""
        tarball = self.environment_remote_name if self.environment is not None else None
        return build_warm_command(WarmCommand(self.python, self.function.remote_name, ITEM_REMOTE_NAME,
                                              OUTPUT_REMOTE_NAME, tarball))

    @property
    def environment_remote_name(self) -> str:
        """The environment tarball's file name in the task sandbox (and the worker's cache)."""
        if self.environment is None:
            raise ValueError("this template has no environment")
        return self.environment_name or self.environment.name


class StagingArea:
    """A per-run directory of the files tasks carry and bring back.

    Example:
        >>> area = StagingArea(Path("."))
        >>> fn = area.write_function(len, "len", compression=1)
        >>> fn.remote_name.startswith("fn-len-")
        True
        >>> area.remove()
    """

    def __init__(self, parent: Path):
        parent = Path(parent)
        if not parent.is_dir():
            raise FileNotFoundError(f"executor filepath {str(parent)!r} is not a directory")
        remove_stale_staging(parent)
        self.root = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=parent)).resolve()
        (self.root / OWNER_FILE).write_text(owner_record(os.getpid()))
        (self.root / "items").mkdir()
        (self.root / "outputs").mkdir()
        self.script = self.root / TASK_SCRIPT
        shutil.copyfile(task_script.__file__, self.script)
        shutil.copyfile(task_clock.__file__, self.root / task_script.CLOCK_SCRIPT)  # shipped beside it

    def write_function(self, function: Callable, function_name: str | None, compression: int | None,
                       reduce: dict[str, Any] | None = None) -> FunctionFile:
        """Cloudpickle ``function`` (with the result compression level and, with reduction on, the
        hand-back settings ``{"every": N, "seconds": T}``, docs/reduction.md) once for a whole call."""
        content = {"function": function, "compression": compression or 1}
        if reduce is not None:
            content["reduce"] = reduce
        payload = cloudpickle.dumps(content, protocol=pickle.HIGHEST_PROTOCOL)
        digest = hashlib.sha256(payload).hexdigest()[:16]
        name = "".join(c if c.isalnum() or c in "_-." else "_" for c in (function_name or "function"))
        remote = f"fn-{name}-{digest}.pkl"
        path = self.root / remote
        if not path.exists():
            path.write_bytes(payload)
        return FunctionFile(path, remote)

    def write_item(self, key: int, item: Any) -> Path:
        path = self.root / "items" / f"item-{key}.pkl"
        path.write_bytes(pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL))
        return path

    def item_path(self, key: int) -> Path:
        return self.root / "items" / f"item-{key}.pkl"

    def output_path(self, key: int) -> Path:
        return self.root / "outputs" / f"out-{key}.lz4"

    def reset_output(self, key: int) -> Path:
        """An empty file at task ``key``'s output path, before each submission.

        Never a previous attempt's output; and the manager never turns an existing file into a
        directory (docs/manager.md, "Sandbox"), so no worker's reply can make it one.
        """
        path = self.output_path(key)
        _remove(path)
        path.write_bytes(b"")
        return path

    def discard_output(self, key: int) -> None:
        """Forget task ``key``'s output only (its value is held on a worker: the item may run again)."""
        _remove(self.output_path(key))

    def discard(self, key: int) -> None:
        """Forget the files of task ``key`` (its result is accumulated or abandoned)."""
        for path in (self.item_path(key), self.output_path(key)):
            _remove(path)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _remove(path: Path) -> None:
    """Delete a file, or a directory a foreign manager's worker may have made there; missing is fine."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def owner_record(pid: int) -> str:
    """``"PID START HOST"``: START (the process's start time in clock ticks since boot, Linux) tells
    a live owner from a later process that reuses its pid."""
    return f"{pid} {process_start_time(pid) or 0} {socket.gethostname()}\n"


def process_start_time(pid: int) -> int | None:
    """Field 22 of ``/proc/PID/stat`` (None when the process does not exist or there is no /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[19])


def owner_is_gone(record: str) -> bool:
    """Whether the process an owner record names is dead (only judged for this host)."""
    try:
        pid_text, start_text, host = record.split()
        pid, start = int(pid_text), int(start_text)
    except ValueError:
        return False  # not ours, or half-written by a live process: leave it
    if host != socket.gethostname():
        return False  # a shared filesystem: its owner may be alive elsewhere
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return start != 0 and process_start_time(pid) not in (None, start)


def remove_stale_staging(parent: Path) -> list[Path]:
    """Remove the staging folders under ``parent`` whose owner process died; return them."""
    removed = []
    for folder in Path(parent).glob(f"{STAGING_PREFIX}*"):
        try:
            record = (folder / OWNER_FILE).read_text()
        except OSError:
            continue  # no owner file: not a folder this version made, or being made now
        if owner_is_gone(record):
            log.info("removing staging folder %s left by dead process %s", folder, record.split()[0])
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def shipped_input_name(filename: Any) -> str | None:
    """The name a work item's data file is sent under, or None when tasks read it in place.

    coffea 0.7's rule: a relative path is sent to the worker as a cached input under that same
    relative name, so the task opens it in its sandbox; an absolute path (a shared filesystem) or a
    URL (``root://``, ``https://``, ...) is read where it is. See docs/executor.md.

    Example:
        >>> shipped_input_name("./samples/nano_dy.root"), shipped_input_name("/data/x.root")
        ('samples/nano_dy.root', None)
    """
    if not isinstance(filename, str) or "://" in filename or os.path.isabs(filename):
        return None
    name = os.path.normpath(filename)
    if name == os.pardir or name.startswith(os.pardir + os.sep):
        raise ExecutorConfigError(
            f"input file {filename!r} is outside the current directory, so it cannot be sent to workers under "
            f"its relative name: give it as an absolute path (read in place) or from a directory below "
            f"{os.getcwd()!r}")
    return name


def build_task(wq: ModuleType, template: TaskTemplate, key: int, item_path: Path, output_path: Path,
               item: Any = None) -> Any:
    """One Work Queue task running the template's function on the item stored at ``item_path``.

    With ``template.ship_input_files``, the item's data file is a cached input when its path is
    relative (``shipped_input_name``).
    """
    task = wq.Task(template.command())
    task.specify_tag(str(key))
    task.specify_category(template.category)
    _specify_runner_inputs(task, template, item_path)
    for local, remote in template.extra_inputs:
        task.specify_input_file(str(local), remote, cache=True)
    if template.ship_input_files:
        filename = getattr(item, "filename", None)
        remote = shipped_input_name(filename)
        if remote is not None:
            task.specify_input_file(os.path.abspath(filename), remote, cache=True)
    if template.x509_proxy is not None:
        task.specify_input_file(str(template.x509_proxy), X509_REMOTE_NAME, cache=True)
        task.specify_environment_variable("X509_USER_PROXY", X509_REMOTE_NAME)
    task.specify_output_file(str(output_path), OUTPUT_REMOTE_NAME, cache=False)
    if template.warm:
        for name, value in warm_environment(template.preload).items():
            task.specify_environment_variable(name, value)
    for name, value in template.environment_variables.items():
        task.specify_environment_variable(name, value)
    _specify_resources(task, template)
    return task


def _specify_runner_inputs(task: BuiltTask, template: TaskTemplate, item_path: Path) -> None:
    """What every task of the template needs to run the task script: the script, the function, the
    item, and the environment tarball with its runner (chunk and flush tasks alike)."""
    task.specify_input_file(str(template.script), TASK_SCRIPT, cache=True)
    clock = Path(template.script).with_name(task_script.CLOCK_SCRIPT)
    if clock.exists():  # a template's script from elsewhere may come alone: its tasks report no phases
        task.specify_input_file(str(clock), task_script.CLOCK_SCRIPT, cache=True)
    task.specify_input_file(str(template.function.path), template.function.remote_name, cache=True)
    task.specify_input_file(str(item_path), ITEM_REMOTE_NAME, cache=False)
    if template.environment is not None and template.env_runner is not None:
        task.specify_input_file(str(template.env_runner), ENV_RUNNER, cache=True)
        task.specify_input_file(str(template.environment), template.environment_remote_name, cache=True)


def build_flush_task(wq: ModuleType, template: TaskTemplate, key: int, item_path: Path, output_path: Path,
                     partial_id: str, feature: str, urgent: bool = False) -> Any:
    """A task that brings partial ``partial_id`` back from the worker advertising ``feature``.

    It runs the same command as the chunk tasks (so a warm slot takes it), on a placeholder item,
    with ``COFFEA_WQ_FLUSH`` naming the partial; one core, so it never waits for a whole worker.
    ``urgent`` (a partial past the hold bounds): ahead of the chunk tasks queued, so the worker's
    next free core takes it (docs/reduction.md, section 6); else behind them, as the end of a run
    wants (a slot hands back once, after its last chunk).
    """
    task = wq.Task(template.command())
    task.specify_tag(f"flush {partial_id}")
    task.specify_category("accumulating")
    _specify_runner_inputs(task, template, item_path)
    task.specify_output_file(str(output_path), OUTPUT_REMOTE_NAME, cache=False)
    for name, value in {**warm_environment(template.preload), **template.environment_variables,
                        FLUSH_ENV: partial_id}.items():
        task.specify_environment_variable(name, value)
    task.specify_feature(feature)
    task.specify_cores(1)
    if urgent:
        task.specify_priority(FLUSH_PRIORITY)
    return task


def _specify_resources(task: BuiltTask, template: TaskTemplate) -> None:
    # unset resources leave the task a whole worker, as in CCTools
    if template.cores is not None:
        task.specify_cores(int(template.cores))
    if template.memory is not None:
        task.specify_memory(int(template.memory))
    if template.disk is not None:
        task.specify_disk(int(template.disk))
    if template.gpus is not None:
        task.specify_gpus(int(template.gpus))
