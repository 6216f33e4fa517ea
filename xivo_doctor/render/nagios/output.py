"""The report as a Nagios/Icinga plugin prints it (Monitoring Plugins guidelines, "Output").

Place in the pipeline: presentation only. It reads an already redacted `Report` (and, when the
plugin's own deadline cut the run, what was unfinished) and returns text; cli/nagios.py prints it
and exits with `exit_code`. It never probes, and names no check: the perfdata are the measurements
the items carry (`Result.metrics`, declared by each check), judged against `-w`/`-c` where the
metric says so.

The output:

    XIVO-DOCTOR CRITICAL - <cause in words> | pass=14;;;0 fail=1;;;0 ... 'fed_xivo-1_from_xivo-2'=1.46ms;;;0;
    rabbitmq-federation[xivo-2->xivo-1]: fail: <message> — fix: <fix summary>
    since 2026-11-25T10:31:15+00:00 (5 runs kept): new failures: ...; resolved: none; flapping: none

All the perfdata is on the first line, after its ` | ` (the guidelines also allow more after the
long output; one place is simpler for every parser, and a 10-XiVO mesh stays ~4 kB). `|` ends
the text part for Nagios, so no text ever contains one (replaced by `/`), and no line carries a
control character or colour.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from xivo_doctor.foundation.measures import Metric
from xivo_doctor.foundation.results import Report, Result, Status, Verdict
from xivo_doctor.render.nagios.ranges import Thresholds
from xivo_doctor.render.words import cause

PLUGIN = "XIVO-DOCTOR"
# How bad a state is, as the report's own verdict ranks them: a proven failure outranks a gap in
# what could be checked, which outranks a warning (results.verdict_of).
_RANK = {Verdict.OK: 0, Verdict.WARNING: 1, Verdict.UNKNOWN: 2, Verdict.CRITICAL: 3}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_LABEL_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_LONG_ORDER = (Status.FAIL, Status.WARN, Status.ERROR, Status.SKIP, Status.PASS)


@dataclass(frozen=True)
class Unfinished:
    """What the plugin's deadline cut: the run was still going when it had to answer."""

    timeout_s: float
    total: int | None  # items collected; None when collection itself had not ended
    running: str | None = None  # the item that had started and not finished


@dataclass(frozen=True)
class Breach:
    metric: Metric
    state: Verdict
    words: str


def safe(text: object) -> str:
    """One line of plugin text: no `|` (Nagios would read perfdata after it), no control character."""
    return _CONTROL.sub(" ", str(text).replace("|", "/")).strip()


def unknown_line(what: str) -> str:
    """The one line the plugin prints when it could not check at all."""
    return f"{PLUGIN} {Verdict.UNKNOWN.value} - {safe(first_line(what)) or 'internal error'}"


def first_line(text: str) -> str:
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "")


# --- measurements --------------------------------------------------------------------------------


def metrics(report: Report) -> list[Metric]:
    """Every item's measurements, in run order (declared by each check beside its code: a
    federation link's probe latency, the members alive in a XiVO's WAN pool, ...)."""
    return [m for r in report.results for m in r.metrics]


def breaches(report: Report, thresholds: Thresholds) -> list[Breach]:
    """Measurements judged by thresholds that alert, critical first (breaking both counts as critical)."""
    found = []
    for metric in metrics(report):
        if metric.value is None or not metric.thresholds:
            continue
        for state, limit in ((Verdict.CRITICAL, thresholds.critical), (Verdict.WARNING, thresholds.warning)):
            if limit is not None and limit.alerts(metric.value):
                unit = f" {metric.unit}" if metric.unit else ""
                words = f"{metric.words or metric.label} {_number(metric.value)}{unit} {limit.breach(metric.value)}"
                found.append(Breach(metric, state, words))
                break
    return sorted(found, key=lambda b: -_RANK[b.state])


# --- the four parts ------------------------------------------------------------------------------


def state(report: Report, thresholds: Thresholds, unfinished: Unfinished | None = None) -> Verdict:
    """The report's verdict, raised by a latency breach; UNKNOWN whenever the deadline cut the run
    (the guidelines: a plugin ended by its timeout says UNKNOWN)."""
    if unfinished is not None:
        return Verdict.UNKNOWN
    states = [report.verdict, *(b.state for b in breaches(report, thresholds))]
    return max(states, key=_RANK.__getitem__)


def exit_code(report: Report, thresholds: Thresholds, unfinished: Unfinished | None = None) -> int:
    return state(report, thresholds, unfinished).exit_code


