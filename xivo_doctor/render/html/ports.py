"""The HTML report's grid of ports, read from -> to: where each needed port was tried from (a row:
a peer XiVO over SSH, or the doctor's host) and on which XiVO (a column).

Place in the pipeline: presentation, part of the page's view model (`model.py`). It reads the
`Reach` entries items declare (foundation/measures.py), never an item's evidence, so it knows no check.
A firewall that admits the admin's network and drops one peer shows as one red cell on that row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from xivo_doctor.foundation.measures import Reach
from xivo_doctor.foundation.results import Report, Result


@dataclass(frozen=True)
class PortCell:
    """What one origin saw of one XiVO's ports, and the item that tried them."""

    item: Result
    tried: tuple[Reach, ...]

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tried)


def port_grid(report: Report, names: list[str]) -> dict[str, Any] | None:
    """Rows (origin label, one cell or None per XiVO of `names`), or None when no item tried a port.
    XiVOs come first as origins, in the topology's order, then any other vantage (the doctor's host)."""
    cells: dict[tuple[str, str], list[Reach]] = {}
    items: dict[tuple[str, str], Result] = {}
    for r in report.results:
        for t in r.reach:
            cells.setdefault((t.origin, r.target), []).append(t)
            items[(t.origin, r.target)] = r
    if not cells:
        return None
    origins = [n for n in names if any(o == n for o, _ in cells)]
    origins += [o for o in dict.fromkeys(o for o, _ in cells) if o not in names]
    rows = []
    for origin in origins:
        label = origin if origin in names else f"{origin} (the doctor's host)"
        rows.append((label, [PortCell(items[(origin, n)], tuple(cells[(origin, n)])) if (origin, n) in cells else None
                             for n in names]))
    return {"columns": names, "rows": rows}
