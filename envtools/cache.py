"""The cache directory of tarballs: atomic writes, in-use markers, listing and keep-N cleaning.

A tarball is *in use* while a live process holds a marker ``.in-use/<tarball>.<pid>`` for it;
``get_environment()`` marks the tarball it returns for the calling process (the process that runs
the manager), so cleaning in another shell never removes a tarball a running manager ships.
Markers of dead processes are stale and ignored (and removed by ``clean``).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from envtools.naming import parse_tarball_name

IN_USE_DIR = ".in-use"


@dataclass(frozen=True)
class CachedTarball:
    """One tarball in the cache."""

    path: Path
    size: int
    mtime: float
    spec_hash: str
    commit: str
    in_use: bool

    @property
    def age_seconds(self) -> float:
        return max(0.0, time.time() - self.mtime)


def _process_start_ticks(pid: int) -> str:
    """The start time of ``pid`` (Linux ``/proc``), so a reused pid is not mistaken for the owner."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _marker_is_live(marker: Path) -> bool:
    try:
        pid = int(marker.name.rsplit(".", 1)[1])
        recorded = marker.read_text().strip()
    except (ValueError, IndexError, OSError):
        return False
    if not _pid_alive(pid):
        return False
    return not recorded or recorded == _process_start_ticks(pid)


def mark_in_use(tarball: Path, pid: int | None = None) -> Path:
    """Record that process ``pid`` (default: this one) ships ``tarball``; returns the marker.

    The marker of this process is removed when it exits; markers of dead processes are ignored.

    Example::

        mark_in_use(Path("envs/env_0123456789_abcdef012345.tar.gz"))
    """
    pid = os.getpid() if pid is None else pid
    markers = tarball.parent / IN_USE_DIR
    markers.mkdir(parents=True, exist_ok=True)
    marker = markers / f"{tarball.name}.{pid}"
    marker.write_text(_process_start_ticks(pid))
    if pid == os.getpid():
        atexit.register(_unlink_quietly, marker)
    return marker


def release(tarball: Path, pid: int | None = None) -> None:
    """Forget that process ``pid`` (default: this one) uses ``tarball``."""
    pid = os.getpid() if pid is None else pid
    _unlink_quietly(tarball.parent / IN_USE_DIR / f"{tarball.name}.{pid}")


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def is_in_use(tarball: Path) -> bool:
    """True when a live process holds a marker for ``tarball``."""
    markers = tarball.parent / IN_USE_DIR
    return any(_marker_is_live(m) for m in markers.glob(f"{tarball.name}.*"))


def list_tarballs(cache_dir: Path) -> list[CachedTarball]:
    """The tarballs in ``cache_dir``, newest first (files not named ``env_*_*.tar.gz`` are skipped)."""
    found = []
    if not cache_dir.is_dir():
        return found
    for path in cache_dir.iterdir():
        name = parse_tarball_name(path.name)
        if name is None or not path.is_file():
            continue
        stat = path.stat()
        found.append(CachedTarball(path, stat.st_size, stat.st_mtime, name.spec_hash, name.commit, is_in_use(path)))
    return sorted(found, key=lambda t: t.mtime, reverse=True)


def select_for_removal(tarballs: list[CachedTarball], keep: int, protect: Path | None = None) -> list[CachedTarball]:
    """All but the ``keep`` newest tarballs, never one in use nor ``protect``."""
    if keep < 0:
        raise ValueError(f"keep must be >= 0, got {keep}")
    newest_first = sorted(tarballs, key=lambda t: t.mtime, reverse=True)
    protect = protect.resolve() if protect else None
    return [t for t in newest_first[keep:] if not t.in_use and t.path.resolve() != protect]


def clean_cache(cache_dir: Path, keep: int = 3, dry_run: bool = False, protect: Path | None = None) -> list[CachedTarball]:
    """Remove all but the ``keep`` newest tarballs (never one in use); returns what was (or would be) removed.

    Also removes stale in-use markers and leftover temporary files of crashed builds.

    Example::

        removed = clean_cache(Path("envs"), keep=3)
    """
    doomed = select_for_removal(list_tarballs(cache_dir), keep, protect)
    if dry_run:
        return doomed
    for tarball in doomed:
        _unlink_quietly(tarball.path)
    _remove_stale_markers(cache_dir)
    _remove_abandoned_temporaries(cache_dir)
    return doomed


def _remove_stale_markers(cache_dir: Path) -> None:
    for marker in (cache_dir / IN_USE_DIR).glob("*"):
        if not _marker_is_live(marker):
            _unlink_quietly(marker)


def _remove_abandoned_temporaries(cache_dir: Path, older_than: float = 24 * 3600) -> None:
    now = time.time()
    for tmp in cache_dir.glob(".tmp-*"):
        with contextlib.suppress(OSError):
            if now - tmp.stat().st_mtime > older_than:
                tmp.unlink()


@contextlib.contextmanager
def atomic_output(destination: Path) -> Iterator[Path]:
    """A temporary path next to ``destination``, renamed onto it only if the block succeeds.

    Readers never see a half-written tarball: they see the old file, or no file, or the new one.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".tmp-{destination.name}.", dir=destination.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, destination)
    finally:
        _unlink_quietly(tmp)


@contextlib.contextmanager
def build_lock(cache_dir: Path, filename: str) -> Iterator[None]:
    """Serialise builds of one tarball name, so concurrent runs build it once."""
    import fcntl

    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / f".lock-{filename}", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
