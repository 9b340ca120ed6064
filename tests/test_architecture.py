"""The house rules of the layout, checked on the source (docs/design.md):

* no module reads another package's private attribute (the rule is spelled out in
  ``cross_package_private_accesses``);
* no import cycle among coffea_wq's and envtools' modules, counting imports inside functions;
* ``coffea_wq/protocol`` does no I/O: it imports no I/O module, nothing of coffea_wq outside itself,
  and calls no ``open``;
* no Python file over 600 lines.

Each checker is a plain function over source text, so the tests also run it on a known-bad
fixture to prove that it can fail.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKED_PACKAGES = ("coffea_wq", "envtools")
MAX_LINES = 600

# Private names of other libraries that are their documented public API, and the one private
# field of a library we read for want of a public one; each is allowed only where it is listed.
ALLOWED_FOREIGN_PRIVATES = {
    ("coffea_wq/executor/tasks/task_script.py", "os._exit"): "documented: exit without finalisers",
    ("coffea_wq/worker/zygote.py", "os._exit"): "documented: exit without finalisers",
    ("coffea_wq/worker/forked_zygote.py", "os._exit"): "documented: a forked child exits without finalisers",
    ("coffea_wq/worker/main.py", "os._Environ"): "the type of os.environ, in an annotation",
    ("envtools/pack_conda.py", "conda_env._excluded_files"):
        "conda-pack's CondaEnv takes the exclusions back in its constructor and has no public getter",
}

# Modules whose use is I/O (or waits on it): the protocol is bytes in, events out.
IO_MODULES = {"socket", "selectors", "select", "ssl", "subprocess", "threading", "asyncio", "multiprocessing",
              "os", "io", "shutil", "tempfile", "pathlib", "signal", "urllib", "http", "fcntl"}


def python_files(*tops: str) -> list[Path]:
    return sorted(p for top in tops for p in (ROOT / top).rglob("*.py"))


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


# ---------------------------------------------------------------------------------- private access
def private_names_defined(tree: ast.AST) -> set[str]:
    """Private names a module defines: functions, classes, assigned names, attributes assigned on
    ``self``/``cls``, arguments, import aliases."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and _is_own_object(node.value):
            names.add(node.attr)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update(alias.asname for alias in node.names if alias.asname)
    return {name for name in names if is_private(name)}


def private_reads(tree: ast.AST) -> Iterable[tuple[int, str, str]]:
    """(line, attribute, source) for each ``x._name``, each ``getattr``/``setattr``/``hasattr``/
    ``delattr(x, "_name")`` and each ``from m import _name``, where ``x`` is not ``self``, ``cls``,
    ``super()`` or a class the module defines itself."""
    own_classes = {node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and is_private(node.attr) and not _is_own_object(node.value, own_classes):
            yield node.lineno, node.attr, ast.unparse(node)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("getattr", "setattr", "hasattr", "delattr") and len(node.args) >= 2
              and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)
              and is_private(node.args[1].value) and not _is_own_object(node.args[0], own_classes)):
            yield node.lineno, node.args[1].value, ast.unparse(node)
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if is_private(alias.name):
                    yield node.lineno, alias.name, f"from {node.module} import {alias.name}"


def _is_own_object(node: ast.AST, own_classes: set[str] = frozenset()) -> bool:
    if isinstance(node, ast.Name):
        return node.id in ("self", "cls") or node.id in own_classes
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "super"


def cross_package_private_accesses(sources: dict[str, str]) -> list[str]:
    """The rule: a private name ``_x`` may be reached through anything but ``self``/``cls``/``super()``
    only in the package (the directory) that defines it, and only if no other package defines a
    name spelled the same, since the checker cannot tell whose ``_x`` an expression reaches: such
    a name is private to each object and is read on ``self`` alone (or renamed, or given a public
    method). Other libraries' private names are refused unless listed in ``ALLOWED_FOREIGN_PRIVATES``.

    ``sources`` maps "package/dir/module.py" to its text; returns "path:line: expression" per breach.
    """
    trees = {path: ast.parse(text, filename=path) for path, text in sources.items()}
    owners: dict[str, set[str]] = {}
    for path, tree in trees.items():
        for name in private_names_defined(tree):
            owners.setdefault(name, set()).add(_package_of(path))
    breaches = []
    for path, tree in trees.items():
        for line, name, source in private_reads(tree):
            if owners.get(name) == {_package_of(path)} or (path, source) in ALLOWED_FOREIGN_PRIVATES:
                continue
            defined_in = sorted(owners.get(name, ())) or ["no module of ours"]
            breaches.append(f"{path}:{line}: {source} (`{name}` is defined in {', '.join(defined_in)})")
    return breaches


