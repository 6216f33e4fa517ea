"""The `xivo-doctor` command: parse, run the chosen command inside the one error guard, exit.

Place in the pipeline: the top of the CLI, the only layer that turns errors into messages and
exit codes (cli/guarded.py does it for every command). Each command's module is imported only
when it runs (`COMMANDS`), so the parser, built on every start, imports none of them.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from xivo_doctor.cli.guarded import UNKNOWN, Masks, guarded, on_stderr
from xivo_doctor.cli.parser import build_parser
from xivo_doctor.foundation.deadline import process_age

# command -> "module:function", called with (args, masks) and returning the exit code
COMMANDS = {
    "run": "xivo_doctor.cli.run:command_run",
    "nagios": "xivo_doctor.cli.nagios:command_nagios",
    "checks": "xivo_doctor.cli.info:command_checks",
    "report": "xivo_doctor.cli.info:command_report",
    "lab": "xivo_doctor.cli.lab:command_lab",
    "demo": "xivo_doctor.cli.lab:command_demo",
}


def main(argv: Sequence[str] | None = None) -> int:
    # the command line's own process: its deadline counts from the exec (in-process callers pass argv)
    started_ago = process_age() if argv is None else 0.0
    parser = build_parser()
    args = parser.parse_args(argv)
    args.started_ago = started_ago
    if args.command is None:
        parser.print_help()
        return UNKNOWN
    module, name = COMMANDS[args.command].split(":")
    command = getattr(importlib.import_module(module), name)
    masks = Masks()
    if args.command == "nagios":  # a plugin says everything on stdout, within its deadline: its own guard
        return command(args, masks)
    return guarded(lambda: command(args, masks), say=on_stderr, masks=masks, verbose=getattr(args, "verbose", False))


if __name__ == "__main__":
    raise SystemExit(main())
