"""``coffea_wq.Factory``: a worker pool around a run, as CCTools' ``work_queue.Factory``.

    with coffea_wq.Factory("local", manager_name="my-analysis", max_workers=4, cores=2):
        output = runner(fileset, processor_instance=MyProcessor())

The factory cycles in a daemon thread; leaving the ``with`` block removes every worker it
started. Settings can be changed while it runs (``factory.max_workers = 8``); they apply from the
next cycle.
"""

from __future__ import annotations

import logging
import shlex
import socket
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from coffea_wq.factory.config import ConfigError, FactoryConfig, config_field_names
from coffea_wq.factory.loop import FactoryLoop
from coffea_wq.factory.policy import CyclePlan

log = logging.getLogger(__name__)

# CCTools' Python Factory spells some settings differently; both spellings work here.
ALIASES = {"python_package": "python_env", "scratch": "scratch_dir", "password_file": "password",
           "worker_timeout": "timeout"}
# CCTools' factory options (and constructor arguments) with no meaning here: accepted, remembered and
# logged, so that CCTools scripts run unchanged (docs/factory.md).
CCTOOLS_ONLY = frozenset({
    "factory_binary", "log_file", "debug", "debug_file", "debug_file_size", "autosize", "capacity",
    "condor_requirements", "env", "foremen_name", "runos", "wrapper", "wrapper_input", "run_factory_as_manager",
    "amazon_config", "k8s_image", "k8s_worker_image", "mesos_master", "mesos_path", "mesos_preload",
})


class Factory:
    """Keep ``min_workers``..``max_workers`` workers alive for a manager while in a ``with`` block.

    Args:
        batch_type: ``"local"``, ``"slurm"``, ``"condor"`` or ``"sge"``.
        manager_name: the manager's project name (a regular expression), found in the catalog.
        manager_host_port: ``"HOST:PORT"`` of the manager, asked directly (no catalog needed).
        manager: a manager object with a ``port`` (e.g. ``coffea_wq.work_queue.WorkQueue``):
            the factory serves it at ``127.0.0.1:<port>`` for local workers, else at this host's
            name (``socket.getfqdn()``; pass ``manager_host=`` to choose another address).
        config_file: a JSON file of options re-read every cycle (keys as the CLI's long options).
        **settings: any ``FactoryConfig`` field: ``min_workers`` (5, or ``max_workers`` when lower), ``max_workers`` (100),
            ``workers_per_cycle`` (5), ``tasks_per_worker``, ``cores``, ``memory`` (MB), ``disk`` (MB),
            ``gpus``, ``timeout`` (worker idle timeout, 300 s), ``scratch_dir``, ``python_env``
            (alias ``python_package``), ``python``, ``worker_binary``, ``password``, ``catalog``,
            ``extra_options``, ``batch_options``, ``cycle_interval`` (30 s), ``factory_timeout``.

    Raises:
        ConfigError: a setting is invalid (names it), or the scratch directory is unusable.
        TypeError: an unknown setting.

    Example:
        >>> with Factory("local", manager_host_port="127.0.0.1:9123", min_workers=1,
        ...              max_workers=2, cores=1, cycle_interval=5) as factory:  # doctest: +SKIP
        ...     factory.max_workers = 4
    """

    def __init__(self, batch_type: str = "local", manager_name: str | None = None,
                 manager_host_port: str | None = None, manager: Any = None,
                 config_file: str | Path | None = None, **settings: Any) -> None:
        settings = {ALIASES.get(key, key): value for key, value in settings.items()}
        ignored = {key: settings.pop(key) for key in list(settings) if key in CCTOOLS_ONLY}
        object.__setattr__(self, "_ignored", {})
        for key, value in ignored.items():
            self._ignore(key, value)
        unknown = sorted(set(settings) - set(config_field_names()))
        if unknown:
            raise TypeError(f"Factory got unknown setting(s) {', '.join(unknown)}; "
                            f"known: {', '.join(config_field_names())}")
        settings = _normalise(settings)
        settings = {**_manager_settings(batch_type, manager_name, manager_host_port, manager), **settings}
        settings["batch_type"] = batch_type
        object.__setattr__(self, "_loop", FactoryLoop(settings, config_file=Path(config_file) if config_file
                                                      else None, status_reader=_in_process_status(manager)))
        object.__setattr__(self, "_thread", None)

    @classmethod
    def from_options(cls, options: Mapping[str, Any], manager: Any = None) -> Factory:
        """A factory from a plain dict, as the executor's ``factory: {...}`` option gives it.

        Keys may use the JSON/CLI spelling (``max-workers``) or the Python one (``max_workers``);
        ``batch_type`` (alias ``batch-type``) defaults to ``"local"``. With ``manager`` (an object
        with a ``port``), the factory serves that manager directly.

        Example:
            >>> with Factory.from_options({"max-workers": 4, "cores": 2}, manager=queue):  # doctest: +SKIP
            ...     ...
        """
        settings = {str(key).replace("-", "_"): value for key, value in options.items()}
        batch_type = settings.pop("batch_type", "local")
        manager_name = settings.pop("manager_name", None)
        host_port = settings.pop("manager_host_port", None)
        config_file = settings.pop("config_file", None)
        if manager is not None:
            manager_name = host_port = None
        return cls(batch_type, manager_name=manager_name, manager_host_port=host_port, manager=manager,
                   config_file=config_file, **settings)

    # -- settings as attributes, as CCTools' Factory has them ---------------------------------------
    def __getattr__(self, name: str) -> Any:
        name = ALIASES.get(name, name)
        if name in config_field_names():
            return getattr(self._loop.current_config(), name)
        if name in CCTOOLS_ONLY and name in self.__dict__.get("_ignored", {}):
            return self._ignored[name]
        raise AttributeError(f"{type(self).__name__!r} has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        name = ALIASES.get(name, name)
        if name in CCTOOLS_ONLY:
            self._ignore(name, value)
            return
        if name not in config_field_names():
            raise AttributeError(f"{name!r} is not a factory setting; known: {', '.join(config_field_names())}")
        self._loop.update(**_normalise({name: value}))

    def _ignore(self, name: str, value: Any) -> None:
        log.info("factory option %s=%r is CCTools' work_queue_factory's; coffea-wq's factory ignores it",
                 name, value)
        self._ignored[name] = value

    # -- life cycle ---------------------------------------------------------------------------------
    def start(self) -> Factory:
        """Run the first cycle now (so the minimum of workers starts at once), then cycle in a thread."""
        if self._thread is not None:
            return self
        self._loop.run_cycle()
        thread = threading.Thread(target=self._loop.run, kwargs={"wait_first": True},
                                  name="coffea-wq-factory", daemon=True)
        object.__setattr__(self, "_thread", thread)
        thread.start()
        return self

    def stop(self) -> None:
        """Stop cycling and remove every worker this factory started."""
        self._loop.stop()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=60)
        self._loop.shutdown()
        object.__setattr__(self, "_thread", None)

    def __enter__(self) -> Factory:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def last_plan(self) -> CyclePlan | None:
        """The decision of the latest cycle (submitted, needed, to_submit, ...)."""
        return self._loop.last_plan

    @property
    def scratch_dir_path(self) -> Path:
        """The validated scratch directory the jobs start from (their logs are in ``logs/``)."""
        return self._loop.scratch_dir

    def job_ids(self) -> list[str]:
        """The alive jobs this factory submitted."""
        return self._loop.alive_jobs()


