"""`xivo-doctor nagios`: the checks as a Nagios/Icinga plugin (Monitoring Plugins guidelines).

Place in the pipeline: a command of the CLI, so one of the places that turn errors into messages
and exit codes. It parses the plugin's options, takes the run lock, runs the checks in a worker
thread under the plugin's own deadline, keeps the history when asked, and prints what
`render/nagios.py` makes of the report. Exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
Its options are declared in `cli_nagios_args.py`, which the CLI imports to build its parser
without importing this module (the run, the renderer) on every start.

What a monitoring system needs and `run` does not give:
- everything on stdout, nothing else there: Nagios reads stdout and ignores stderr, so each
  failure (bad option, bad topology, a run holding the lock, an internal error) is ONE line
  `XIVO-DOCTOR UNKNOWN - <what>` on stdout and exit 3, never argparse's exit 2;
- an answer within `-t` + 1 s whatever a probe does: the run's deadline already bounds each
  operation, but a peer can still hold one (headers trickled a byte at a time, a stuck
  library call). The main thread waits for the deadline plus `GRACE`, then prints what finished
  and UNKNOWN for the rest and leaves with `os._exit(3)`: a daemon thread stuck in a system call
  must not keep the process alive.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import os
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xivo_doctor.cli.nagios_args import DEFAULT_TIMEOUT, PluginArgumentParser, add_command
from xivo_doctor.engine.run import Listener
from xivo_doctor.foundation.deadline import Deadline
from xivo_doctor.foundation.errors import DoctorError, TopologyError
from xivo_doctor.foundation.redact import Redactor
from xivo_doctor.foundation.results import Verdict
from xivo_doctor.render.nagios.output import Unfinished, exit_code, render, unknown_line
from xivo_doctor.render.nagios.ranges import Thresholds, parse

if TYPE_CHECKING:
    from xivo_doctor.engine.run import Run
    from xivo_doctor.foundation.results import Report, Result

UNKNOWN = Verdict.UNKNOWN.exit_code
# Past the deadline the engine still ends its own run: items not started become `error` and the
# report follows within a few tenths of a second. Waiting this much more lets it answer in full;
# the rest of the guidelines' `-t + 1 s` is Python's start-up and printing.
GRACE = 0.5


# --- the run under the plugin's deadline ---------------------------------------------------------


class Collector(Listener):
    """Keeps what the run finished, for an answer before it ends (results arrive redacted:
    Run.finish redacts before it tells the listener)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._results: list[Result] = []
        self.total: int | None = None
        self.running: str | None = None

    def start(self, total: int) -> None:
        self.total = total

    def item_started(self, item_id: str) -> None:
        with self._lock:
            self.running = item_id

    def item_done(self, result: Result) -> None:
        with self._lock:
            self._results.append(result)
            self.running = None

    def snapshot(self) -> tuple[tuple[Result, ...], str | None]:
        with self._lock:
            return tuple(self._results), self.running


@dataclass(frozen=True)
class Outcome:
    report: Report
    unfinished: Unfinished | None = None  # set when the deadline cut the run: `report` is partial


def run_within(run: Run, collector: Collector, deadline: Deadline, *, grace: float = GRACE,
               runner: Callable[[Run], Report] | None = None) -> Outcome:
    """Run the checks in a daemon thread; wait until the deadline plus `grace`. Returns the full
    report, or, when the run has not ended by then, the finished items with what was left."""
    if runner is None:
        run.start_prefetch()  # the slow reads begin before pytest loads (Run.start_prefetch)
        from xivo_doctor.engine.plugin import run_checks as runner
    box: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        try:
            box["report"] = runner(run)
        except BaseException as exc:  # handed to the main thread, which decides
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, name="xivo-doctor-checks", daemon=True).start()
    if done.wait(deadline.remaining() + grace):
        if "error" in box:
            raise box["error"]
        return Outcome(box["report"])
    results, running = collector.snapshot()
    partial = dataclasses.replace(run.report(), results=results)
    return Outcome(partial, Unfinished(timeout_s=deadline.seconds, total=collector.total, running=running))


# --- the command ---------------------------------------------------------------------------------


