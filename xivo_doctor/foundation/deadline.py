"""The run's deadline: every network operation takes its timeout from here.

Place in the pipeline: created once per run by the plugin (from `-t/--timeout`); probes ask it
for the time an operation may take; the plugin turns items that could not start in time into
`error` ("timed out after S s"). A hung peer therefore costs at most the remaining time, never
a hung run.
"""

from __future__ import annotations

import os
import time

from xivo_doctor.foundation.errors import ProbeTimeout


class Deadline:
    def __init__(self, seconds: float, *, clock=time.monotonic, spent: float = 0.0) -> None:
        """`spent`: seconds of it already gone (the process's own start-up, `process_age`)."""
        self.seconds = float(seconds)
        self._clock = clock
        self._end = clock() + self.seconds - min(max(0.0, spent), self.seconds)

    def remaining(self) -> float:
        return max(0.0, self._end - self._clock())

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0.0

    def budget(self, operation_timeout: float, source: str) -> float:
        """Seconds the next operation may take: its own timeout, cut to what the run has left.

        Raises ProbeTimeout when nothing is left, so the caller does not start a doomed call.
        """
        left = self.remaining()
        if left <= 0.0:
            raise ProbeTimeout(source, f"timed out after {self.seconds:g} s (the run's deadline, -t)")
        return min(operation_timeout, left)

    def describe_timeout(self) -> str:
        return f"timed out after {self.seconds:g} s (the run's deadline, -t)"


def process_age() -> float:
    """Seconds since this process started (its exec: where Nagios, cron or a shell starts the clock),
    0 where that cannot be read. The interpreter's own start-up (about 0.3 s, over 1 s on a slow host)
    then counts in a command's deadline. /proc/self/stat's starttime is in clock ticks since boot,
    the clock of CLOCK_BOOTTIME."""
    try:
        with open("/proc/self/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")
        return max(0.0, time.clock_gettime(time.CLOCK_BOOTTIME) - started)
    except (OSError, ValueError, IndexError, AttributeError):
        return 0.0
