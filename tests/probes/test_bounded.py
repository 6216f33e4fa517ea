"""Every network call is bounded in time and size, against hostile peers on 127.10.170.x (issue 7).

The servers (tests/servers.py) accept and then misbehave: slow-loris headers, a slow gigabyte body,
a gigabyte sent fast, redirects forever, silence (no AMQP greeting, no TLS ServerHello). Unit tests
call the probes directly with a small budget; end-to-end tests run `xivo-doctor run -t 3` in a
subprocess with a probe timeout longer than the run, so the run's deadline is what must cut.
Run with -s to see the wall-time table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
from services import starts_services

from conftest import REPO, TEST_PORTS, loopback_topology
from servers import Hostile, Listener, huge_body, redirect_forever, serve, silent, slow_body, slow_loris
from xivo_doctor.foundation.deadline import Deadline
from xivo_doctor.foundation.errors import ProbeError, ProbeTimeout
from xivo_doctor.probes import Probes
from xivo_doctor.probes.rabbitmq import amqp_probe
from xivo_doctor.probes.transport.http import MAX_BODY, MAX_REDIRECTS, fetch
from xivo_doctor.topology import load_topology

HOST = "127.10.170.1"
PEER = "127.10.170.2"
HTTP_PORT = 19495
CONSUL_PORT = 18500
MGMT_PORT = 19672
RUN_T = 3.0
SLACK = 1.5  # generous, but real: a hung run or one waiting for a probe timeout (10 s) exceeds it
FIGURES: list[tuple[str, float, str]] = []


@pytest.fixture
@starts_services
def stack():
    with ExitStack() as s:
        yield s


def hostile(stack: ExitStack, behave, address: str = HOST, port: int = HTTP_PORT) -> Hostile:
    server = Hostile(address, port, behave)
    stack.callback(server.close)
    return server


@pytest.fixture(scope="module", autouse=True)
def table():
    yield
    if FIGURES:
        width = max(len(case) for case, _, _ in FIGURES)
        print(f"\n{'case':<{width}}  wall (s)  outcome")
        for case, wall, outcome in FIGURES:
            print(f"{case:<{width}}  {wall:8.2f}  {outcome[:100]}")


# -- fetch itself ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("behave", [slow_loris, slow_body, silent], ids=["slow-loris", "slow-body", "silent"])
def test_fetch_is_bounded_as_a_whole_by_its_timeout(stack, behave):
    hostile(stack, behave)
    started = time.monotonic()
    with pytest.raises(ProbeTimeout, match=r"^xivo-ctid: timed out after 0.6 s$"):
        fetch(f"http://{HOST}:{HTTP_PORT}/0.1/infos", source="xivo-ctid", deadline=Deadline(30), timeout=0.6)
    wall = time.monotonic() - started
    FIGURES.append((f"fetch, {behave.__name__}, timeout 0.6 s", wall, "ProbeTimeout"))
    assert wall < 0.6 + SLACK


def test_fetch_is_cut_by_the_runs_deadline(stack):
    hostile(stack, slow_loris)
    started = time.monotonic()
    with pytest.raises(ProbeTimeout, match=r"the run's deadline"):
        fetch(f"http://{HOST}:{HTTP_PORT}/", source="xivo-ctid", deadline=Deadline(0.5), timeout=30)
    assert time.monotonic() - started < 0.5 + SLACK


def test_fetch_stops_reading_a_gigabyte(stack):
    server = hostile(stack, huge_body)
    started = time.monotonic()
    with pytest.raises(ProbeError, match=r"answer too large \(more than 100000 bytes\); stopped reading"):
        fetch(f"http://{HOST}:{HTTP_PORT}/", source="xivo-ctid", deadline=Deadline(30), timeout=10, max_body=100_000)
    FIGURES.append(("fetch, huge body, cap 100 kB", time.monotonic() - started, f"server sent {server.sent} B"))
    # the server writes only what the client reads plus the sockets' buffers: far from a gigabyte
    assert server.sent < 20_000_000


def test_fetch_follows_at_most_max_redirects(stack):
    server = hostile(stack, redirect_forever)
    with pytest.raises(ProbeError, match=rf"too many redirects \(more than {MAX_REDIRECTS}\)"):
        fetch(f"http://{HOST}:{HTTP_PORT}/", source="phonebook", deadline=Deadline(30), timeout=5)
    assert server.connections <= MAX_REDIRECTS + 1


def test_fetch_of_a_tls_port_that_never_answers_the_hello(stack):
    hostile(stack, silent)
    started = time.monotonic()
    with pytest.raises(ProbeTimeout, match="timed out"):
        fetch(f"https://{HOST}:{HTTP_PORT}/1.1/infos", source="xivo-confd", deadline=Deadline(30), timeout=0.6)
    assert time.monotonic() - started < 0.6 + SLACK


def test_a_bounded_fetch_still_reads_a_whole_answer(stack):
    body = b'{"uuid": "u-1"}'

    def answer(server, conn):
        conn.recv(4096)
        server.send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)

    hostile(stack, answer)
    got = fetch(f"http://{HOST}:{HTTP_PORT}/0.1/infos", source="ctid", deadline=Deadline(30), timeout=2)
    assert got.status == 200 and got.json("ctid") == {"uuid": "u-1"}


# -- Consul (python-consul2's own session) and AMQP (pika) ----------------------------------------------

def topology(tmp_path: Path, *, probe_timeout: float = 10.0, consul_scheme: str = "https",
             management: bool = False) -> Path:
    path = loopback_topology(tmp_path, [HOST, PEER], probe_timeout=probe_timeout)
    text = path.read_text().replace(
        "  consul: {", f"  consul: {{scheme: {consul_scheme}, port: {CONSUL_PORT}, token: secret-token, ")
    extra = f", management: {{port: {MGMT_PORT}, password: mgmt-secret}}" if management else ""
    text = text.replace("  rabbitmq: {", f"  rabbitmq: {{password: amqp-secret{extra}, ")
    path.write_text(text)
    return path


def probes_for(tmp_path: Path, seconds: float, **kwargs) -> Probes:
    return Probes(load_topology(topology(tmp_path, **kwargs)), Deadline(seconds))


@pytest.mark.parametrize(("scheme", "behave"), [("https", silent), ("http", slow_loris)],
                         ids=["tls-never-completes", "slow-loris"])
def test_consul_reads_are_bounded(tmp_path, stack, scheme, behave):
    hostile(stack, behave, port=CONSUL_PORT)
    probes = probes_for(tmp_path, 30, probe_timeout=0.6, consul_scheme=scheme)
    started = time.monotonic()
    with pytest.raises(ProbeTimeout, match=r"consul API of xivo-1 .*: GET /v1/agent/services: timed out after 0.6 s"):
        probes.consul.agent_services(probes.topology.xivos[0])
    wall = time.monotonic() - started
    FIGURES.append((f"consul, {scheme} {behave.__name__}, timeout 0.6 s", wall, "ProbeTimeout"))
    assert wall < 0.6 + SLACK


def test_consul_answer_is_capped(tmp_path, stack):
    hostile(stack, huge_body, port=CONSUL_PORT)
    probes = probes_for(tmp_path, 30, consul_scheme="http")
    with pytest.raises(ProbeError, match=rf"answer too large \(more than {MAX_BODY} bytes\)"):
        probes.consul.agent_services(probes.topology.xivos[0])


def test_an_amqp_port_that_says_nothing(tmp_path, stack):
    for address in (HOST, PEER):
        hostile(stack, silent, address=address, port=TEST_PORTS["amqp"])
    probes = probes_for(tmp_path, 30, probe_timeout=0.6)
    down, up = probes.topology.xivos
    started = time.monotonic()
    with pytest.raises(ProbeTimeout, match=r"AMQP on xivo-1 .*connecting: timed out"):
        amqp_probe.probe_delivery(probes, down, up)
    wall = time.monotonic() - started
    FIGURES.append(("amqp, silent, timeout 0.6 s", wall, "ProbeTimeout"))
    assert wall < 0.6 + SLACK


# -- the whole run: `xivo-doctor run -t 3` --------------------------------------------------------------

# A process's max RSS starts at the peak of the memory it was forked from (exec keeps the old
# address space's high-water mark, fs/exec.c), and pytest's own process is 100 MB+ late in a full
# suite: started from it, the doctor read as that. This `python3 -S` launcher (~10 MB) starts the
# doctor and writes the doctor's own peak to the file it is given (bench/spawner.py does the same).
LAUNCHER = ("import os, sys\n"
            "pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)\n"
            "_, status, usage = os.wait4(pid, 0)\n"
            "open(sys.argv[1], 'w').write(str(usage.ru_maxrss))\n"
            "sys.exit(os.waitstatus_to_exitcode(status))\n")


def run_doctor(topology_path: Path, *check_ids: str) -> tuple[int, dict, float, int, str]:
    """(exit code, JSON report, wall s, max RSS kB, stderr) of one `xivo-doctor run -t 3`."""
    rss_file = topology_path.with_name("maxrss")
    argv = [sys.executable, "-S", "-c", LAUNCHER, str(rss_file),
            sys.executable, "-m", "xivo_doctor", "run", "-t", f"{RUN_T:g}", "-T", str(topology_path),
            "--json", "-", *[a for c in check_ids for a in ("--check", c)]]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSUL_HTTP")}
    started = time.monotonic()
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    watchdog = threading.Timer(RUN_T + 30, proc.kill)  # a hung run fails the test, not the session
    watchdog.start()
    streams: dict[str, bytes] = {}
    readers = [threading.Thread(target=lambda n=n, f=f: streams.__setitem__(n, f.read()))
               for n, f in (("out", proc.stdout), ("err", proc.stderr))]
    for reader in readers:
        reader.start()
    proc.wait()
    wall = time.monotonic() - started
    watchdog.cancel()
    for reader in readers:
        reader.join()
    out, err, rss = streams["out"], streams["err"], int(rss_file.read_text())
    return proc.returncode, json.loads(out), wall, rss, err.decode(errors="replace")


def item(report: dict, name: str) -> dict:
    found = [r for r in report["results"] if r["item"] == name]
    assert found, f"no item {name} in {[r['item'] for r in report['results']]}"
    return found[0]


CASES = {
    # case: (server, address, port, topology options, checks, item, words in its message)
    "ctid slow-loris": (slow_loris, HOST, TEST_PORTS["ctid"], {}, ["uuid-unique"], "uuid-unique[xivo-1]",
                        ["xivo-ctid REST API of xivo-1", "timed out"]),
    "ctid slow body": (slow_body, HOST, TEST_PORTS["ctid"], {}, ["uuid-unique"], "uuid-unique[xivo-1]",
                       ["xivo-ctid REST API of xivo-1", "timed out"]),
    "ctid gigabyte": (huge_body, HOST, TEST_PORTS["ctid"], {}, ["uuid-unique"], "uuid-unique[xivo-1]",
                      ["xivo-ctid REST API of xivo-1", "too large"]),
    "consul TLS never completes": (silent, HOST, CONSUL_PORT, {}, ["uuid-unique"], "uuid-unique[xivo-1]",
                                   ["consul API of xivo-1", "timed out"]),
    "management redirects forever": (redirect_forever, None, MGMT_PORT, {"management": True},
                                     ["rabbitmq-federation"], "rabbitmq-federation[xivo-1->xivo-2]",
                                     ["RabbitMQ management API of xivo-", "too many redirects"]),
    "AMQP says nothing": (silent, None, TEST_PORTS["amqp"], {}, ["rabbitmq-federation"],
                          "rabbitmq-federation[xivo-1->xivo-2]", ["AMQP on xivo-", "timed out"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_run_ends_by_its_deadline_with_the_source_named(tmp_path, stack, case):
    behave, address, port, options, checks, name, words = CASES[case]
    for where in ([address] if address else [HOST, PEER]):
        hostile(stack, behave, address=where, port=port)
    # the AMQP port open everywhere, so rabbitmq-federation is not blocked by port-reachable:amqp
    if port != TEST_PORTS["amqp"]:
        serve(stack, Listener, PEER, [TEST_PORTS["amqp"]])
        serve(stack, Listener, HOST, [TEST_PORTS["amqp"]])
    code, report, wall, rss, err = run_doctor(topology(tmp_path, probe_timeout=10.0, **options), *checks)
    found = item(report, name)
    said = next((w for w in words[1:] if w in found["message"]), "")
    FIGURES.append((f"run -t 3, {case}", wall, f"exit {code}, {found['status']} ({said}), max RSS {rss // 1024} MB"))
    assert "Traceback" not in err
    assert wall < RUN_T + SLACK
    assert code in (2, 3)
    assert found["status"] == "error", found
    for word in words:
        assert word in found["message"], found["message"]
    if behave is huge_body:
        assert rss < 100_000, f"max RSS {rss} kB"
