"""A test that needs a missing Debian package skips outside ``make test`` and fails under it (which
installs every one of them), so no interoperability test passes unrun in CI."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.support import REPO, makefile_system_packages, not_installed

NEEDS_A_MISSING_TOOL = '''
from tests.support import needs_system, skip_not_installed


@needs_system(True, "a-missing-tool", "coop-computing-tools")
def test_marked():
    pass


def test_found_missing_inside():
    skip_not_installed("a-missing-tool", "coop-computing-tools")


@needs_system(False, "a-present-tool", "coop-computing-tools")
def test_present():
    pass
'''


def run_pytest(tmp_path, require: bool) -> str:
    (tmp_path / "test_needs.py").write_text(NEEDS_A_MISSING_TOOL)
    # CI and BUILD_NUMBER make pytest print untruncated summaries, which repeats the messages counted below
    dropped = {"COFFEA_WQ_REQUIRE_SYSTEM_PACKAGES", "CI", "BUILD_NUMBER"}
    env = {key: value for key, value in os.environ.items() if key not in dropped}
    env["PYTHONPATH"] = str(REPO)
    if require:
        env["COFFEA_WQ_REQUIRE_SYSTEM_PACKAGES"] = "1"
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "-p",
                             "tests.conftest", "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path)],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    return result.stdout + result.stderr


def test_outside_make_test_a_missing_package_skips_with_its_name(tmp_path):
    out = run_pytest(tmp_path, require=False)
    assert re.search(r"\b1 passed, 2 skipped\b", out), out
    assert out.count("a-missing-tool is not installed (Debian's coop-computing-tools: make test installs it)") == 2


def test_under_make_test_a_missing_package_fails(tmp_path):
    out = run_pytest(tmp_path, require=True)
    # the mark fails the test at set-up (an error, before any fixture starts daemons), the call inside it
    assert re.search(r"\b1 failed, 1 passed\b.* 1 error\b", out), out
    assert out.count("make test should have set this up: a-missing-tool is not installed") == 2, out


def test_a_skip_must_name_a_package_that_make_test_installs():
    assert {"coop-computing-tools", "python3-workqueue", "slurm-wlm", "chromium"} <= makefile_system_packages()
    with pytest.raises(ValueError, match="'cctools-from-source' is not in the Makefile's SYSTEM_PACKAGES"):
        not_installed("work_queue_worker", "cctools-from-source")


def test_make_test_requires_the_packages_and_test_fast_does_not():
    recipes = (REPO / "Makefile").read_text().split("\ntest-fast:")
    assert "COFFEA_WQ_REQUIRE_SYSTEM_PACKAGES=1 $(PY) -m pytest" in recipes[0].split("\ntest:")[1]
    assert "COFFEA_WQ_REQUIRE_SYSTEM_PACKAGES" not in recipes[1].split("\n\n")[0]