def status_line(report: Report, thresholds: Thresholds, unfinished: Unfinished | None = None) -> str:
    """`XIVO-DOCTOR <STATE> - <cause>`: the same cause as the HTML report's title (words.cause), led
    by whatever set the state."""
    verdict = state(report, thresholds, unfinished)
    if unfinished is not None:
        total = "?" if unfinished.total is None else str(unfinished.total)
        words = (f"timed out after {_number(unfinished.timeout_s)} s: {len(report.results)} of {total} items "
                 "finished")
        if report.verdict is not Verdict.OK:
            words += f"; so far {report.verdict.value}: {cause(report)}"
        return f"{PLUGIN} {verdict.value} - {safe(words)}"
    found = breaches(report, thresholds)
    latency = ""
    if found:
        latency = found[0].words + (f" (+{len(found) - 1} more)" if len(found) > 1 else "")
    parts = [cause(report)] if report.verdict is not Verdict.OK or not found else []
    if found and _RANK[found[0].state] > _RANK[report.verdict]:
        parts.insert(0, latency)
    elif found:
        parts.append(latency)
    return f"{PLUGIN} {verdict.value} - {safe('; '.join(parts))}"


def long_output(report: Report, unfinished: Unfinished | None = None, *, verbose: bool = False) -> list[str]:
    """One line per item that did not pass, the worst first (all items with `verbose`); then what
    the deadline cut, then what changed since the previous run (`--history`)."""
    shown = _LONG_ORDER if verbose else _LONG_ORDER[:-1]
    lines = [_item_line(r) for status in shown for r in report.results if r.status is status]
    if unfinished is not None:
        if unfinished.running:
            lines.append(f"{safe(unfinished.running)}: unknown: still running at the deadline")
        if unfinished.total is None:
            lines.append("the checks were still being collected at the deadline")
        else:
            rest = unfinished.total - len(report.results) - (1 if unfinished.running else 0)
            if rest > 0:
                lines.append(f"{rest} more item{'s' if rest != 1 else ''}: unknown: not started before the deadline")
    if report.changes is not None:
        lines.append(_changes_line(report.changes))
    return lines


def perfdata(report: Report, thresholds: Thresholds) -> str:
    """`label=value[UOM];[warn];[crit];[min];[max]` items, space separated (Monitoring Plugins
    guidelines, "Performance data"); `U` where a value could not be determined."""
    counts = report.counts()
    items = [f"{s.value}={counts[s.value]};;;0" for s in (Status.PASS, Status.FAIL, Status.WARN, Status.ERROR,
                                                          Status.SKIP)]
    items.append(f"duration={_number(report.duration_s)}s;;;0;{_number(report.timeout_s)}")
    warn = str(thresholds.warning) if thresholds.warning is not None else ""
    crit = str(thresholds.critical) if thresholds.critical is not None else ""
    for m in metrics(report):
        value = "U" if m.value is None else f"{_number(m.value)}{m.unit}"
        levels = f"{warn};{crit}" if m.thresholds else ";"
        items.append(f"{label(m.label)}={value};{levels};{_bound(m.minimum)};{_bound(m.maximum)}")
    return " ".join(items)


def render(report: Report, thresholds: Thresholds, unfinished: Unfinished | None = None, *,
           verbose: bool = False) -> str:
    """The plugin's whole stdout: status line with perfdata, then the long output."""
    head = f"{status_line(report, thresholds, unfinished)} | {perfdata(report, thresholds)}"
    return "\n".join([head, *long_output(report, unfinished, verbose=verbose)]) + "\n"


def label(text: str) -> str:
    """A perfdata label: only [A-Za-z0-9_.-] (anything else becomes `_`), quoted."""
    return f"'{_LABEL_UNSAFE.sub('_', text)}'"


# --- helpers -------------------------------------------------------------------------------------


def _item_line(r: Result) -> str:
    if r.status is Status.SKIP and r.blocked_by:
        return safe(f"{r.item_id}: skip: blocked by {', '.join(r.blocked_by)}")
    line = f"{r.item_id}: {r.status.value}: {first_line(r.message) or r.title}"
    if r.fix is not None and r.status in (Status.FAIL, Status.WARN):
        line += f" — fix: {first_line(r.fix.summary)}"
    return safe(line)


def _changes_line(changes: Mapping) -> str:
    previous, runs = changes.get("previous"), changes.get("runs")
    head = f"since {previous}" if previous else "first run kept in the history"
    if isinstance(runs, int):
        head += f" ({runs} run{'s' if runs != 1 else ''} kept)"
    parts = [f"{what}: {', '.join(str(i) for i in changes.get(key) or ()) or 'none'}"
             for key, what in (("new_failures", "new failures"), ("resolved", "resolved"), ("flapping", "flapping"))]
    ignored = changes.get("ignored") or ()
    if ignored:
        parts.append(f"{len(ignored)} unreadable kept run{'s' if len(ignored) != 1 else ''} ignored")
    return safe(f"{head}: {'; '.join(parts)}")


def _bound(value: float | None) -> str:
    return "" if value is None else _number(value)


def _number(value: float) -> str:
    """Plain decimal, never scientific notation (the guidelines: some parsers cannot read it)."""
    return f"{value:.3f}".rstrip("0").rstrip(".") or "0"


__all__ = ["Breach", "Unfinished", "exit_code", "label", "long_output", "metrics", "perfdata", "render", "safe",
           "state", "status_line", "unknown_line"]
