"""The layering rule of docs/design.md, "What each part may import", holds for every import in the code.

The table (layer, part, module prefixes) and the exceptions are read from docs/design.md itself, so
the page and the code cannot drift apart. Imports are found with ``ast``: ``import``, ``from ...
import`` (relative ones resolved), anywhere in a module, and ``importlib.import_module("literal")``.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from tests.support import REPO

DESIGN = REPO / "docs" / "design.md"
PACKAGES = ("coffea_wq", "envtools")
SECTION = "## 2. What each part may import"
ROW = re.compile(r"^\|\s*(\d+)\s*\|\s*([\w ]+?)\s*\|(.*)\|\s*$")
EXCEPTION = re.compile(r"^- `([\w.]+)` imports `([\w.]+)`")


@dataclass(frozen=True)
class Part:
    name: str
    layer: int
    prefixes: tuple[str, ...]


def read_rule(text: str) -> tuple[list[Part], set[tuple[str, str]]]:
    """The parts and the allowed exceptions ``(importer, imported)`` stated in design.md's section 2."""
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    parts = [
        Part(match[2], int(match[1]), tuple(re.findall(r"`([\w.]+)`", match[3])))
        for match in (ROW.match(line) for line in section.splitlines()) if match
    ]
    exceptions = {(m[1], m[2]) for m in (EXCEPTION.match(line) for line in section.splitlines()) if m}
    return parts, exceptions


def module_name(root: Path, path: Path) -> str:
    relative = path.relative_to(root).with_suffix("")
    names = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(names)


def imported_modules(path: Path, module: str, known: set[str], packages: tuple[str, ...]) -> set[str]:
    """What the file ``path`` (module ``module``) imports from ``packages``: a module of ``known``, or
    for a name that is not a module (``from pkg.mod import function``), the module it comes from."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in known else base)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.add(node.args[0].value)
    return {name for name in found if name.split(".")[0] in packages}


def part_of(module: str, parts: list[Part]) -> Part | None:
    matches = [(len(prefix), part) for part in parts for prefix in part.prefixes
               if module == prefix or module.startswith(prefix + ".")]
    return max(matches, key=lambda match: match[0])[1] if matches else None


def all_modules(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    return {module_name(root, path): path for package in packages for path in sorted((root / package).rglob("*.py"))}


def layer_problems(root: Path, text: str, packages: tuple[str, ...] = PACKAGES) -> list[str]:
    parts, exceptions = read_rule(text)
    modules = all_modules(root, packages)
    problems = []
    # a package split into parts (coffea_wq) names each of its subpackages and modules in the table, so
    # that a new one cannot fall silently into the part of the package itself
    prefixes = {prefix for part in parts for prefix in part.prefixes}
    split = {prefix.split(".")[0] for prefix in prefixes if "." in prefix}
    for name in modules:
        top = ".".join(name.split(".")[:2])
        if name.split(".")[0] in split and "." in top and top not in prefixes and not top.endswith(".__main__"):
            problems.append(f"{top} is in no part of the table")
            prefixes.add(top)
    used = set()
    for name, path in modules.items():
        importer = part_of(name, parts)
        for target in sorted(imported_modules(path, name, set(modules), packages)):
            imported = part_of(target, parts)
            if importer is None or imported is None or imported is importer:
                continue
            if imported.layer < importer.layer:
                continue
            if (name, target) in exceptions:
                used.add((name, target))
                continue
            problems.append(f"{name} (layer {importer.layer}, {importer.name}) imports {target} "
                            f"(layer {imported.layer}, {imported.name})")
    problems += [f"exception no longer needed: {a} imports {b}" for a, b in sorted(exceptions - used)]
    return problems


SAMPLE_RULE = """
## 2. What each part may import

| layer | part | modules |
|---|---|---|
| 0 | protocol | `pkg.protocol` |
| 1 | manager | `pkg.manager` |
| 1 | worker | `pkg.worker` |
| 2 | cli | `pkg.cli`, `pkg` |

- `pkg.worker.main` imports `pkg.manager.tls`: a reason
- `pkg.cli.old` imports `pkg.cli.gone`: stale

## 3. Next
"""


def test_the_checker_finds_upward_and_sideways_imports_and_stale_exceptions(tmp_path):
    files = {
        "pkg/__init__.py": "",
        "pkg/protocol/__init__.py": "",
        "pkg/protocol/framing.py": "def f():\n    from pkg.manager import core\n",  # upward, inside a function
        "pkg/manager/__init__.py": "",
        "pkg/manager/core.py": "from ..protocol import framing\nfrom . import tls\n",  # down and own part: fine
        "pkg/manager/tls.py": "",
        "pkg/worker/__init__.py": "",
        "pkg/worker/main.py": "from pkg.manager.tls import x\n",  # sideways, but listed
        "pkg/worker/session.py": "import importlib\nimportlib.import_module('pkg.manager.core')\n",  # sideways
        "pkg/cli/__init__.py": "from pkg.worker import main\n",
        "pkg/extra.py": "",  # not in the table
    }
    for name, source in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(source)
    assert layer_problems(tmp_path, SAMPLE_RULE, ("pkg",)) == [
        "pkg.extra is in no part of the table",
        "pkg.protocol.framing (layer 0, protocol) imports pkg.manager.core (layer 1, manager)",
        "pkg.worker.session (layer 1, worker) imports pkg.manager.core (layer 1, manager)",
        "exception no longer needed: pkg.cli.old imports pkg.cli.gone",
    ]


def test_the_code_follows_the_layers_of_design_md():
    text = DESIGN.read_text()
    parts, _ = read_rule(text)
    assert {part.name for part in parts} >= {"protocol", "manager", "worker", "work_queue", "executor", "cli"}
    assert layer_problems(REPO, text) == []
