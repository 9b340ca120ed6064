"""Catalog advertisement of a named manager, through ``coffea_wq.catalog.client``."""

from __future__ import annotations

from collections.abc import Callable

from coffea_wq.catalog.client import CatalogAdvertiser, catalog_addresses


def start_advertiser(option: str | None, record_fn: Callable[[], dict]) -> CatalogAdvertiser:
    """Start advertising ``record_fn()`` to the catalog(s) in ``option``."""
    # every 60 s as CCTools, and within a second of a change (docs/catalog.md), at most once a second
    advertiser = CatalogAdvertiser(catalog_addresses(option), record_fn, interval=60.0, min_interval=1.0)
    advertiser.start()
    return advertiser
