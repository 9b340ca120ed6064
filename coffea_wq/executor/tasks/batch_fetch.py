"""The function a preprocessing task runs on a batch of files (a tuple of coffea ``FileMeta``).

Shipped to workers by value (``cloudpickle.register_pickle_by_value``), so it imports nothing but
the standard library and coffea: a worker needs coffea, not coffea-wq. See preprocessing.py.
"""

from __future__ import annotations

from typing import Any


class BatchedFetch:
    """Call ``fetch`` (coffea's metadata fetcher) on each file of a batch and add the results up.

    A single ``FileMeta`` (a batch split after a failure) is fetched alone. An error on any file
    fails the batch with that error; the executor then runs the batch's files one by one, so a
    bad file is named and handled alone (retried, failed or skipped) while the others succeed.
    """

    def __init__(self, fetch: Any) -> None:
        self.fetch = fetch

    def __call__(self, item: Any) -> Any:
        if not isinstance(item, tuple):
            return self.fetch(item)
        from coffea.processor import accumulate  # on the worker, which runs coffea anyway

        values = [value for value in (self.fetch(meta) for meta in item) if value is not None]
        return accumulate(values) if values else None