def _package_of(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


def repository_sources(*tops: str) -> dict[str, str]:
    return {p.relative_to(ROOT).as_posix(): p.read_text() for p in python_files(*tops)}


BAD_FACADE = '''
class Facade:
    def __init__(self, server):
        self._server = server

    def release(self):
        for peer in self._server.core.peers.values():
            peer._closing = True
'''
BAD_DASHBOARD = '''
class Source:
    def __init__(self, queue):
        self._server = queue._server
        self._state = getattr(queue, "_priority", 0)
'''
BAD_STATUS = '''
from pkg.facade.queue import _helper
from pkg.manager.peer import Peer

def read(api):
    return _helper(api), Peer._on_close
'''
PEER = '''
class Peer:
    def close(self):
        self._closing = True
        self._priority = 1

    def _on_close(self):
        pass

HANDLERS = {"close": Peer._on_close}

def _helper(x):
    return x
'''


def test_the_private_access_checker_catches_reaching_into_another_package():
    sources = {"pkg/facade/queue.py": BAD_FACADE + "\ndef _helper(x):\n    return x\n",
               "pkg/dashboard/source.py": BAD_DASHBOARD, "pkg/manager/status.py": BAD_STATUS,
               "pkg/manager/peer.py": PEER}
    found = "\n".join(cross_package_private_accesses(sources))
    assert "pkg/facade/queue.py:8: peer._closing" in found  # defined in pkg/manager only
    assert "pkg/dashboard/source.py:4: queue._server" in found  # also defined in pkg/dashboard: ambiguous
    assert "pkg/dashboard/source.py:5: getattr(queue, '_priority', 0)" in found
    assert "pkg/manager/status.py:2: from pkg.facade.queue import _helper" in found  # two packages define it
    assert len(found.splitlines()) == 4, found  # Peer._on_close is read in its own package: fine
    sources["pkg/dashboard/source.py"] += "\nfrom pkg.manager.peer import Peer\nHANDLER = Peer._on_close\n"
    assert "pkg/dashboard/source.py:8: Peer._on_close" in "\n".join(cross_package_private_accesses(sources))
    # the same accesses on self, or within the one package that defines the name, are fine
    assert cross_package_private_accesses({"pkg/manager/peer.py": PEER + "\ndef f(p):\n    p._closing = 0\n"}) == []


def test_no_module_reads_another_packages_private_attribute():
    breaches = cross_package_private_accesses(repository_sources(*CHECKED_PACKAGES))
    assert breaches == [], "reach through a public method instead:\n" + "\n".join(breaches)


def test_every_allowed_foreign_private_is_still_used():
    sources = repository_sources(*CHECKED_PACKAGES)
    used = {(path, source) for path, text in sources.items() for _, _, source in private_reads(ast.parse(text))}
    assert set(ALLOWED_FOREIGN_PRIVATES) <= used, "drop these from ALLOWED_FOREIGN_PRIVATES: " + \
        str(set(ALLOWED_FOREIGN_PRIVATES) - used)


# ---------------------------------------------------------------------------------- import cycles
def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(tree: ast.Module, name: str, is_package: bool) -> set[str]:
    """Modules that module ``name`` imports anywhere: at the top, inside functions (an import put
    in a function to dodge a cycle still ties the two modules together) and under
    ``if TYPE_CHECKING`` (a type that only a checker reads still says the two modules know each
    other: one of them is in the wrong place)."""
    found: set[str] = set()
    package = name if is_package else name.rpartition(".")[0]

    class Imports(ast.NodeVisitor):
        def visit_Import(self, node: ast.Import) -> None:
            found.update(alias.name for alias in node.names)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)

    Imports().visit(tree)
    return found


