"""The terminal output: results per check, what to fix, what changed (with a history), the verdict line.

Place in the pipeline: presentation: reads the Report, never probes.

Every piece of text that came from a result (messages, evidence, commands: they come from the
inspected systems and the topology) is printed as a `rich.text.Text` or with `markup=False`,
so `[red]` or `[/]` in it is shown literally, never interpreted; control characters are shown
as visible escapes so an inspected system cannot drive the admin's terminal. Fix commands are
printed alone on their lines, unindented and never wrapped, so they can be copied and pasted.
Nothing here animates: `rich` drops colours when the console is not a terminal, and the output
is then plain text fit for cron mail and Nagios.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from rich.console import Console
from rich.text import Text

from xivo_doctor.foundation.results import Report, Result, Status, Verdict, thaw

STATUS_STYLE: dict[Status, str] = {
    Status.PASS: "bold green",
    Status.WARN: "bold yellow",
    Status.FAIL: "bold red",
    Status.ERROR: "bold magenta",
    Status.SKIP: "dim",
}
VERDICT_STYLE: dict[Verdict, str] = {
    Verdict.OK: "bold green",
    Verdict.WARNING: "bold yellow",
    Verdict.CRITICAL: "bold red",
    Verdict.UNKNOWN: "bold magenta",
}
_BADGE_WIDTH = max(len(s.value) for s in Status)
_MAX_TARGET_WIDTH = 30
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def clean(text: Any) -> str:
    """`text` as a string with control characters (ESC, CR, ...) shown as `\\xNN` escapes."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


# --- the verdict line -------------------------------------------------------------------------


def _tally(report: Report) -> str:
    c = report.counts()
    return (
        f"{c['fail']} fail, {c['error']} error, {c['warn']} warn, {c['pass']} pass, {c['skip']} skip"
        f" in {report.duration_s:.2f} s"
    )


def _first_and_more(items: tuple[Result, ...]) -> tuple[str, str]:
    more = f" (+{len(items) - 1} more)" if len(items) > 1 else ""
    return clean(items[0].item_id), more


def verdict_line(report: Report) -> str:
    """One plain-text line (no markup) saying the verdict, its first cause and the counts.

    `CRITICAL: port-reachable[xivo-2] failed — 1 fail, 0 error, 0 warn, 6 pass, 2 skip in 0.84 s`
    """
    verdict = report.verdict
    if verdict is Verdict.OK:
        c = report.counts()
        n = c["pass"]
        noun = "item passes" if n == 1 else "items pass"
        return f"OK: {n} {noun} ({c['skip']} skip) in {report.duration_s:.2f} s"
    if verdict is Verdict.CRITICAL:
        first, more = _first_and_more(tuple(r for r in report.root_causes() if r.status is Status.FAIL))
        return f"CRITICAL: {first} failed{more} — {_tally(report)}"
    if verdict is Verdict.WARNING:
        first, more = _first_and_more(report.root_causes())
        return f"WARNING: {first} warned{more} — {_tally(report)}"
    first, more = _first_and_more(report.with_status(Status.ERROR))
    return f"UNKNOWN: could not check {first}{more} — {_tally(report)}"


# --- helpers ----------------------------------------------------------------------------------


def _out(console: Console, text: Text | str = "", *, soft_wrap: bool = False) -> None:
    """One line. Wrapped to the terminal's width on a terminal; elsewhere (cron's mail, a CI log,
    `| less`) never: a line cut at 80 columns in mid-sentence or mid-UUID reads worse than a long one."""
    if isinstance(text, str):
        text = Text(text)
    console.print(text, highlight=False, soft_wrap=soft_wrap or not console.is_terminal)


def _indented(text: str, indent: str) -> str:
    """Continuation lines of a multi-line `text` indented like its first line."""
    return clean(text).replace("\n", "\n" + indent)


