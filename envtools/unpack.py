"""Unpack an environment tarball once per worker: the importable twin of ``coffea_wq_env_run``.

Both use the same key (tarball name, size and gzip trailer), the same lock file, the same
temporary-directory-then-rename and the same ready marker, so a worker's warm Python slots (this
module) and shell tasks (the runner script) share one unpacked copy. Standard library only: the
worker imports it without coffea.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import logging
import os
import shlex
import shutil
import subprocess
import tarfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

CORRUPT_TARBALL_EXIT_CODE = 65
READY_MARKER = ".coffea-wq-ready"
PREFIX_PLACEHOLDER = "/__coffea_wq_env_prefix_placeholder__"
RUNNER_NAME = "coffea_wq_env_run"


class CorruptTarballError(RuntimeError):
    """The environment tarball cannot be unpacked (corrupt, truncated or not an environment)."""


def runner_script_path() -> Path:
    """The POSIX sh runner to ship with every task as ``coffea_wq_env_run``.

    Example::

        task.specify_input_file(str(envtools.runner_script_path()), "coffea_wq_env_run", cache=True)
        # command: ./coffea_wq_env_run env_<spec>_<commit>.tar.gz python3 task.py
    """
    return Path(__file__).resolve().parent / "data" / RUNNER_NAME


def wrap_command(command: str, tarball_name: str) -> str:
    """The task command that runs shell ``command`` inside the shipped environment.

    The task must have ``runner_script_path()`` as input ``coffea_wq_env_run`` and the tarball as
    input ``tarball_name``. ``command`` may be any shell text (pipes, ``&&``, redirections): it
    runs under ``sh -c`` once the environment is active.

    Example::

        wrap_command("python3 task.py > out.txt", "env_0123456789_abcdef012345.tar.gz")
        # "./coffea_wq_env_run env_0123456789_abcdef012345.tar.gz sh -c 'python3 task.py > out.txt'"
    """
    return f"./{RUNNER_NAME} {shlex.quote(tarball_name)} sh -c {shlex.quote(command)}"


def unpack_key(tarball: Path) -> str:
    """``<name>-<size>-<gzip trailer hex>``: a content key read from 8 bytes, not a full hash."""
    name = tarball.name
    stem = name[: -len(".tar.gz")] if name.endswith(".tar.gz") else name.removesuffix(".tgz")
    size = tarball.stat().st_size
    with open(tarball, "rb") as handle:
        handle.seek(max(0, size - 8))
        trailer = handle.read(8).hex()
    return f"{stem}-{size}-{trailer}"


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    # flock(2), like flock(1) in the runner script: the two exclude each other.
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _extract(tarball: Path, destination: Path) -> None:
    """GNU tar when present (5x faster than tarfile, and it checks gzip's CRC); tarfile otherwise."""
    destination.mkdir(parents=True)
    tar_command = shutil.which("tar")
    if tar_command:
        result = subprocess.run([tar_command, "-xzf", str(tarball), "-C", str(destination)],
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            detail = " ".join(result.stderr.strip().splitlines()[-2:])
            raise CorruptTarballError(f"environment tarball {tarball.name} is corrupt or truncated: tar: {detail}")
        return
    _extract_with_tarfile(tarball, destination)


def _extract_with_tarfile(tarball: Path, destination: Path) -> None:
    try:
        with gzip.open(tarball, "rb") as stream:
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(destination, filter="tar")
                else:  # Python < 3.11.4 / 3.10.12
                    tar.extractall(destination)
            # tar stops at its end-of-archive blocks; reading on to the end checks gzip's CRC-32.
            while stream.read(1 << 20):
                pass
    except (tarfile.TarError, EOFError, OSError, ValueError, zlib.error) as exc:
        raise CorruptTarballError(f"environment tarball {tarball.name} is corrupt or truncated: {exc}") from exc


def _fix_activate_scripts(env_dir: Path) -> None:
    for script in (env_dir / "bin").glob("activate*"):
        if script.is_file() and not script.is_symlink():
            script.write_bytes(script.read_bytes().replace(PREFIX_PLACEHOLDER.encode(), str(env_dir).encode()))


def _unpack(tarball: Path, env_dir: Path) -> None:
    started = time.monotonic()
    root, key = env_dir.parent, env_dir.name
    for stale in root.glob(f".{key}.tmp.*"):
        shutil.rmtree(stale, ignore_errors=True)
    shutil.rmtree(env_dir, ignore_errors=True)
    tmp = root / f".{key}.tmp.{os.getpid()}"
    try:
        _extract(tarball, tmp)
        if not (tmp / "bin" / "python").exists():
            raise CorruptTarballError(f"environment tarball {tarball.name} has no bin/python")
        _fix_activate_scripts(tmp)
        os.rename(tmp, env_dir)
        if (env_dir / "bin" / "conda-unpack").is_file():
            subprocess.run([str(env_dir / "bin" / "python"), str(env_dir / "bin" / "conda-unpack")], check=True)
    except (CorruptTarballError, OSError, subprocess.CalledProcessError):
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(env_dir, ignore_errors=True)
        raise
    (env_dir / READY_MARKER).touch()
    log.info("unpacked %s into %s in %.1f s", tarball.name, env_dir, time.monotonic() - started)


def ensure_unpacked(tarball: Path, envs_root: Path) -> Path:
    """Unpack ``tarball`` under ``envs_root`` unless already done; returns the env dir (with ``bin/python``).

    Safe to call from many processes at once: one unpacks, the others wait and reuse it.

    Raises:
        CorruptTarballError: the tarball is corrupt or truncated (nothing is left behind).

    Example::

        env_dir = ensure_unpacked(Path("t.1/env_abc_def.tar.gz"), Path("coffea-wq-envs"))
        subprocess.run([env_dir / "bin" / "python", "-c", "import coffea"])
    """
    tarball, envs_root = Path(tarball).resolve(), Path(envs_root).resolve()
    if not tarball.is_file():
        raise CorruptTarballError(f"environment tarball {tarball} not found")
    key = unpack_key(tarball)
    env_dir = envs_root / key
    if (env_dir / READY_MARKER).exists():
        return env_dir
    envs_root.mkdir(parents=True, exist_ok=True)
    with _locked(envs_root / f".{key}.lock"):
        if not (env_dir / READY_MARKER).exists():
            _unpack(tarball, env_dir)
    return env_dir


def activation_environ(env_dir: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment variables a command runs with inside ``env_dir`` (as the runner sets them)."""
    environ = dict(os.environ if base is None else base)
    environ["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{environ.get('PATH', os.defpath)}"
    environ["VIRTUAL_ENV"] = str(env_dir)
    if (env_dir / "conda-meta").is_dir():
        environ["CONDA_PREFIX"] = str(env_dir)
    environ.pop("PYTHONHOME", None)
    return environ
