"""The factory's settings: one immutable record, built from options and re-read from a JSON file.

Rules of this module:
- ``FactoryConfig`` is plain data; every change makes a new one (``dataclasses.replace``), so the
  loop can hand a consistent snapshot to a cycle while the user edits the JSON file or sets
  attributes on ``coffea_wq.Factory`` from another thread.
- The JSON file uses the command-line spelling of each option (``max-workers``, ``cores``, ...),
  as CCTools' ``work_queue_factory -C`` does. Its values override the command line; a key removed
  from the file falls back to the command-line value.
- A broken file (bad JSON, unknown key, wrong type, min > max) raises ``ConfigError`` naming the
  file and the key; ``ConfigFile`` reports it once and keeps the last good values.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

BATCH_TYPES = ("local", "slurm", "condor", "sge")
DEFAULT_MIN_WORKERS = 5


class ConfigError(ValueError):
    """A setting of the factory is invalid; the message names the culprit (file, key, value)."""


def default_scratch_dir() -> Path:
    """``/tmp/coffea-wq-factory-<uid>``, as CCTools' factory defaults to ``/tmp/wq-factory-<uid>``."""
    return Path(os.environ.get("TMPDIR", "/tmp")) / f"coffea-wq-factory-{os.getuid()}"


@dataclass(frozen=True)
class FactoryConfig:
    """Everything one factory cycle needs to know.

    Worker counts are per factory; ``cores``, ``memory`` (MB), ``disk`` (MB) and ``gpus`` are per
    worker (``None``: let the worker measure its machine). ``timeout`` is the workers' idle timeout
    in seconds. ``tasks_per_worker`` ``None`` means one task per core, as in CCTools.

    Example:
        >>> FactoryConfig(batch_type="local", manager_name="my-analysis", max_workers=40).max_workers
        40
    """

    batch_type: str = "local"
    manager_name: str | None = None
    manager_host: str | None = None
    manager_port: int | None = None
    catalog: str | None = None
    min_workers: int = DEFAULT_MIN_WORKERS
    max_workers: int = 100
    workers_per_cycle: int = 5
    tasks_per_worker: float | None = None
    cores: float | None = None
    memory: int | None = None
    disk: int | None = None
    gpus: int | None = None
    timeout: int = 300
    scratch_dir: Path = field(default_factory=default_scratch_dir)
    python_env: Path | None = None
    python: str = sys.executable
    worker_binary: str | None = None
    password: Path | None = None
    extra_options: tuple[str, ...] = ()
    batch_options: str = ""
    cycle_interval: float = 30.0
    factory_timeout: float | None = None

    def __post_init__(self) -> None:
        validate(self)

    @property
    def effective_tasks_per_worker(self) -> float:
        """Tasks one worker is expected to run at once: the option, else one per core, else 1."""
        if self.tasks_per_worker and self.tasks_per_worker > 0:
            return self.tasks_per_worker
        if self.cores and self.cores > 0:
            return self.cores
        return 1.0

    def describe(self) -> str:
        """``key: value`` lines, as CCTools prints after loading a configuration."""
        lines = [f"manager-name: {self.manager_name}" if self.manager_name else
                 f"manager: {self.manager_host}:{self.manager_port}"]
        lines += [
            f"max-workers: {self.max_workers}",
            f"min-workers: {self.min_workers}",
            f"workers-per-cycle: {self.workers_per_cycle}",
            f"tasks-per-worker: {self.effective_tasks_per_worker:g}",
            f"timeout: {self.timeout} s",
        ]
        for name, unit in (("cores", ""), ("memory", " MB"), ("disk", " MB"), ("gpus", "")):
            value = getattr(self, name)
            if value is not None:
                lines.append(f"{name}: {float(value):.0f}{unit}" if float(value).is_integer()
                             else f"{name}: {value}{unit}")
        return "\n".join(lines)


