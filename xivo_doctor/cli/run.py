"""`xivo-doctor run`: check the interconnection, print the verdict, write the reports asked for.

Place in the pipeline: a command of the CLI. It prepares the run (engine/setup.py), holds the run
lock, starts the warm-up before pytest loads, runs the checks with a live progress display, keeps
the history when asked, and hands the report to the renderers. Errors are the caller's
(cli/guarded.py). `demo` runs it too, through `run_and_report`, with the lab's topology.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass, fields

from xivo_doctor.cli.guarded import Masks
from xivo_doctor.engine.options import DEFAULT_TIMEOUT
from xivo_doctor.foundation.deadline import Deadline
from xivo_doctor.foundation.errors import DoctorError

WRITERS = {"json": "xivo_doctor.render.json_report:write_json", "junit": "xivo_doctor.render.junit:write_junit",
           "html": "xivo_doctor.render.html.document:write_html"}


@dataclass(frozen=True)
class RunRequest:
    """What `run` was asked (its options, by name)."""

    topology: str | None = None
    check: tuple[str, ...] = ()
    node: tuple[str, ...] = ()
    timeout: float = DEFAULT_TIMEOUT
    passive: bool = False
    history: str | None = None
    json: str | None = None
    junit: str | None = None
    html: str | None = None
    bundle: str | None = None
    redact_addresses: bool = False
    quiet: bool = False
    quiet_ok: bool = False
    verbose: bool = False
    started_ago: float = 0.0  # seconds between the process's start and the command's (main.py)

    @classmethod
    def of(cls, args: argparse.Namespace) -> RunRequest:
        given = {f.name: getattr(args, f.name, f.default) for f in fields(cls)}
        return cls(**{**given, "check": tuple(given["check"]), "node": tuple(given["node"])})


def command_run(args: argparse.Namespace, masks: Masks) -> int:
    return run_and_report(RunRequest.of(args), masks)


def run_and_report(request: RunRequest, masks: Masks) -> int:
    from rich.console import Console

    from xivo_doctor.engine.run import Run
    from xivo_doctor.engine.runlock import RunLock
    from xivo_doctor.engine.setup import prepare
    from xivo_doctor.foundation.results import Verdict
    from xivo_doctor.render.progress import LiveProgress
    from xivo_doctor.render.terminal import render_terminal

    deadline = Deadline(request.timeout, spent=request.started_ago)  # the whole run counts, from the process's start
    prepared = prepare(request.topology, checks=request.check, nodes=request.node, timeout=request.timeout,
                       passive=request.passive, redact_addresses=request.redact_addresses, history=request.history)
    masks.know(prepared.options.topology)
    quiet = request.quiet or request.quiet_ok
    # With the JSON on stdout, the human-readable output moves to stderr.
    console = Console(stderr=request.json == "-", highlight=False)
    # Held until the files and the history are written; a second run of the same topology and
    # selection raises AlreadyRunning (one line, exit 3) instead of piling up (engine/runlock.py).
    with RunLock(prepared.key):
        with LiveProgress(console) as progress:
            run = Run(prepared.options, listener=progress, deadline=deadline)
            run.start_warm_up()  # the slow reads (rabbitmqctl: an Erlang VM each) begin before pytest loads
            from xivo_doctor.engine.plugin import run_checks

            report = run_checks(run)
        if prepared.history is not None:
            from xivo_doctor.engine.history import with_changes

            report = with_changes(report, prepared.history, key=prepared.key)
        if not (request.quiet_ok and report.verdict is Verdict.OK):
            render_terminal(report, console, quiet=quiet, verbose=request.verbose)
        write_outputs(request, report, run, quiet=quiet)
    return report.exit_code


def write_outputs(request: RunRequest, report, run, *, quiet: bool) -> None:
    """The files asked for; the report is already redacted (Run.report), so is every file."""
    for option, where in WRITERS.items():
        dest = getattr(request, option)
        if dest:
            module, name = where.split(":")
            write = getattr(importlib.import_module(module), name)  # only what is asked for is imported
            try:
                write(report, dest)
            except OSError as exc:
                raise DoctorError(f"cannot write {dest}: {exc.strerror or exc}; choose a writable path") from None
    if request.bundle:
        from xivo_doctor.render.bundle import write_bundle

        # the run's output redactor: the logs collected now get the report's pseudonyms
        summary = write_bundle(report, request.bundle, topology=run.topology, redactor=run.output_redactor(),
                               # its own budget: a run cut by its deadline is when a bundle is most needed
                               argv=sys.argv, deadline=Deadline(request.timeout))
        if not quiet:
            print(f"bundle: {request.bundle} ({summary})", file=sys.stderr if request.json == "-" else sys.stdout)