class PluginOutput:
    """The plugin's stdout, held from the start: while the checks run, pytest's capture points
    file descriptor 1 elsewhere, and a timed-out answer is written while they still run."""

    def __init__(self) -> None:
        self._stream = sys.stdout
        try:
            self._fd: int | None = os.dup(self._stream.fileno())
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            self._fd = None  # not a real file (a test's capture): write to the stream itself

    def write(self, text: str) -> None:
        if self._fd is None:
            self._stream.write(text)
            self._stream.flush()
            return
        self._stream.flush()
        data = text.encode("utf-8", "replace")  # bytes: no locale (env -i under Nagios) can fail this
        while data:
            data = data[os.write(self._fd, data):]

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def command_nagios(args: argparse.Namespace) -> int:
    """Run as a plugin; returns the exit code (or never returns, when the deadline cut the run)."""
    deadline = Deadline(args.timeout)  # the whole run counts, start-up included
    threads_before = set(threading.enumerate())
    out = PluginOutput()
    masks = _Masks()
    try:
        text, code = _answer(args, deadline, out, masks)
    except TopologyError as exc:  # names keys, never a secret's value (as in cli.main)
        text, code = unknown_line(Redactor().credentials(str(exc))) + "\n", UNKNOWN
    except DoctorError as exc:  # bad option, lock, history: could not check
        text, code = unknown_line(masks.text(str(exc))) + "\n", UNKNOWN
    except KeyboardInterrupt:
        text, code = unknown_line("interrupted") + "\n", UNKNOWN
    except Exception as exc:  # a bug: still one line and UNKNOWN, never a bare traceback on stdout
        if args.verbose:
            print(masks.text(traceback.format_exc()), file=sys.stderr, end="", flush=True)
        text = unknown_line(masks.text(f"internal error: {type(exc).__name__}: {exc} (run with -v for the "
                                       "traceback; please report it)")) + "\n"
        code = UNKNOWN
    out.write(text)
    out.close()
    leave_when_held(code, threads_before, deadline)
    return code


def leave_when_held(code: int, threads_before: set[threading.Thread], deadline: Deadline) -> None:
    """Exit now (`os._exit`) if a thread this run started would hold the process past the deadline.

    A probe's pool thread still stuck in a call its caller gave up on (a `getaddrinfo` bounded
    by `future.result(timeout)`) is not a daemon: the interpreter joins such threads at exit, so
    the answer would be printed but the exit code would wait for it."""
    started = [t for t in threading.enumerate() if t not in threads_before and not t.daemon]
    for thread in started:
        thread.join(deadline.remaining() + GRACE)
    if any(t.is_alive() for t in started):
        sys.stderr.flush()
        os._exit(code)


@dataclass
class _Masks:
    """Redaction for error lines: credentials in URIs and headers from the start (cli.redact),
    the topology's own secrets once it is loaded."""

    redactor: Redactor | None = None

    def text(self, text: str) -> str:
        from xivo_doctor.cli.main import redact

        return redact(self.redactor.text(text) if self.redactor is not None else text)


def _answer(args: argparse.Namespace, deadline: Deadline, out: PluginOutput, masks: _Masks) -> tuple[str, int]:
    from xivo_doctor.engine import registry
    from xivo_doctor.engine.history import ensure_directory, with_changes
    from xivo_doctor.engine.run import Run
    from xivo_doctor.engine.runlock import RunLock, run_key
    from xivo_doctor.topology import find_topology, load_topology

    thresholds = Thresholds(warning=parse(args.warning, "-w") if args.warning is not None else None,
                            critical=parse(args.critical, "-c") if args.critical is not None else None)
    path = find_topology(args.topology)
    topology = load_topology(path)
    masks.redactor = Redactor.for_topology(topology)
    registry.validate_selection(args.check, args.node, topology)
    history = ensure_directory(Path(args.history)) if args.history else None  # before any probe
    key = run_key(path, args.check, args.node)
    collector = Collector()
    run = Run(topology=topology, timeout=args.timeout, deadline=deadline, checks=tuple(args.check),
              nodes=tuple(args.node), passive=args.passive, listener=collector)
    with RunLock(key) as lock:
        outcome = run_within(run, collector, deadline)
        if outcome.unfinished is not None:
            # A cut run is not kept in the history: its missing items would read as "resolved".
            out.write(render(outcome.report, thresholds, outcome.unfinished, verbose=args.verbose))
            out.close()
            lock.release()
            sys.stderr.flush()
            os._exit(UNKNOWN)  # the worker thread may be stuck in a system call: do not wait for it
        report = outcome.report
        if history is not None:
            report = with_changes(report, history, key=key)
    return render(report, thresholds, verbose=args.verbose), exit_code(report, thresholds)


__all__ = ["DEFAULT_TIMEOUT", "Collector", "Outcome", "PluginArgumentParser", "PluginOutput", "add_command",
           "command_nagios", "leave_when_held", "run_within"]
