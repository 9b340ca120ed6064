"""envtools: pack, cache and clean the Python environments shipped to workers.

Manager side::

    import envtools
    tarball = envtools.get_environment(watch=["mypkg"])   # env_<spec-hash>_<commit>.tar.gz

Worker side: ship ``envtools.runner_script_path()`` as ``coffea_wq_env_run`` and run tasks as
``./coffea_wq_env_run <tarball> python3 ...``; or, in Python, ``envtools.ensure_unpacked(tarball,
envs_root)``. Only the standard library is imported here; packing imports the rest lazily.
"""

from envtools.build import UncommittedChangesError, UncommittedChangesWarning, Unstaged, get_environment
from envtools.cache import CachedTarball, clean_cache, is_in_use, list_tarballs, mark_in_use, release
from envtools.source import UnsupportedEnvironmentError, describe_environment
from envtools.unpack import (
    CORRUPT_TARBALL_EXIT_CODE,
    RUNNER_NAME,
    CorruptTarballError,
    activation_environ,
    ensure_unpacked,
    runner_script_path,
    unpack_key,
    wrap_command,
)

__all__ = [
    "CORRUPT_TARBALL_EXIT_CODE",
    "RUNNER_NAME",
    "CachedTarball",
    "CorruptTarballError",
    "UncommittedChangesError",
    "UncommittedChangesWarning",
    "UnsupportedEnvironmentError",
    "Unstaged",
    "activation_environ",
    "clean_cache",
    "describe_environment",
    "ensure_unpacked",
    "get_environment",
    "is_in_use",
    "list_tarballs",
    "mark_in_use",
    "release",
    "runner_script_path",
    "unpack_key",
    "wrap_command",
]