def import_graph(modules: dict[str, tuple[str, bool]]) -> dict[str, set[str]]:
    """Module -> the modules of ``modules`` it imports at load time; ``modules`` maps a dotted
    name to (source, is_package)."""
    graph = {}
    for name, (source, is_package) in modules.items():
        imported = imports_of(ast.parse(source), name, is_package)
        graph[name] = {m for m in imported if m in modules and m != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for child in sorted(graph.get(node, ())):
            if state.get(child) == 1:
                return path[path.index(child):] + [child]
            if child not in state:
                cycle = visit(child)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_cycle_finder_finds_a_cycle_through_a_from_import():
    modules = {"pkg": ("", True), "pkg.a": ("from pkg.b import thing\n", False),
               "pkg.b": ("import os\nfrom . import c\n", False),
               "pkg.c": ("import pkg.d\n", False), "pkg.d": ("", False)}
    assert find_cycle(import_graph(modules)) is None
    modules["pkg.c"] = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n", False)
    assert find_cycle(import_graph(modules)) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]
    modules["pkg.c"] = ("try:\n    from pkg import a\nexcept ImportError:\n    a = None\n", False)
    assert find_cycle(import_graph(modules)) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]
    modules["pkg.c"] = "def later():\n    from .a import thing\n    return thing\n", False
    assert find_cycle(import_graph(modules)) == ["pkg.a", "pkg.b", "pkg.c", "pkg.a"]


def test_no_import_cycle():
    modules = {module_name(p): (p.read_text(), p.name == "__init__.py") for p in python_files(*CHECKED_PACKAGES)}
    cycle = find_cycle(import_graph(modules))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


# ---------------------------------------------------------------------------------- the manager's insides
# The manager's loop, decisions, peers and task queue: outside coffea_wq/manager they are reached
# through coffea_wq.manager.api.Manager (the facade holds one), never imported.
MANAGER_INSIDES = {f"coffea_wq.manager.{name}" for name in
                   ("server", "handlers", "core", "workers", "queue", "status", "transfers", "outputs", "listener",
                    "refusals")}


def manager_insides_imported(modules: dict[str, tuple[str, bool]]) -> list[str]:
    """"module imports insides" for each module outside coffea_wq.manager that imports one of them."""
    return [f"{name} imports {inside}" for name, (source, is_package) in sorted(modules.items())
            if not name.startswith("coffea_wq.manager")
            for inside in sorted(imports_of(ast.parse(source), name, is_package) & MANAGER_INSIDES)]


def test_the_insides_check_catches_a_facade_walking_the_peers():
    modules = {"coffea_wq.work_queue.queue": ("def hungry(q):\n    from coffea_wq.manager.server import x\n", False),
               "coffea_wq.work_queue.task": ("from coffea_wq.manager.task import TaskSpec\n", False),
               "coffea_wq.manager.api": ("from coffea_wq.manager import core\n", False)}
    assert manager_insides_imported(modules) == ["coffea_wq.work_queue.queue imports coffea_wq.manager.server"]


def test_only_the_manager_imports_its_insides():
    modules = {module_name(p): (p.read_text(), p.name == "__init__.py") for p in python_files(*CHECKED_PACKAGES)}
    assert manager_insides_imported(modules) == []


