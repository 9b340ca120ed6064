"""Writing tarballs: a gzip-compressed tar stream, compressed by pigz/gzip in a second process.

Building the tar stream in Python and compressing it in ``pigz``/``gzip`` overlaps the two on two
cores; without either tool Python's own gzip is used. Level 1 by default: an environment is
written once per commit and read once per worker, so speed beats the last 10 % of size.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path


class ArchiveWriter:
    """Adds files, symlinks and in-memory content to a tar stream under chosen names."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.names: set[str] = set()

    def _claim(self, arcname: str) -> bool:
        if arcname in self.names:
            return False
        self.names.add(arcname)
        return True

    def add_bytes(self, arcname: str, data: bytes, mode: int = 0o644) -> None:
        if not self._claim(arcname):
            return
        info = tarfile.TarInfo(arcname)
        info.size, info.mode, info.mtime = len(data), mode, int(os.path.getmtime(__file__))
        self.tar.addfile(info, io.BytesIO(data))

    def add_symlink(self, arcname: str, target: str) -> None:
        if not self._claim(arcname):
            return
        info = tarfile.TarInfo(arcname)
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
        self.tar.addfile(info)

    def add_directory(self, arcname: str, source: Path) -> None:
        if not self._claim(arcname):
            return
        info = self.tar.gettarinfo(str(source), arcname)
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        self.tar.addfile(info)

    def add_file(self, arcname: str, source: Path) -> None:
        """A regular file (a symlink to a file is stored as the file it points at)."""
        if not self._claim(arcname):
            return
        stat = source.stat()
        info = tarfile.TarInfo(arcname)
        info.size, info.mode, info.mtime = stat.st_size, stat.st_mode & 0o7777, int(stat.st_mtime)
        with open(source, "rb") as handle:
            self.tar.addfile(info, handle)


@contextlib.contextmanager
def gzip_tar_writer(output: Path, level: int = 1) -> Iterator[ArchiveWriter]:
    """Write a ``.tar.gz`` at ``output`` (the caller makes it atomic); yields an ``ArchiveWriter``.

    Example::

        with gzip_tar_writer(Path("out.tar.gz")) as archive:
            archive.add_bytes("hello.txt", b"hi")
    """
    compressor = shutil.which("pigz") or shutil.which("gzip")
    if compressor is None:
        with tarfile.open(output, "w:gz", compresslevel=level, format=tarfile.PAX_FORMAT) as tar:
            yield ArchiveWriter(tar)
        return
    with open(output, "wb") as sink:
        proc = subprocess.Popen([compressor, f"-{level}", "-c"], stdin=subprocess.PIPE, stdout=sink)
        assert proc.stdin is not None
        try:
            with tarfile.open(fileobj=proc.stdin, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                yield ArchiveWriter(tar)
        finally:
            proc.stdin.close()
            rc = proc.wait()
    if rc != 0:
        raise OSError(f"{compressor} exited with {rc} while writing {output}")