def _value(value: Any) -> str:
    """One evidence value on one line: `k=v, k=v` for a flat mapping, `a, b` for a flat list."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and not any(isinstance(v, Mapping | tuple | list) for v in value.values()):
        return ", ".join(f"{k}={_value(v)}" for k, v in value.items())
    if isinstance(value, tuple | list) and not any(isinstance(v, Mapping | tuple | list) for v in value):
        return ", ".join(_value(v) for v in value)
    return json.dumps(thaw(value), ensure_ascii=False, default=str)


def _evidence(console: Console, evidence: Mapping[str, Any], indent: str) -> None:
    """Evidence as indented `key: value` lines; a mapping of mappings becomes one line per entry."""
    for key, value in evidence.items():
        if isinstance(value, Mapping) and value and all(isinstance(v, Mapping) for v in value.values()):
            _out(console, Text(f"{indent}{clean(key)}:"))
            _evidence(console, value, indent + "  ")
            continue
        line = f"{clean(key)}: {_value(value)}"
        _out(console, Text(indent + _indented(line, indent + "  ")))


def _badge(status: Status) -> Text:
    return Text(status.value.upper().ljust(_BADGE_WIDTH), style=STATUS_STYLE[status])


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _names(entry: str, blocker: Result) -> bool:
    """Whether a `blocked_by` entry names `blocker`.

    Entries are item ids (`check[target]`), check ids, or either followed by `:facet`; a facet
    names the blocker only if the blocker failed in that facet (when it lists facets).
    """
    if entry in (blocker.item_id, blocker.check):
        return True
    head, sep, facet = entry.rpartition(":")
    if not sep or "]" in facet or head not in (blocker.item_id, blocker.check):
        return False
    return not blocker.facets or facet in blocker.facets


def blocked_by_result(report: Report, blocker: Result) -> tuple[Result, ...]:
    """The items whose `blocked_by` names `blocker`, in run order."""
    return tuple(
        r
        for r in report.results
        if r is not blocker and any(_names(entry, blocker) for entry in r.blocked_by)
    )


def _groups(results: Iterable[Result]) -> dict[str, list[Result]]:
    groups: dict[str, list[Result]] = {}
    for r in results:
        groups.setdefault(r.check, []).append(r)
    return groups


# --- sections ---------------------------------------------------------------------------------


def _results_section(report: Report, console: Console, *, verbose: bool) -> None:
    _out(console, Text("Results", style="bold underline"))
    width = min(_MAX_TARGET_WIDTH, max((len(clean(r.target)) for r in report.results), default=1))
    for check, results in _groups(report.results).items():
        _out(console)
        heading = Text(clean(results[0].title) or clean(check), style="bold")
        heading.append(f"  {clean(check)}", style="dim")
        _out(console, heading)
        for r in results:
            if r.status is Status.SKIP and r.blocked_by:
                short = "blocked by " + ", ".join(clean(b) for b in r.blocked_by)
            else:
                short = clean(_first_line(r.message))
            line = Text("  ")
            line.append_text(_badge(r.status))
            line.append("  " + clean(r.target).ljust(width))
            if short:
                line.append("  " + short)
            line.rstrip()
            _out(console, line)
            if verbose and r.status is Status.PASS:
                _evidence(console, r.evidence, " " * (4 + _BADGE_WIDTH + 2))


def _label(name: str, value: str, indent: str = "  ") -> Text:
    text = Text(indent)
    text.append(f"{name}:", style="bold")
    if value:
        text.append(" " + _indented(value, indent + "  "))
    return text


def _fix_item(report: Report, console: Console, r: Result) -> None:
    header = _badge(r.status)
    header.append("  ")
    header.append(clean(r.item_id), style="bold")
    if r.title:
        header.append(" — " + clean(r.title))
    _out(console, header)
    if r.message or r.evidence:
        _out(console, _label("Observed", r.message))
    _evidence(console, r.evidence, "    ")
    if r.why:
        _out(console, _label("Why it matters", r.why))
    if r.fix is not None:
        _out(console, _label("Fix", r.fix.summary))
        for cmd in r.fix.commands:
            # Alone on its line, never wrapped, no markup/highlight/emoji: pasteable as is.
            console.print(clean(cmd), markup=False, highlight=False, emoji=False, soft_wrap=True)
    doc = (r.fix.doc if r.fix is not None and r.fix.doc else "") or r.doc
    if doc:
        _out(console, _label("Manual", doc))
    blocks = blocked_by_result(report, r)
    if blocks:
        _out(console, _label("Blocks", ", ".join(b.item_id for b in blocks)))


def _fix_section(report: Report, console: Console) -> None:
    items = report.root_causes() + report.with_status(Status.ERROR)
    if not items:
        return
    _out(console)
    _out(console, Text("What to fix", style="bold underline"))
    for r in items:
        _out(console)
        _fix_item(report, console, r)


def _changes_section(report: Report, console: Console) -> None:
    """What changed since the previous run kept by `--history` (`Report.changes`), if it is known."""
    changes = report.changes
    if changes is None:
        return
    _out(console)
    previous = changes.get("previous")
    runs = changes.get("runs", 1)
    if not previous:
        _out(console, Text("Changes", style="bold underline"))
        _out(console, "  first run kept in this history: nothing to compare yet")
    else:
        heading = Text(f"Changes since {clean(previous)}", style="bold underline")
        heading.append(f"  ({runs} runs kept)", style="dim")
        _out(console, heading)
        lists = [("new failures", "new_failures", "bold red"), ("resolved", "resolved", "bold green"),
                 ("flapping", "flapping", "bold yellow")]
        shown = [(label, changes.get(key) or (), style) for label, key, style in lists]
        if not any(items for _label, items, _style in shown):
            _out(console, "  nothing changed")
        for label, items, style in shown:
            if items:
                line = Text("  ")
                line.append(f"{label}:", style=style)
                line.append(" " + ", ".join(clean(i) for i in items))
                _out(console, line)
    ignored = changes.get("ignored") or ()
    if ignored:
        _out(console, Text("  ignored (unreadable): " + ", ".join(clean(i) for i in ignored), style="dim"))


def render_terminal(report: Report, console: Console, *, quiet: bool = False, verbose: bool = False) -> None:
    """Print the report: results, what to fix, what changed since the previous run (with a
    history), then the verdict line (only that when `quiet`)."""
    line = Text(verdict_line(report), style=VERDICT_STYLE[report.verdict])
    if not quiet:
        _results_section(report, console, verbose=verbose)
        _fix_section(report, console)
        _changes_section(report, console)
        _out(console)
    _out(console, line, soft_wrap=True)
