"""The executor's ``dashboard`` and ``dashboard_host`` options, as values and as executor_args keys."""

from __future__ import annotations

import pytest

import coffea_wq
from coffea_wq.dashboard.live import dashboard_port
from coffea_wq.executor.compat import split_executor_args
from coffea_wq.executor.errors import ExecutorConfigError


@pytest.mark.parametrize("value", ["yes", -1, 70000, 1.5])
def test_a_bad_dashboard_value_names_the_option(value):
    with pytest.raises(ExecutorConfigError, match=r"dashboard="):
        coffea_wq.WorkQueueExecutor(dashboard=value)


def test_a_bad_bind_address_names_the_option():
    with pytest.raises(ExecutorConfigError, match=r"dashboard_host="):
        coffea_wq.WorkQueueExecutor(dashboard=True, dashboard_host="")


def test_true_is_any_free_port_and_a_number_is_that_port():
    assert dashboard_port(True) == 0 and dashboard_port(8787) == 8787
    assert coffea_wq.WorkQueueExecutor(dashboard=8787).dashboard == 8787
    assert coffea_wq.WorkQueueExecutor().dashboard is False  # off unless asked for


def test_executor_args_take_the_dashboard_key_with_dashes_or_underscores():
    options, _ = split_executor_args({"dashboard": True, "dashboard-host": "0.0.0.0"})
    assert options == {"dashboard": True, "dashboard_host": "0.0.0.0"}


def test_a_port_in_use_is_an_error_naming_the_option():
    import socket

    from coffea_wq.dashboard.live import open_dashboard

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ExecutorConfigError, match=rf"dashboard={port}: cannot serve the dashboard on 127.0.0.1:{port}"):
            open_dashboard("127.0.0.1", port, None)


def test_one_server_per_address_shared_by_later_runs():
    from coffea_wq.dashboard.live import open_dashboard, running_dashboards, stop_dashboards

    try:
        first = open_dashboard("127.0.0.1", 0, None)
        assert open_dashboard("127.0.0.1", 0, None) is first and running_dashboards() == [first]
    finally:
        stop_dashboards()
    assert running_dashboards() == []
