"""The command a batch job runs to become a worker, and the scratch directory it runs from.

Three ways to start a worker, in this order of preference:

- ``worker_binary``: an executable that takes ``work_queue_worker``'s options (the real CCTools
  ``work_queue_worker``, or a wrapper script of the site);
- ``python_env``: a packed environment (an envtools or conda-pack tarball carrying coffea-wq).
  A launcher script in the scratch directory has envtools' runner unpack it once per node and
  user (into ``$COFFEA_WQ_ENVS_DIR``, else ``$TMPDIR``/``/tmp``) and run
  ``python -m coffea_wq worker`` inside it;
- ``python``: an interpreter that can ``import coffea_wq`` (default: the factory's own); its
  directory goes first on the worker's ``PATH``, so that tasks' ``python3`` is the same Python.

The worker options (``-M NAME``/``HOST PORT``, ``--catalog``, ``-t``, ``--cores``, ``--memory``,
``--disk``, ``--gpus``, ``-P``) are spelled so that both ``coffea-wq worker`` and
``work_queue_worker`` accept them.
"""

from __future__ import annotations

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
        argv += [f"--{name}", plain_number(value)]
    if password_copy is not None:
        argv += ["-P", str(password_copy)]
    return argv + list(config.extra_options)


def plain_number(value: float) -> str:
    """``4`` for 4.0, ``1.5`` for 1.5, never an exponent (a worker reads ``--disk 1e+06`` as 1)."""
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


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
    program = [config.python, "-m", "coffea_wq", "worker"]
    python_dir = os.path.dirname(config.python)
    if not python_dir:
        return program
    # Tasks run `python3` from the worker's PATH: put the worker's own interpreter first (on the
    # node, at run time), so a task gets the Python that has coffea, as local workers do.
    return ["/bin/sh", "-c", 'PATH="$0:$PATH" exec "$@"', python_dir, *program]


def build_worker_argv(config: FactoryConfig, scratch: Path) -> list[str]:
    """The whole command of one worker job.

    Example:
        >>> cfg = FactoryConfig(manager_host="mgr", manager_port=9123, python="python3")
        >>> build_worker_argv(cfg, Path("/tmp/s"))[:6]
        ['python3', '-m', 'coffea_wq', 'worker', 'mgr', '9123']
    """
    return worker_program(config, scratch) + worker_options(config, copy_password(config, scratch))


def write_env_launcher(tarball: Path, scratch: Path) -> Path:
    """Write the script that starts a worker from the packed environment ``tarball``.

    It runs envtools' ``coffea_wq_env_run`` (copied next to it), which unpacks the tarball once
    per node under a lock into ``$COFFEA_WQ_ENVS_DIR`` (here: node-local ``$TMPDIR`` or ``/tmp``
    unless the site sets it) and runs ``python -m coffea_wq worker`` inside it.

    Raises:
        ConfigError: the tarball does not exist.
    """
    from envtools.unpack import runner_script_path

    tarball = tarball.expanduser().absolute()
    if not tarball.is_file():
        raise ConfigError(f"python environment {tarball} does not exist or is not a file")
    runner = scratch / runner_script_path().name
    shutil.copyfile(runner_script_path(), runner)
    runner.chmod(0o755)
    path = scratch / LAUNCHER_NAME
    path.write_text(_LAUNCHER_TEMPLATE.format(runner=shlex.quote(str(runner)), tarball=shlex.quote(str(tarball))))
    path.chmod(0o755)
    return path


_LAUNCHER_TEMPLATE = """#!/bin/sh
# Written by coffea-wq factory: start a Work Queue worker from a packed Python environment.
COFFEA_WQ_ENVS_DIR="${{COFFEA_WQ_ENVS_DIR:-${{TMPDIR:-/tmp}}/coffea-wq-envs-$(id -u)}}"
export COFFEA_WQ_ENVS_DIR
exec /bin/sh {runner} {tarball} python -m coffea_wq worker "$@"
"""
