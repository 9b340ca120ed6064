"""Catalog advertisement of a named manager, through the catalog engineer's client."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable

log = logging.getLogger("coffea_wq.manager")


def start_advertiser(option: str | None, record_fn: Callable[[], dict]):
    """Start advertising ``record_fn()`` to the catalog(s) in ``option``; None if no client exists."""
    try:
        client = importlib.import_module("coffea_wq.catalog.client")
        advertiser_cls = client.CatalogAdvertiser
        addresses = client.catalog_addresses(option)
    except (ImportError, AttributeError) as error:
        log.info("catalog advertisement unavailable: %s", error)
        return None
    # every 60 s as CCTools, and within a second of a change (docs/catalog.md), at most once a second
    advertiser = advertiser_cls(addresses, record_fn, interval=60.0, min_interval=1.0)
    advertiser.start()
    return advertiser
