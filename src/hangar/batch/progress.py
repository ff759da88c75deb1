"""A progress bar (rows, rows/s, failed rows, ETA) on a terminal; silent anywhere else."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


class _Quiet:
    def advance(self, rows: int, failed: int = 0) -> None:
        pass


class _Bar:
    def __init__(self, progress, task):
        self._progress = progress
        self._task = task

    def advance(self, rows: int, failed: int = 0) -> None:
        self._progress.update(self._task, advance=rows, failed=failed)


@contextlib.contextmanager
def progress_bar(total: int | None, *, enabled: bool | None, description: str) -> Iterator[_Quiet | _Bar]:
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield _Quiet()
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RowsPerSecond(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{task.speed:,.0f} rows/s" if task.speed else "- rows/s")

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("rows"), RowsPerSecond(),
               TextColumn("[red]{task.fields[failed]} failed"), TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task(description, total=total, failed=0)
        yield _Bar(progress, task)
