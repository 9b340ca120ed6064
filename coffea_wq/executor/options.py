"""The options of ``WorkQueueExecutor``: their validation and what they resolve to.

``validate_options`` runs when an executor is made (``__post_init__``) and raises
``ExecutorConfigError`` naming the option and what it accepts; the ``resolve*`` functions turn
options into what a call uses (local worker count, monitor mode, proxy, environment tarball,
per-category resources). ``ExecutorOptions`` holds the fields; ``core.WorkQueueExecutor`` is
that dataclass with coffea's ``ExecutorBase``, and documents every option.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coffea_wq.executor.errors import ExecutorConfigError
from coffea_wq.executor.tasks.culprits import check_gzip_header
from coffea_wq.executor.tasks.dynamic_chunks import DynamicChunksizeError, parse_targets
from coffea_wq.executor.tasks.staging import DEFAULT_PRELOAD
from coffea_wq.executor.workers.factory_pool import validate_factory_options
from coffea_wq.resources.categories import COFFEA_CATEGORIES

# "auto" is max-throughput here (coffea 0.7 made it an alias of max-seen; docs/resources.md)
RESOURCE_MODES = {"fixed": "fixed", "max-seen": "max", "max": "max", "auto": "max-throughput",
                  "max-throughput": "max-throughput", "min-waste": "min-waste"}
RESOURCE_NAMES = ("cores", "memory", "disk", "gpus")
MONITOR_MODES = {"off": "off", "measure": "measure", "watchdog": "watchdog", False: "off", True: "watchdog",
                 None: "off"}

# options kept for coffea 0.7 scripts whose feature is not built yet: accepted, warned about, ignored
NOT_YET_IMPLEMENTED = {
    "tasks_accum_log": None,
    "wrapper": None,
    "bar_format": None,
}



@dataclass
class ExecutorOptions:
    """The options of ``WorkQueueExecutor`` (documented there), with their defaults."""

    compression: int | None = 9
    retries: int = 2
    manager_name: str | None = None
    master_name: str | None = None
    port: int | list[int] | tuple[int, int] | None = None
    local_workers: int | None = None
    local_worker_kind: str = "auto"
    fork_local_workers: bool = True
    factory: dict[str, Any] | None = None
    filepath: str = "."
    events_total: int | None = None
    x509_proxy: str | bool | None = None
    verbose: bool = False
    print_stdout: bool = False
    status_display_interval: int | None = 10
    debug_log: str | None = None
    stats_log: str | None = None
    transactions_log: str | None = None
    tasks_accum_log: str | None = None
    password_file: str | None = None
    manager_host: str | None = None
    ssl: bool | tuple[str, str] = False
    allowed_result_modules: list[str] = field(default_factory=list)
    environment_file: str | None = None
    extra_input_files: list[str] = field(default_factory=list)
    ship_input_files: bool = True
    wrapper: str | None = None
    resource_monitor: str | bool | None = "off"
    resources_mode: str = "fixed"
    split_on_exhaustion: bool = True
    fast_terminate_workers: float | None = None
    cores: int | None = None
    memory: int | None = None
    disk: int | None = None
    gpus: int | None = None
    category_resources: dict[str, dict[str, float]] | None = None
    treereduction: int = 20
    chunksize: int = 100000
    dynamic_chunksize: dict | None = None
    checkpoint_dir: str | os.PathLike | None = None
    custom_init: Callable | None = None
    bar_format: str | None = None
    chunks_accum_in_mem: int | None = 2
    chunks_per_accum: int | None = None
    accum_interval: float | None = None
    reduction: bool = True
    warm_python: bool = True
    preload_modules: tuple[str, ...] = DEFAULT_PRELOAD
    dashboard: bool | int = False
    dashboard_host: str = "127.0.0.1"
    preprocessing_batch: int | None = None
    staging_quota: float = 0.5


def validate_options(ex: ExecutorOptions) -> None:
    """Check option values; the error names the option and what is allowed."""
    if ex.resources_mode not in RESOURCE_MODES:
        raise ExecutorConfigError(f"resources_mode={ex.resources_mode!r}: expected one of {sorted(RESOURCE_MODES)}")
    if ex.resource_monitor not in MONITOR_MODES:
        raise ExecutorConfigError(f"resource_monitor={ex.resource_monitor!r}: expected off, measure or watchdog")
    if not isinstance(ex.retries, int) or ex.retries < 0:
        raise ExecutorConfigError(f"retries={ex.retries!r}: expected an integer >= 0")
    if ex.local_workers is not None and (not isinstance(ex.local_workers, int) or ex.local_workers < 0):
        raise ExecutorConfigError(f"local_workers={ex.local_workers!r}: expected an integer >= 0")
    if not isinstance(ex.fork_local_workers, bool):
        raise ExecutorConfigError(f"fork_local_workers={ex.fork_local_workers!r}: expected True or False")
    if ex.local_worker_kind not in ("auto", "coffea-wq", "cctools"):
        raise ExecutorConfigError(f"local_worker_kind={ex.local_worker_kind!r}: expected auto, coffea-wq or cctools")
    _validate_category_resources(ex.category_resources)
    validate_factory_options(ex.factory)
    for name in RESOURCE_NAMES:
        value = getattr(ex, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            raise ExecutorConfigError(f"{name}={value!r}: expected a positive number (MB for memory and disk)")
    if ex.dynamic_chunksize is not None:
        try:
            parse_targets(ex.dynamic_chunksize)
        except DynamicChunksizeError as exc:
            raise ExecutorConfigError(str(exc)) from None
    _validate_reduction(ex)
    quota = ex.staging_quota
    if isinstance(quota, bool) or not isinstance(quota, (int, float)) or quota < 0:
        raise ExecutorConfigError(f"staging_quota={quota!r}: expected a fraction of the free disk (0 to 1), "
                                  "bytes (> 1), or 0 for none")
    batch = ex.preprocessing_batch
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise ExecutorConfigError(f"preprocessing_batch={batch!r}: expected an integer >= 1 or None")
    if ex.treereduction < 2:
        raise ExecutorConfigError(f"treereduction={ex.treereduction!r}: expected an integer >= 2")
    _validate_port(ex.port)
    _validate_dashboard(ex.dashboard, ex.dashboard_host)
    for path in ex.extra_input_files:
        if not Path(path).is_file():
            raise ExecutorConfigError(f"extra_input_files: {str(path)!r} is not a file")
    if ex.environment_file is not None and not Path(ex.environment_file).is_file():
        raise ExecutorConfigError(f"environment_file: {ex.environment_file!r} is not a file")
    if ex.checkpoint_dir is not None and (not isinstance(ex.checkpoint_dir, (str, os.PathLike))
                                          or Path(ex.checkpoint_dir).exists() and not Path(ex.checkpoint_dir).is_dir()):
        raise ExecutorConfigError(f"checkpoint_dir={ex.checkpoint_dir!r}: expected a folder (made if missing)")
    if ex.password_file is not None and not Path(ex.password_file).is_file():
        raise ExecutorConfigError(f"password_file: {ex.password_file!r} is not a file")
    _validate_trust_options(ex)
    for name, default in NOT_YET_IMPLEMENTED.items():
        if getattr(ex, name) not in (default, None, False):
            warnings.warn(f"WorkQueueExecutor option {name}={getattr(ex, name)!r} is accepted for coffea 0.7 "
                          "compatibility but not implemented yet; it has no effect", UserWarning, stacklevel=4)


def _validate_reduction(ex: ExecutorOptions) -> None:
    if not isinstance(ex.reduction, bool):
        raise ExecutorConfigError(f"reduction={ex.reduction!r}: expected True or False")
    for name in ("chunks_per_accum", "chunks_accum_in_mem"):
        value = getattr(ex, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ExecutorConfigError(f"{name}={value!r}: expected an integer >= 1 or None")
    interval = ex.accum_interval
    if interval is not None and (isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0):
        raise ExecutorConfigError(f"accum_interval={interval!r}: expected a number of seconds > 0 or None")


# with checkpoint_dir and no bound given, partials come back (and are stored) at least this often, so
# that a killed run loses about this much of each worker's work (docs/reduction.md, section 5)
CHECKPOINT_ACCUM_INTERVAL_S = 60.0


def reduce_settings(ex: ExecutorOptions) -> dict[str, Any]:
    """When a slot hands its partial back (docs/reduction.md): every N chunks, after T seconds.

    Example:
        >>> from coffea_wq.executor import WorkQueueExecutor
        >>> reduce_settings(WorkQueueExecutor(chunks_per_accum=10))
        {'every': 10, 'seconds': None}
        >>> reduce_settings(WorkQueueExecutor(checkpoint_dir="ckpt"))
        {'every': None, 'seconds': 60.0}
    """
    seconds = None if ex.accum_interval is None else float(ex.accum_interval)
    if ex.checkpoint_dir is not None and seconds is None and ex.chunks_per_accum is None:
        seconds = CHECKPOINT_ACCUM_INTERVAL_S
    return {"every": ex.chunks_per_accum, "seconds": seconds}


def _validate_trust_options(ex: ExecutorOptions) -> None:
    if ex.manager_host is not None and not isinstance(ex.manager_host, str):
        raise ExecutorConfigError(f"manager_host={ex.manager_host!r}: expected an address such as '0.0.0.0' "
                                  "or '127.0.0.1'")
    if not isinstance(ex.ssl, bool):
        if not (isinstance(ex.ssl, (tuple, list)) and len(ex.ssl) == 2):
            raise ExecutorConfigError(f"ssl={ex.ssl!r}: expected True, False or (key_file, cert_file)")
        for path in ex.ssl:
            if not Path(path).is_file():
                raise ExecutorConfigError(f"ssl: {str(path)!r} is not a file")
    modules = ex.allowed_result_modules
    if isinstance(modules, str) or not all(isinstance(m, str) and m.strip(". :") for m in modules):
        raise ExecutorConfigError(f"allowed_result_modules={modules!r}: expected a list of module names "
                                  "('mypkg' or 'mypkg.mod:name')")


def frozen_ssl(option: bool | tuple[str, str] | list[str]) -> bool | tuple[str, str]:
    if isinstance(option, bool) or not option:
        return bool(option)
    return (str(Path(option[0]).resolve()), str(Path(option[1]).resolve()))


def _validate_port(port: Any) -> None:
    if port is None or (isinstance(port, int) and not isinstance(port, bool) and 0 <= port < 65536):
        return
    if isinstance(port, (list, tuple)) and len(port) == 2 and all(isinstance(p, int) for p in port):
        if 0 < port[0] <= port[1] < 65536:
            return
    raise ExecutorConfigError(f"port={port!r}: expected a port number or a [low, high] range")


def _validate_dashboard(option: Any, host: Any) -> None:
    if option is not None and option is not False and option is not True and not (
            isinstance(option, int) and not isinstance(option, bool) and 0 <= option < 65536):
        raise ExecutorConfigError(f"dashboard={option!r}: expected True (any free port), a port number or False")
    if not isinstance(host, str) or not host:
        raise ExecutorConfigError(f"dashboard_host={host!r}: expected an address such as '127.0.0.1' or '0.0.0.0'")


def _validate_category_resources(option: Any) -> None:
    if option is None:
        return
    if not isinstance(option, dict):
        raise ExecutorConfigError(f"category_resources={option!r}: expected a dict such as "
                                  "{'processing': {'memory': 2000}}")
    for category, limits in option.items():
        if category not in COFFEA_CATEGORIES:
            raise ExecutorConfigError(f"category_resources: unknown category {category!r}; expected one of "
                                      f"{list(COFFEA_CATEGORIES)}")
        if not isinstance(limits, dict):
            raise ExecutorConfigError(f"category_resources[{category!r}]={limits!r}: expected a dict of "
                                      f"{list(RESOURCE_NAMES)}")
        for name, value in limits.items():
            if name not in RESOURCE_NAMES:
                raise ExecutorConfigError(f"category_resources[{category!r}]: unknown resource {name!r}; "
                                          f"expected one of {list(RESOURCE_NAMES)}")
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
                raise ExecutorConfigError(f"category_resources[{category!r}][{name!r}]={value!r}: expected a "
                                          "positive number or None")


def category_limits(ex: ExecutorOptions, category: str) -> dict[str, float]:
    """The resources of ``category``'s tasks: the executor's cores/memory/disk/gpus, then its
    ``category_resources`` entry (a None there removes the executor-wide value).

    Example:
        >>> from coffea_wq.executor import WorkQueueExecutor
        >>> ex = WorkQueueExecutor(memory=2000, category_resources={"preprocessing": {"memory": 500}})
        >>> category_limits(ex, "preprocessing"), category_limits(ex, "processing")
        ({'memory': 500}, {'memory': 2000})
    """
    limits: dict[str, Any] = {name: getattr(ex, name) for name in RESOURCE_NAMES}
    limits.update((ex.category_resources or {}).get(category, {}))
    return {name: value for name, value in limits.items() if value is not None}


def resolved_local_workers(ex: ExecutorOptions) -> int:
    if ex.local_workers is not None:
        return ex.local_workers
    # a name or a factory means workers come from elsewhere
    return 0 if ex.manager_name or ex.factory is not None else (os.cpu_count() or 1)


def resolved_monitor(ex: ExecutorOptions) -> str:
    monitor = MONITOR_MODES[ex.resource_monitor]
    if RESOURCE_MODES[ex.resources_mode] != "fixed":
        return "watchdog"  # automatic allocations learn from measurements and must be enforced
    return monitor


def resolve_x509_proxy(option: str | bool | None) -> Path | None:
    if option is False:
        return None
    if option:
        path = Path(option)
        if not path.is_file():
            raise ExecutorConfigError(f"x509_proxy: {str(option)!r} is not a file")
        return path.resolve()
    candidate = os.environ.get("X509_USER_PROXY") or f"/tmp/x509up_u{os.getuid()}"
    return Path(candidate).resolve() if Path(candidate).is_file() else None


def resolve_environment(environment_file: str | None) -> tuple[Path | None, Path | None, str | None]:
    """The environment tarball, the ``coffea_wq_env_run`` script that unpacks it on workers, and the
    tarball's name on workers: ``envtools.unpack_key(tarball) + ".tar.gz"`` (name, size and gzip
    trailer), so a tarball rebuilt under the same name (an ``_HEAD`` one) is cached anew.

    Example:
        >>> resolve_environment(None)
        (None, None, None)
    """
    if environment_file is None:
        return None, None, None
    try:
        import envtools

        runner = Path(envtools.runner_script_path())
        tarball = Path(environment_file).resolve()
        remote = f"{envtools.unpack_key(tarball)}.tar.gz"
    except (ImportError, AttributeError) as exc:
        raise ExecutorConfigError(f"environment_file={environment_file!r} needs envtools.runner_script_path(), "
                                  f"which is not available: {exc}") from exc
    except OSError as exc:
        raise ExecutorConfigError(f"environment_file={environment_file!r} cannot be read: {exc}") from exc
    problem = check_gzip_header(tarball)
    if problem is not None:  # at once, rather than when every task has failed on it (culprits.py)
        raise ExecutorConfigError(f"environment_file={environment_file!r} {problem}")
    return tarball, runner, remote
