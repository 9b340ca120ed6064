"""The executor's ``factory={...}`` option: a ``coffea_wq.Factory`` serving the run's manager.

The option is a plain dict, as a coffea 0.7 ``executor_args`` entry or CCTools' factory JSON file
would give it (``{"batch-type": "slurm", "max-workers": 20, "cores": 4}``, dashes or
underscores). It is checked when the executor is made, frozen into the hashable session key, and
turned into a running factory once the session's manager listens; the session stops it (removing
every worker it started) when it closes, after the processing call or on any failure.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping
from typing import Any

from coffea_wq.executor.errors import ExecutorConfigError

log = logging.getLogger(__name__)

# keys Factory.from_options takes besides FactoryConfig's fields and Factory's aliases
_EXTRA_KEYS = ("batch_type", "manager_name", "manager_host_port", "config_file")

FrozenOptions = tuple[tuple[str, Any], ...]


def _known_keys() -> list[str]:
    from coffea_wq.factory.api import ALIASES
    from coffea_wq.factory.config import config_field_names

    return sorted({*config_field_names(), *ALIASES, *_EXTRA_KEYS} - {"manager_port"})


def _freeze(value: Any) -> Any:
    # the session registry needs a hashable key; lists become tuples, mappings sorted pairs
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple, set, frozenset)):
        return tuple(_freeze(v) for v in value)
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


def freeze_factory_options(options: Mapping[str, Any] | None) -> FrozenOptions | None:
    """``options`` with underscore keys as sorted pairs (hashable), or None without a factory.

    Example:
        >>> freeze_factory_options({"max-workers": 2, "batch-type": "local"})
        (('batch_type', 'local'), ('max_workers', 2))
    """
    if options is None:
        return None
    return tuple(sorted((str(key).replace("-", "_"), _freeze(value)) for key, value in options.items()))


def validate_factory_options(options: Any) -> None:
    """Raise ``ExecutorConfigError`` naming a ``factory`` entry no factory could start with.

    Example:
        >>> validate_factory_options({"max-worker": 2})
        Traceback (most recent call last):
        ...
        coffea_wq.executor.errors.ExecutorConfigError: factory: unknown key 'max-worker'; did you mean 'max_workers'?
    """
    if options is None:
        return
    if not isinstance(options, Mapping):
        raise ExecutorConfigError(f"factory={options!r}: expected a dict such as "
                                  "{'batch_type': 'local', 'max_workers': 4}")
    known = _known_keys()
    for key in options:
        name = str(key).replace("-", "_")
        if name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(known)}"
        raise ExecutorConfigError(f"factory: unknown key {key!r}{hint}")
    batch_type = dict(freeze_factory_options(options) or ()).get("batch_type", "local")
    from coffea_wq.factory.config import BATCH_TYPES

    if batch_type not in BATCH_TYPES:
        raise ExecutorConfigError(f"factory: batch_type {batch_type!r} is not one of {', '.join(BATCH_TYPES)}")


def start_factory(options: FrozenOptions, queue: Any, password_file: str | None = None, ssl: bool = False) -> Any:
    """A started ``coffea_wq.Factory`` serving ``queue`` (an object with a ``port``).

    The executor's ``password_file`` (or the run's own) is given to the workers unless the options
    name their own; with ``ssl`` the workers connect with ``--ssl``.

    Raises:
        ExecutorConfigError: the factory refuses its settings (the message names the setting).
    """
    from coffea_wq.factory.api import Factory
    from coffea_wq.factory.config import ConfigError

    settings: dict[str, Any] = dict(options)
    if password_file and not ({"password", "password_file"} & set(settings)):
        settings["password"] = password_file
    if ssl:
        extra = settings.get("extra_options") or ()
        extra = tuple(extra.split()) if isinstance(extra, str) else tuple(extra)
        settings["extra_options"] = extra if "--ssl" in extra else (*extra, "--ssl")
    try:
        factory = Factory.from_options(settings, manager=queue)
    except (ConfigError, TypeError) as exc:
        raise ExecutorConfigError(f"factory: {exc}") from exc
    factory.start()
    log.info("factory (%s) started for the manager on port %s", settings.get("batch_type", "local"), queue.port)
    return factory


def stop_factory(factory: Any) -> None:
    """Stop cycling and remove every worker the factory started; never raises (closing goes on)."""
    try:
        factory.stop()
    except Exception as exc:
        log.warning("stopping the factory failed: %r", exc)

