"""The run in words: how an item and the verdict's cause are named, the same in every output.

Place in the pipeline: presentation helpers shared by the HTML report (its title) and the Nagios
plugin (its status line): read the Report, never probe.
"""

from __future__ import annotations

import re

from xivo_doctor.foundation.results import Report, Result, Status, Verdict
from xivo_doctor.render.xivos import xivo_names

TITLE_MESSAGE_CHARS = 200


def display(r: Result) -> str:
    """The item in words: `consul-wan xivo-2`; a pair `a->b` as `a→b`, or `a←b` when what its link
    carries flows to `a` (a federation pair `down->up`: its messages flow upstream to downstream,
    XIVO-FACTS §5)."""
    if r.target == "*":
        return r.check
    down, arrow, up = r.target.partition("->")
    if not arrow:
        return f"{r.check} {r.target}"
    return f"{r.check} {down}←{up}" if r.link is not None and r.link.flows_to_xivo else f"{r.check} {down}→{up}"


def headline(report: Report) -> str:
    """The verdict in one line, fit for a ticket title (and the HTML page's <title>)."""
    return f"{report.verdict.value} — {cause(report)}"


def cause(report: Report) -> str:
    """What the verdict is about, in words: the first root cause (or what could not be checked),
    or for OK how much passed. The Nagios status line and the ticket title both say this."""
    verdict, counts = report.verdict, report.counts()
    if verdict is Verdict.OK:
        n, xivos = counts["pass"], len(xivo_names(report))
        name = str(report.topology.get("name") or "")
        return (f"{n} {'item passes' if n == 1 else 'items pass'} on {xivos} XiVO{'s' if xivos != 1 else ''}"
                + (f" ({name})" if name else ""))
    wanted = {Verdict.CRITICAL: (Status.FAIL,), Verdict.WARNING: (Status.WARN,), Verdict.UNKNOWN: (Status.ERROR,)}
    items = report.with_status(*wanted[verdict])
    first = items[0]
    more = f" (+{len(items) - 1} more)" if len(items) > 1 else ""
    lead = "could not check " if verdict is Verdict.UNKNOWN else ""
    message = next((line.strip() for line in first.message.splitlines() if line.strip()), "")
    # A raw error quoted in parentheses (RabbitMQ's `{auth_failure,...}`) belongs in the details,
    # not in a ticket title: the plain-words cause around it stays.
    message = re.sub(r"\s*\([^()]{30,}\)", "", message)
    if lead:  # an error's message already says it: "could not check: ..."
        message = re.sub(r"^could not check:\s*", "", message)
    message = message if len(message) <= TITLE_MESSAGE_CHARS else message[: TITLE_MESSAGE_CHARS - 1] + "…"
    return f"{lead}{display(first)}{': ' + message if message else ''}{more}"
