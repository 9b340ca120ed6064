"""Splitting an event range into smaller ranges, for tasks that exhaust their resources."""

from __future__ import annotations


def split_work_item_range(entrystart: int, entrystop: int, parts: int = 2) -> list[tuple[int, int]]:
    """Cut ``[entrystart, entrystop)`` into ``parts`` contiguous, nearly equal, non-empty ranges.

    The pieces cover the range exactly and in order; the first ones are one event longer when it does
    not divide evenly. A range with fewer events than ``parts`` gives one range per event, so a
    one-event range cannot be split (a single range is returned: the caller treats that as final).

    Example::

        >>> split_work_item_range(0, 10)
        [(0, 5), (5, 10)]
        >>> split_work_item_range(100, 107, parts=3)
        [(100, 103), (103, 105), (105, 107)]
        >>> split_work_item_range(5, 6)
        [(5, 6)]
    """
    if parts < 1:
        raise ValueError(f"cannot split a range into {parts} parts: parts must be >= 1")
    if entrystop <= entrystart:
        raise ValueError(f"cannot split the empty event range [{entrystart}, {entrystop})")
    events = entrystop - entrystart
    parts = min(parts, events)
    size, extra = divmod(events, parts)
    ranges = []
    start = entrystart
    for i in range(parts):
        stop = start + size + (1 if i < extra else 0)
        ranges.append((start, stop))
        start = stop
    return ranges
