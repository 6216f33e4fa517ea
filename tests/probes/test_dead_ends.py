"""A black-holed endpoint costs one connect timeout per run, not one per probe (issue 7).

Real sockets on 127.10.175.x (tests/servers.py): a black hole drops every SYN as a firewall
would. What proves the memo works is what each probe says, not a stopwatch: without it, every
probe would wait for its own timeout and say "timed out after 0.5 s"; with it, the first does
and every other one says "already seen at HH:MM:SS by <the first>", still naming its own source.
"""

from __future__ import annotations

import re
import threading
from contextlib import ExitStack

import pytest
from services import starts_services

from conftest import loopback_topology
from servers import BlackHole, Listener, serve
from xivo_doctor.foundation.deadline import Deadline
from xivo_doctor.foundation.errors import ProbeError, ProbeTimeout
from xivo_doctor.probes import Probes
from xivo_doctor.probes.transport import dead_ends, tcp
from xivo_doctor.probes.transport.dead_ends import AlreadyDead, DeadEnds
from xivo_doctor.probes.transport.http import fetch
from xivo_doctor.topology import load_topology

HOLE = "127.10.175.2"
LIVE = "127.10.175.1"
PORT = 19611
TIMEOUT = 0.5
SEEN = re.compile(r"timed out \(filtered\), already seen at \d\d:\d\d:\d\d by ")


@pytest.fixture
@starts_services
def stack():
    with ExitStack() as s:
        yield s


@pytest.fixture
def probes(tmp_path) -> Probes:
    """One run's probes (its own deadline, so its own memo)."""
    topology = load_topology(loopback_topology(tmp_path, [LIVE, HOLE], probe_timeout=TIMEOUT))
    return Probes(topology, Deadline(30))


def ask(probes: Probes, source: str, port: int = PORT) -> ProbeTimeout:
    with pytest.raises(ProbeTimeout) as caught:
        fetch(f"http://{HOLE}:{port}/1.1/infos", source=source, deadline=probes.deadline, timeout=probes.timeout)
    return caught.value


def test_requests_one_after_another_wait_once(stack, probes):
    serve(stack, BlackHole, HOLE, [PORT])
    first = ask(probes, "xivo-confd of xivo-2")
    assert str(first) == f"xivo-confd of xivo-2: timed out after {TIMEOUT:g} s"
    later = [ask(probes, f"prober {n}") for n in range(4)]
    for n, error in enumerate(later):
        assert error.source == f"prober {n}"  # each message still names its own source
        assert SEEN.fullmatch(error.detail.removesuffix("xivo-confd of xivo-2"))
        assert error.detail.endswith("by xivo-confd of xivo-2")


