"""The command a batch job runs to become a worker, and the scratch directory it runs from.

Three ways to start a worker, in this order of preference:

- ``worker_binary``: an executable that takes ``work_queue_worker``'s options (the real CCTools
  ``work_queue_worker``, or a wrapper script of the site);
- ``python_env``: a packed environment (an envtools/venv-pack/conda-pack tarball carrying
  coffea-wq). A launcher script in the scratch directory unpacks it once per node and user
  (into ``$COFFEA_WQ_ENV_CACHE``, else ``$TMPDIR``/``/tmp``) and runs ``python -m coffea_wq worker``;
- ``python``: an interpreter that can ``import coffea_wq`` (default: the factory's own).

The worker options (``-M NAME``/``HOST PORT``, ``--catalog``, ``-t``, ``--cores``, ``--memory``,
``--disk``, ``--gpus``, ``-P``) are spelled so that both ``coffea-wq worker`` and
``work_queue_worker`` accept them.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import stat
from pathlib import Path

from coffea_wq.factory.config import ConfigError, FactoryConfig
from coffea_wq.resources.types import Resources

LAUNCHER_NAME = "coffea-wq-env-worker.sh"


def prepare_scratch_dir(path: Path) -> Path:
    """Create ``path`` if needed and check that we can write there; return it absolute.

    Batch jobs start from this directory (logs, launcher, password copy), so on a cluster it must
    be on a file system both the factory's host and the worker nodes see.

    Raises:
        ConfigError: naming the directory and what is wrong with it.

    Example:
        >>> prepare_scratch_dir(Path("/tmp/my-factory"))  # doctest: +SKIP
        PosixPath('/tmp/my-factory')
    """
    path = Path(path).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"scratch directory {path} exists but is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create the scratch directory {path}: {err.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"the scratch directory {path} is not writable by this user")
    probe = path / f".write-test-{os.getpid()}"
    try:
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"cannot write in the scratch directory {path}: {err.strerror}") from None
    return path


def worker_options(config: FactoryConfig, password_copy: Path | None = None) -> list[str]:
    """The options after the worker program: where the manager is, lifetime, size, password.

    Example:
        >>> worker_options(FactoryConfig(manager_name="ana", timeout=60, cores=2))
        ['-M', 'ana', '-t', '60', '--cores', '2']
    """
    if config.manager_host is not None and config.manager_port is not None:
        argv = [config.manager_host, str(config.manager_port)]
    else:
        argv = ["-M", str(config.manager_name)]
    if config.catalog:
        argv += ["--catalog", config.catalog]
    argv += ["-t", str(config.timeout)]
    resources = worker_resources(config)
    for name, value in resources.as_dict().items():
        argv += [f"--{name}", f"{value:g}"]
    if password_copy is not None:
        argv += ["-P", str(password_copy)]
    return argv + list(config.extra_options)


def worker_resources(config: FactoryConfig) -> Resources:
    """The size of one worker, as the batch job should request it."""
    return Resources(cores=config.cores, memory=config.memory, disk=config.disk, gpus=config.gpus)


def copy_password(config: FactoryConfig, scratch: Path) -> Path | None:
    """A private copy of the password file in the scratch directory, which worker nodes can read."""
    if config.password is None:
        return None
    source = Path(config.password).expanduser()
    if not source.is_file():
        raise ConfigError(f"password file {source} does not exist or is not a file")
    target = scratch / "pwfile"
    shutil.copyfile(source, target)
    target.chmod(stat.S_IRUSR | stat.S_IWUSR)
    return target


def worker_program(config: FactoryConfig, scratch: Path) -> list[str]:
    """The program part of the worker command (before the options)."""
    if config.worker_binary:
        found = shutil.which(config.worker_binary)
        if found is None:
            raise ConfigError(f"worker binary {config.worker_binary!r} is not an executable on PATH")
        return [found]
    if config.python_env is not None:
        return ["/bin/sh", str(write_env_launcher(Path(config.python_env), scratch))]
    return [config.python, "-m", "coffea_wq", "worker"]


def build_worker_argv(config: FactoryConfig, scratch: Path) -> list[str]:
    """The whole command of one worker job.

    Example:
        >>> cfg = FactoryConfig(manager_host="mgr", manager_port=9123, python="/usr/bin/python3")
        >>> build_worker_argv(cfg, Path("/tmp/s"))[:6]
        ['/usr/bin/python3', '-m', 'coffea_wq', 'worker', 'mgr', '9123']
    """
    return worker_program(config, scratch) + worker_options(config, copy_password(config, scratch))


def _env_cache_key(tarball: Path) -> str:
    """A name that changes when the tarball does (path, size, modification time)."""
    info = tarball.stat()
    digest = hashlib.sha1(f"{tarball}:{info.st_size}:{info.st_mtime_ns}".encode()).hexdigest()[:12]
    stem = tarball.name.split(".tar")[0].split(".tgz")[0]
    return f"{stem}-{digest}"


def write_env_launcher(tarball: Path, scratch: Path) -> Path:
    """Write the shell script that unpacks ``tarball`` once per node and starts a worker from it.

    Raises:
        ConfigError: the tarball does not exist.
    """
    tarball = tarball.expanduser().absolute()
    if not tarball.is_file():
        raise ConfigError(f"python environment {tarball} does not exist or is not a file")
    key = _env_cache_key(tarball)
    script = _LAUNCHER_TEMPLATE.format(tarball=shlex.quote(str(tarball)), key=shlex.quote(key))
    path = scratch / LAUNCHER_NAME
    path.write_text(script)
    path.chmod(0o755)
    return path


# Unpacking goes to a private temporary directory that is renamed into place, so that two workers
# starting on one node at once never see a half-unpacked environment.
_LAUNCHER_TEMPLATE = """#!/bin/sh
# Written by coffea-wq factory: unpack a packed Python environment once, then start a worker.
set -e
tarball={tarball}
cache="${{COFFEA_WQ_ENV_CACHE:-${{TMPDIR:-/tmp}}/coffea-wq-envs-$(id -u)}}"
env_dir="$cache/"{key}
if [ ! -f "$env_dir/.coffea-wq-unpacked" ]; then
    mkdir -p "$cache"
    partial=$(mktemp -d "$cache/.unpacking-XXXXXX")
    tar -xzf "$tarball" -C "$partial"
    if [ -x "$partial/bin/conda-unpack" ]; then "$partial/bin/conda-unpack"; fi
    touch "$partial/.coffea-wq-unpacked"
    mv -T "$partial" "$env_dir" 2>/dev/null || rm -rf "$partial"
fi
if [ -f "$env_dir/bin/activate" ]; then . "$env_dir/bin/activate"; fi
exec "$env_dir/bin/python" -m coffea_wq worker "$@"
"""
