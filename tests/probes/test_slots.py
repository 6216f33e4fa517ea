"""The run's SSH slots (probes/transport/slots.py): never more commands at once than the count, the
waiting command of the lowest rank next, then the first come, and a bounded wait."""

from __future__ import annotations

import threading
import time

import pytest

from xivo_doctor.foundation.errors import ProbeTimeout
from xivo_doctor.probes.transport.slots import Slots


def test_a_freed_slot_goes_to_the_lowest_rank_then_the_first_come():
    slots, started, release = Slots(1), [], threading.Event()
    holder_in = threading.Event()

    def holder():
        with slots.held(1, 5, "first"):
            holder_in.set()
            release.wait(5)

    def waiter(name, rank):
        with slots.held(rank, 5, name):
            started.append(name)

    threads = [threading.Thread(target=holder)]
    threads[0].start()
    assert holder_in.wait(5)
    for name, rank in (("psql", 1), ("cat", 1), ("rabbitmqctl", 0)):  # arrive in this order
        threads.append(threading.Thread(target=waiter, args=(name, rank)))
        threads[-1].start()
        time.sleep(0.05)
    release.set()
    for t in threads:
        t.join(5)
    assert started == ["rabbitmqctl", "psql", "cat"]


def test_never_more_at_once_than_the_count():
    slots, lock, running, most = Slots(3), threading.Lock(), [0], [0]

    def command():
        with slots.held(1, 5, "x"):
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
            time.sleep(0.02)
            with lock:
                running[0] -= 1

    threads = [threading.Thread(target=command) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert most[0] == 3


def test_a_wait_past_its_budget_is_a_probe_timeout_and_leaves_the_queue_usable():
    slots, release = Slots(1), threading.Event()
    inside = threading.Event()

    def holder():
        with slots.held(1, 5, "long"):
            inside.set()
            release.wait(5)

    t = threading.Thread(target=holder)
    t.start()
    assert inside.wait(5)
    with pytest.raises(ProbeTimeout, match=r"no SSH slot free within 0\.1 s"), \
            slots.held(0, 0.1, "rabbitmqctl on xivo-2 over SSH"):
        pass
    release.set()
    t.join(5)
    with slots.held(1, 1, "after"):  # the timed-out ticket left no hole in the line
        pass
