"""A throw-away Grid Engine cell on this host: sge_qmaster and sge_execd of Debian's gridengine.

Everything lives in one temporary directory, used as ``SGE_ROOT``: the cell's ``common/`` files
(bootstrap, act_qmaster, host_aliases), classic (plain-file) spooling for the qmaster, the execd's
spool and the jobs' files. The daemons listen on free ports (``SGE_QMASTER_PORT``,
``SGE_EXECD_PORT``), so the system's cell (if any) is neither needed nor touched; client commands
find the cell through ``cell.env``. The cell has one queue, ``all.q``, on this host with a
parallel environment ``smp`` (what the SGE back-end asks for), no load thresholds (a busy test
machine must not put the queue in alarm), a one-second scheduler, and ``min_uid 0`` so that root
may submit (Grid Engine refuses uids under 1000 by default). ``stop()`` deletes every job, stops
the execd then the qmaster by the pids in their pid files, kills what the jobs left behind, and
reports what needed force. How and why: docs/factory.md, "Trying Grid Engine on one machine".
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

import psutil

from tests.factory.daemons import (
    privilege_prefix,
    process_alive,
    remove_jobs,
    signal_process,
    stop_daemon,
    wait_for,
)
from tests.support import free_port

QMASTER = Path("/usr/sbin/sge_qmaster")
EXECD = Path("/usr/sbin/sge_execd")
SGE_LIBEXEC = Path("/usr/lib/gridengine")  # spoolinit, spooldefaults
SGE_SHARE = Path("/usr/share/gridengine")  # default configuration, complexes, usersets
DEBIAN_SGE_ROOT = Path("/var/lib/gridengine")  # the package's arch links: bin, lib, util, utilbin
CELL = "coffeawq"
QUEUE = "all.q"
SGE_CLIENTS = ("qsub", "qstat", "qdel", "qconf")
MISSING_BINARIES = [str(path) for path in (QMASTER, EXECD, SGE_LIBEXEC / "spooldefaults", SGE_SHARE)
                    if not path.exists()] + [name for name in SGE_CLIENTS if shutil.which(name) is None]

BOOTSTRAP = """admin_user              none
default_domain          none
ignore_fqdn             true
spooling_method         classic
spooling_lib            libspoolc
spooling_params         {common};{qmaster_spool}
binary_path             /usr/sbin
qmaster_spool_dir       {qmaster_spool}
security_mode           none
listener_threads        2
worker_threads          2
scheduler_threads       1
"""

PARALLEL_ENVIRONMENT = """pe_name            smp
slots              999
user_lists         NONE
xuser_lists        NONE
start_proc_args    NONE
stop_proc_args     NONE
allocation_rule    $pe_slots
control_slaves     FALSE
job_is_first_task  TRUE
urgency_slots      min
accounting_summary FALSE
qsort_args         NONE
"""

EXEC_HOST = """hostname              {host}
load_scaling          NONE
complex_values        NONE
user_lists            NONE
xuser_lists           NONE
projects              NONE
xprojects             NONE
usage_scaling         NONE
report_variables      NONE
"""

# Global configuration entries changed from Debian's default-configuration.
GLOBAL_CONFIG = {
    "min_uid": "0",  # the tests run as root, as CI does
    "min_gid": "0",
    "load_report_time": "00:00:05",
    "administrator_mail": "none",
    "mailer": "/bin/true",
    "loglevel": "log_info",
}
# Scheduler configuration entries changed from the built-in default (a 15 s scheduling interval).
SCHEDULER_CONFIG = {"schedule_interval": "0:0:1", "flush_submit_sec": "1", "flush_finish_sec": "1"}
# Queue attributes changed from qconf's template.
QUEUE_CONFIG = {"qname": QUEUE, "load_thresholds": "NONE", "pe_list": "smp", "qtype": "BATCH",
                "shell": "/bin/sh", "tmpdir": "/tmp"}


@dataclass
class SgeCell:
    """A running one-host cell; ``env`` is the environment its client commands need."""

    root: Path
    host: str
    env: dict[str, str]
    privilege: list[str] = field(default_factory=list)  # ["sudo", "-n"] when the daemons run as root via sudo
    started: list[psutil.Process] = field(default_factory=list)  # the daemons, once up
    names: list[str] = field(default_factory=list)  # their program names, for messages

    @property
    def common(self) -> Path:
        return self.root / CELL / "common"

    @property
    def qmaster_spool(self) -> Path:
        return self.root / "spool" / "qmaster"

    @property
    def execd_spool(self) -> Path:
        return self.root / "spool" / "execd"

    def run(self, *argv: str, timeout: float = 30, check: bool = False) -> subprocess.CompletedProcess:
        done = subprocess.run(list(argv), env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed with exit code {done.returncode}: "
                               f"{(done.stderr or done.stdout).strip()}\n{self.logs()}")
        return done

    def job_ids(self) -> list[str]:
        """Every job of any user the cell still holds (pending, running or being deleted)."""
        return list(self.job_states())

    def job_states(self) -> dict[str, tuple[str, str]]:
        """job id -> (name, state) as ``qstat`` shows them (``qw``, ``r``, ``dr``...).

        Read from ``qstat -xml``: its table cuts names to ten characters.
        """
        out = self.run("qstat", "-u", "*", "-xml").stdout
        return {job.findtext("JB_job_number", ""): (job.findtext("JB_name", ""), job.findtext("state", ""))
                for job in ElementTree.fromstring(out).iter("job_list")}

    def pid_files(self) -> list[Path]:
        """The execd's pid file (its spool dir is named as the execd resolves its host), then the qmaster's."""
        return [*sorted(self.execd_spool.glob("*/execd.pid")), self.qmaster_spool / "qmaster.pid"]

    def daemon_pids(self) -> list[int]:
        return [p.pid for p in self.started]

    def logs(self) -> str:
        """The tails of the daemons' message files, for failure messages."""
        texts = []
        for path in [self.qmaster_spool / "messages", *sorted(self.execd_spool.glob("*/messages"))]:
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-15:]
                texts.append(f"--- {path.relative_to(self.root)}\n" + "\n".join(tail))
        return "\n".join(texts)


