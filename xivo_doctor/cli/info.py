"""`xivo-doctor checks` and `xivo-doctor report FILE`: what the doctor knows, what a saved run said.

Place in the pipeline: commands of the CLI that run no check: one lists the declared checks, the
other prints a saved report's summary again from the JSON it embeds. Errors are the caller's
(cli/guarded.py).
"""

from __future__ import annotations

import argparse

from xivo_doctor.cli.guarded import Masks


def command_checks(args: argparse.Namespace, masks: Masks) -> int:
    """Plain aligned columns, never truncated: people read it and scripts cut it."""
    from xivo_doctor.engine import registry

    specs = registry.discover()
    rows = [("ID", "MANUAL SECTION", "DEPENDS ON", "TITLE")]
    rows += [(s.id, s.doc, ",".join(s.depends_on) or "-", s.title) for s in specs]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "  " + row[3])
    return 0


def command_report(args: argparse.Namespace, masks: Masks) -> int:
    """The terminal summary of a saved report, read back from the JSON it embeds."""
    from rich.console import Console

    from xivo_doctor.engine import registry
    from xivo_doctor.render.readback import load_report
    from xivo_doctor.render.terminal import render_terminal

    report = registry.describe(load_report(args.file))
    render_terminal(report, Console(highlight=False), verbose=args.verbose)
    return report.exit_code
