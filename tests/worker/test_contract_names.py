"""The warm-task contract is spelled once per side: the names the worker, the zygote, the task runner
and its clock use (which cannot import coffea_wq) are the ones ``warm_contract.py`` defines."""

from __future__ import annotations

import ast
from pathlib import Path

from coffea_wq.worker import warm_contract
from tests.support import REPO

# the modules that spell the contract again, and the names they use for the contract's names
SPELLED_AGAIN = {
    "coffea_wq/executor/tasks/task_script.py": {"TOKEN_ENV": "WORKER_TOKEN_ENV", "WARM_SLOT_MODULE": "SLOT_MODULE"},
    "coffea_wq/executor/tasks/task_clock.py": {},
    "coffea_wq/worker/zygote.py": {},
}


def contract_constants(source: str) -> dict[str, str]:
    """Module-level ``NAME = "string"`` of names that end in ``_ENV`` or ``SLOT_MODULE``."""
    found = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name) \
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            name = node.targets[0].id
            if name.endswith("_ENV") or name.endswith("SLOT_MODULE"):
                found[name] = node.value.value
    return found


def disagreements(path: str, source: str, aliases: dict[str, str]) -> list[str]:
    problems = []
    for name, value in contract_constants(source).items():
        official = aliases.get(name, name)
        expected = getattr(warm_contract, official, None)
        if expected is None:
            problems.append(f"{path}: {name} is not in warm_contract.py")
        elif expected != value:
            problems.append(f"{path}: {name} = {value!r}, warm_contract.{official} = {expected!r}")
    return problems


def test_the_check_catches_a_name_spelled_differently_or_unknown():
    source = 'CHUNK_ENV = "COFFEA_WQ_KEY"\nNEW_ENV = "X"\nRUN_ENV = "COFFEA_WQ_RUN"\nOTHER = "y"\n'
    assert disagreements("m.py", source, {}) == [
        "m.py: CHUNK_ENV = 'COFFEA_WQ_KEY', warm_contract.CHUNK_ENV = 'COFFEA_WQ_CHUNK'",
        "m.py: NEW_ENV is not in warm_contract.py",
    ]


def test_the_runner_the_clock_and_the_zygote_spell_the_contract_as_warm_contract_does():
    problems = []
    for path, aliases in SPELLED_AGAIN.items():
        source = Path(REPO / path).read_text()
        assert contract_constants(source), f"{path} spells no contract name: the check would see nothing"
        problems += disagreements(path, source, aliases)
    assert problems == []