def host_names() -> tuple[str, list[str]]:
    """This host's name as the cell knows it, and every other name its addresses resolve to.

    Grid Engine compares the name a client says it has with the name its address resolves to, and
    refuses the client when they differ ("access denied (client IP resolved to host name
    "localhost". This is not identical to clients host name "vm")"): on a machine whose
    /etc/hosts maps both ``localhost`` and the host name to 127.0.0.1, they always differ. The
    cell's ``host_aliases`` file makes all these names one host.

    Raises:
        RuntimeError: the host name does not resolve at all (Grid Engine cannot run then).
    """
    host = socket.gethostname()
    try:
        canonical, aliases, addresses = socket.gethostbyname_ex(host)
    except OSError as err:
        raise RuntimeError(f"this host's name {host!r} does not resolve ({err}): Grid Engine needs it "
                           "to (add it to /etc/hosts)") from err
    names = {canonical, *aliases, "localhost"}
    for address in {*addresses, "127.0.0.1"}:
        try:
            name, more, _ = socket.gethostbyaddr(address)
            names.update([name, *more])
        except OSError:
            continue
    names.discard(host)
    return host, sorted(names)


def _link_arch_dirs(root: Path) -> None:
    """SGE_ROOT needs Debian's bin/, lib/, util/ and utilbin/ (they hold arch-specific links)."""
    for name in ("bin", "lib", "util", "utilbin"):
        target = DEBIAN_SGE_ROOT / name
        if target.exists():
            (root / name).symlink_to(target)


def _spool_cell(cell: SgeCell, names: list[str]) -> None:
    """Write the cell's common files and spool its defaults, as Debian's init_cluster does."""
    cell.common.mkdir(parents=True)
    cell.qmaster_spool.mkdir(parents=True)
    cell.execd_spool.mkdir(parents=True)
    (cell.common / "bootstrap").write_text(BOOTSTRAP.format(common=cell.common, qmaster_spool=cell.qmaster_spool))
    (cell.common / "act_qmaster").write_text(cell.host + "\n")
    (cell.common / "host_aliases").write_text(" ".join([cell.host, *names]) + "\n")
    config = {**GLOBAL_CONFIG, "execd_spool_dir": str(cell.execd_spool)}
    (cell.root / "global_configuration").write_text(
        _with_values((SGE_SHARE / "default-configuration").read_text(), config))
    spool = str(SGE_LIBEXEC / "spooldefaults")
    cell.run(str(SGE_LIBEXEC / "spoolinit"), "classic", "libspoolc", f"{cell.common};{cell.qmaster_spool}", "init",
             check=True)
    cell.run(spool, "configuration", str(cell.root / "global_configuration"), check=True)
    cell.run(spool, "complexes", str(SGE_SHARE / "util" / "resources" / "centry"), check=True)
    cell.run(spool, "usersets", str(SGE_SHARE / "util" / "resources" / "usersets"), check=True)
    cell.run(spool, "managers", *sorted({"root", getpass.getuser()}), check=True)


def _with_values(text: str, values: dict[str, str]) -> str:
    """A ``name value`` configuration text with ``values`` replaced or added."""
    lines, seen = [], set()
    for line in text.splitlines():
        name = line.split()[0] if line.split() and not line.startswith("#") else None
        if name in values:
            lines.append(f"{name} {values[name]}")
            seen.add(name)
        else:
            lines.append(line)
    lines += [f"{name} {value}" for name, value in values.items() if name not in seen]
    return "\n".join(lines) + "\n"


