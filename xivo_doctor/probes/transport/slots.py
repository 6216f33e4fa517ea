"""How many commands a run keeps going at once over SSH, and which waiting one goes next.

Place in the pipeline: acquisition, transport, used by `ssh.SshLinks.run` only. Every command over
SSH costs this host an `ssh` process and its XiVO an sshd session: a run keeps at most `count` of
them going. When one ends, the waiting command of the lowest rank starts, then the one that has
waited longest (threading's semaphores wake waiters in no set order). Rank 0 is for the longest
command of a run (`rabbitmqctl`, which boots an Erlang VM): started first, it no longer ends last.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from xivo_doctor.foundation.errors import ProbeTimeout


class Slots:
    def __init__(self, count: int) -> None:
        self._free = count
        self._turns = threading.Condition()
        self._waiting: list[tuple[int, int]] = []  # heap of (rank, arrival)
        self._arrivals = itertools.count()

    @contextmanager
    def held(self, rank: int, timeout: float, what: str) -> Iterator[None]:
        """Hold a slot while the block runs; ProbeTimeout when none frees within `timeout` s."""
        ticket = (rank, next(self._arrivals))
        with self._turns:
            heapq.heappush(self._waiting, ticket)
            if not self._turns.wait_for(lambda: self._free > 0 and self._waiting[0] == ticket, timeout):
                self._waiting.remove(ticket)
                heapq.heapify(self._waiting)
                self._turns.notify_all()
                raise ProbeTimeout(what, f"no SSH slot free within {timeout:g} s (this host runs the run's other"
                                         " commands)")
            heapq.heappop(self._waiting)
            self._free -= 1
            self._turns.notify_all()  # the next in line may start too, if a slot is left
        try:
            yield
        finally:
            with self._turns:
                self._free += 1
                self._turns.notify_all()
