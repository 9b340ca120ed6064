"""The factory's cycle: read the config, read the managers, decide, submit or remove, sleep.

One ``FactoryLoop`` owns one back-end and every job it submitted. ``run()`` repeats
``run_cycle()`` every ``cycle_interval`` seconds until ``stop()``; ``shutdown()`` removes all
the jobs it submitted (the CLI calls it on SIGTERM/SIGINT, ``Factory`` on leaving its ``with``).
A failing batch command or an unreachable manager costs one cycle, never the factory.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coffea_wq.catalog.tables import QUEUE, format_table
from coffea_wq.factory.backends import BatchBackend, BatchError, make_backend
from coffea_wq.factory.config import ConfigError, ConfigFile, FactoryConfig, build_config, settings_of
from coffea_wq.factory.managers import ManagerUnreachable, read_manager_records
from coffea_wq.factory.policy import CyclePlan, plan_cycle
from coffea_wq.factory.worker_command import build_worker_argv, prepare_scratch_dir, worker_resources

log = logging.getLogger(__name__)


def _log_only(message: str) -> None:
    log.info("%s", message)


class FactoryLoop:
    """Keeps a pool of workers for the managers a ``FactoryConfig`` names.

    Args:
        config: the settings (from the command line or the Python API); a dict of
            ``FactoryConfig`` keyword arguments where ``config_file`` completes them (e.g. it
            names the manager).
        config_file: a JSON file whose keys override ``config``; re-read every cycle.
        backend: the batch back-end (default: the one ``config.batch_type`` names).
        echo: where cycle status lines go (the CLI prints them; the API logs them).
        status_reader: reads the manager's ``queue_status`` records in-process (a manager in this
            process, whose port a password or TLS closes to status queries); default: ask its port.

    Raises:
        ConfigError: the first read of ``config_file`` or the scratch directory is bad.

    Example:
        >>> loop = FactoryLoop(FactoryConfig(batch_type="local", manager_name="ana"))  # doctest: +SKIP
        >>> plan = loop.run_cycle()  # doctest: +SKIP
        >>> loop.shutdown()  # doctest: +SKIP
    """

    def __init__(self, config: FactoryConfig | dict[str, Any], config_file: Path | None = None,
                 backend: BatchBackend | None = None, echo: Callable[[str], None] = _log_only,
                 status_reader: Callable[[], list[dict]] | None = None) -> None:
        self._lock = threading.Lock()
        # The back-end is used by the cycling thread and by callers (job_ids, shutdown).
        self._backend_lock = threading.RLock()
        self._base = settings_of(config) if isinstance(config, FactoryConfig) else dict(config)
        self._file = ConfigFile(Path(config_file), self._base) if config_file else None
        first = self._file.load_first() if self._file else build_config(self._base)
        self._current = first
        self.scratch_dir = prepare_scratch_dir(first.scratch_dir)
        self.backend = backend or make_backend(first.batch_type, self.scratch_dir, first.batch_options)
        self.echo = echo
        self.last_plan: CyclePlan | None = None
        self._stop = threading.Event()
        self._last_manager_seen = time.monotonic()
        self._warned_scratch_change = False
        self._last_status_error: str | None = None
        self.status_reader = status_reader

    # -- settings ---------------------------------------------------------------------------------
    def current_config(self) -> FactoryConfig:
        """The settings for this cycle (the file over the base, or the last good ones)."""
        with self._lock:
            if self._file:
                self._current = self._file.current()
            return self._current

    def update(self, **changes: Any) -> FactoryConfig:
        """Change settings while running (from any thread); they apply from the next cycle.

        Raises:
            ConfigError: the changed settings do not validate (nothing is changed then).
        """
        with self._lock:
            base = {**self._base, **changes}
            if self._file:  # the file's keys still override; a bad mix is reported by the file
                self._base = base
                self._file.rebase(base)
                return self._file.current()
            config = build_config(base)  # raises before anything changes
            self._base, self._current = base, config
            return config

    # -- one cycle --------------------------------------------------------------------------------
    def run_cycle(self) -> CyclePlan:
        """Read, decide, act once; return the decision."""
        config = self.current_config()
        records = self._read_managers(config)
        if records:
            self._last_manager_seen = time.monotonic()
        with self._backend_lock:
            alive = self.backend.list()
        plan = plan_cycle(records, len(alive), config)
        self.last_plan = plan
        self.echo(time.strftime("%Y/%m/%d %H:%M:%S: ") + plan.status_line())
        # The managers' table, as CCTools' factory prints it every cycle (work_queue_status -Q).
        self.echo(format_table(QUEUE, records).rstrip("\n") + "\n")
        if self._stop.is_set():  # asked to stop while reading the managers: submit nothing more
            return plan
        if plan.to_remove:
            excess = alive[-plan.to_remove:]
            log.info("more workers (%d) than max-workers (%d): removing %s", len(alive), config.max_workers,
                     ", ".join(excess))
            with self._backend_lock:
                self.backend.remove(excess)
        if plan.to_submit:
            self._submit(config, plan.to_submit)
        return plan

    def _read_managers(self, config: FactoryConfig) -> list[dict]:
        """The managers' records; an unreachable manager is warned about once, then at DEBUG."""
        try:
            records = self.status_reader() if self.status_reader is not None else read_manager_records(config)
        except ManagerUnreachable as err:
            message = str(err)
            log.log(logging.DEBUG if message == self._last_status_error else logging.WARNING,
                    "%s (keeping min-workers; retrying every cycle)", message)
            self._last_status_error = message
            return []
        self._last_status_error = None
        return records

    def _submit(self, config: FactoryConfig, count: int) -> None:
        wanted = Path(config.scratch_dir).expanduser().absolute()
        if wanted != self.scratch_dir and not self._warned_scratch_change:
            log.warning("scratch-dir changes apply only when the factory starts; still using %s", self.scratch_dir)
            self._warned_scratch_change = True
        argv = build_worker_argv(config, self.scratch_dir)
        log.info("submitting %d worker(s): %s", count, " ".join(argv))
        self.echo(f"submitting {count} worker(s)")
        with self._backend_lock:
            self.backend.submit(count, argv, worker_resources(config))

    def alive_jobs(self) -> list[str]:
        """The jobs this factory submitted that are still queued or running."""
        with self._backend_lock:
            return self.backend.list()

    def factory_timed_out(self, config: FactoryConfig) -> bool:
        """No manager seen for ``factory_timeout`` seconds (when set)."""
        limit = config.factory_timeout
        return bool(limit) and time.monotonic() - self._last_manager_seen > float(limit or 0)

    # -- the loop ---------------------------------------------------------------------------------
    def run(self, wait_first: bool = False) -> None:
        """Cycle until ``stop()`` (or the factory timeout); does not remove the workers.

        ``wait_first``: sleep one interval before the first cycle (the caller just ran one).
        """
        if wait_first:
            self._stop.wait(self.current_config().cycle_interval)
        while not self._stop.is_set():
            config = self.current_config()
            try:
                self.run_cycle()
            except (BatchError, ConfigError, OSError) as err:
                log.error("factory cycle failed: %s", err)
                self.echo(f"error: {err}")
            except Exception:  # a bug must not leave the pool unattended: log it, try next cycle
                log.exception("factory cycle failed unexpectedly")
            if self.factory_timed_out(config):
                self.echo(f"no manager seen for {config.factory_timeout:g} s (factory timeout): exiting")
                break
            self._stop.wait(config.cycle_interval)

    def stop(self) -> None:
        """Make ``run()`` return after the current cycle (safe from signal handlers and threads)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def shutdown(self) -> bool:
        """Remove every job this factory submitted that is still alive; False if some could not be."""
        self.stop()
        try:
            with self._backend_lock:
                alive = self.backend.list()
                self.echo(f"removing {len(alive)} workers...")
                self.backend.remove(alive)
        except BatchError as err:
            log.error("could not remove all workers: %s", err)
            self.echo(f"error: could not remove all workers: {err}")
            return False
        self.echo("all workers removed.")
        return True
