"""Cut a WorkItem into smaller ones, keeping everything but the entry range (usermeta, preload)."""

from __future__ import annotations

import dataclasses
from typing import Any


def split_work_item(item: Any, pieces: int = 2) -> list[Any]:
    """Split ``item``'s entry range into ``pieces`` contiguous WorkItems of near-equal length.

    Items of one entry cannot be split and come back unchanged (a one-element list). Every other
    field (dataset, file, tree, uuid, usermeta, preload) is carried over, so the pieces process
    exactly the events of the original.

    Example:
        >>> from coffea.processor.executor import WorkItem
        >>> [(w.entrystart, w.entrystop) for w in split_work_item(WorkItem("d", "f", "t", 0, 5, b""))]
        [(0, 2), (2, 5)]
    """
    length = item.entrystop - item.entrystart
    pieces = max(1, min(pieces, length))
    if pieces == 1:
        return [item]
    bounds = [item.entrystart + (length * k) // pieces for k in range(pieces + 1)]
    return [dataclasses.replace(item, entrystart=lo, entrystop=hi) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
