"""Every command's options: the `xivo-doctor` parser, built on each start.

Place in the pipeline: the CLI, before anything runs. It declares the commands (`lab` and `demo`
are declared by cli/lab.py, beside their code) and imports none of their implementations: a
command's module is imported only when that command runs (cli/main.py), so `--version` and
`checks` start fast. The `nagios` command's parser exits as a Monitoring Plugin.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, NoReturn

from xivo_doctor import __version__
from xivo_doctor.cli import lab
from xivo_doctor.cli.guarded import UNKNOWN
from xivo_doctor.cli.options import selection

NAGIOS_TIMEOUT = 10.0  # the Monitoring Plugins guidelines' default for -t


class CommandParser(argparse.ArgumentParser):
    """argparse; with `plugin=True` (the `nagios` command), one that exits as a Monitoring Plugin: a
    bad option is one UNKNOWN line on stdout and exit 3, not usage on stderr and exit 2; `--help`
    exits 3 too, as the guidelines ask. Sub-commands get this class too (argparse builds them with
    their parent's), `plugin` passed through `add_parser`."""

    def __init__(self, *args: Any, plugin: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plugin = plugin

    def error(self, message: str) -> NoReturn:
        if not self.plugin:
            super().error(message)
        from xivo_doctor.cli.guarded import Masks
        from xivo_doctor.render.nagios.output import unknown_line

        print(unknown_line(Masks().text(f"{self.prog}: {message}; see {self.prog} --help")), flush=True)
        raise SystemExit(UNKNOWN)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if not self.plugin:
            super().exit(status, message)
        if message:
            from xivo_doctor.render.nagios.output import safe

            print(safe(message), flush=True)
        raise SystemExit(UNKNOWN if status == 0 else status)

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:
        # As a subcommand, what this parser does not know goes back to the main parser, which would
        # report it with exit 2: a plugin refuses it here.
        namespace, extras = super().parse_known_args(args, namespace)
        if extras and self.plugin:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras


def build_parser() -> CommandParser:
    parser = CommandParser(prog="xivo-doctor",
                           description="Verify a live interconnection of XiVO servers and say what to fix.")
    parser.add_argument("--version", action="version", version=f"xivo-doctor {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser("run", help="check the interconnection described by the topology",
                              parents=[selection(helps={"node": "only this XiVO (repeatable)"})])
    run.add_argument("--json", metavar="FILE", help="write the result JSON (schema xivo-doctor/1); - for stdout")
    run.add_argument("--junit", metavar="FILE", help="write JUnit XML, one testcase per item")
    run.add_argument("--html", metavar="FILE", help="write the self-contained HTML report (for a support ticket)")
    run.add_argument("--bundle", metavar="FILE", help="write a support bundle (.tar.gz): the reports, the redacted "
                     "topology and, on a XiVO, its troubleshooting logs and commands")
    run.add_argument("--redact-addresses", action="store_true",
                     help="replace IP addresses and host names with stable pseudonyms in every output")
    verbosity = run.add_mutually_exclusive_group()
    verbosity.add_argument("-q", "--quiet", action="store_true", help="print the verdict line only")
    verbosity.add_argument("-v", "--verbose", action="store_true", help="show passing evidence, tracebacks")
    run.add_argument("--quiet-ok", action="store_true",
                     help="as -q, and print nothing at all when the verdict is OK (cron mails only problems)")

    nagios = commands.add_parser(
        "nagios", plugin=True, help="run the checks as a Nagios/Icinga plugin: status line, perfdata, exit 0-3",
        description="Run the checks as a Nagios/Icinga plugin (Monitoring Plugins guidelines). "
                    "Exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; everything on stdout. See docs/nagios.md.",
        parents=[selection(timeout=NAGIOS_TIMEOUT, helps={
            "check": "only this check (repeatable): one Nagios service per check id",
            "timeout": f"answer within SECONDS + 1 whatever happens (default {NAGIOS_TIMEOUT:g})",
            "passive": "read only: no federation probe message (then no latency is measured)",
            "history": "keep the last runs in DIR and say in the long output what changed since the last"})])
    nagios.add_argument("-w", "--warning", metavar="RANGE",
                        help="WARNING when a measurement judged by thresholds (a federation probe's latency, ms) "
                             "is outside RANGE, e.g. 500")
    nagios.add_argument("-c", "--critical", metavar="RANGE",
                        help="CRITICAL when a measurement judged by thresholds (a federation probe's latency, ms) "
                             "is outside RANGE, e.g. 2000")
    nagios.add_argument("-v", "--verbose", action="store_true",
                        help="passing items too in the long output; traceback of an internal error on stderr")

    commands.add_parser("checks", help="list every check: id, title, doc reference")
    again = commands.add_parser("report", help="print the summary of a saved HTML report (or result JSON) again")
    again.add_argument("file", metavar="FILE", help="a report written by --html (or --json)")
    again.add_argument("-v", "--verbose", action="store_true", help="show passing evidence too")
    lab.add_commands(commands)
    return parser
