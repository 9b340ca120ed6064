"""Every Python name docs/design.md cites exists.

The syntax (docs/design.md, top): a name in backticks whose first part is ``coffea_wq``, ``envtools``
or ``coffea``, made of dotted identifiers, is a module, or a module followed by attributes. A name is
resolved by importing its longest importable prefix and looking the rest up with ``getattr``.
"""

from __future__ import annotations

import importlib
import re

from tests.support import REPO

CITED_NAME = re.compile(r"`((?:coffea_wq|envtools|coffea)(?:\.[A-Za-z_][A-Za-z0-9_]*)*)`")
DESIGN = REPO / "docs" / "design.md"


def cited_names(text: str) -> list[str]:
    """The names ``text`` cites, each once, in order."""
    return list(dict.fromkeys(CITED_NAME.findall(text)))


def resolve(name: str) -> object:
    """The object ``name`` names; raises LookupError saying which part of it is missing."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            target: object = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name is not None and not module_name.startswith(error.name):
                raise  # the module exists but one of its own imports is missing: a real error
            continue
        for index, attribute in enumerate(parts[cut:], cut):
            try:
                target = getattr(target, attribute)
            except AttributeError:
                raise LookupError(f"{name}: {'.'.join(parts[:index])} has no attribute {attribute!r}") from None
        return target
    raise LookupError(f"{name}: no module {parts[0]!r}")


def missing_names(text: str) -> list[str]:
    problems = []
    for name in cited_names(text):
        try:
            resolve(name)
        except LookupError as error:
            problems.append(str(error))
    return problems


def test_the_checker_reports_bogus_names():
    text = (
        "`coffea_wq.manager.core.ManagerCore.commit_task` and `coffea_wq.manager.core.ManagerCore.no_such_step`, "
        "`coffea_wq.no_such_module.run`, `coffea.processor.accumulate`, `envtools.no_such_function`, "
        "`coffea_wq/manager/` (a path: not a name) and `coffea-wq worker` (a command: not a name)"
    )
    assert cited_names(text) == [
        "coffea_wq.manager.core.ManagerCore.commit_task",
        "coffea_wq.manager.core.ManagerCore.no_such_step",
        "coffea_wq.no_such_module.run",
        "coffea.processor.accumulate",
        "envtools.no_such_function",
    ]
    assert missing_names(text) == [
        "coffea_wq.manager.core.ManagerCore.no_such_step: coffea_wq.manager.core.ManagerCore has no attribute "
        "'no_such_step'",
        "coffea_wq.no_such_module.run: coffea_wq has no attribute 'no_such_module'",
        "envtools.no_such_function: envtools has no attribute 'no_such_function'",
    ]


def test_every_name_design_md_cites_exists():
    text = DESIGN.read_text()
    names = cited_names(text)
    # the walk of one chunk names its steps: if the syntax stopped matching, this list would shrink
    assert len(names) >= 40 and "coffea_wq.executor.WorkQueueExecutor.__call__" in names
    assert missing_names(text) == [], "docs/design.md cites names that do not exist; update it"
