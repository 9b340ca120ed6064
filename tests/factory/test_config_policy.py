"""Factory settings (JSON file, validation) and the sizing policy, without processes."""

from __future__ import annotations

import json
import os
import re
import time

import pytest

from coffea_wq.factory.config import (
    ConfigError,
    ConfigFile,
    FactoryConfig,
    overrides_from_json,
)
from coffea_wq.factory.policy import manager_demand, plan_cycle

BASE = {"batch_type": "local", "manager_name": "ana"}


def config(**kwargs) -> FactoryConfig:
    return FactoryConfig(**{**BASE, **kwargs})


# -- JSON and validation -------------------------------------------------------------------------
def test_json_keys_are_the_long_option_names_of_cctools_factory():
    text = json.dumps({"manager-name": "cct-fac", "max-workers": 2, "min-workers": 1, "workers-per-cycle": 2,
                       "timeout": 20, "cores": 1, "memory": 300, "disk": 500})
    overrides = overrides_from_json(text, "fac.json")
    built = FactoryConfig(batch_type="local", **overrides)
    assert (built.manager_name, built.max_workers, built.min_workers, built.workers_per_cycle) == ("cct-fac", 2, 1, 2)
    assert (built.timeout, built.cores, built.memory, built.disk) == (20, 1, 300, 500)