def _manager_settings(batch_type: str, manager_name: str | None, host_port: str | None,
                      manager: Any) -> dict[str, Any]:
    if manager is not None:
        # Local workers reach the manager on the loopback; batch jobs on other nodes need the
        # host's name (a ``manager_host`` setting overrides it where that name does not resolve).
        host = "127.0.0.1" if batch_type == "local" else socket.getfqdn()
        name = getattr(manager, "name", None)
        return {"manager_host": host, "manager_port": int(manager.port),
                **({"manager_name": name} if isinstance(name, str) and name else {})}
    if host_port:
        host, sep, port = str(host_port).rpartition(":")
        if not sep or not port.isdigit():
            raise ConfigError(f"manager_host_port must be HOST:PORT, not {host_port!r}")
        return {"manager_host": host.strip("[]") or "127.0.0.1", "manager_port": int(port)}
    return {"manager_name": manager_name} if manager_name else {}


def _in_process_status(manager: Any) -> Callable[[], list[dict]] | None:
    """coffea-wq's manager answers status in-process: no password or TLS stands in the way."""
    records = getattr(manager, "status_records", None)
    if not callable(records):
        return None
    name = getattr(manager, "name", None) or "127.0.0.1"
    return lambda: [{"name": name, "port": int(manager.port), **r} for r in records("queue_status")]


def _normalise(settings: dict[str, Any]) -> dict[str, Any]:
    """Paths as ``Path`` and option strings as tuples, as ``FactoryConfig`` keeps them."""
    out = dict(settings)
    for key in ("scratch_dir", "python_env", "password"):
        if out.get(key) is not None:
            out[key] = Path(out[key]).expanduser()
    if isinstance(out.get("extra_options"), str):
        out["extra_options"] = tuple(shlex.split(out["extra_options"]))
    elif out.get("extra_options") is not None:
        out["extra_options"] = tuple(out["extra_options"])
    return out


__all__ = ["Factory", "FactoryConfig"]
