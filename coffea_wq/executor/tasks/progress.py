"""Progress bars as coffea's executors draw them: Submitted / Processed / Accumulated."""

from __future__ import annotations

from typing import Any

from coffea.util import rich_bar


class ProgressBars:
    """Three rich bars over the work items of one executor call (disabled when ``enabled`` is False).

    Example:
        >>> with ProgressBars("Processing", "chunk", total=3, enabled=False) as bars:
        ...     bars.advance("submitted"); bars.advance("processed"); bars.advance("accumulated")
    """

    def __init__(self, desc: str, unit: str, total: int, enabled: bool):
        self.enabled = enabled
        self.progress: Any = rich_bar() if enabled else None
        self.ids: dict[str, Any] = {}
        self.labels = {"submitted": "Submitted", "processed": desc if desc != "Processing" else "Processed",
                       "accumulated": "Accumulated"}
        self.unit = unit
        self.total = total

    def __enter__(self) -> ProgressBars:
        if self.progress is not None:
            self.progress.__enter__()
            for key, label in self.labels.items():
                self.ids[key] = self.progress.add_task(label, total=self.total, unit=self.unit)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.refresh()
            self.progress.__exit__(*exc)

    def advance(self, key: str, amount: int = 1) -> None:
        if self.progress is not None:
            self.progress.update(self.ids[key], advance=amount, refresh=True)

    def grow(self, amount: int) -> None:
        """More items than planned (a split item became several)."""
        self.total += amount
        if self.progress is not None:
            for task_id in self.ids.values():
                self.progress.update(task_id, total=self.total)

    def print(self, text: str) -> None:
        if self.progress is not None:
            self.progress.console.print(text, markup=False, highlight=False)
        else:
            print(text, flush=True)
