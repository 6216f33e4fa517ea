"""TCP connect probes: is a port open, refused, or filtered (timed out)?

Place in the pipeline: acquisition. `Probes.tcp_states` calls `scan` once per run for every
(address, port) the checks ask about, concurrently, so a run costs one connect timeout however
many XiVOs and ports are black-holed. Each connect goes through the run's memo of dead endpoints
(`dead_ends.py`), shared with the HTTP sources: a port they saw time out is not waited for again,
and one they are connecting to right now is waited for once.
"""

from __future__ import annotations

import errno
import socket
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from xivo_doctor.foundation.deadline import Deadline
from xivo_doctor.foundation.errors import ProbeTimeout
from xivo_doctor.probes.transport.dead_ends import AlreadyDead, DeadEnds

OPEN = "open"
REFUSED = "refused"  # RST: nothing listens on that address:port (service down or bound elsewhere)
TIMEOUT = "timeout"  # no answer to the SYN within the probe timeout: a firewall drops it
UNREACHABLE = "unreachable"  # no route to the host or network
UNRESOLVED = "unresolved"  # the hostname does not resolve from here
CUT = "cut"  # the run's deadline ended the attempt before the probe timeout: nothing learnt

Target = tuple[str, int]
SCANNER = "the TCP port scan (port-reachable)"  # who a timeout was first seen by, in later messages


@dataclass(frozen=True)
class PortProbe:
    address: str
    port: int
    state: str
    detail: str
    elapsed_ms: float | None  # None: not measured (tried on a XiVO over SSH)


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, TimeoutError)


def connect(address: str, port: int, timeout: float, *, cut: bool = False, memo: DeadEnds | None = None,
            by: str = SCANNER) -> PortProbe:
    """One TCP connect. `cut` says the timeout was shortened by the deadline, so a timeout then
    means "we stopped waiting", not "filtered". With the run's `memo`, an endpoint already seen
    timing out is not waited for again (its detail says when, and by whom)."""
    started = time.monotonic()

    def probe(state: str, detail: str) -> PortProbe:
        return PortProbe(address, port, state, detail, round((time.monotonic() - started) * 1000, 1))

    try:
        infos = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return probe(UNRESOLVED, f"cannot resolve {address}: {exc.strerror}")
    family, socktype, proto, _, sockaddr = infos[0]

    def attempt(seconds: float) -> None:
        with socket.socket(family, socktype, proto) as sock:
            sock.settimeout(seconds)
            sock.connect(sockaddr)

    try:
        if memo is None:
            attempt(timeout)
        else:
            memo.connect(address, port, attempt, by=by, wait=timeout, timed_out=_is_timeout,
                         remember=not cut)
    except AlreadyDead as exc:
        return probe(TIMEOUT, exc.dead.describe())
    except TimeoutError:
        if cut:
            return probe(CUT, f"no answer before the run's deadline ({timeout:.1f} s left)")
        return probe(TIMEOUT, f"no answer within {timeout:g} s (SYN dropped)")
    except ConnectionRefusedError:
        return probe(REFUSED, "connection refused")
    except OSError as exc:
        if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return probe(UNREACHABLE, exc.strerror or "unreachable")
        return probe(UNREACHABLE, f"{exc.strerror or exc}")
    return probe(OPEN, "connected")


def scan(targets: Iterable[Target], timeout: float, deadline: Deadline, *, memo: DeadEnds | None = None,
         by: str = SCANNER) -> dict[Target, PortProbe]:
    """Connect to every target at once; each attempt gets `timeout`, cut to the run's deadline, and
    goes through the run's `memo` of dead endpoints when given."""
    wanted = list(dict.fromkeys(targets))
    if not wanted:
        return {}
    budget = deadline.budget(timeout, "tcp connect")
    cut = budget < timeout
    with ThreadPoolExecutor(max_workers=min(64, len(wanted)), thread_name_prefix="tcp-probe") as pool:
        futures = {t: pool.submit(connect, t[0], t[1], budget, cut=cut, memo=memo, by=by) for t in wanted}
        results = {t: f.result() for t, f in futures.items()}
    if deadline.expired and all(p.state == CUT for p in results.values()):
        raise ProbeTimeout("tcp connect", deadline.describe_timeout())
    return results
