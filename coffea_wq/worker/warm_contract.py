"""The warm-task contract: the one command shape a coffea-wq worker may run in a warm Python slot.

The executor builds its tasks' commands here and the worker parses them here, so the two sides
cannot drift apart. Pure: no I/O, standard library only. A task is offered a warm slot when its
environment holds ``COFFEA_WQ_WARM=1`` and its command is exactly one of

    python3 coffea_wq_task.py FN ITEM OUT
    ./coffea_wq_env_run ENV python3 coffea_wq_task.py FN ITEM OUT

(``python`` or a path ending in ``python3``/``python`` also names the interpreter; no argument may
be empty or start with ``-``). ``COFFEA_WQ_PRELOAD`` lists, comma-separated, the modules a slot
imports before it forks. Anything else runs cold, as any other Work Queue task would. See
docs/executor.md, "What a task is, and why it is fast", and docs/worker.md.

Example:
    >>> command = build_warm_command(WarmCommand("python3", "fn.pkl", "item.pkl", "out.lz4", "env.tar.gz"))
    >>> command
    './coffea_wq_env_run env.tar.gz python3 coffea_wq_task.py fn.pkl item.pkl out.lz4'
    >>> parse_warm_command(command).argv
    ('coffea_wq_task.py', 'fn.pkl', 'item.pkl', 'out.lz4')
    >>> parse_warm_command("python3 other.py fn.pkl item.pkl out.lz4") is None
    True
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

WARM_ENV = "COFFEA_WQ_WARM"
PRELOAD_ENV = "COFFEA_WQ_PRELOAD"
# reduction in warm slots (docs/reduction.md, section 1); the task script and the zygote, which
# cannot import this module, spell the same names
WORKER_TOKEN_ENV = "COFFEA_WQ_WORKER_TOKEN"  # set by the worker in every warm task's environment
CHUNK_ENV = "COFFEA_WQ_CHUNK"  # the executor's key of the task's chunk
RUN_ENV = "COFFEA_WQ_RUN"  # the executor call the task belongs to (one partial per run in a slot)
FLUSH_ENV = "COFFEA_WQ_FLUSH"  # a flush task: the id of the partial to hand back
# the hold bounds in force for one chunk task (docs/reduction.md, section 6); HOLD_ENV "0": not held
HOLD_ENV = "COFFEA_WQ_HOLD"
HOLD_EVERY_ENV = "COFFEA_WQ_HOLD_EVERY"
HOLD_SECONDS_ENV = "COFFEA_WQ_HOLD_SECONDS"
SLOT_MODULE = "coffea_wq_warm_slot"  # the module a warm slot gives the task script (zygote.py)
# where a task's time went (docs/executor.md, section 10), set by the worker for every task;
# task_clock.py spells the same names
LAUNCHED_ENV = "COFFEA_WQ_LAUNCHED"  # time.time() when the worker launched the task
PHASES_ENV = "COFFEA_WQ_PHASES"  # "0": the task does not time its phases (to measure what timing costs)
INPUTS_ENV = "COFFEA_WQ_INPUTS_S"  # seconds the worker spent preparing its sandbox (inputs)
WORKER_FEATURE_PREFIX = "coffea-wq-worker-"  # + the token: the feature a coffea-wq worker advertises
TASK_SCRIPT = "coffea_wq_task.py"
ENV_RUNNER = "coffea_wq_env_run"
PYTHON_NAMES = ("python3", "python")

# words of each shape: python, script, FN, ITEM, OUT (and the runner and its tarball before them)
_PLAIN_WORDS = 5
_WITH_ENV_WORDS = 7


@dataclass(frozen=True)
class WarmCommand:
    """One warm-task command: which interpreter runs the task script on which three files."""

    python: str  # "python3" (found on the task's PATH) unless an environment tarball provides one
    function: str  # the cloudpickled function's name in the sandbox
    item: str  # the pickled work item
    output: str  # where the task writes its outcome
    env_tarball: str | None = None  # the environment tarball's name in the sandbox, if any

    @property
    def argv(self) -> tuple[str, ...]:
        """The task script and its arguments, as a warm slot runs them."""
        return (TASK_SCRIPT, self.function, self.item, self.output)


def build_warm_command(command: WarmCommand) -> str:
    """The shell command of ``command``: one of the two shapes, each word shell-quoted."""
    words = [command.python, *command.argv]
    if command.env_tarball is not None:
        words = [f"./{ENV_RUNNER}", command.env_tarball, *words]
    return shlex.join(words)


def parse_warm_command(command: str) -> WarmCommand | None:
    """The ``WarmCommand`` that ``command`` is, or None for any other command (it then runs cold)."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    tarball = None
    if len(words) == _WITH_ENV_WORDS and words[0] == f"./{ENV_RUNNER}":
        tarball, words = words[1], words[2:]
    if len(words) != _PLAIN_WORDS or PurePosixPath(words[0]).name not in PYTHON_NAMES or words[1] != TASK_SCRIPT:
        return None
    if any(word.startswith("-") or word == "" for word in words[2:]):
        return None
    python, _script, function, item, output = words
    return WarmCommand(python, function, item, output, tarball)


def warm_environment(preload: Iterable[str]) -> dict[str, str]:
    """The environment variables that mark a task for a warm slot and name the modules to preload."""
    return {WARM_ENV: "1", PRELOAD_ENV: ",".join(preload)}


def worker_feature(token: str) -> str:
    """The Work Queue feature a coffea-wq worker with ``token`` advertises (flush tasks require it)."""
    return WORKER_FEATURE_PREFIX + token


def marked_warm(env: Mapping[str, str]) -> bool:
    """Whether a task's environment asks for a warm slot."""
    return env.get(WARM_ENV) == "1"


def preload_modules(env: Mapping[str, str]) -> tuple[str, ...]:
    """The modules a task's environment asks its warm slot to have imported."""
    return tuple(module for module in env.get(PRELOAD_ENV, "").split(",") if module)
