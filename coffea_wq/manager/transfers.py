"""Moving files: input files out to a worker in chunks, output files back to local paths.

Outgoing data is a queue of "pieces": plain ``bytes`` or a :class:`FileStream` that reads a local
file lazily, so a large input never sits in memory and never blocks the loop: the loop takes as
many bytes as the socket accepts and comes back later for the rest.
"""

from __future__ import annotations

import logging
import os
import stat
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from coffea_wq.manager.outputs import OutputWriter, RefusedName  # noqa: F401  (re-exported)
from coffea_wq.manager.task import FileKind, FileSpec, TaskSpec
from coffea_wq.protocol.encoding import encode
from coffea_wq.protocol.messages import DirEnd, DirStart, PutBuffer, PutFile, Symlink, ThirdParty, UrlFile

log = logging.getLogger("coffea_wq.manager")

CHUNK = 256 * 1024


class InputMissing(Exception):
    """A task's local input does not exist or cannot be read."""


@dataclass
class FileStream:
    """Exactly ``size`` bytes of ``path``, read in chunks when the socket can take them."""

    path: str
    size: int
    _handle: object = None
    _left: int = -1

    def read_chunk(self) -> bytes:
        if self._left < 0:
            self._handle = open(self.path, "rb")  # noqa: SIM115 (closed when exhausted)
            self._left = self.size
        data = self._handle.read(min(CHUNK, self._left)) if self._left else b""
        if len(data) < min(CHUNK, self._left):
            # the file shrank since we announced its size: pad so the stream stays in step
            log.warning("input %s changed size while being sent; padding with zeros", self.path)
            data += b"\0" * (min(CHUNK, self._left) - len(data))
        self._left -= len(data)
        if self._left == 0:
            self.close()
        return data

    @property
    def exhausted(self) -> bool:
        return self._left == 0

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


Piece = bytes | FileStream


@dataclass
class Outbox:
    """What is waiting to be written to one socket."""

    pieces: deque[Piece] = field(default_factory=deque)
    pending: bytes = b""
    bytes_queued: int = 0

    def add(self, piece: Piece) -> None:
        if isinstance(piece, bytes):
            if not piece:
                return
            if self.pieces and isinstance(self.pieces[-1], bytes) and len(self.pieces[-1]) < CHUNK:
                self.pieces[-1] += piece  # coalesce small lines into fewer send() calls
                return
        self.pieces.append(piece)

    def __bool__(self) -> bool:
        return bool(self.pending or self.pieces)

    def next_bytes(self) -> bytes:
        """Bytes to try sending now (at least one chunk's worth when available)."""
        while len(self.pending) < CHUNK and self.pieces:
            piece = self.pieces[0]
            if isinstance(piece, bytes):
                self.pending += piece
                self.pieces.popleft()
            else:
                self.pending += piece.read_chunk()
                if piece.exhausted:
                    self.pieces.popleft()
        return self.pending

    def consumed(self, count: int) -> None:
        self.pending = self.pending[count:]

    def close(self) -> None:
        for piece in self.pieces:
            if isinstance(piece, FileStream):
                piece.close()
        self.pieces.clear()
        self.pending = b""


def file_signature(path: str) -> tuple[int, int]:
    """(size, mtime_ns): a cached file is re-sent only when this changes (as CCTools)."""
    info = os.stat(path)
    return info.st_size, info.st_mtime_ns


def input_pieces(spec: FileSpec) -> Iterator[Piece]:
    """The bytes that put one input into a worker's cache (``put`` or a recursive ``dir``)."""
    if spec.kind is FileKind.BUFFER:
        data = spec.local if isinstance(spec.local, bytes) else str(spec.local).encode()
        yield encode(PutBuffer(spec.cached_name, data))
        return
    if spec.kind is FileKind.URL:
        yield encode(UrlFile(spec.cached_name, str(spec.local), flags=spec.flags))
        return
    if spec.kind is FileKind.COMMAND:
        yield encode(ThirdParty(False, 1, spec.cached_name, str(spec.local)))
        return
    path = str(spec.local)
    try:
        info = os.stat(path)
    except OSError as error:
        raise InputMissing(f"input file {path!r} of the task cannot be read: {error.strerror}") from None
    if stat.S_ISDIR(info.st_mode):
        yield from _directory_pieces(path, spec.cached_name)
    else:
        yield from _file_pieces(path, spec.cached_name, info)


def _file_pieces(path: str, name: str, info: os.stat_result) -> Iterator[Piece]:
    if not os.access(path, os.R_OK):
        raise InputMissing(f"input file {path!r} of the task is not readable")
    mode = (info.st_mode | 0o600) & 0o777
    yield encode(PutFile(name, info.st_size, mode))
    if info.st_size <= CHUNK:
        with open(path, "rb") as handle:
            data = handle.read(info.st_size)
        yield data + b"\0" * (info.st_size - len(data))
    else:
        yield FileStream(path, info.st_size)


def _directory_pieces(path: str, name: str) -> Iterator[Piece]:
    """``dir NAME`` + entries + ``end``; nested names are basenames, symlinks are not followed."""
    yield encode(DirStart(name))
    try:
        entries = sorted(os.scandir(path), key=lambda e: e.name)
    except OSError as error:
        raise InputMissing(f"input directory {path!r} cannot be listed: {error.strerror}") from None
    for entry in entries:
        if entry.is_symlink():
            yield encode(Symlink(entry.name, os.readlink(entry.path)))
        elif entry.is_dir():
            yield from _directory_pieces(entry.path, entry.name)
        elif entry.is_file():
            yield from _file_pieces(entry.path, entry.name, entry.stat())
    yield encode(DirEnd())


def inputs_to_send(task: TaskSpec, worker_cache: dict[str, tuple[int, int]]) -> list[tuple[FileSpec, tuple]]:
    """The inputs a worker still lacks, each with the signature to remember once sent.

    Uncached inputs are always sent; cached ones only if the worker does not hold the same version.
    Raises InputMissing for an input that cannot be read.
    """
    wanted = []
    for spec in task.inputs():
        if spec.kind is FileKind.DIRECTORY:
            continue  # created by the task block itself
        if spec.kind in (FileKind.BUFFER, FileKind.URL, FileKind.COMMAND):
            signature: tuple = (len(spec.local), 0)  # made on the worker, or literal: nothing to stat
        else:
            try:
                signature = file_signature(str(spec.local))
            except OSError as error:
                raise InputMissing(
                    f"input file {spec.local!r} of task {task.task_id} cannot be read: {error.strerror}"
                ) from None
        if spec.cached and worker_cache.get(spec.cached_name) == signature:
            continue
        wanted.append((spec, signature))
    return wanted
