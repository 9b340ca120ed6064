"""A real XRootD server (Debian's ``xrootd-server``) for tests: 127.0.0.1, a free port, a folder of files.

xrootd refuses to run as root, so under root it is started with ``-R nobody``; the served folder
and its admin folder are made readable (writable) for that user. ``stop()`` ends it for good.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support import LOOPBACK, free_port

XROOTD = shutil.which("xrootd")
# the XRootD client's own waits, cut to seconds: a stalled handshake then fails as "Socket timeout"
# within ~3 s and a dead server within ~3 s, instead of after the defaults' minutes
FAST_CLIENT_ENV = {"XRD_TIMEOUTRESOLUTION": "1", "XRD_STREAMTIMEOUT": "3", "XRD_REQUESTTIMEOUT": "5",
                   "XRD_CONNECTIONWINDOW": "2", "XRD_CONNECTIONRETRY": "1", "XRD_LOGLEVEL": "Fatal"}


class XRootDServer:
    """Serve copies of ``files`` as ``root://127.0.0.1:PORT//NAME``."""

    def __init__(self, files: list[Path]) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="coffea-wq-xrootd-"))
        self.data = self.base / "data"
        self.admin = self.base / "admin"
        self.data.mkdir()
        self.admin.mkdir()
        for path in files:
            shutil.copy(path, self.data / path.name)
            os.chmod(self.data / path.name, 0o644)
        for folder in (self.base, self.admin):
            os.chmod(folder, 0o777)
        os.chmod(self.data, 0o755)
        self.port = free_port()
        config = self.base / "xrootd.cfg"
        config.write_text(f"all.export /\noss.localroot {self.data}\nall.adminpath {self.admin}\n"
                          f"all.pidpath {self.admin}\nxrd.trace off\n")
        argv = [XROOTD or "xrootd", "-p", str(self.port), "-c", str(config), "-l", str(self.base / "xrootd.log")]
        if os.geteuid() == 0:
            argv[1:1] = ["-R", "nobody"]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        self._wait_listening(15.0)

    def url(self, name: str, port: int | None = None) -> str:
        return f"root://{LOOPBACK}:{port or self.port}//{name}"

    def _wait_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"xrootd exited with {self.process.returncode}: {self.log()}")
            try:
                with socket.create_connection((LOOPBACK, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"xrootd did not listen on {self.port} within {timeout} s: {self.log()}")

    def log(self) -> str:
        logs = sorted(self.base.glob("xrootd.log*"))
        return logs[0].read_text(errors="replace")[-2000:] if logs else "(no log)"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)
