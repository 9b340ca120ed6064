"""Finding managers by project name through a catalog (``coffea-wq worker -M REGEX``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ManagerChoice:
    """One manager to try: where to connect, and the project name to check there (if any)."""

    project: str
    candidates: tuple[tuple[str, int], ...]
    verify_project: bool = False

    @property
    def key(self) -> tuple[str, tuple[tuple[str, int], ...]]:
        return (self.project, self.candidates)


def find_manager_choices(regex: str, catalog: str | None, last_served: object | None = None) -> list[ManagerChoice]:
    """Managers whose project matches ``regex`` as a whole, the one served last put last.

    ``catalog`` is ``HOST:PORT`` (several separated by commas), else $CATALOG_HOST/$CATALOG_PORT,
    else CCTools' default catalogs.

    Example::

        find_manager_choices("myproj-.*", "127.0.0.1:9097")
    """
    from coffea_wq.catalog.client import catalog_addresses, find_managers

    records = find_managers(regex, catalog_addresses(catalog))
    choices = [
        ManagerChoice(
            record.project,
            tuple(record.candidates),
            verify_project=record.record.get("manager_preferred_connection") == "by_hostname",
        )
        for record in records
    ]
    # move on to another manager when one is available (one at a time, then the next)
    choices.sort(key=lambda choice: choice.key == last_served)
    log.debug("catalog lookup for %r: %s", regex, [c.project for c in choices])
    return choices
