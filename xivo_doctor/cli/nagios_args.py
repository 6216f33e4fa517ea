"""The `nagios` command's arguments: its subparser, which exits as a Monitoring Plugin.

Place in the pipeline: part of the CLI, before anything runs. `cli.build_parser` builds every
command's parser on each start, `--version` and `checks` too, so this module imports nothing but
argparse: the plugin itself (`cli_nagios`: the run, the renderer) is imported only when
`nagios` is the command. The error paths import the renderer's one-line helpers when they print.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, NoReturn

UNKNOWN = 3  # Nagios' UNKNOWN (results.Verdict.UNKNOWN.exit_code; tests/test_startup.py holds them equal)
DEFAULT_TIMEOUT = 10.0  # the Monitoring Plugins guidelines' default for -t


class PluginArgumentParser(argparse.ArgumentParser):
    """argparse for a plugin: a bad option is one UNKNOWN line on stdout and exit 3, not usage on
    stderr and exit 2; `--help` exits 3 too, as the guidelines ask."""

    def error(self, message: str) -> NoReturn:
        from xivo_doctor.cli.main import redact
        from xivo_doctor.render.nagios.output import unknown_line

        print(unknown_line(redact(f"{self.prog}: {message}; see {self.prog} --help")), flush=True)
        raise SystemExit(UNKNOWN)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            from xivo_doctor.render.nagios.output import safe

            print(safe(message), flush=True)
        raise SystemExit(UNKNOWN if status == 0 else status)

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:
        # As a subcommand, what this parser does not know goes back to the main parser, which
        # would report it with exit 2: refuse it here.
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras


def add_command(commands: Any) -> None:
    """Register `nagios` on the CLI's subparsers."""
    from xivo_doctor.cli.main import _seconds

    nagios = commands.add_parser(
        "nagios", help="run the checks as a Nagios/Icinga plugin: status line, perfdata, exit 0-3",
        description="Run the checks as a Nagios/Icinga plugin (Monitoring Plugins guidelines). "
                    "Exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; everything on stdout. See docs/nagios.md.")
    # argparse builds every subparser with the main parser's class; this one must exit as a plugin.
    nagios.__class__ = PluginArgumentParser
    nagios.add_argument("-T", "--topology", metavar="FILE", help="topology file (default: ./xivo-doctor.yml, "
                        "/etc/xivo-doctor/topology.yml, then the running lab's)")
    nagios.add_argument("--check", metavar="ID", action="append", default=[],
                        help="only this check (repeatable): one Nagios service per check id")
    nagios.add_argument("--node", metavar="NAME", action="append", default=[],
                        help="only this XiVO and the pairs that contain it (repeatable)")
    nagios.add_argument("-t", "--timeout", metavar="SECONDS", type=_seconds, default=DEFAULT_TIMEOUT,
                        help=f"answer within SECONDS + 1 whatever happens (default {DEFAULT_TIMEOUT:g})")
    nagios.add_argument("-w", "--warning", metavar="RANGE",
                        help="WARNING when a federation probe latency (ms) is outside RANGE, e.g. 500")
    nagios.add_argument("-c", "--critical", metavar="RANGE",
                        help="CRITICAL when a federation probe latency (ms) is outside RANGE, e.g. 2000")
    nagios.add_argument("--passive", action="store_true",
                        help="read only: no federation probe message (then no latency is measured)")
    nagios.add_argument("--history", metavar="DIR",
                        help="keep the last runs in DIR and say in the long output what changed since the last")
    nagios.add_argument("-v", "--verbose", action="store_true",
                        help="passing items too in the long output; traceback of an internal error on stderr")
