"""``map``, ``pair`` and ``tree_reduce`` of CCTools 8's ``WorkQueue``: Python functions over
sequences, a chunk of the sequence per ``PythonTask``.

Each call tags its tasks with a tag of its own, so other tasks in the queue stay for ``wait``.
The per-chunk loops are made inside a function so that dill/cloudpickle send them by value: the
worker's ``python3`` needs only the pickler, not coffea-wq. See docs/manager.md.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from coffea_wq.work_queue.python_results import ResultSettings
from coffea_wq.work_queue.python_task import PythonTask

RESULT_WAIT_S = 1.0


def _chunk_functions() -> tuple[Callable, Callable]:
    # defined here (not at module level) so the pickler ships their code with the task
    def apply_each(fn, items):
        return [fn(item) for item in items]

    def apply_reduce(fn, items):
        return fn(list(items))

    return apply_each, apply_reduce


def chunks(items: Sequence, size: int) -> list[list]:
    """``items`` cut into lists of ``size`` (the last one shorter).

    Example::

        >>> chunks([1, 2, 3, 4, 5], 2)
        [[1, 2], [3, 4], [5]]
    """
    if size < 1:
        raise ValueError(f"chunksize must be >= 1, not {size}")
    items = list(items)
    return [items[i:i + size] for i in range(0, len(items), size)]


class FunctionalMethods:
    """Methods of ``WorkQueue`` that run Python functions over sequences, and say what the results of
    its ``PythonTask``s may contain (mixed into it)."""

    _python_results: ResultSettings

    def specify_allowed_result_modules(self, modules: str | Iterable[str]) -> int:
        """Let the results of this queue's PythonTasks (and ``map``/``pair``/``tree_reduce``) also contain
        classes of ``modules`` (coffea-wq; not in CCTools, whose results can run any code here).

        Each entry is a package (``"mypkg"``: its classes and its submodules') or one global
        (``"mypkg.mod:make_thing"``, of any kind). Example: ``q.specify_allowed_result_modules(["mypkg"])``.
        """
        self._python_results.allow(modules)
        return 1

    def specify_trusted_results(self, trusted: bool = True) -> int:
        """Read PythonTask results with dill/cloudpickle's own ``load``, as CCTools does (coffea-wq).

        Only for a pool of workers you trust completely: such a result can run any code in this
        process. A task's own ``specify_trusted_results(False)`` still uses the allow-list.
        """
        self._python_results.trusted = bool(trusted)
        return 1

    def map(self, fn: Callable, seq: Sequence, chunksize: int = 1) -> list:
        """``[fn(x) for x in seq]``, computed on workers, ``chunksize`` items per task, in order.

        Example: ``q.map(math.sqrt, range(100), chunksize=10)``.
        """
        apply_each, _ = _chunk_functions()
        results = self._run_chunks([(apply_each, fn, chunk) for chunk in chunks(seq, chunksize)])
        return [value for chunk in results for value in chunk]

    def pair(self, fn: Callable, seq1: Sequence, seq2: Sequence, chunksize: int = 1, env: str | None = None) -> list:
        """``[fn((a, b)) for a, b in itertools.product(seq1, seq2)]`` on workers, in order; ``env``: a
        packed environment for the tasks (``PythonTask.specify_environment``)."""
        apply_each, _ = _chunk_functions()
        pairs = list(itertools.product(seq1, seq2))
        results = self._run_chunks([(apply_each, fn, chunk) for chunk in chunks(pairs, chunksize)], env)
        return [value for chunk in results for value in chunk]

    def tree_reduce(self, fn: Callable, seq: Sequence, chunksize: int = 2) -> Any:
        """Reduce ``seq`` to one value: ``fn`` takes a list of up to ``chunksize`` values and returns
        one; levels of tasks run until one value is left. ``fn`` must be associative.

        Example: ``q.tree_reduce(sum, range(1000), chunksize=10)``.
        """
        if chunksize < 2:
            raise ValueError(f"tree_reduce needs chunksize >= 2, not {chunksize}")
        _, apply_reduce = _chunk_functions()
        level = list(seq)
        if not level:
            raise ValueError("tree_reduce of an empty sequence")
        while len(level) > 1:
            level = self._run_chunks([(apply_reduce, fn, chunk) for chunk in chunks(level, chunksize)])
        return level[0]

    def remote_map(self, *args: Any, **kwargs: Any) -> list:
        raise NotImplementedError("remote_map needs CCTools 8's worker coprocesses, which coffea-wq does not "
                                  "have; map() runs the function as PythonTasks")

    def remote_pair(self, *args: Any, **kwargs: Any) -> list:
        raise NotImplementedError("remote_pair needs CCTools 8's worker coprocesses; use pair()")

    def remote_tree_reduce(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("remote_tree_reduce needs CCTools 8's worker coprocesses; use tree_reduce()")

    def _run_chunks(self, calls: list[tuple], env: str | None = None) -> list:
        """Submit one PythonTask per ``(function, *args)`` and return their outputs in order."""
        tag = f"coffea-wq-functional-{uuid.uuid4().hex}"
        order: dict[int, int] = {}
        for index, (function, *args) in enumerate(calls):
            task = PythonTask(function, *args)
            task.specify_tag(tag)
            if env:
                task.specify_environment(env)
            order[self.submit(task)] = index
        results: list[Any] = [None] * len(calls)
        try:
            while order:
                task = self.wait_for_tag(tag, RESULT_WAIT_S)
                if task is None:
                    continue
                # raises the function's exception, or PythonTaskNoResult (PythonTaskRefusedResult too)
                results[order.pop(task.id)] = task.output
        except BaseException:
            for task_id in order:  # the call failed: its other tasks are of no use
                self.cancel_by_taskid(task_id)
            raise
        return results
