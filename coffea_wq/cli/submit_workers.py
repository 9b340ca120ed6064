"""`coffea-wq submit-workers`: submit N workers to a batch system once (like condor_submit_workers).

    coffea-wq submit-workers -T slurm -M my-analysis --cores 4 --memory 8000 --disk 10000 10
    coffea-wq submit-workers -T local 127.0.0.1 9123 2

Unlike the factory it does not watch the workers: they run until their idle timeout (``-t``).
It prints one job id per line.
"""

from __future__ import annotations

import argparse
import sys

from coffea_wq.cli.factory import add_worker_options, manager_address, settings_from_args
from coffea_wq.factory.backends import BatchError
from coffea_wq.factory.config import ConfigError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.usage = "%(prog)s -T TYPE [options] (HOST PORT | -M NAME) N"
    parser.add_argument("positional", nargs="+", metavar="[HOST PORT] N",
                        help="the manager's host and port (or use -M NAME), then the number of workers")
    add_worker_options(parser)
    # The manager's HOST PORT may come before and the count after the options (as in CCTools'
    # submit scripts); plain parse_args would take only the first run of positionals.
    parser.parse_args = parser.parse_intermixed_args  # type: ignore[method-assign]


def run(args: argparse.Namespace) -> int:
    from coffea_wq.factory.backends import make_backend
    from coffea_wq.factory.config import FactoryConfig
    from coffea_wq.factory.worker_command import build_worker_argv, prepare_scratch_dir, worker_resources

    *manager, count_text = args.positional
    try:
        if not count_text.isdigit():
            raise ConfigError(f"the number of workers must be a whole number, not {count_text!r}")
        args.manager = manager
        settings = settings_from_args(args)
        settings.update(manager_address(manager))
        count = int(count_text)
        # One submission: no pool limits apply, so min/max are set to the count.
        config = FactoryConfig(**{**settings, "min_workers": count, "max_workers": count})
        scratch = prepare_scratch_dir(config.scratch_dir)
        backend = make_backend(config.batch_type, scratch, config.batch_options)
        job_ids = backend.submit(count, build_worker_argv(config, scratch), worker_resources(config))
    except (ConfigError, BatchError) as err:
        print(f"coffea-wq submit-workers: {err}", file=sys.stderr)
        return 2 if isinstance(err, ConfigError) else 1
    for job_id in job_ids:
        print(job_id)
    return 0
