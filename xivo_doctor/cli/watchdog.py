"""The Nagios plugin's guarantees: an answer within `-t` + 1 s whatever a probe does, on a stdout
that pytest's capture cannot take away.

Place in the pipeline: the CLI (used by cli/nagios.py). The run's deadline already bounds each
operation, but a peer can still hold one (headers trickled a byte at a time, a stuck library
call): the checks run in a daemon thread, the main thread waits for the deadline plus `GRACE`, then
answers with what finished and UNKNOWN for the rest; `leave_when_held` then leaves with
`os._exit`, since a thread stuck in a system call must not keep the process alive.
"""

from __future__ import annotations

import dataclasses
import io
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from xivo_doctor.engine.run import Listener
from xivo_doctor.foundation.deadline import Deadline
from xivo_doctor.render.nagios.output import Unfinished

if TYPE_CHECKING:
    from xivo_doctor.engine.run import Run
    from xivo_doctor.foundation.results import Report, Result

# Past the deadline the engine still ends its own run: items not started become `error` and the
# report follows within a few tenths of a second. Waiting this much more lets it answer in full;
# the rest of the guidelines' `-t + 1 s` is Python's start-up and printing.
GRACE = 0.5


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
        run.start_warm_up()  # the slow reads begin before pytest loads (Run.start_warm_up)
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


