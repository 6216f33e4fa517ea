"""`xivo-doctor nagios`: the checks as a Nagios/Icinga plugin (Monitoring Plugins guidelines).

Place in the pipeline: a command of the CLI. It prepares the run (engine/setup.py, the same as
`run`), takes the run lock, runs the checks under the plugin's own deadline (cli/watchdog.py), keeps
the history when asked, and prints what `render/nagios/output.py` makes of the report. Exit codes:
0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. Its options are declared in cli/parser.py.

What a monitoring system needs and `run` does not give:
- everything on stdout, nothing else there: Nagios reads stdout and ignores stderr, so each
  failure (bad option, bad topology, a run holding the lock, an internal error) is ONE line
  `XIVO-DOCTOR UNKNOWN - <what>` on stdout and exit 3 (cli/guarded.py, the plugin's line), never
  argparse's exit 2;
- an answer within `-t` + 1 s whatever a probe does (cli/watchdog.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading

from xivo_doctor.cli.guarded import UNKNOWN, Masks, guarded
from xivo_doctor.cli.watchdog import Collector, PluginOutput, leave_when_held, run_within
from xivo_doctor.foundation.deadline import Deadline
from xivo_doctor.render.nagios.output import exit_code, render, unknown_line
from xivo_doctor.render.nagios.ranges import Thresholds, parse


def command_nagios(args: argparse.Namespace, masks: Masks) -> int:
    """Run as a plugin; returns the exit code (or never returns, when the deadline cut the run)."""
    deadline = Deadline(args.timeout, spent=args.started_ago)  # the whole run counts, from the process's start
    threads_before = set(threading.enumerate())
    out = PluginOutput()
    code = guarded(lambda: _answer(args, deadline, out, masks), say=lambda line: out.write(unknown_line(line) + "\n"),
                   masks=masks, verbose=args.verbose)
    out.close()
    leave_when_held(code, threads_before, deadline)
    return code


def _answer(args: argparse.Namespace, deadline: Deadline, out: PluginOutput, masks: Masks) -> int:
    from xivo_doctor.engine.run import Run
    from xivo_doctor.engine.runlock import RunLock
    from xivo_doctor.engine.setup import prepare

    thresholds = Thresholds(warning=parse(args.warning, "-w") if args.warning is not None else None,
                            critical=parse(args.critical, "-c") if args.critical is not None else None)
    prepared = prepare(args.topology, checks=args.check, nodes=args.node, timeout=args.timeout,
                       passive=args.passive, history=args.history)
    masks.know(prepared.options.topology)
    collector = Collector()
    run = Run(prepared.options, listener=collector, deadline=deadline)
    with RunLock(prepared.key) as lock:
        outcome = run_within(run, collector, deadline)
        if outcome.unfinished is not None:
            # A cut run is not kept in the history: its missing items would read as "resolved".
            out.write(render(outcome.report, thresholds, outcome.unfinished, verbose=args.verbose))
            out.close()
            lock.release()
            sys.stderr.flush()
            os._exit(UNKNOWN)  # the worker thread may be stuck in a system call: do not wait for it
        report = outcome.report
        if prepared.history is not None:
            from xivo_doctor.engine.history import with_changes

            report = with_changes(report, prepared.history, key=prepared.key)
    out.write(render(report, thresholds, verbose=args.verbose))
    return exit_code(report, thresholds)
