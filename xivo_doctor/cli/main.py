"""The `xivo-doctor` command: the only place that turns errors into messages and exit codes.

Place in the pipeline: it parses arguments, loads the topology, runs the checks through the
pytest plugin, and hands the report to the renderers. Every `DoctorError` becomes one line on
stderr and exit 3 (UNKNOWN, as Nagios spells "could not check"); an unexpected exception too,
with its traceback only under `-v`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from xivo_doctor import __version__
from xivo_doctor.cli.nagios_args import UNKNOWN
from xivo_doctor.foundation.deadline import Deadline
from xivo_doctor.foundation.errors import DoctorError, TopologyError

if TYPE_CHECKING:
    from xivo_doctor.engine.run import Run
    from xivo_doctor.foundation.redact import Redactor
    from xivo_doctor.foundation.results import Report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xivo-doctor",
        description="Verify a live interconnection of XiVO servers and say what to fix.",
    )
    parser.add_argument("--version", action="version", version=f"xivo-doctor {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser("run", help="check the interconnection described by the topology")
    run.add_argument("-T", "--topology", metavar="FILE", help="topology file (default: ./xivo-doctor.yml, "
                     "/etc/xivo-doctor/topology.yml, then the running lab's)")
    run.add_argument("--json", metavar="FILE", help="write the result JSON (schema xivo-doctor/1); - for stdout")
    run.add_argument("--junit", metavar="FILE", help="write JUnit XML, one testcase per item")
    run.add_argument("--html", metavar="FILE", help="write the self-contained HTML report (for a support ticket)")
    run.add_argument("--bundle", metavar="FILE", help="write a support bundle (.tar.gz): the reports, the redacted "
                     "topology and, on a XiVO, its troubleshooting logs and commands")
    run.add_argument("--redact-addresses", action="store_true",
                     help="replace IP addresses and host names with stable pseudonyms in every output")
    run.add_argument("--check", metavar="ID", action="append", default=[], help="only this check (repeatable)")
    run.add_argument("--node", metavar="NAME", action="append", default=[], help="only this XiVO (repeatable)")
    run.add_argument("-t", "--timeout", metavar="SECONDS", type=_seconds, default=30.0,
                     help="deadline for the whole run (default 30)")
    run.add_argument("--passive", action="store_true",
                     help="read only: do not send the federation probe message")
    verbosity = run.add_mutually_exclusive_group()
    verbosity.add_argument("-q", "--quiet", action="store_true", help="print the verdict line only")
    verbosity.add_argument("-v", "--verbose", action="store_true", help="show passing evidence, tracebacks")
    run.add_argument("--quiet-ok", action="store_true",
                     help="as -q, and print nothing at all when the verdict is OK (cron mails only problems)")
    run.add_argument("--history", metavar="DIR", help="keep the last results in DIR and say what changed since the "
                     "previous run: new failures, resolved, flapping")

    commands.add_parser("checks", help="list every check: id, title, doc reference")
    again = commands.add_parser("report", help="print the summary of a saved HTML report (or result JSON) again")
    again.add_argument("file", metavar="FILE", help="a report written by --html (or --json)")
    again.add_argument("-v", "--verbose", action="store_true", help="show passing evidence too")
    # Each command's module declares its options and imports its implementation only when run:
    # the parser is built on every start, `--version` and `checks` included.
    from xivo_doctor.cli import lab as cli_lab
    from xivo_doctor.cli import nagios_args as cli_nagios_args

    cli_lab.add_commands(commands)
    cli_nagios_args.add_command(commands)
    return parser


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"{text} is out of range; give 0 < SECONDS <= 3600")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return UNKNOWN
    try:
        if args.command == "run":
            return command_run(args)
        if args.command == "nagios":
            from xivo_doctor.cli import nagios as cli_nagios

            return cli_nagios.command_nagios(args)
        if args.command == "report":
            return command_report(args)
        if args.command in ("lab", "demo"):
            from xivo_doctor.cli import lab as cli_lab

            return cli_lab.command_lab(args) if args.command == "lab" else cli_lab.command_demo(args)
        return command_checks()
    except TopologyError as exc:
        # The loader never quotes a secret's value; its messages name keys (`consul.token: ...`).
        _error(_masks().credentials(str(exc)))
        return UNKNOWN
    except DoctorError as exc:
        _error(redact(str(exc)))
        return UNKNOWN
    except KeyboardInterrupt:
        _error("interrupted")
        return UNKNOWN
    except Exception as exc:  # a bug: still one line and UNKNOWN, never a bare traceback
        if getattr(args, "verbose", False):
            import traceback

            print(redact(traceback.format_exc()), file=sys.stderr, end="")
        _error(redact(f"internal error: {type(exc).__name__}: {exc} (run with -v for the traceback; please report it)"))
        return UNKNOWN


# Masks what the command's topology holds once it is loaded; before that, credentials in URIs and
# headers still are (an exception message may quote a DSN or a URL). Made on first use: a start
# that prints no error (`--version`, `checks`) need not import the redactor.
_redactor: Redactor | None = None


def _masks() -> Redactor:
    global _redactor
    if _redactor is None:
        from xivo_doctor.foundation.redact import Redactor

        _redactor = Redactor()
    return _redactor


def redact(text: str) -> str:
    return _masks().text(text)


def _error(message: str) -> None:
    print(f"xivo-doctor: error: {message}", file=sys.stderr)


def command_checks() -> int:
    """Plain aligned columns, never truncated: people read it and scripts cut it."""
    from xivo_doctor.engine import registry

    specs = registry.discover()
    rows = [("ID", "MANUAL SECTION", "DEPENDS ON", "TITLE")]
    rows += [(s.id, s.doc, ",".join(s.depends_on) or "-", s.title) for s in specs]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "  " + row[3])
    return 0


def command_run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from xivo_doctor.engine import registry
    from xivo_doctor.engine.history import ensure_directory, with_changes
    from xivo_doctor.engine.run import Run
    from xivo_doctor.engine.runlock import RunLock, run_key
    from xivo_doctor.foundation.redact import Redactor
    from xivo_doctor.foundation.results import Verdict
    from xivo_doctor.render.progress import LiveProgress
    from xivo_doctor.render.terminal import render_terminal
    from xivo_doctor.topology import find_topology, load_topology

    deadline = Deadline(args.timeout)  # the whole run counts, start-up included
    topology_path = find_topology(args.topology)
    topology = load_topology(topology_path)
    global _redactor
    _redactor = Redactor.for_topology(topology)
    registry.validate_selection(args.check, args.node, topology)

    history = ensure_directory(Path(args.history)) if args.history else None  # a wrong DIR costs no probing
    args.quiet = args.quiet or args.quiet_ok  # write_outputs prints nothing either

    # With the JSON on stdout, the human-readable output moves to stderr.
    console = Console(stderr=args.json == "-", highlight=False)
    # Held until the files and the history are written; a second run of the same topology and
    # selection raises AlreadyRunning (one line, exit 3) instead of piling up (runlock.py).
    key = run_key(topology_path, args.check, args.node)
    with RunLock(key):
        with LiveProgress(console) as progress:
            run = Run(
                topology=topology,
                timeout=args.timeout,
                deadline=deadline,
                checks=tuple(args.check),
                nodes=tuple(args.node),
                passive=args.passive,
                redact_addresses=args.redact_addresses,
                listener=progress,
            )
            run.start_prefetch()  # the slow reads (rabbitmqctl: an Erlang VM each) begin before pytest loads
            from xivo_doctor.engine.plugin import run_checks

            report = run_checks(run)
        if history is not None:
            report = with_changes(report, history, key=key)
        if not (args.quiet_ok and report.verdict is Verdict.OK):
            render_terminal(report, console, quiet=args.quiet, verbose=args.verbose)
        write_outputs(args, report, run)
    return report.exit_code


def write_outputs(args: argparse.Namespace, report: Report, run: Run) -> None:
    """The files asked for; the report is already redacted (Run.report), so is every file."""
    writers = {"json": "xivo_doctor.render.json_report:write_json", "junit": "xivo_doctor.render.junit:write_junit",
               "html": "xivo_doctor.render.html.document:write_html"}
    for option, where in writers.items():
        dest = getattr(args, option)
        if dest:
            module, name = where.split(":")
            write = getattr(importlib.import_module(module), name)  # only what is asked for is imported
            try:
                write(report, dest)
            except OSError as exc:
                raise DoctorError(f"cannot write {dest}: {exc.strerror or exc}; choose a writable path") from None
    if args.bundle:
        from xivo_doctor.render.bundle import write_bundle

        # the redactor that made the report: the logs collected now get the same pseudonyms
        summary = write_bundle(report, args.bundle, topology=run.loaded_topology(), redactor=run.output_redactor,
                               # its own budget: a run cut by its deadline is when a bundle is most needed
                               argv=sys.argv, deadline=Deadline(args.timeout))
        if not args.quiet:
            print(f"bundle: {args.bundle} ({summary})", file=sys.stderr if args.json == "-" else sys.stdout)


def command_report(args: argparse.Namespace) -> int:
    """The terminal summary of a saved report, read back from the JSON it embeds."""
    from rich.console import Console

    from xivo_doctor.render.readback import load_report
    from xivo_doctor.render.terminal import render_terminal

    report = load_report(args.file)
    render_terminal(report, Console(highlight=False), verbose=args.verbose)
    return report.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
