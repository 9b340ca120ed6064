"""What the factory submits: worker commands, HTCondor and SGE submissions, scratch dirs, environments."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

import pytest

from coffea_wq.factory.backends import BatchError, make_backend
from coffea_wq.factory.backends.condor import condor_submit_description
from coffea_wq.factory.backends.sge import sge_job_script
from coffea_wq.factory.backends.slurm import sbatch_argv
from coffea_wq.factory.config import ConfigError, FactoryConfig
from coffea_wq.factory.worker_command import (
    build_worker_argv,
    prepare_scratch_dir,
    worker_options,
    worker_resources,
)
from tests.factory.helpers import CCToolsManager
from tests.support import REPO, coffea_wq_command, requires_cctools, requires_cctools_python

CONFIG = FactoryConfig(batch_type="condor", manager_name="my-analysis", cores=4, memory=8000, disk=12000,
                       timeout=450, python="/opt/py/bin/python3")


def test_worker_command_carries_manager_lifetime_size_and_password(tmp_path):
    password = tmp_path / "secret"
    password.write_text("s3cret\n")
    scratch = prepare_scratch_dir(tmp_path / "scratch")
    config = FactoryConfig(manager_host="head.example.org", manager_port=9123, catalog="cat:9097", timeout=60,
                           cores=2, memory=1000, disk=2000, gpus=1, password=password,
                           extra_options=("--single-shot",))
    argv = build_worker_argv(config, scratch)
    # The worker's Python goes first on its PATH (tasks run `python3`), expanded on the node.
    assert argv[:5] == ["/bin/sh", "-c", 'PATH="$0:$PATH" exec "$@"', os.path.dirname(sys.executable), sys.executable]
    assert argv[5:10] == ["-m", "coffea_wq", "worker", "head.example.org", "9123"]
    assert argv[10:] == ["--catalog", "cat:9097", "-t", "60", "--cores", "2", "--memory", "1000", "--disk", "2000",
                        "--gpus", "1", "-P", str(scratch / "pwfile"), "--single-shot"]
    # The password travels as a private copy in the scratch directory, which worker nodes see.
    assert (scratch / "pwfile").read_text() == "s3cret\n"
    assert stat.S_IMODE((scratch / "pwfile").stat().st_mode) == 0o600


def test_condor_submit_description_contains_the_request_timeout_and_manager(tmp_path):
    argv = build_worker_argv(CONFIG, tmp_path)
    text = condor_submit_description(3, argv, worker_resources(CONFIG), tmp_path)
    lines = text.splitlines()
    assert "request_cpus = 4" in lines
    assert "request_memory = 8000" in lines  # MB, HTCondor's unit for memory
    assert "request_disk = 12288000" in lines  # KiB, HTCondor's unit for disk
    assert "executable = /bin/sh" in lines
    assert ("arguments = \"-c 'PATH=\"\"$0:$PATH\"\" exec \"\"$@\"\"' /opt/py/bin /opt/py/bin/python3 -m coffea_wq worker "
            "-M my-analysis -t 450 --cores 4 --memory 8000 --disk 12000\"") in lines
    assert f"initialdir = {tmp_path}" in lines
    assert lines[-1] == "queue 3"


def test_condor_arguments_quote_spaces_and_quotes():
    config = FactoryConfig(manager_name="ana lysis", extra_options=('--feature=it"s',))
    text = condor_submit_description(1, ["/bin/w", *worker_options(config)], worker_resources(config), Path("/tmp"))
    assert "arguments = \"-M 'ana lysis' -t 300 --feature=it\"\"s\"" in text


def test_sge_job_script_contains_the_request_timeout_and_manager(tmp_path):
    config = FactoryConfig(batch_type="sge", manager_host="10.0.0.5", manager_port=9123, cores=2, memory=4000,
                           disk=6000, timeout=120, python="/usr/bin/python3")
    script = sge_job_script(build_worker_argv(config, tmp_path), worker_resources(config), tmp_path,
                            batch_options="-q long.q")
    lines = script.splitlines()
    assert lines[0] == "#!/bin/sh"
    for directive in ("#$ -pe smp 2", "#$ -l h_vmem=4000M", "#$ -l h_fsize=6000M", f"#$ -wd {tmp_path}",
                      "#$ -q long.q"):
        assert directive in lines
    assert lines[-1] == ("exec /bin/sh -c 'PATH=\"$0:$PATH\" exec \"$@\"' /usr/bin /usr/bin/python3 -m coffea_wq worker "
                         "10.0.0.5 9123 -t 120 --cores 2 --memory 4000 --disk 6000")


def test_sbatch_command_requests_the_worker_size():
    argv = sbatch_argv(["w", "-M", "ana"], worker_resources(CONFIG), Path("/shared/s"), "--partition=short")
    for option in ("--cpus-per-task=4", "--mem=8000M", "--tmp=12000M", "--chdir=/shared/s", "--partition=short",
                   "--job-name=coffea-wq-worker"):
        assert option in argv


@pytest.mark.parametrize(("batch_type", "command"), [("condor", "condor_submit"), ("sge", "qsub")])
def test_missing_batch_system_gives_a_clear_error(tmp_path, monkeypatch, batch_type, command):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # as on a machine without it (make test installs qsub)
    backend = make_backend(batch_type, tmp_path)
    with pytest.raises(BatchError, match=f"^{command} not found: .* does not seem to be installed"):
        backend.submit(1, ["/bin/true"], worker_resources(CONFIG))


def test_scratch_dir_is_created_and_must_be_writable(tmp_path):
    assert prepare_scratch_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="exists but is not a directory"):
        prepare_scratch_dir(tmp_path / "file")
    with pytest.raises(ConfigError, match="cannot create the scratch directory"):
        prepare_scratch_dir(tmp_path / "file" / "below")
    if os.getuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(ConfigError, match="not writable"):
            prepare_scratch_dir(locked)


def test_factory_cli_reports_a_bad_scratch_dir_without_a_traceback(tmp_path):
    (tmp_path / "file").write_text("x")
    done = subprocess.run(coffea_wq_command("factory", "-T", "local", "-M", "x", "-S", str(tmp_path / "file")),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == f"coffea-wq factory: scratch directory {tmp_path / 'file'} exists but is not a directory"


def test_missing_python_env_is_reported(tmp_path):
    config = FactoryConfig(manager_name="x", python_env=tmp_path / "nope.tar.gz")
    with pytest.raises(ConfigError, match="python environment .*nope.tar.gz does not exist"):
        build_worker_argv(config, tmp_path)


def _small_packed_env(tmp_path: Path) -> Path:
    """A real venv (``python -m venv``) that imports coffea_wq from this checkout, packed as a tarball."""
    env = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=120)
    site = env / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    # This checkout and the project venv's packages (coffea_wq's dependencies) on the path.
    (site / "coffea_wq_checkout.pth").write_text(f"{REPO}\n{sysconfig.get_paths()['purelib']}\n")
    tarball = tmp_path / "env_test.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        for item in sorted(env.iterdir()):
            tar.add(item, arcname=item.name)
    shutil.rmtree(env)
    return tarball


@requires_cctools
@requires_cctools_python
@pytest.mark.slow
def test_submit_workers_from_a_packed_environment_serves_a_real_manager(processes, tmp_path):
    tarball = _small_packed_env(tmp_path)
    manager = CCToolsManager(processes, "fac-env")
    manager.submit(2, 0)
    envs = tmp_path / "node-local-envs"
    done = subprocess.run(
        coffea_wq_command("submit-workers", "-T", "local", "127.0.0.1", str(manager.port), "--python-env",
                          str(tarball), "-S", str(tmp_path / "scratch"), "--cores", "1", "-t", "10", "1"),
        capture_output=True, text=True, timeout=60, env={**os.environ, "COFFEA_WQ_ENVS_DIR": str(envs)})
    assert done.returncode == 0, done.stderr
    (pid,) = [int(line) for line in done.stdout.split()]
    try:
        manager.output.wait_for(lambda s: manager.done_count() == 2, 90, "the tasks to run on the env worker")
        # The worker ran from the unpacked environment, not from this interpreter.
        unpacked = [p for p in envs.iterdir() if p.name.startswith("env_test-")]
        assert len(unpacked) == 1 and (unpacked[0] / ".coffea-wq-ready").exists()
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert f"VIRTUAL_ENV={unpacked[0]}".encode() in environ
    finally:
        try:
            os.killpg(pid, 15)
        except ProcessLookupError:
            pass


def test_submit_workers_rejects_a_bad_count(tmp_path):
    done = subprocess.run(coffea_wq_command("submit-workers", "-T", "local", "-M", "x", "-S", str(tmp_path),
                                            "many"), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "the number of workers must be a whole number, not 'many'" in done.stderr


def test_big_and_fractional_sizes_are_written_as_plain_numbers(tmp_path):
    config = FactoryConfig(manager_name="x", cores=1.5, memory=1_500_000, disk=20_000_000)
    argv = build_worker_argv(config, tmp_path)
    assert argv[-6:] == ["--cores", "1.5", "--memory", "1500000", "--disk", "20000000"]
