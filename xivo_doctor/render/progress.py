"""Live progress while the checks run: a transient bar with the current item and fail/error counts.

Place in the pipeline: presentation: reads results as they arrive, never probes.

On a console that is not a terminal (cron, Nagios, a pipe, a file) it prints nothing at all:
every method is then a no-op, so the run's only output is what the other renderers write.
The bar is transient: it disappears when the run ends, leaving the terminal to `terminal`.
"""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from xivo_doctor.foundation.results import Result, Status
from xivo_doctor.render.terminal import clean


class LiveProgress:
    """Context manager: `with LiveProgress(console) as p: p.start(n); p.item_started(id); ...`."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._enabled = bool(console.is_terminal)
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._fail = 0
        self._error = 0

    @property
    def enabled(self) -> bool:
        """False when the console is not a terminal: nothing is ever printed."""
        return self._enabled

    def __enter__(self) -> LiveProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, total: int) -> None:
        """Show the bar for `total` items (unknown total when `total` <= 0)."""
        if not self._enabled:
            return
        if self._progress is None:
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}", markup=False),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[tally]}", markup=False),
                TimeElapsedColumn(),
                console=self._console,
                transient=True,
            )
            self._progress.start()
        if self._task is None:
            self._task = self._progress.add_task(
                "starting", total=total if total > 0 else None, tally=self._tally()
            )
        else:
            self._progress.update(self._task, total=total if total > 0 else None)

    def item_started(self, item_id: str) -> None:
        """Name the item now running."""
        if self._progress is None or self._task is None:
            return
        self._progress.update(self._task, description=clean(item_id))

    def item_done(self, result: Result) -> None:
        """Advance the bar and count fail/error so far."""
        if self._progress is None or self._task is None:
            return
        if result.status is Status.FAIL:
            self._fail += 1
        elif result.status is Status.ERROR:
            self._error += 1
        self._progress.update(self._task, advance=1, tally=self._tally())

    def _tally(self) -> str:
        return f"{self._fail} fail, {self._error} error"

    def stop(self) -> None:
        """Remove the bar (idempotent)."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            self._task = None