def validate(config: FactoryConfig) -> None:
    """Raise ``ConfigError`` for settings no cycle could work with."""
    if config.batch_type not in BATCH_TYPES:
        raise ConfigError(f"batch type {config.batch_type!r} is not one of {', '.join(BATCH_TYPES)}")
    has_address = config.manager_host is not None and config.manager_port is not None
    if not config.manager_name and not has_address:
        raise ConfigError("no manager: give a manager name (-M NAME) or a manager HOST PORT")
    if config.manager_name:
        try:
            re.compile(config.manager_name)
        except re.error as err:
            raise ConfigError(f"manager name {config.manager_name!r} is not a valid regular expression: {err}") from None
    if config.min_workers < 0 or config.max_workers < 0:
        raise ConfigError(f"min-workers ({config.min_workers}) and max-workers ({config.max_workers}) must be >= 0")
    if config.min_workers > config.max_workers:
        raise ConfigError(f"min-workers ({config.min_workers}) is greater than max-workers ({config.max_workers})")
    if config.workers_per_cycle < 0:
        raise ConfigError(f"workers-per-cycle ({config.workers_per_cycle}) must be >= 0 (0: no limit)")
    for name in ("cores", "memory", "disk", "gpus", "tasks_per_worker"):
        value = getattr(config, name)
        if value is not None and value < 0:
            raise ConfigError(f"{name.replace('_', '-')} ({value}) must be >= 0")
    if config.timeout <= 0:
        raise ConfigError(f"timeout ({config.timeout}) must be a positive number of seconds")
    if config.cycle_interval <= 0:
        raise ConfigError(f"cycle-interval ({config.cycle_interval}) must be a positive number of seconds")


# JSON key -> (field name, accepted kind). Kinds: "int", "number", "str", "path", "args".
JSON_KEYS: dict[str, tuple[str, str]] = {
    "manager-name": ("manager_name", "str"),
    "master-name": ("manager_name", "str"),  # CCTools' old spelling
    "catalog": ("catalog", "str"),
    "min-workers": ("min_workers", "int"),
    "max-workers": ("max_workers", "int"),
    "workers-per-cycle": ("workers_per_cycle", "int"),
    "tasks-per-worker": ("tasks_per_worker", "number"),
    "cores": ("cores", "number"),
    "memory": ("memory", "int"),
    "disk": ("disk", "int"),
    "gpus": ("gpus", "int"),
    "timeout": ("timeout", "int"),
    "scratch-dir": ("scratch_dir", "path"),
    "python-env": ("python_env", "path"),
    "python": ("python", "str"),
    "worker-binary": ("worker_binary", "str"),
    "password": ("password", "path"),
    "worker-extra-options": ("extra_options", "args"),
    "extra-options": ("extra_options", "args"),
    "batch-options": ("batch_options", "str"),
    "cycle-interval": ("cycle_interval", "number"),
    "factory-timeout": ("factory_timeout", "number"),
}


