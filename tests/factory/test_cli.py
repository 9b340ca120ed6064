"""`coffea-wq factory` and `coffea-wq submit-workers` command lines: errors a user meets first."""

from __future__ import annotations

import subprocess

from tests.support import coffea_wq_command


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(coffea_wq_command(*args), capture_output=True, text=True, timeout=60)


def test_factory_without_a_manager_is_refused_with_a_hint(tmp_path):
    done = run("factory", "-T", "local", "-S", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip() == ("coffea-wq factory: no manager: give a manager name (-M NAME) "
                                   "or a manager HOST PORT")


def test_factory_with_a_broken_config_file_at_start_names_the_file_and_line(tmp_path):
    config = tmp_path / "fac.json"
    config.write_text('{\n  "max-workers": 3,\n  "min-workers" 1\n}\n')
    done = run("factory", "-T", "local", "-M", "x", "-C", str(config), "-S", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip().startswith(f"coffea-wq factory: {config}: not valid JSON (line 3, column 17")


def test_factory_manager_address_must_be_host_and_port(tmp_path):
    done = run("factory", "-T", "local", "somehost", "-S", str(tmp_path))
    assert done.returncode == 2
    assert "expected the manager as HOST PORT, got 'somehost'" in done.stderr


def test_unknown_batch_type_is_refused_by_the_parser(tmp_path):
    done = run("factory", "-T", "pbs", "-M", "x")
    assert done.returncode == 2
    assert "invalid choice: 'pbs'" in done.stderr


def test_debug_file_records_the_decisions_of_each_cycle(tmp_path):
    import signal
    import time

    from tests.support import free_port

    debug = tmp_path / "factory.debug"
    proc = subprocess.Popen(coffea_wq_command("factory", "-T", "local", "127.0.0.1", str(free_port()), "-w", "0",
                                              "-S", str(tmp_path), "--cycle-interval", "0.2", "-d", "all", "-o",
                                              str(debug)), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "cannot read the status" not in (
                debug.read_text() if debug.exists() else ""):
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "cannot read the status of the manager: manager 127.0.0.1:" in debug.read_text()
    assert "cannot read the status" not in err  # it went to the file, not to stderr
    assert "received abort signal, shutting down workers..." in out.splitlines()
    assert out.splitlines()[-2:] == ["removing 0 workers...", "all workers removed."]
