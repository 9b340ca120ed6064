"""The worker's file cache: ``<workspace>/cache/<cachedname>``, filled by the manager.

The manager names every file it sends (``put``, ``dir`` blocks, ``url``); tasks see them
through links in their sandboxes. Files arrive in a temporary name and are renamed into
place when complete, so a task that has an older version linked keeps its own copy intact.
The cache is emptied whenever the connection ends (the manager forgets it too).

Every name comes from the manager, so every operation resolves it first (docs/worker.md,
"Sandbox"): the directory it lands in, with symlinks resolved (``realpath``), must be the cache or
below it, so a symlink the manager planted (``dir d`` + ``symlink d/link -> /elsewhere``) is never
followed by ``put``, ``dir``, ``get``, ``unlink`` or ``url``. Symlinks themselves may be created
(directory inputs carry them, as in CCTools); the worker only never follows one out of the cache.
"""

from __future__ import annotations

import enum
import errno
import itertools
import logging
import os
import shutil
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

URL_TIMEOUT = 300.0


def remove_path(path: Path) -> None:
    """Delete a file, a symlink (not what it points to) or a directory tree; missing is fine."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


class CacheError(Exception):
    """A cache operation the manager asked for cannot be done (the connection must end)."""


class Growth(enum.Enum):
    GROWING = "growing"
    DONE = "done"
    FAILED = "failed"


@dataclass
class IncomingFile:
    """A file being received: chunks go to a hidden temporary file, renamed at ``finish``.

    Written unbuffered, so ``written`` bytes of ``temp_path`` can already be read by another thread:
    the cache server passes a file on to other workers while it arrives (worker/peers.py).
    """

    final_path: Path
    temp_path: Path
    mode: int
    remaining: int
    size: int = 0
    written: int = 0
    state: Growth = Growth.GROWING
    on_end: Callable[[IncomingFile], None] | None = None

    def __post_init__(self) -> None:
        self._handle = open(self.temp_path, "wb", buffering=0)  # noqa: SIM115 (closed in finish/abort)

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            done = self._handle.write(view)
            view = view[done:]
        self.remaining -= len(data)
        self.written += len(data)

    def finish(self) -> None:
        try:
            self._handle.close()
            os.chmod(self.temp_path, (self.mode | 0o600) & 0o7777)
            if self.final_path.is_dir() and not self.final_path.is_symlink():
                shutil.rmtree(self.final_path)
            os.replace(self.temp_path, self.final_path)
        except BaseException:
            self.abort()
            raise
        self.state = Growth.DONE
        if self.on_end is not None:
            self.on_end(self)

    def abort(self) -> None:
        self._handle.close()
        self.temp_path.unlink(missing_ok=True)
        self.state = Growth.FAILED
        if self.on_end is not None:
            self.on_end(self)


@dataclass(frozen=True)
class GetEntry:
    """One line of a ``get`` reply: ``kind`` is ``file``, ``dir`` or ``missing``."""

    kind: str
    name: str
    path: Path | None = None
    size: int = 0
    error: int = 0


def is_inside(path: str, root: str) -> bool:
    """Whether ``path`` is ``root`` or below it (both already resolved)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class FileCache:
    """``cache/`` inside a workspace. Names are relative paths already checked by the protocol."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = Path(os.path.realpath(root))
        self._temp_counter = itertools.count(1)
        # top-level files on their way in, by name: the cache server may pass them on meanwhile
        self.growing: dict[str, IncomingFile] = {}

    def path_of(self, name: str) -> Path:
        """``cache/<name>``; refuses names that leave the cache, through ``..`` or through a symlink.

        The returned path's directory is resolved and inside the cache; its last component may
        itself be a symlink (the caller decides whether to follow it: ``get`` does only when it
        stays inside).
        """
        root = str(self.root)
        lexical = os.path.normpath(os.path.join(root, name))
        if lexical == root or not is_inside(lexical, root):
            raise CacheError(f"cache name {name!r} leaves the cache directory")
        parent = os.path.realpath(os.path.dirname(lexical))
        if not is_inside(parent, root):
            raise CacheError(f"cache name {name!r} leads through a symlink out of the cache (to {parent!r})")
        return Path(parent) / os.path.basename(lexical)

    def resolves_inside(self, path: Path) -> bool:
        """Whether ``path``, with every symlink resolved, is still in the cache."""
        return is_inside(os.path.realpath(path), str(self.root))

    def contains(self, name: str) -> bool:
        return os.path.lexists(self.path_of(name))

    def begin_file(self, name: str, length: int, mode: int) -> IncomingFile:
        """Start receiving ``length`` bytes for ``cache/<name>``."""
        path = self.path_of(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self.root).free
        if length > free:
            raise CacheError(f"no room for {name!r}: {length} bytes sent, {free} bytes free in {self.root}")
        temp = path.parent / f".incoming-{os.getpid()}-{next(self._temp_counter)}"
        incoming = IncomingFile(path, temp, mode, length, size=length, on_end=self._arrived)
        if "/" not in name:
            self.growing[name] = incoming
        return incoming

    def _arrived(self, incoming: IncomingFile) -> None:
        name = incoming.final_path.name
        if self.growing.get(name) is incoming:
            del self.growing[name]

    def make_dir(self, name: str, top_level: bool) -> None:
        """Create ``cache/<name>``; a top-level directory sent again replaces the old one."""
        path = self.path_of(name)
        if top_level and os.path.lexists(path):
            # CCTools' worker hangs up here; replacing is kinder and equally safe, because
            # sandboxes hold hard links to the files, not the directory itself
            log.debug("replacing cached directory %s", name)
            self.remove(name)
        path.mkdir(parents=True, exist_ok=not top_level)

    def make_symlink(self, name: str, target: str) -> None:
        path = self.path_of(name)
        if os.path.lexists(path):
            self.remove(name)
        os.symlink(target, path)

    def fetch_url(self, name: str, url: str, mode: int) -> bool:
        """Download ``url`` into ``cache/<name>`` (as the C worker does with curl); False on failure.

        A failed download leaves the name absent, so the task that needs it reports a missing input.
        """
        path = self.path_of(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.parent / f".incoming-url-{os.getpid()}"
        try:
            with urllib.request.urlopen(url, timeout=URL_TIMEOUT) as response, open(temp, "wb") as out:
                shutil.copyfileobj(response, out)
            os.chmod(temp, (mode | 0o600) & 0o7777)
            os.replace(temp, path)
            return True
        except (OSError, ValueError) as exc:
            log.warning("could not fetch %s into the cache as %s: %s", url, name, exc)
            temp.unlink(missing_ok=True)
            return False

    def remove(self, name: str) -> None:
        """Delete ``cache/<name>`` recursively; a missing name is fine (as in CCTools)."""
        remove_path(self.path_of(name))

    def describe_for_get(self, name: str, recursive: bool = True) -> list[GetEntry]:
        """The entries of the reply to ``get <name>``: a file, a directory tree, or missing.

        Nothing outside the cache is ever read: a name through a symlink that leaves is ``missing``
        (EACCES); inside a directory, a symlink that leaves, and any symlink to a directory (a
        loop), is left out of the reply.
        """
        try:
            path = self.path_of(name)
        except CacheError as exc:
            log.warning("refusing get of %r: %s", name, exc)
            return [GetEntry("missing", name, error=errno.EACCES)]
        if os.path.lexists(path) and not self.resolves_inside(path):
            log.warning("refusing get of %r: it is a symlink out of the cache", name)
            return [GetEntry("missing", name, error=errno.EACCES)]
        return self._describe(name, path, recursive)

    def _describe(self, name: str, path: Path, recursive: bool) -> list[GetEntry]:
        try:
            info = path.stat()
        except OSError as exc:
            return [GetEntry("missing", name, error=exc.errno or errno.ENOENT)]
        if path.is_dir():
            entries = [GetEntry("dir", name, path)]
            if recursive:
                for child in sorted(os.listdir(path)):
                    child_path = path / child
                    if child_path.is_symlink() and (child_path.is_dir() or not self.resolves_inside(child_path)):
                        log.warning("get of %r: leaving out the symlink %s (it leaves the cache or is a "
                                    "directory)", name, child)
                        continue
                    entries += self._describe(f"{name}/{child}", child_path, recursive)
            return entries
        return [GetEntry("file", name, path, info.st_size)]

    def wipe(self) -> None:
        """Remove everything in the cache, keeping the directory."""
        for entry in os.listdir(self.root):
            self.remove(entry)