def test_concurrent_requests_share_the_first_ones_wait(stack, probes):
    serve(stack, BlackHole, HOLE, [PORT])
    errors: dict[int, ProbeTimeout] = {}

    def one(n: int) -> None:
        errors[n] = ask(probes, f"prober {n}")

    threads = [threading.Thread(target=one, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(errors) == list(range(6))
    waited = [n for n, e in errors.items() if e.detail == f"timed out after {TIMEOUT:g} s"]
    assert len(waited) == 1, {n: str(e) for n, e in errors.items()}
    for n, error in errors.items():
        assert error.source == f"prober {n}"
        if n not in waited:
            assert SEEN.match(error.detail) and error.detail.endswith(f"by prober {waited[0]}")


def test_the_port_scan_and_the_http_sources_share_the_memo(stack, probes):
    other = PORT + 1
    serve(stack, BlackHole, HOLE, [PORT, other])
    scanned = probes.tcp_states([(HOLE, PORT)])[(HOLE, PORT)]
    assert scanned.state == tcp.TIMEOUT and scanned.detail == f"no answer within {TIMEOUT:g} s (SYN dropped)"
    error = ask(probes, "phonebook web service of xivo-2")
    assert SEEN.match(error.detail) and error.detail.endswith(f"by {tcp.SCANNER}")
    # ... and the other way round: a port an HTTP source saw time out is "timeout" for the scan too
    ask(probes, "xivo-ctid of xivo-2", other)
    rescanned = probes.tcp_states([(HOLE, other)])[(HOLE, other)]
    assert rescanned.state == tcp.TIMEOUT
    assert SEEN.match(rescanned.detail) and rescanned.detail.endswith("by xivo-ctid of xivo-2")


def test_another_port_of_the_same_host_is_tried_for_itself(stack, probes):
    serve(stack, BlackHole, HOLE, [PORT])
    serve(stack, Listener, HOLE, [PORT + 2])
    ask(probes, "xivo-confd of xivo-2")
    assert probes.tcp_states([(HOLE, PORT + 2)])[(HOLE, PORT + 2)].state == tcp.OPEN


def test_each_run_has_its_own_memo(stack, probes, tmp_path):
    serve(stack, BlackHole, HOLE, [PORT])
    ask(probes, "xivo-confd of xivo-2")
    again = Probes(probes.topology, Deadline(30))  # the next run: its own deadline
    assert again.dead_ends is not probes.dead_ends
    assert ask(again, "xivo-confd of xivo-2").detail == f"timed out after {TIMEOUT:g} s"
    # a probe called without a run (no Probes for its deadline) consults no memo
    assert dead_ends.find(Deadline(30)) is None


def test_a_refused_connect_is_not_remembered(stack, probes):
    port = PORT + 3
    assert probes.dead_ends.known_dead(HOLE, port) is None
    assert tcp.connect(HOLE, port, TIMEOUT, memo=probes.dead_ends).state == tcp.REFUSED
    serve(stack, Listener, HOLE, [port])  # the service comes back during the run
    assert tcp.connect(HOLE, port, TIMEOUT, memo=probes.dead_ends).state == tcp.OPEN


def test_a_refused_http_connect_is_not_remembered_either(probes):
    # urllib3's NewConnectionError (refused) is a subclass of its ConnectTimeoutError: taken for a
    # timeout, a ctid listening on 127.0.0.1 read as "filtered" to the port scan that came after.
    port = PORT + 4
    with pytest.raises(ProbeError) as caught:
        fetch(f"http://{HOLE}:{port}/0.1/infos", source="xivo-ctid of xivo-2", deadline=probes.deadline,
              timeout=probes.timeout)
    assert not isinstance(caught.value, ProbeTimeout), caught.value
    assert probes.dead_ends.known_dead(HOLE, port) is None
    assert probes.tcp_states([(HOLE, port)])[(HOLE, port)].state == tcp.REFUSED


def test_a_timeout_cut_by_the_deadline_is_not_remembered(stack):
    serve(stack, BlackHole, HOLE, [PORT])
    memo = DeadEnds()
    probe = tcp.connect(HOLE, PORT, 0.2, cut=True, memo=memo)
    assert probe.state == tcp.CUT
    assert memo.known_dead(HOLE, PORT) is None
    probe = tcp.connect(HOLE, PORT, 0.2, memo=memo)
    assert probe.state == tcp.TIMEOUT and memo.known_dead(HOLE, PORT) is not None
    with pytest.raises(AlreadyDead, match=r"already seen at .* by the TCP port scan"):
        memo.connect(HOLE, PORT, lambda: pytest.fail("connected to a known black hole"), by="x", wait=1,
                     timed_out=lambda exc: isinstance(exc, TimeoutError))


def test_a_whole_run_against_a_black_holed_xivo_says_what_was_already_seen(tmp_path, stack, capsys):
    """`xivo-doctor run`, every check, xivo-2 black-holed on every port: the memo is the run's (the
    plugin's Probes), so the sources read after the first probe of a port say "already seen"."""
    import json

    from conftest import TEST_PORTS
    from xivo_doctor.cli.main import main

    ports = [*TEST_PORTS.values(), 8500, 80, 443]  # Consul's HTTPS API, nginx: the lab's defaults
    serve(stack, BlackHole, HOLE, ports)
    topology = loopback_topology(tmp_path, [LIVE, HOLE], probe_timeout=TIMEOUT, phonebook=True)
    topology.write_text(topology.read_text().replace('version: "16.15"', 'version: "16.13"'))
    main(["run", "-T", str(topology), "--json", "-", "--node", "xivo-2"])
    data = json.loads(capsys.readouterr().out)
    uuid = next(r for r in data["results"] if r["item"] == "uuid-unique[xivo-2]")
    assert uuid["status"] == "error"
    assert SEEN.search(uuid["message"]), uuid["message"]
