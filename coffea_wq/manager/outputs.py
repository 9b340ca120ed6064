"""Writing one ``get`` reply under the output's local path, and nowhere else (docs/manager.md, "Sandbox").

A reply names its entries ``<cachedname>`` (the output itself: a file or a directory) and
``<cachedname>/<sub/path>`` (entries of that directory). Every name comes from the peer, so each
is checked before anything touches the disk:

- the name is the cached name that was asked for, or lies below it through plain components
  (no ``..``, ``.``, empty or NUL components);
- an entry lies in a directory that this reply announced before (``dir`` lines), so a ``file``
  reply can never turn the output path, or anything else, into a directory;
- the entry's parent, resolved with ``realpath``, is the output's own directory or below it: a
  symlink on the submit host that leads elsewhere is never followed; the entry itself is opened
  with ``O_NOFOLLOW`` and made with ``mkdir``, so an existing symlink there is refused too;
- a ``dir`` reply never replaces an existing file (CCTools' manager cannot create it either).

A name that breaks a rule raises :class:`RefusedName`; the manager drops the peer and its tasks
go back to the queue (``core.handle_get_event``), and what its reply wrote is removed
(:meth:`OutputWriter.abort`). The output's path itself is the user's choice and is used as given.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from dataclasses import dataclass, field
from typing import Any

from coffea_wq.manager.staging_quota import refuse_over_quota


class RefusedName(ValueError):
    """A peer's reply names a path outside the output it was asked for."""


@dataclass
class OutputWriter:
    """Writes one ``get`` reply (file, directory tree or missing) under a local path."""

    local_path: str
    cached_name: str
    missing: bool = False
    quota: float = 0.0  # an output file larger than this is refused, not written (staging_quota.py)
    task: Any = None  # the TaskSpec it belongs to, whose output names a refusal
    bytes_received: int = 0
    _handle: object = None
    _directories: set[str] = field(default_factory=set)  # reply-relative dirs announced ("" = the output)
    _touched: bool = False  # whether this reply has written anything at the output's path

    def relative_name(self, name: str) -> str:
        """``""`` for the output itself, else the checked ``sub/path`` below it; RefusedName otherwise."""
        if name == self.cached_name:
            return ""
        prefix = self.cached_name + "/"
        if not name.startswith(prefix):
            raise RefusedName(f"reply names {name!r}, outside the requested output {self.cached_name!r}")
        rest = name[len(prefix):]
        parts = rest.split("/")
        if any(part in ("", ".", "..") or "\0" in part for part in parts):
            raise RefusedName(f"reply names {name!r}: only plain path components may follow {self.cached_name!r}")
        parent = "/".join(parts[:-1])
        if parent not in self._directories:
            raise RefusedName(f"reply names {name!r} inside a directory the reply did not announce")
        return rest

    def local_for(self, name: str) -> str:
        """The local path for a reply name, checked to stay inside the output (see the module doc)."""
        relative = self.relative_name(name)
        if not relative:
            return self.local_path
        path = os.path.join(self.local_path, relative)
        root = os.path.realpath(self.local_path)
        parent = os.path.realpath(os.path.dirname(path))
        if parent != root and not parent.startswith(root + os.sep):
            raise RefusedName(f"reply names {name!r}, which resolves to {parent!r}, outside the output {root!r}")
        return path

    def start_file(self, name: str, size: int = 0) -> None:
        path = self.local_for(name)
        self.close()
        if refuse_over_quota(self.quota, self.task, self, size):  # its bytes are read and dropped
            return
        self._touched = True
        if path == self.local_path:
            parent = os.path.dirname(path)
            if parent:
                os.makedirs(parent, exist_ok=True)
            self._handle = open(path, "wb")  # noqa: SIM115 (closed on the last chunk)
            return
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o666)
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise RefusedName(f"reply names {name!r}, which is a symlink on this host") from None
            raise
        self._handle = os.fdopen(fd, "wb")

    def write(self, data: bytes, last: bool) -> None:
        if self._handle is None:
            return
        self._handle.write(data)
        self.bytes_received += len(data)
        if last:
            self.close()

    def make_directory(self, name: str) -> None:
        path = self.local_for(name)
        relative = self.relative_name(name)
        try:
            # the output's own path is the user's and may be a symlink to a directory; below it, none is
            info = os.lstat(path) if relative else os.stat(path)
        except FileNotFoundError:
            info = None
        if info is not None and not stat.S_ISDIR(info.st_mode):
            what = "symlink" if stat.S_ISLNK(info.st_mode) else "file"
            raise RefusedName(f"reply would turn the {what} {path!r} into a directory (name {name!r})")
        self._touched = True
        if info is None:
            if relative:
                os.mkdir(path)  # its parent was announced and checked: never create a path through a link
            else:
                os.makedirs(path)
        self._directories.add(relative)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def abort(self) -> None:
        """The reply will never end (its peer is gone): remove what it wrote, so that no partial or
        hostile output stays in the way of the attempt that replaces it."""
        self.close()
        if not self._touched:
            return
        self._touched = False
        if os.path.isdir(self.local_path) and not os.path.islink(self.local_path):
            shutil.rmtree(self.local_path, ignore_errors=True)
        else:
            try:
                os.unlink(self.local_path)
            except OSError:
                pass
