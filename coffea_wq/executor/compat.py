"""coffea 0.7's entry point on today's Runner: ``run_uproot_job(..., executor_args={...})``.

``executor_args`` is the flat dict coffea 0.7 and TopEFT scripts pass: executor options and
Runner options mixed, with dashes or underscores (``"master-name"``, ``"environment-file"``).
Runner options go to ``coffea.processor.Runner``, everything else to the executor. The caller's
dict is never modified, and an unknown key fails with the closest valid one named.
"""

from __future__ import annotations

import dataclasses
import difflib
import warnings
from collections.abc import Mapping
from typing import Any

from coffea import processor
from coffea.processor.executor import ExecutorBase

from coffea_wq.executor.core import WorkQueueExecutor
from coffea_wq.executor.errors import ExecutorConfigError

#: ``processor.work_queue_executor`` in coffea >= 0.7.8 was the executor class itself
work_queue_executor = WorkQueueExecutor

#: executor_args keys that coffea 0.7 handed to the Runner rather than to the executor
RUNNER_KEYS = frozenset({
    "schema", "skipbadfiles", "xrootdtimeout", "align_clusters", "savemetrics", "processor_compression",
    "use_result_type", "cachestrategy", "checkpointer", "metadata_cache",
})
#: keys coffea 0.7 accepted whose feature is gone from today's coffea: accepted with a warning
REMOVED_KEYS = {
    "mmap": "uproot memory-maps local files by itself in today's coffea",
    "use_dataframes": "LazyDataFrame was removed from coffea; processors receive NanoEvents",
    "nano": "use schema=NanoAODSchema",
    "flatten": "flattening was removed from coffea",
    "tailtimeout": "was a FuturesExecutor option; Work Queue tasks have no tail timeout",
    "worker_affinity": "was a DaskExecutor option",
}


#: other spellings of executor options (``host``/``bind``: where the manager listens)
KEY_ALIASES = {"host": "manager_host", "bind": "manager_host"}


def normalize_key(key: str) -> str:
    """``"master-name"`` -> ``"master_name"`` (coffea 0.7.5 used dashes); ``"bind"`` -> ``"manager_host"``."""
    name = key.strip().replace("-", "_")
    return KEY_ALIASES.get(name, name)


def split_executor_args(executor_args: Mapping[str, Any] | None, executor_class: type = WorkQueueExecutor
                        ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Sort a coffea 0.7 ``executor_args`` dict into ``(executor options, Runner options)``.

    The input is not modified. Raises ``ExecutorConfigError`` naming an unknown key and the
    closest valid one.

    Example:
        >>> split_executor_args({"master-name": "me", "schema": None, "cores": 1})
        ({'master_name': 'me', 'cores': 1}, {'schema': None})
    """
    executor_fields = {f.name for f in dataclasses.fields(executor_class) if f.init}
    exe: dict[str, Any] = {}
    runner: dict[str, Any] = {}
    for key, value in dict(executor_args or {}).items():
        if not isinstance(key, str):
            raise ExecutorConfigError(f"executor_args key {key!r} is not a string")
        name = normalize_key(key)
        if name in exe or name in runner:
            raise ExecutorConfigError(f"executor_args gives {name!r} twice (as {key!r} and another spelling)")
        if name in RUNNER_KEYS:
            runner[name] = value
        elif name in executor_fields:
            exe[name] = value
        elif name in REMOVED_KEYS:
            warnings.warn(f"executor_args[{key!r}] has no effect: {REMOVED_KEYS[name]}", UserWarning, stacklevel=3)
        else:
            valid = sorted(executor_fields | RUNNER_KEYS)
            close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(valid)}"
            raise ExecutorConfigError(f"unknown executor_args key {key!r} for {executor_class.__name__}{hint}")
    return exe, runner


def _build_executor(executor: Any, options: dict[str, Any]) -> ExecutorBase:
    if isinstance(executor, ExecutorBase):
        return executor.copy(**options)
    if isinstance(executor, type) and issubclass(executor, ExecutorBase):
        return executor(**options)
    raise ExecutorConfigError(f"executor={executor!r}: expected an ExecutorBase subclass such as "
                              "coffea_wq.work_queue_executor, or an instance of one")


def run_uproot_job(fileset: Any, treename: str | None, processor_instance: Any,
                   executor: Any = work_queue_executor, executor_args: Mapping[str, Any] | None = None,
                   pre_executor: Any = None, pre_args: Mapping[str, Any] | None = None,
                   chunksize: int = 100000, maxchunks: int | None = None,
                   metadata_cache: Any = None, dynamic_chunksize: dict | None = None,
                   format: str = "root") -> Any:
    """Run ``processor_instance`` over ``fileset`` the coffea 0.7 way, on today's ``Runner``.

    Arguments: ``fileset`` ({dataset: [files]} or {dataset: {"files": ..., "treename": ...}}),
    ``treename``, ``processor_instance``, ``executor`` (an executor class or instance; default
    coffea-wq's), ``executor_args`` (executor and Runner options in one dict, dashes or underscores),
    ``pre_executor``/``pre_args`` (the same for preprocessing; default: the executor and its
    arguments), ``chunksize``, ``maxchunks``, ``metadata_cache``, ``dynamic_chunksize`` (targets
    for the executor's dynamic chunk sizes), ``format`` ("root" or "parquet").

    Returns what the Runner returns: the output, or ``(output, metrics)`` with ``savemetrics``.

    Example:
        >>> out = run_uproot_job({"ttbar": ["nano.root"]}, "Events", MyProcessor(),
        ...                      executor=coffea_wq.work_queue_executor,
        ...                      executor_args={"schema": NanoAODSchema, "master-name": "me-coffea",
        ...                                     "port": [9123, 9130], "local-workers": 2},
        ...                      chunksize=100_000)                                   # doctest: +SKIP
    """
    exe_options, runner_options = split_executor_args(executor_args, _executor_class(executor))
    if dynamic_chunksize is not None:
        exe_options["dynamic_chunksize"] = dynamic_chunksize
    if "schema" in runner_options and runner_options["schema"] is None:
        raise ExecutorConfigError("executor_args['schema'] is None: coffea 0.7's LazyDataFrame was removed; "
                                  "pass a NanoEvents schema such as coffea.nanoevents.NanoAODSchema")
    if "metadata_cache" in runner_options and metadata_cache is None:
        metadata_cache = runner_options.pop("metadata_cache")
    runner_options.pop("metadata_cache", None)
    main_executor = _build_executor(executor, exe_options)
    pre = None
    if pre_executor is not None or pre_args is not None:
        pre_options, _ = split_executor_args(pre_args if pre_args is not None else executor_args,
                                             _executor_class(pre_executor or executor))
        pre = _build_executor(pre_executor or executor, pre_options)
    if metadata_cache is not None:
        runner_options["metadata_cache"] = metadata_cache
    runner = processor.Runner(executor=main_executor, pre_executor=pre, chunksize=chunksize,
                              maxchunks=maxchunks, format=format, **runner_options)
    return runner(fileset, processor_instance, treename=treename)


def _executor_class(executor: Any) -> type:
    return executor if isinstance(executor, type) else type(executor)
