"""Comments and docs point to docs/ in this repository, never to files outside it, and the sections
they point to exist.

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
# pointers to the project's issues, or to other projects' ("issue 14", "the issue", "coffea#1382"):
# the reader of the code has the code and docs/, not the tracker; say what the issue said instead
ISSUE_POINTER = re.compile(r"\bissues? ?#?\d+\b|\bissue-\d+\b|\bthe issue\b|\b[a-z][\w-]*#\d{2,}\b", re.IGNORECASE)
SCANNED = ("coffea_wq", "envtools", "tests", "benchmarks", "analysis_examples", "docs")
SUFFIXES = {".py", ".md", ".txt", ".cfg", ".toml", ".sh", ".js", ".html", ".css", ".json"}
TOP_LEVEL_FILES = ("README.md", "Makefile", "setup.cfg", "pyproject.toml")
# the bundled data are bytes captured from other programs, not prose of ours
SKIPPED_DIRS = {"data", "__pycache__", ".venv"}


# docs/executor.md, "Soft termination" or docs/manager.md, §12 (also across a wrapped comment line)
SECTION_POINTER = re.compile(r'docs/(\w+)\.md(?:,\s*|\s+)(?:"([^"]{1,100})"|§\s*(\d+\w?)\b)')
WRAP = re.compile(r"\s*\n\s*(?:#+\s|\*\s|//\s)?\s*")


def section_titles(docs: Path, page: str) -> list[str] | None:
    """The titles of the sections of docs/PAGE.md (backticks dropped), or None if there is no such page."""
    path = docs / f"{page}.md"
    if not path.is_file():
        return None
    return [m[1].replace("`", "") for m in re.finditer(r"^#{2,4} (.+)$", path.read_text(), re.MULTILINE)]


def broken_pointers(docs: Path, text: str) -> list[str]:
    """Pointers in ``text`` to a page of ``docs`` or a section of it that does not exist."""
    broken = []
    for match in SECTION_POINTER.finditer(WRAP.sub(" ", text)):
        page, title, number = match[1], match[2], match[3]
        titles = section_titles(docs, page)
        if titles is None:
            broken.append(f"{match[0]}: no page docs/{page}.md")
        elif title is not None:
            wanted = title.replace("`", "").strip()
            if not any(re.sub(r"^\d+\w?\. ", "", t).startswith(wanted) for t in titles):
                broken.append(f"{match[0]}: no such section")
        elif not any(t.startswith(f"{number}. ") for t in titles):
            broken.append(f"{match[0]}: no such section")
    return broken


# a comment names the code, not who wrote it ("the catalog engineer's client")
TEAM_ROLE = re.compile(r"\bengineers?(?:'s|s')?\b", re.IGNORECASE)


def outside_citations(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every line of ``text`` that cites a file outside the repository."""
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1)
            if OUTSIDE_CITATION.search(line) or ISSUE_POINTER.search(line)]


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
        "# (issue 5: one at a time, then the next)",
        "the targets from issue 14",
        "\"\"\"Issue 7 acceptance: the example",
        "auto means max-throughput, as the issue defines it",
        "the model of coffea 0.7 (issue #596)",
        "a known failure (cctools#3851)",
    ):
        assert outside_citations(line) == [(1, line)], line
    for line in ('# (docs/protocol.md, "Framing")', "--python /shared/venv/bin/python", "a pitfall of Slurm",
                 "the issues a user meets", "x = items[#3]", "see docs/executor.md, section 7"):
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


def test_the_pointer_checker_finds_missing_pages_and_sections(tmp_path):
    (tmp_path / "guide.md").write_text("# Guide\n\n## 1. Start here\n\n## 4b. Listening address and `TLS`\n")
    text = (
        '# see docs/guide.md, "Start here" and docs/guide.md, "Listening address\n'
        '# and TLS", docs/guide.md, "Listening", docs/guide.md §4b, docs/guide.md, §1;\n'
        '# but docs/guide.md, "File names", docs/guide.md §7 and docs/other.md, "Start here" are broken'
    )
    assert broken_pointers(tmp_path, text) == [
        'docs/guide.md, "File names": no such section',
        "docs/guide.md §7: no such section",
        'docs/other.md, "Start here": no page docs/other.md',
    ]


def test_every_pointer_to_a_section_of_docs_finds_it():
    files = scanned_files(REPO)
    texts = {str(path.relative_to(REPO)): path.read_text(errors="replace") for path in files}
    assert sum(len(SECTION_POINTER.findall(text)) for text in texts.values()) >= 30  # the syntax still matches
    found = [f"{name}: {problem}" for name, text in texts.items() for problem in broken_pointers(REPO / "docs", text)]
    assert not found, "point to a section that exists (docs/design.md, \"Comments and citations\"):\n" + "\n".join(found)


def test_the_role_checker_finds_team_roles():
    assert [bool(TEAM_ROLE.search(line)) for line in (
        "through the catalog engineer's client", "while engineers work", "Engineers' notes",
        "the engine's state", "reverse-engineered format", "catalog client",
    )] == [True, True, True, False, False, False]


def test_no_file_names_a_team_role():
    found = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in scanned_files(REPO)
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if TEAM_ROLE.search(line)
    ]
    assert not found, "name the code, not the people or roles that wrote it:\n" + "\n".join(found)
