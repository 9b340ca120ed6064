"""The worker's file cache: ``<workspace>/cache/<cachedname>``, filled by the manager.

The manager names every file it sends (``put``, ``dir`` blocks, ``url``); tasks see them
through links in their sandboxes. Files arrive in a temporary name and are renamed into
place when complete, so a task that has an older version linked keeps its own copy intact.
The cache is emptied whenever the connection ends (the manager forgets it too).
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import urllib.request
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


@dataclass
class IncomingFile:
    """A file being received: chunks go to a hidden temporary file, renamed at ``finish``."""

    final_path: Path
    temp_path: Path
    mode: int
    remaining: int

    def __post_init__(self) -> None:
        self._handle = open(self.temp_path, "wb")  # noqa: SIM115 (closed in finish/abort)

    def write(self, data: bytes) -> None:
        self._handle.write(data)
        self.remaining -= len(data)

    def finish(self) -> None:
        self._handle.close()
        os.chmod(self.temp_path, (self.mode | 0o600) & 0o7777)
        if self.final_path.is_dir() and not self.final_path.is_symlink():
            shutil.rmtree(self.final_path)
        os.replace(self.temp_path, self.final_path)

    def abort(self) -> None:
        self._handle.close()
        self.temp_path.unlink(missing_ok=True)


@dataclass(frozen=True)
class GetEntry:
    """One line of a ``get`` reply: ``kind`` is ``file``, ``dir`` or ``missing``."""

    kind: str
    name: str
    path: Path | None = None
    size: int = 0
    error: int = 0


class FileCache:
    """``cache/`` inside a workspace. Names are relative paths already checked by the protocol."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._temp_counter = 0

    def path_of(self, name: str) -> Path:
        """``cache/<name>``; refuses names that would leave the cache."""
        path = self.root / name
        root = os.path.abspath(self.root)
        if os.path.commonpath([root, os.path.abspath(path)]) != root or os.path.abspath(path) == root:
            raise CacheError(f"cache name {name!r} leaves the cache directory")
        return path

    def contains(self, name: str) -> bool:
        return os.path.lexists(self.path_of(name))

    def begin_file(self, name: str, length: int, mode: int) -> IncomingFile:
        """Start receiving ``length`` bytes for ``cache/<name>``."""
        path = self.path_of(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self.root).free
        if length > free:
            raise CacheError(f"no room for {name!r}: {length} bytes sent, {free} bytes free in {self.root}")
        self._temp_counter += 1
        temp = path.parent / f".incoming-{os.getpid()}-{self._temp_counter}"
        return IncomingFile(path, temp, mode, length)

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
        """The entries of the reply to ``get <name>``: a file, a directory tree, or missing."""
        try:
            path = self.path_of(name)
        except CacheError:
            log.warning("refusing get of %r: it leaves the cache directory", name)
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
                    entries += self._describe(f"{name}/{child}", path / child, recursive)
            return entries
        return [GetEntry("file", name, path, info.st_size)]

    def wipe(self) -> None:
        """Remove everything in the cache, keeping the directory."""
        for entry in os.listdir(self.root):
            self.remove(entry)