# ---------------------------------------------------------------------------------- protocol does no I/O
def protocol_io(path: str, source: str) -> list[str]:
    """What in a protocol module does I/O: an I/O module or coffea_wq outside the protocol imported
    (anywhere in it), or ``open``/``print``/``input`` called."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        for name in names:
            if name.split(".")[0] in IO_MODULES or (name.startswith("coffea_wq")
                                                    and not name.startswith("coffea_wq.protocol")):
                found.append(f"{path}:{node.lineno}: imports {name}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("open", "print", "input"):
            found.append(f"{path}:{node.lineno}: calls {node.func.id}()")
    return found


def test_the_protocol_io_check_catches_sockets_files_and_the_manager():
    bad = ("import socket\nfrom os import path\nfrom coffea_wq.manager.server import ManagerServer\n"
           "from coffea_wq.protocol.framing import ByteStream\nimport hashlib\n"
           "def load():\n    return open('x').read()\n")
    assert protocol_io("p.py", bad) == ["p.py:1: imports socket", "p.py:2: imports os",
                                        "p.py:3: imports coffea_wq.manager.server", "p.py:7: calls open()"]


def test_the_protocol_imports_no_io():
    found = [line for p in python_files("coffea_wq/protocol")
             for line in protocol_io(p.relative_to(ROOT).as_posix(), p.read_text())]
    assert found == []


# ---------------------------------------------------------------------------------- file length
def overlong_files(paths: Iterable[Path], limit: int = MAX_LINES) -> list[str]:
    return [f"{p.relative_to(ROOT)}: {n} lines" for p in paths if (n := len(p.read_text().splitlines())) > limit]


def test_the_length_check_catches_a_long_file():
    long = ROOT / "tests" / "test_architecture.py"
    assert overlong_files([long], limit=10) == [f"tests/test_architecture.py: {len(long.read_text().splitlines())} lines"]


def test_no_python_file_over_600_lines():
    assert overlong_files(python_files("coffea_wq", "envtools", "tests", "benchmarks", "analysis_examples")) == []


def classes_defined_twice(sources: dict[str, str]) -> dict[str, list[str]]:
    """Class names defined at module level in more than one module: name -> the modules."""
    where: dict[str, list[str]] = {}
    for path, source in sources.items():
        for node in ast.parse(source).body:
            if isinstance(node, ast.ClassDef):
                where.setdefault(node.name, []).append(path)
    return {name: paths for name, paths in where.items() if len(paths) > 1}


def test_the_duplicate_class_check_catches_a_second_meaning():
    sources = {"pkg/worker/session.py": "class Session:\n    pass\n",
               "pkg/executor/session.py": "class Session:\n    pass\nclass Other:\n    pass\n"}
    assert classes_defined_twice(sources) == {"Session": ["pkg/worker/session.py", "pkg/executor/session.py"]}


def test_no_class_name_is_defined_twice():
    # one name, one meaning: a reader (or a traceback) never has to ask which TaskOutcome is meant
    assert classes_defined_twice(repository_sources(*CHECKED_PACKAGES)) == {}


# ---------------------------------------------------------------------------------- the executor's call
# The call is a state machine with deciders (docs/design.md, "The executor's call"): a helper gets
# what it needs as arguments and returns what it decided; none keeps the loop, the driver or the
# state. And a returned task has a type (``task_facts.FinishedTask``), never ``Any``.
CALL_OWNERS = {"loop", "driver", "state", "call"}
CALL_OWNER_TYPES = {"CallDriver", "CallState", "TaskLoop", "CallTables"}


def helpers_keeping_the_call(sources: dict[str, str]) -> list[str]:
    """``path:line`` where a method stores its ``loop``/``driver``/``state`` argument (or one typed as
    the call's driver or state) on ``self``."""
    found = []
    for path, source in sources.items():
        for function in ast.walk(ast.parse(source)):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            owners = {a.arg for a in function.args.args + function.args.kwonlyargs
                      if a.arg in CALL_OWNERS or (a.annotation is not None and
                                                  ast.unparse(a.annotation).split(".")[-1] in CALL_OWNER_TYPES)}
            for node in ast.walk(function):
                if isinstance(node, ast.Assign) and isinstance(node.value, ast.Name) and node.value.id in owners \
                        and any(isinstance(t, ast.Attribute) and ast.unparse(t.value) == "self" for t in node.targets):
                    found.append(f"{path}:{node.lineno}")
    return found


def tasks_typed_any(sources: dict[str, str]) -> list[str]:
    """``path:line`` of each argument named ``task`` annotated ``Any``."""
    return [f"{path}:{arg.lineno}" for path, source in sources.items() for arg in ast.walk(ast.parse(source))
            if isinstance(arg, ast.arg) and arg.arg == "task" and arg.annotation is not None
            and ast.unparse(arg.annotation) in ("Any", "typing.Any")]


def test_the_call_checks_catch_a_helper_keeping_the_loop_and_an_untyped_task():
    bad = {"coffea_wq/executor/tasks/reduction.py": (
        "class Reduction:\n    def __init__(self, loop):\n        self.loop = loop\n\n"
        "class Tree:\n    def __init__(self, owner: CallState):\n        self.owner = owner\n\n"
        "def handle(task: Any) -> None:\n    pass\n")}
    assert helpers_keeping_the_call(bad) == ["coffea_wq/executor/tasks/reduction.py:3",
                                             "coffea_wq/executor/tasks/reduction.py:7"]
    assert tasks_typed_any(bad) == ["coffea_wq/executor/tasks/reduction.py:9"]
    good = {"coffea_wq/executor/call/partials.py": "def bounds(self, key: int, task: FinishedTask):\n    return key\n"}
    assert helpers_keeping_the_call(good) == [] and tasks_typed_any(good) == []


def test_no_helper_of_the_call_keeps_the_loop_and_no_task_is_any():
    sources = {str(p.relative_to(ROOT)): p.read_text() for p in python_files("coffea_wq/executor")}
    assert helpers_keeping_the_call(sources) == []
    assert tasks_typed_any(sources) == []