def _convert(source: str, key: str, kind: str, value: Any) -> Any:
    """One JSON value in the type of its field; ``ConfigError`` naming ``source`` and ``key`` otherwise."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "int" and is_number and float(value).is_integer():
        return int(value)
    if kind == "number" and is_number:
        return value
    if kind in ("str", "path", "args") and isinstance(value, str) and value:
        if kind == "path":
            return Path(value).expanduser()
        return tuple(shlex.split(value)) if kind == "args" else value
    if kind == "args" and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    wanted = {"int": "an integer", "number": "a number", "str": "a non-empty string",
              "path": "a path string", "args": "a string or a list of strings"}[kind]
    raise ConfigError(f"{source}: key {key!r} must be {wanted}, not {json.dumps(value)}")


def overrides_from_json(text: str, source: str) -> dict[str, Any]:
    """Field overrides from the text of a JSON config file.

    Example:
        >>> overrides_from_json('{"max-workers": 3, "cores": 2}', "fac.json")
        {'max_workers': 3, 'cores': 2}
    """
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{source}: not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})") from None
    if not isinstance(document, dict):
        raise ConfigError(f"{source}: the configuration must be a JSON object, not {type(document).__name__}")
    overrides: dict[str, Any] = {}
    for key, value in document.items():
        if key not in JSON_KEYS:
            known = ", ".join(sorted(JSON_KEYS))
            raise ConfigError(f"{source}: unknown key {key!r} (known keys: {known})")
        name, kind = JSON_KEYS[key]
        overrides[name] = None if value is None else _convert(source, key, kind, value)
    return overrides


def settings_of(config: FactoryConfig) -> dict[str, Any]:
    """The keyword arguments that rebuild ``config`` (a shallow copy of its fields)."""
    return {f.name: getattr(config, f.name) for f in fields(config)}


def build_config(settings: dict[str, Any]) -> FactoryConfig:
    """The config of explicitly given ``settings``, the others at their defaults.

    One default depends on another: without an explicit ``min_workers``, a ``max_workers`` below
    5 lowers the minimum to it (``max_workers=2`` means "up to two workers", not an error).

    Example:
        >>> build_config({"manager_name": "x", "max_workers": 2}).min_workers
        2
    """
    settings = dict(settings)
    if settings.get("min_workers") is None:
        settings.pop("min_workers", None)
        if isinstance(settings.get("max_workers"), int):
            settings["min_workers"] = min(DEFAULT_MIN_WORKERS, max(0, settings["max_workers"]))
    return FactoryConfig(**settings)


def apply_overrides(base: dict[str, Any], overrides: dict[str, Any], source: str) -> FactoryConfig:
    """The config of ``base`` settings with ``overrides``; one that does not validate names ``source``."""
    try:
        return build_config({**base, **overrides})
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None


class ConfigFile:
    """A JSON config file re-read every cycle; a broken edit is reported once and the last good kept.

    Example:
        >>> watcher = ConfigFile(Path("fac.json"), base={"batch_type": "local"})  # doctest: +SKIP
        >>> config = watcher.current()  # doctest: +SKIP
    """

    def __init__(self, path: Path, base: dict[str, Any]) -> None:
        self.path = Path(path)
        self.base = dict(base)
        self._last_good: FactoryConfig | None = None
        self._last_stamp: tuple[float, int] | None = None
        self.last_error: str | None = None

    def load_first(self) -> FactoryConfig:
        """The first read, at start-up: a broken file is fatal here (there is nothing good to keep)."""
        config = self._read()
        self._last_good = config
        print(f"Configuration file '{self.path}' has been loaded.\n{config.describe()}\n", flush=True)
        return config

    def current(self) -> FactoryConfig:
        """The config for this cycle: re-read when the file changed, else the last good one."""
        if self._last_good is None:
            return self.load_first()
        try:
            stamp = self._stamp()
        except OSError as err:
            return self._keep_last_good(f"{self.path}: cannot read the configuration ({err.strerror})")
        if stamp == self._last_stamp and self.last_error is None:
            return self._last_good
        try:
            config = self._read()
        except ConfigError as err:
            return self._keep_last_good(str(err))
        if config != self._last_good:
            print(f"Configuration file '{self.path}' has been loaded.\n{config.describe()}\n", flush=True)
        self._last_good, self.last_error = config, None
        return config

    def rebase(self, base: dict[str, Any]) -> None:
        """New command-line/API values under the file's; takes effect on the next ``current()``."""
        self.base = dict(base)
        self._last_stamp = None

    def _stamp(self) -> tuple[float, int]:
        stat = self.path.stat()
        return (stat.st_mtime, stat.st_size)

    def _read(self) -> FactoryConfig:
        try:
            stamp = self._stamp()
            text = self.path.read_text()
        except OSError as err:
            raise ConfigError(f"{self.path}: cannot read the configuration ({err.strerror})") from None
        self._last_stamp = stamp
        return apply_overrides(self.base, overrides_from_json(text, str(self.path)), str(self.path))

    def _keep_last_good(self, message: str) -> FactoryConfig:
        if message != self.last_error:
            log.error("%s; keeping the previous configuration", message)
            print(f"error: {message}; keeping the previous configuration", file=sys.stderr, flush=True)
        self.last_error = message
        assert self._last_good is not None
        return self._last_good


def config_field_names() -> tuple[str, ...]:
    """The names ``FactoryConfig`` accepts (for ``Factory`` attributes and keyword arguments)."""
    return tuple(f.name for f in fields(FactoryConfig))