@pytest.mark.parametrize(("text", "message"), [
    ('{"max-workers": 3,', "fac.json: not valid JSON (line 1"),
    ('[1, 2]', "fac.json: the configuration must be a JSON object"),
    ('{"max_workers": 3}', "fac.json: unknown key 'max_workers'"),
    ('{"max-workers": "many"}', "fac.json: key 'max-workers' must be an integer, not \"many\""),
    ('{"cores": true}', "fac.json: key 'cores' must be a number"),
])
def test_bad_json_is_an_error_naming_the_file_and_key(text, message):
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(").replace("[", r"\[")):
        overrides_from_json(text, "fac.json")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"min_workers": 5, "max_workers": 2}, "min-workers (5) is greater than max-workers (2)"),
    ({"max_workers": -1}, "must be >= 0"),
    ({"manager_name": None}, "no manager"),
    ({"batch_type": "pbs"}, "batch type 'pbs' is not one of local, slurm, condor, sge"),
    ({"timeout": 0}, "timeout"),
    ({"manager_name": "ana-[0-9"}, "manager name 'ana-[0-9' is not a valid regular expression"),
])
def test_invalid_settings_are_refused_with_the_culprit_named(kwargs, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        config(**kwargs)


def test_config_file_keeps_the_last_good_config_and_reports_a_broken_edit_once(tmp_path, capsys):
    path = tmp_path / "fac.json"
    path.write_text(json.dumps({"max-workers": 4}))
    watcher = ConfigFile(path, {**BASE, "max_workers": 10, "min_workers": 1})
    assert watcher.load_first().max_workers == 4
    assert "Configuration file" in capsys.readouterr().out

    _rewrite(path, '{"max-workers": 4, "min-workers": 9}')  # min > max: broken
    assert watcher.current().max_workers == 4
    assert watcher.current().min_workers == 1
    err = capsys.readouterr().err
    assert err.count("min-workers (9) is greater than max-workers (4)") == 1 and str(path) in err

    _rewrite(path, '{"max-workers": 6}')
    assert watcher.current().max_workers == 6
    assert watcher.last_error is None

    _rewrite(path, "{}")  # a key removed from the file falls back to the command line's value
    assert watcher.current().max_workers == 10


def test_a_missing_file_at_start_is_fatal_but_later_keeps_the_last_good(tmp_path):
    path = tmp_path / "fac.json"
    with pytest.raises(ConfigError, match="cannot read the configuration"):
        ConfigFile(path, BASE).load_first()
    path.write_text('{"max-workers": 2, "min-workers": 1}')
    watcher = ConfigFile(path, BASE)
    watcher.load_first()
    path.unlink()
    assert watcher.current().max_workers == 2
    assert "cannot read" in (watcher.last_error or "")


def _rewrite(path, text: str) -> None:
    """Write and move the modification time on, so the change is seen even within one clock tick."""
    path.write_text(text)
    later = time.time() + 1 + len(text) / 1000
    os.utime(path, (later, later))


# -- the sizing policy -----------------------------------------------------------------------------
def test_waiting_and_running_tasks_over_tasks_per_worker_give_the_workers_needed():
    # 7 tasks, 2 per worker -> 4 workers; tasks_left (a hint from the application) counts as waiting
    record = {"tasks_waiting": 3, "tasks_left": 2, "tasks_on_workers": 2}
    assert manager_demand(record, config(tasks_per_worker=2)).workers_needed == 4
    # default: one task per core
    assert manager_demand(record, config(cores=4)).workers_needed == 2
    assert manager_demand(record, config()).workers_needed == 7


def test_declared_task_resources_can_need_more_workers_than_the_task_count():
    record = {"tasks_waiting": 2, "tasks_total_memory": 8000}
    assert manager_demand(record, config(cores=4, memory=2000)).workers_needed == 4


def test_plan_clamps_to_min_and_max_and_limits_new_workers_per_cycle():
    cfg = config(min_workers=2, max_workers=5, workers_per_cycle=2)
    assert plan_cycle([], submitted=0, config=cfg).to_submit == 2  # no manager: keep the minimum
    busy = [{"tasks_waiting": 50, "workers": 0}]
    assert plan_cycle(busy, submitted=0, config=cfg).to_submit == 2  # per cycle
    assert plan_cycle(busy, submitted=4, config=cfg).to_submit == 1  # up to max 5
    assert plan_cycle(busy, submitted=5, config=cfg).to_submit == 0
    assert plan_cycle(busy, submitted=0, config=config(max_workers=50, workers_per_cycle=0)).to_submit == 50


def test_plan_counts_workers_from_elsewhere_and_removes_only_above_max():
    cfg = config(min_workers=0, max_workers=10, workers_per_cycle=0)
    # 6 tasks, 2 of ours + 3 connected from elsewhere: one more is enough
    plan = plan_cycle([{"tasks_waiting": 6, "workers": 5}], submitted=2, config=cfg)
    assert (plan.needed, plan.to_submit, plan.to_remove) == (6, 1, 0)
    # idle: we do not remove below max (workers time out by themselves) ...
    assert plan_cycle([{"tasks_waiting": 0}], submitted=4, config=cfg).to_remove == 0
    # ... but a lowered max-workers removes the excess at once
    assert plan_cycle([{"tasks_waiting": 9}], submitted=4, config=config(min_workers=0, max_workers=1)).to_remove == 3


def test_demand_adds_up_over_the_managers_matching_a_name():
    records = [{"tasks_waiting": 3}, {"tasks_waiting": 2, "tasks_on_workers": 1}]
    assert plan_cycle(records, submitted=0, config=config(min_workers=0, workers_per_cycle=0)).needed == 6


def test_status_line_matches_cctools_factory_output():
    plan = plan_cycle([{"tasks_waiting": 6}], submitted=0, config=config(min_workers=1, max_workers=2))
    assert plan.status_line() == "|submitted: 0 |needed: 2 |waiting connection: 0 |requested: 2"


def test_a_max_below_the_default_min_lowers_the_min_unless_min_was_given():
    from coffea_wq.factory.config import build_config

    assert build_config({**BASE, "max_workers": 2}).min_workers == 2
    assert build_config({**BASE, "max_workers": 20}).min_workers == 5
    with pytest.raises(ConfigError, match=re.escape("min-workers (3) is greater than max-workers (2)")):
        build_config({**BASE, "max_workers": 2, "min_workers": 3})
