"""Threshold ranges as the Monitoring Plugins guidelines spell them (`-w`/`-c` of `xivo-doctor nagios`).

Place in the pipeline: the command line's input to presentation. `cli_nagios` parses `-w`/`-c` with
`parse`; `render/nagios.py` asks each range whether a measured value (the federation probe's
latency) alerts, and writes the range back, as given, in the perfdata's warn/crit fields.

The syntax is `[@][start:][end]` (Monitoring Plugins guidelines, "Range expressions"):
`start` <= `end`; a missing start means 0; a missing end means +infinity; `~` as start means
-infinity; without `@` a value alerts when it lies OUTSIDE start..end, with `@` when it lies INSIDE
(both ends included). Examples: `10` alerts below 0 or above 10, `10:` below 10, `~:10` above 10,
`10:20` outside 10..20, `@10:20` inside 10..20.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from xivo_doctor.foundation.errors import UsageError

# Plain decimal numbers only: the guidelines advise against scientific notation, and `inf`/`nan`
# (which float() accepts) are not numbers a threshold can hold.
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
_RANGE = re.compile(rf"(?P<inside>@)?(?:(?P<start>~|{_NUMBER}):)?(?P<end>{_NUMBER})?")
_EXAMPLES = "e.g. 500 (alert above 500), 10: (below 10), ~:500, 10:500, @10:20 (inside 10..20)"


@dataclass(frozen=True)
class Range:
    """One threshold range; `str()` gives back the text as written, for the perfdata."""

    start: float
    end: float
    inside: bool
    text: str

    def alerts(self, value: float) -> bool:
        """Whether `value` exceeds the threshold (lies outside the range, or inside with `@`)."""
        within = self.start <= value <= self.end
        return within if self.inside else not within

    def breach(self, value: float) -> str:
        """How `value` breaks the range, in a few words: `> 500`, `< 10`, `in @10:20`."""
        if self.inside:
            return f"in @{self.text.lstrip('@')}"
        return f"> {_number(self.end)}" if value > self.end else f"< {_number(self.start)}"

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Thresholds:
    """`-w` and `-c` on the federation probe latency (ms); either may be absent."""

    warning: Range | None = None
    critical: Range | None = None


def parse(text: str, option: str = "RANGE") -> Range:
    """Parse a range; `option` (`-w`, `-c`) names it in the one-line error."""
    written = text.strip()
    found = _RANGE.fullmatch(written)
    if not written or found is None or (found["start"] is None and found["end"] is None):
        raise UsageError(f"{option} {text!r}: not a threshold range; write [@][start:][end], {_EXAMPLES}")
    start = -math.inf if found["start"] == "~" else float(found["start"] or 0)
    end = math.inf if found["end"] is None else float(found["end"])
    if start > end:
        raise UsageError(f"{option} {text!r}: the start {_number(start)} is above the end {_number(end)}; "
                         f"write start:end with start <= end, {_EXAMPLES}")
    return Range(start=start, end=end, inside=bool(found["inside"]), text=written)


def _number(value: float) -> str:
    if math.isinf(value):
        return "~" if value < 0 else "infinity"
    return f"{value:.3f}".rstrip("0").rstrip(".")


__all__ = ["Range", "Thresholds", "parse"]
