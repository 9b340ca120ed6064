"""README's Layout table matches the tree: every path it lists exists, every part of coffea_wq is listed.

A part is a package directly under ``coffea_wq/`` (``coffea_wq/manager/``) or a module there
(``coffea_wq/NAME.py``); ``__init__.py`` and ``__main__.py`` are the package itself. The table's
first column holds the paths, each in backticks; several paths may share a row.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.support import REPO

BACKTICKED = re.compile(r"`([^`]+)`")


def layout_paths(readme: str) -> list[str]:
    """The paths in the first column of the table under ``## Layout``."""
    section = readme.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")][2:]  # after header and ---
    return [path for row in rows for path in BACKTICKED.findall(row.split("|")[1])]


def package_parts(root: Path) -> set[str]:
    """``coffea_wq/NAME/`` for each subpackage and ``coffea_wq/NAME.py`` for each module of the package."""
    package = root / "coffea_wq"
    parts = {f"coffea_wq/{d.name}/" for d in package.iterdir() if (d / "__init__.py").is_file()}
    parts |= {f"coffea_wq/{f.name}" for f in package.glob("*.py") if f.name not in ("__init__.py", "__main__.py")}
    return parts


def layout_problems(root: Path, readme: str) -> list[str]:
    paths = layout_paths(readme)
    problems = [f"listed but missing: {path}" for path in paths if not (root / path).exists()]
    listed = {path if path.endswith((".py", "/")) else path + "/" for path in paths}
    problems += [f"not listed: {part}" for part in sorted(package_parts(root) - listed)]
    return problems


def test_the_checker_sees_a_missing_path_and_an_unlisted_part(tmp_path):
    for name in ("coffea_wq/manager", "coffea_wq/worker", "envtools"):
        (tmp_path / name).mkdir(parents=True)
    for name in ("coffea_wq/__init__.py", "coffea_wq/manager/__init__.py", "coffea_wq/worker/__init__.py",
                 "coffea_wq/compat.py"):
        (tmp_path / name).write_text("")
    table = "# x\n\n## Layout\n\n| path | what |\n|---|---|\n{rows}\n\n## Development\n\n| `no/` | x |\n"
    good = "| `coffea_wq/manager/`, `coffea_wq/worker/` | parts |\n| `coffea_wq/compat.py` | m |\n| `envtools/` | e |"
    assert layout_paths(table.format(rows=good)) == [
        "coffea_wq/manager/", "coffea_wq/worker/", "coffea_wq/compat.py", "envtools/"
    ]
    assert layout_problems(tmp_path, table.format(rows=good)) == []
    bad = "| `coffea_wq/manager/`, `coffea_wq/dispatch/` | parts |\n| `envtools/` | e |"
    assert layout_problems(tmp_path, table.format(rows=bad)) == [
        "listed but missing: coffea_wq/dispatch/", "not listed: coffea_wq/compat.py", "not listed: coffea_wq/worker/"
    ]


def test_readme_layout_matches_the_tree():
    readme = (REPO / "README.md").read_text()
    assert "coffea_wq/manager/" in layout_paths(readme)
    assert layout_problems(REPO, readme) == []


def section_order(readme: str) -> list[str]:
    return [line[3:].strip() for line in readme.splitlines() if line.startswith("## ")]


def test_the_order_check_sees_performance_before_layout():
    assert section_order("# x\n## Performance\ntext\n## Layout\n") == ["Performance", "Layout"]


def test_readme_shows_the_layout_before_performance_and_keeps_the_history_in_docs():
    readme = (REPO / "README.md").read_text()
    order = section_order(readme)
    assert order.index("Layout") < order.index("Performance")
    performance = readme.split("\n## Performance\n", 1)[1].split("\n## ", 1)[0]
    assert "docs/performance.md" in performance and "make bench" in performance
    assert "History of the e2e figures" not in readme  # the history lives in docs/performance.md
    assert "## History of the e2e figures" in (REPO / "docs" / "performance.md").read_text()
