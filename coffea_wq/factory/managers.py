"""Reading the status of the managers a factory serves, as any Work Queue client does.

A manager given as HOST PORT is asked directly (``queue_status`` on its port, like
``work_queue_status HOST PORT``); a manager given by name (a regular expression) is looked up in
the catalog, whose records carry the same counters. An unreachable manager counts as "no demand"
for the cycle (the loop logs it): the factory keeps its minimum and tries again next cycle.
"""

from __future__ import annotations

from coffea_wq.catalog.client import catalog_addresses, find_managers
from coffea_wq.catalog.query import StatusQueryError, query_manager
from coffea_wq.factory.config import FactoryConfig


def read_manager_records(config: FactoryConfig, timeout: float = 5.0) -> list[dict]:
    """The status records of the managers ``config`` names (possibly none).

    Raises:
        ManagerUnreachable: the manager given as HOST PORT did not answer (the message says why).

    Example:
        >>> read_manager_records(FactoryConfig(manager_host="127.0.0.1", manager_port=9123))  # doctest: +SKIP
        [{'project': 'my-analysis', 'tasks_waiting': 12, ...}]
    """
    if config.manager_host is not None and config.manager_port is not None:
        return _query_direct(config.manager_host, config.manager_port, timeout)
    assert config.manager_name is not None
    try:
        addresses = catalog_addresses(config.catalog)
    except ValueError as err:
        raise ManagerUnreachable(str(err)) from None
    return [found.record for found in find_managers(config.manager_name, addresses, timeout=timeout)]


class ManagerUnreachable(ConnectionError):
    """No status could be read this cycle; the factory keeps its minimum and tries again."""


def _query_direct(host: str, port: int, timeout: float) -> list[dict]:
    try:
        records = query_manager(host, port, "queue_status", timeout=timeout)
    except StatusQueryError as err:
        raise ManagerUnreachable(f"cannot read the status of the manager: {err}") from None
    # The project is absent for unnamed managers; the address stands in for it, as in CCTools.
    return [{"name": host, "port": port, **r} for r in records if isinstance(r, dict)]
