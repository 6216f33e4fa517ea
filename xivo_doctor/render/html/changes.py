"""The HTML report's "Changes since the previous run" section: its view model.

Place in the pipeline: presentation: reads `Report.changes` (filled by `history.with_changes` when
the run keeps a history), never probes. `html_model.page_model` puts it in the page model;
`templates/report.html.j2` draws it near the top. Item ids come from the kept runs and may be
hostile: the template escapes them.
"""

from __future__ import annotations

from dataclasses import dataclass

from xivo_doctor.foundation.results import Report

LISTS = (("new_failures", "New failures", "fail"), ("resolved", "Resolved", "pass"), ("flapping", "Flapping", "warn"))


@dataclass(frozen=True)
class Changed:
    """One item of a list: its id, and its status in this run (None: not in this run)."""

    item: str
    status: str | None


@dataclass(frozen=True)
class ChangeList:
    key: str
    label: str
    tone: str  # the status whose colour the list takes
    items: tuple[Changed, ...]


@dataclass(frozen=True)
class ChangesView:
    previous: str | None  # started_at of the previous run kept; None on the first run
    runs: int
    lists: tuple[ChangeList, ...]  # the non-empty ones
    ignored: tuple[str, ...]  # history files that could not be read back


def changes_view(report: Report) -> ChangesView | None:
    """The section's content, or None when the run kept no history (no section at all)."""
    changes = report.changes
    if changes is None:
        return None
    now = {r.item_id: r.status.value for r in report.results}
    lists = tuple(
        ChangeList(key, label, tone, tuple(Changed(str(i), now.get(str(i))) for i in changes.get(key) or ()))
        for key, label, tone in LISTS
        if changes.get(key)
    )
    previous = changes.get("previous")
    runs = changes.get("runs")
    return ChangesView(
        previous=str(previous) if previous else None,
        runs=runs if isinstance(runs, int) and not isinstance(runs, bool) else 1,
        lists=lists,
        ignored=tuple(str(name) for name in changes.get("ignored") or ()),
    )
