"""The run's memo of dead endpoints: a connect that timed out is waited for once per run, not once per probe.

Place in the pipeline: acquisition, under the TCP probes (`tcp.connect`, for port-reachable) and
the HTTP transport (`bounded.py`, for every HTTP source). A black-holed XiVO (down, or behind a
firewall that drops the SYNs to the ports of XIVO-FACTS §1) makes each probe aimed at it wait its
whole timeout; the checks run one after another, so a run would cost one timeout per probe.
With this memo:

- the first connect to an endpoint (address, port) that times out is recorded, with when and by
  whom; every later connect to it in the same run fails at once with the same kind of error
  ("timed out (filtered), already seen at HH:MM:SS by <first prober>");
- connects to an endpoint not yet known to answer wait for the one already under way instead of
  each starting its own wait: N concurrent probes of a black hole cost one timeout;
- once an endpoint has answered, connects to it no longer coordinate at all.

Only timeouts are remembered: a refused connect (RST) costs no wait, so memoising it would save
nothing and would only make a service restarted during the run look down for the rest of it.
A timeout cut short by the run's deadline is not remembered either: it says nothing about the
endpoint. The memo is found through the run's `Deadline` (one per run, passed to every probe),
so the HTTP sources need no new argument.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from xivo_doctor.foundation.deadline import Deadline

Endpoint = tuple[str, int]
T = TypeVar("T")
# A probe that waits for another's first connect gives it this much past its own budget: both
# started with the same probe timeout, the other one first, so its outcome is due about when
# ours would be; without this, a few ms of scheduling turn "already seen" into a timeout of our own.
SETTLE = 0.2


def endpoint(address: str, port: int) -> Endpoint:
    """The memo's key: the address as written (an IPv6 literal without its URL brackets), the port."""
    return address.strip("[]").lower(), int(port)


@dataclass(frozen=True)
class Dead:
    """An endpoint that did not answer a SYN within the probe timeout, and who found out."""

    address: str
    port: int
    by: str
    at: float  # time.time(): shown as the local wall-clock time

    def describe(self) -> str:
        seen = time.strftime("%H:%M:%S", time.localtime(self.at))
        return f"timed out (filtered), already seen at {seen} by {self.by}"


class AlreadyDead(Exception):
    """A connect not attempted: the run already saw this endpoint time out.

    Deliberately neither an OSError nor a `requests`/urllib3 exception: urllib3 and `requests`
    let it through unwrapped, so `bounded.request_errors` can tell it apart from a fresh timeout."""

    def __init__(self, dead: Dead) -> None:
        self.dead = dead
        super().__init__(dead.describe())


class DeadEnds:
    """Per-run: the endpoints seen timing out, those seen answering, and the first connects under way."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dead: dict[Endpoint, Dead] = {}
        self._alive: set[Endpoint] = set()
        self._pending: dict[Endpoint, threading.Event] = {}

    def known_dead(self, address: str, port: int) -> Dead | None:
        with self._lock:
            return self._dead.get(endpoint(address, port))

    def connect(self, address: str, port: int, attempt: Callable[[float], T], *, by: str, wait: float,
                timed_out: Callable[[BaseException], bool], remember: bool = True) -> T:
        """`attempt(seconds)` (one connect to address:port, within `seconds`), unless the run already
        knows the answer.

        `wait` is the caller's whole budget. Raises AlreadyDead when the endpoint timed out earlier
        in the run (or while we waited for the connect under way). Raises TimeoutError when the
        budget goes by while another connect to it is still under way. An exception raised by
        `attempt` for which `timed_out` is true marks the endpoint dead, unless `remember` is false (the
        budget was cut by the run's deadline: the timeout proves nothing) or part of the budget
        went on waiting for another connect (then it was not a whole probe timeout either)."""
        key = endpoint(address, port)
        started = time.monotonic()
        # A whole budget may wait a little past itself for the first prober's verdict; a budget cut
        # by the deadline may not: no verdict would come from a cut attempt anyway.
        until = started + wait + (SETTLE if remember else 0.0)
        waited = False
        while True:
            with self._lock:
                dead = self._dead.get(key)
                if dead is not None:
                    raise AlreadyDead(dead)
                answers = key in self._alive
                pending = None if answers else self._pending.get(key)
                mine = not answers and pending is None
                if mine:
                    pending = self._pending[key] = threading.Event()
            if answers:
                return attempt(_left(started, wait, address, port))  # it answers: hold no one back
            if mine:
                break  # ours is the first: the others wait for it
            assert pending is not None
            waited = True
            if not pending.wait(max(0.0, until - time.monotonic())):
                raise TimeoutError(f"no answer from {address}:{port} within {wait:g} s")
            # The first one ended: dead (raise above), alive (connect), or an error that proves
            # nothing about the endpoint (DNS, no route, cut by the deadline): try for ourselves.
        try:
            result = attempt(_left(started, wait, address, port))
        except BaseException as exc:
            with self._lock:
                if remember and not waited and timed_out(exc):
                    self._dead[key] = Dead(address, port, by, time.time())
                del self._pending[key]
            pending.set()
            raise
        with self._lock:
            self._alive.add(key)
            del self._pending[key]
        pending.set()
        return result


def _left(started: float, wait: float, address: str, port: int) -> float:
    """What is left of the budget `wait` begun at `started`; TimeoutError when nothing is."""
    left = started + wait - time.monotonic()
    if left <= 0:
        raise TimeoutError(f"no time left to connect to {address}:{port}")
    return left


# One memo per run, found through the run's Deadline: every probe already receives it.
_RUNS: weakref.WeakKeyDictionary[Deadline, DeadEnds] = weakref.WeakKeyDictionary()
_RUNS_LOCK = threading.Lock()


def of_run(deadline: Deadline) -> DeadEnds:
    """The memo of the run whose deadline is `deadline`, created on first use (`Probes` does)."""
    with _RUNS_LOCK:
        try:
            memo = _RUNS.get(deadline)
            if memo is None:
                memo = _RUNS[deadline] = DeadEnds()
        except TypeError:  # a deadline that cannot be weakly referenced (a test's stand-in): unshared
            memo = DeadEnds()
        return memo


def find(deadline: Deadline) -> DeadEnds | None:
    """The run's memo, or None when no `Probes` made one (a probe called on its own, in a test)."""
    with _RUNS_LOCK:
        try:
            return _RUNS.get(deadline)
        except TypeError:
            return None