def _start_daemon(cell: SgeCell, program: Path) -> None:
    """Start a daemon as root (it forks into the background); sudo passes no environment, so env does."""
    variables = [f"{name}={cell.env[name]}" for name in ("SGE_ROOT", "SGE_CELL", "SGE_QMASTER_PORT",
                                                         "SGE_EXECD_PORT")]
    done = subprocess.run([*cell.privilege, "env", *variables, str(program)], capture_output=True, text=True,
                          timeout=60, cwd=cell.root)
    if done.returncode != 0:
        raise RuntimeError(f"{program} failed with exit code {done.returncode}: "
                           f"{(done.stderr or done.stdout).strip()}\n{cell.logs()}")


def _configure_queue(cell: SgeCell) -> None:
    """Admin, submit and execution host; the ``smp`` PE; ``all.q`` on this host; a 1 s scheduler."""
    for option in ("-ah", "-as"):
        done = cell.run("qconf", option, cell.host)
        if done.returncode != 0 and "already" not in done.stderr + done.stdout:
            raise RuntimeError(f"qconf {option} {cell.host} failed: {(done.stderr or done.stdout).strip()}")
    _add_from_file(cell, "-Ap", "pe_smp", PARALLEL_ENVIRONMENT)
    _add_from_file(cell, "-Ae", "exec_host", EXEC_HOST.format(host=cell.host))
    template = cell.run("qconf", "-sq", check=True).stdout
    slots = str(max(4, os.cpu_count() or 1))
    queue = _with_values(template, {**QUEUE_CONFIG, "hostlist": cell.host, "slots": slots})
    _add_from_file(cell, "-Aq", "queue", queue)
    scheduler = _with_values(cell.run("qconf", "-ssconf", check=True).stdout, SCHEDULER_CONFIG)
    _add_from_file(cell, "-Msconf", "scheduler", scheduler)


def _add_from_file(cell: SgeCell, option: str, name: str, text: str) -> None:
    path = cell.root / f"{name}.conf"
    path.write_text(text)
    cell.run("qconf", option, str(path), check=True)


def _queue_ready(cell: SgeCell) -> bool:
    """The queue instance on this host is known and reported by its execd (no state flags left)."""
    out = cell.run("qstat", "-f", "-q", QUEUE).stdout
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] == f"{QUEUE}@{cell.host}":
            return len(parts) == 5  # queuename qtype slots load arch: a sixth column holds states (u, a, E...)
    return False


def _record_daemons(cell: SgeCell) -> None:
    for pid_file in cell.pid_files():
        try:
            daemon = psutil.Process(int(pid_file.read_text().strip()))
            cell.names.append(daemon.name())
            cell.started.append(daemon)
        except (OSError, ValueError, psutil.NoSuchProcess):
            continue


def start_sge_cell(root: Path) -> SgeCell:
    """Spool a cell under ``root``, start its qmaster and execd; return once the queue takes jobs.

    Raises:
        RuntimeError: a daemon did not come up (with the tails of the daemons' messages).
    """
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)  # the jobs (the submitting user) read their spooled scripts below it
    host, names = host_names()
    env = {**os.environ, "SGE_ROOT": str(root), "SGE_CELL": CELL, "SGE_QMASTER_PORT": str(free_port()),
           "SGE_EXECD_PORT": str(free_port())}
    cell = SgeCell(root=root, host=host, env=env, privilege=privilege_prefix())
    _link_arch_dirs(root)
    _spool_cell(cell, names)
    try:
        _start_daemon(cell, QMASTER)
        wait_for(lambda: cell.run("qconf", "-sh").returncode == 0, 60, "sge_qmaster to answer", cell.logs)
        _configure_queue(cell)
        _start_daemon(cell, EXECD)
        wait_for(lambda: _queue_ready(cell), 60, f"the queue {QUEUE}@{host} to be reported by sge_execd",
                 cell.logs)
    except (RuntimeError, subprocess.SubprocessError):
        _record_daemons(cell)
        stop_sge_cell(cell)
        raise
    _record_daemons(cell)
    return cell


def stop_sge_cell(cell: SgeCell) -> list[str]:
    """Delete every job, stop sge_execd and sge_qmaster, kill the jobs' leftovers; return what needed force.

    Jobs go first, while the execd can still end them; the execd's descendants (shepherds and the
    jobs they run) are noted before it stops, because a stopping execd leaves running jobs alone.
    """
    problems = []
    if not cell.started:
        _record_daemons(cell)
    problems += remove_jobs(cell.job_ids, lambda left: cell.run("qdel", "-f", *left), "qstat", cell.logs)
    leftovers = []
    for daemon in cell.started:
        try:
            leftovers += daemon.children(recursive=True)
        except psutil.NoSuchProcess:
            continue
    # execd first (it runs the jobs), then the qmaster.
    for daemon, name in zip(cell.started, cell.names, strict=True):
        problems += stop_daemon(cell.privilege, daemon.pid, name, grace=30)
    for process in leftovers:
        if process_alive(process.pid):
            problems.append(f"{' '.join(process.cmdline())} (pid {process.pid}) outlived the cell; killed")
            signal_process(cell.privilege, process.pid, signal.SIGKILL)
    return problems
