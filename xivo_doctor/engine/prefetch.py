"""The warm-up scheduler: starts every selected check's warm-up as soon as the run starts.

Place in the pipeline: the engine, at the start of a run (engine/run.py `start_warm_up`). Pytest
runs the items one after another; without a warm-up, what a check asks per pair or per peer would be
waited for item by item. Each check declares its own warm-up beside its code (`@check(warm_up=...)`,
check/warmup.py): the reads it will make, through the very probe calls it makes, hence the same
`Probes.cached` keys; a check then finds the answer or waits for the read under way (one lock per
key), nothing is asked twice, and the checks conclude exactly what they would without it. This
module only schedules, and knows no check:
- chains, one thread each: the slow reads of one XiVO and source (rabbitmqctl boots an Erlang VM
  per call, LAB-NOTES §A.3; Consul's HTTPS API a TLS handshake per call; the on-box database);
- a bounded pool (POOL_SIZE workers) for the many small requests (a probe message per pair, a
  request per directory), each submitted once what decides it is read.
A task that fails leaves its ProbeError in the cache or is dropped (any other error: the check asks
again and reports it); a warm-up that fails is dropped the same way.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence

from xivo_doctor.check import CheckSpec, WarmUp
from xivo_doctor.probes.session import Probes
from xivo_doctor.topology.model import Pair, Xivo

Task = Callable[[], object]
POOL_SIZE = 16  # concurrent small requests: enough to overlap 90 pairs' round trips, few enough for 2 CPUs


class Prefetch:
    """The background reads of one run. Every thread is a daemon: a read still hanging at the
    deadline never delays the exit."""

    def __init__(self, workers: int = POOL_SIZE) -> None:
        self._tasks: queue.SimpleQueue[Task | None] = queue.SimpleQueue()
        self._workers = workers
        self._pending = 0
        self._pool_started = False
        self._idle = threading.Condition()
        self.threads: list[threading.Thread] = []

    def chain(self, tasks: list[Task]) -> None:
        """Run `tasks` one after another in a thread of their own."""
        self._started()
        self._spawn(lambda: self._run(tasks), "prefetch")

    def submit(self, task: Task) -> None:
        """Run `task` in the pool (started on first use)."""
        with self._idle:  # chains submit concurrently: the pool is started once
            self._pending += 1
            first, self._pool_started = not self._pool_started, True
        if first:
            for _ in range(self._workers):
                self._spawn(self._work, "prefetch-pool")
        self._tasks.put(task)

    def join(self, timeout: float) -> bool:
        """Wait until every chain and pooled task is done (tests, benchmarks); False at `timeout`."""
        end = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self.threads.append(thread)
        thread.start()

    def _started(self) -> None:
        with self._idle:
            self._pending += 1

    def _done(self) -> None:
        with self._idle:
            self._pending -= 1
            self._idle.notify_all()

    def close(self) -> None:
        """The run is over: the pool's idle workers end (one None each; a worker still in a hanging read
        ends after it). Without this, each run left its workers waiting for good: a process making runs
        one after another (tests, an embedding) gathered 16 threads per run, and slowed down."""
        with self._idle:
            started, self._pool_started = self._pool_started, True  # a late submit starts no new pool
        if started:
            for _ in range(self._workers):
                self._tasks.put(None)

    def _work(self) -> None:
        while (task := self._tasks.get()) is not None:
            self._run([task])

    def _run(self, tasks: list[Task]) -> None:
        try:
            for task in tasks:
                try:
                    task()
                except Exception:  # cached (ProbeError) or asked again by the check, which reports it
                    continue
        finally:
            self._done()


def start(probes: Probes, specs: Iterable[CheckSpec], xivos: Sequence[Xivo], pairs: Sequence[Pair]) -> Prefetch:
    """Start the warm-up of each of `specs` for the selected `xivos` and `pairs`."""
    run = Prefetch()
    warm = WarmUp(probes, tuple(xivos), tuple(pairs), chain=run.chain, submit=run.submit)
    for spec in sorted(specs, key=lambda s: s.warm_up_order):  # stable: then in the run's order
        if spec.warm_up is not None:
            try:
                spec.warm_up(warm)
            except Exception:
                continue
    return run
