"""Comments and docs point to docs/ in this repository, never to files outside it.

The project's notes on CCTools (the protocol survey and its numbered pitfalls, benchmarks of the
original setup, the CLI survey, the architecture notes) live outside the repository, so a reader of
the code cannot follow a citation to them; everything the code relies on is written in docs/
(docs/design.md, "Comments and citations").
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.support import REPO

# Names of files outside the repository, and the shared folder they live in. "/shared/" alone is not
# one: tests and docs use paths such as /shared/venv as examples of a cluster's shared filesystem.
OUTSIDE_CITATION = re.compile(
    r"wq-protocol\.md|wq-transcripts\.md|baseline\.md|cctools-cli\.md|coffea-wq-survey\.md|"
    r"ARCHITECTURE\.md|STYLE\.md|platform\.md|\bpitfalls? ?#?\d+|shared/research|/work/shared"
)
SCANNED = ("coffea_wq", "envtools", "tests", "benchmarks", "analysis_examples", "docs")
SUFFIXES = {".py", ".md", ".txt", ".cfg", ".toml", ".sh", ".js", ".html", ".css", ".json"}
TOP_LEVEL_FILES = ("README.md", "Makefile", "setup.cfg", "pyproject.toml")
# the bundled data are bytes captured from other programs, not prose of ours
SKIPPED_DIRS = {"data", "__pycache__", ".venv"}


def outside_citations(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every line of ``text`` that cites a file outside the repository."""
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if OUTSIDE_CITATION.search(line)]


def scanned_files(root: Path) -> list[Path]:
    files = [root / name for name in TOP_LEVEL_FILES if (root / name).exists()]
    for top in SCANNED:
        for path in sorted((root / top).rglob("*")):
            relative = path.relative_to(root)
            if path.is_file() and path.suffix in SUFFIXES and not SKIPPED_DIRS & set(relative.parts):
                files.append(path)
    return [path for path in files if path.resolve() != Path(__file__).resolve()]


def test_the_checker_finds_each_kind_of_outside_citation():
    for line in (
        "# see wq-protocol.md §4.5",
        "# (pitfall 11)",
        "a warm slot pays it once (baseline.md)",
        "Steps from shared/research/platform.md §4a",
        "flags as in cctools-cli.md",
        "see /work/shared/STYLE.md",
    ):
        assert outside_citations(line) == [(1, line)], line
    for line in ('# (docs/protocol.md, "Framing")', "--python /shared/venv/bin/python", "a pitfall of Slurm"):
        assert outside_citations(line) == [], line


def test_no_file_cites_a_file_outside_the_repository():
    files = scanned_files(REPO)
    scanned = {str(path.relative_to(REPO)) for path in files}
    assert {"README.md", "coffea_wq/manager/core.py", "docs/executor.md", "tests/support.py"} <= scanned
    found = [
        f"{path.relative_to(REPO)}:{number}: {line}"
        for path in files
        for number, line in outside_citations(path.read_text(errors="replace"))
    ]
    assert not found, "cite docs/ in this repository instead:\n" + "\n".join(found)
