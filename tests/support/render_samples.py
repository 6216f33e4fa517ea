"""Hand-made Reports for renderer tests: every status, a blocked skip, a fix with commands,
nested evidence, and text from an "inspected system" that looks like markup or XML."""

from __future__ import annotations

from collections.abc import Iterable

from xivo_doctor.engine import registry
from xivo_doctor.foundation.results import FixOut, Report, Result, Status

TOPOLOGY = {
    "name": "lab",
    "file": "/tmp/lab/topology.yml",
    "federation": "full-mesh",
    "xivos": [
        {"name": "xivo-1", "address": "127.10.0.1", "version": "2023.05"},
        {"name": "xivo-2", "address": "127.10.0.2", "version": "2023.05"},
    ],
    "pairs": ["xivo-1->xivo-2", "xivo-2->xivo-1"],
}

TRICKY = 'filtered [red]markup[/red] <xml & stuff> "quoted" [/]'
CMD_1 = "iptables -I INPUT -p tcp -s 127.10.0.1 --dport 5672 -j ACCEPT  # [bold]not markup[/bold]"
CMD_2 = "echo ':x: <b>&amp;</b> [/]' | tee /tmp/xivo-doctor-example.txt"
LONG_CMD = (
    "rabbitmqctl set_parameter federation-upstream xivo-2 " + "'{" + '"uri": "amqp://' + "x" * 150 + "\"}'"
)


def declared(results: Iterable[Result], xivos: Iterable[str]) -> tuple[Result, ...]:
    """The results as the engine leaves them: described by their check's declarations (metrics, the
    link they judge and their view of each peer, facts), as `classify` does after each item."""
    specs = {s.id: s for s in registry.discover()}
    names = tuple(xivos)
    return tuple(specs[r.check].describe(r, names) if r.check in specs else r for r in results)


def report(results: list[Result], duration_s: float = 0.84) -> Report:
    return Report(
        results=declared(results, [x["name"] for x in TOPOLOGY["xivos"]]),
        started_at="2024-05-02T10:11:12+02:00",
        duration_s=duration_s,
        vantage="doctor-host (remote)",
        topology=TOPOLOGY,
        timeout_s=30.0,
        doctor_version="0.1.0",
    )


def passing(check: str, target: str, title: str = "", **kw: object) -> Result:
    return Result(check=check, target=target, status=Status.PASS, title=title or f"{check} title", **kw)


def port_fail() -> Result:
    return Result(
        check="port-reachable",
        target="xivo-2",
        status=Status.FAIL,
        title="The ports the interconnection needs are open",
        message="port 5672 (amqp) timed out: " + TRICKY,
        evidence={
            "address": "127.10.0.2",
            "ports": {"5672": {"state": "timeout", "after_s": 3.0}, "8302": {"state": "open"}},
            "tried": [5672, 8302],
        },
        fix=FixOut(
            summary="Open TCP 5672 on xivo-2 for the other XiVOs",
            commands=(CMD_1, CMD_2, LONG_CMD),
            doc="contact_and_presence_sharing.rst#network-flows",
        ),
        doc="contact_and_presence_sharing.rst#network-flows",
        why="RabbitMQ federation links use AMQP on 5672; without it no presence crosses.",
        facets=("amqp",),
        duration_s=0.0123456,
    )


def critical_results() -> list[Result]:
    return [
        passing(
            "xivo-version",
            "*",
            "Every XiVO runs the same version",
            message="all on 2023.05",
            evidence={"versions": {"xivo-1": "2023.05", "xivo-2": "2023.05"}},
        ),
        passing("uuid-unique", "xivo-1", "UUIDs are distinct and agree"),
        Result(
            check="uuid-unique",
            target="xivo-2",
            status=Status.WARN,
            severity="warn",
            title="UUIDs are distinct and agree",
            message="XIVO_UUID in /etc/profile.d/xivo_uuid.sh differs from infos.uuid",
            evidence={"infos.uuid": "aaaa", "XIVO_UUID": "bbbb"},
            why="Peers identify this XiVO by its UUID.",
        ),
        passing(
            "port-reachable", "xivo-1", "The ports the interconnection needs are open", message="all open"
        ),
        port_fail(),
        Result(
            check="consul-wan",
            target="xivo-1",
            status=Status.ERROR,
            title="Consul WAN pool holds every peer",
            message="could not reach consul at https://127.10.0.1:8500: timed out after 3.0 s",
            evidence={"url": "https://127.10.0.1:8500/v1/agent/members?wan=1"},
            doc="contact_and_presence_sharing.rst#consul",
        ),
        Result(
            check="rabbitmq-federation",
            target="xivo-1->xivo-2",
            status=Status.SKIP,
            title="RabbitMQ federation links run",
            message="blocked",
            blocked_by=("port-reachable[xivo-2]:amqp",),
        ),
        Result(
            check="phonebook-restricted",
            target="xivo-1",
            status=Status.SKIP,
            title="Phonebook directories use restricted",
            message="not applicable on XiVO >= 16.14",
        ),
    ]


def critical_report() -> Report:
    return report(critical_results())


def ok_report(n: int = 9, skips: int = 0) -> Report:
    results = [passing("port-reachable", f"xivo-{i}", evidence={"ports": [5672]}) for i in range(1, n + 1)]
    results += [
        Result(check="phonebook-restricted", target=f"xivo-{i}", status=Status.SKIP, title="t", message="n/a")
        for i in range(1, skips + 1)
    ]
    return report(results)


def warning_report() -> Report:
    return report([r for r in critical_results() if r.status in (Status.PASS, Status.WARN)])


def unknown_report() -> Report:
    errors = [
        Result(check="consul-wan", target=t, status=Status.ERROR, title="Consul WAN", message="timed out")
        for t in ("xivo-1", "xivo-2")
    ]
    return report([passing("xivo-version", "*"), *errors])


# --- a realistic 10-XiVO run (shapes as in reports/demo-*.json), for size and readability ---------

MANUAL = "contact_and_presence_sharing.rst"
WHY = "what this check protects, in one sentence of about the length the real checks use for it, " * 2


def _xivos(n: int) -> list[tuple[str, str]]:
    return [(f"xivo-{i}", f"10.20.{i}.1") for i in range(1, n + 1)]


def _uuid(i: int) -> str:
    return f"{i:08x}-5b17-4ac3-895c-ab6335d3e7f3"


def _lookup(xivo: tuple[str, str], peer: tuple[str, str], blocked: bool) -> Result:
    """directory-lookup[xivo->peer] as a real run leaves it: passed, or blocked by xivo-4's directory."""
    common = {"check": "directory-lookup", "target": f"{xivo[0]}->{peer[0]}", "title": "dird finds the peer's users",
              "doc": f"{MANUAL}#check-that-the-configuration-is-working", "why": WHY}
    if blocked:
        return Result(status=Status.SKIP, message="blocked by directory-source[xivo-4]",
                      blocked_by=("directory-source[xivo-4]",), **common)
    uuid = "00000001-5b17-4ac3-895c-ab6335d3e7f3"
    evidence = {
        "version": f"16.13 (/usr/share/xivo/XIVO-VERSION on {xivo[0]})",
        "user": f"Alice Lab{peer[1].rsplit('.', 1)[-1]} (id 1), read from asterisk database of {peer[0]}",
        "peer_uuid": f"{uuid} (infos.uuid (asterisk database of {peer[0]}))", "profiles": ["default"],
        "term": "Lab", "xivo_auth": "a token of the xivo_service backend, ACLs ['dird.directories.lookup.*.read']",
        "lookups": {"default": {"status": 200, "elapsed_ms": 260.1, "results": 3, "found": f"{peer[0]}, user_id 1"}},
        "latency_ms": 260.1, "vantage": f"from vm; {xivo[0]}'s files, database and commands over SSH"}
    return Result(status=Status.PASS, evidence=evidence, duration_s=0.3,
                  message=f"{xivo[0]}'s xivo-dird finds Alice (id 1) of {peer[0]} (xivo_id {uuid}) in 1 profile(s) "
                          "in 260.1 ms", **common)


def _federation(down: tuple[str, str], up: tuple[str, str], broken: bool, blocked: bool) -> Result:
    link = {"exchange": "xivo", "upstream_exchange": "xivo", "type": "exchange", "vhost": "/", "upstream": up[0],
            "status": "error" if broken else "running", "uri": f"amqp://{up[1]}", "timestamp": "2026-11-25 10:31:01",
            "error": "{auth_failure,\"ACCESS_REFUSED - Login was refused\"}" if broken else None}
    evidence = {
        "source": f"rabbitmqctl on {down[0]}", "plugin": "rabbitmq_federation running",
        "upstreams": {up[0]: {"uri": f"amqp://xivo:***@{up[1]}", "max-hops": 1}}, "uri_user": "xivo", "max-hops": 1,
        "upstream": up[0], "policy": {"name": "federate-xivo", "pattern": "xivo", "apply-to": "exchanges",
                                      "definition": {"federation-upstream-set": "all"}, "priority": 1},
        "link": link, "problems": ["link"] if broken else [],
        "probe": {"delivered": not broken, "published": 1, "waited_s": 0.02, "latency_ms": 1.49, "via": [link["uri"]]},
        "latency_ms": 1.49,
    }
    common = {"check": "rabbitmq-federation", "target": f"{down[0]}->{up[0]}", "title": "Federation brings messages",
              "doc": f"{MANUAL}#setup-message-federation", "why": WHY}
    if blocked:
        return Result(status=Status.SKIP, message=f"blocked by port-reachable[{up[0]}]",
                      blocked_by=(f"port-reachable[{up[0]}]:amqp",), **common)
    if broken:
        return Result(status=Status.FAIL, evidence=evidence, message=f"the link from {up[0]!r} is down: "
                      "ACCESS_REFUSED (wrong password in the upstream URI)",
                      fix=FixOut(f"on {down[0]}, set the upstream {up[0]} with the xivo user's password",
                                 (f"rabbitmqctl set_parameter federation-upstream {up[0]} "
                                  f"'{{\"uri\":\"amqp://xivo:PASSWORD@{up[1]}\",\"max-hops\":1}}'",),
                                 f"{MANUAL}#setup-message-federation"), **common)
    return Result(status=Status.PASS, evidence=evidence, duration_s=0.02,
                  message=f"a probe message crossed in 1.49 ms (link from {up[0]!r} running)", **common)


def _per_xivo(x: tuple[str, str], i: int, xs: list[tuple[str, str]], fail: set[str]) -> list[Result]:
    name, addr = x
    peers = [p for p in xs if p != x]
    services = ((5672, "RabbitMQ AMQP", "amqp"), (8300, "Consul server RPC", "consul-rpc"),
                (8302, "Consul Serf WAN", "serf-wan"), (9486, "xivo-confd HTTPS", "confd"),
                (9495, "xivo-ctid REST", "ctid"), (80, "nginx HTTP", "http"), (443, "nginx HTTPS", "https"))
    # tried from each peer over SSH, as a run whose topology gives SSH access to every XiVO
    ports = {f"{p}/tcp": {"service": s, "from": {
        peer: "timeout" if f"port:{name}" in fail and p == 5672 else "open" for peer, _ in peers}}
        for p, s, f in services}
    port_failed = f"port:{name}" in fail
    wan_failed = f"wan:{name}" in fail
    dir_failed = f"dir:{name}" in fail
    wan_peers = {p: (f"{p} ({a}) is not in {name}'s WAN pool" if wan_failed and p == peers[0][0]
                     else f"alive at {a} as {p}.{p}") for p, a in peers}
    dirs = {p: [{"directory": p, "uri": f"https://{a}:9486", "status": 401 if dir_failed and p == peers[0][0] else 200,
                 "uuid": _uuid(j), "elapsed_ms": 67.8, "auth": "none", "from_address": addr}]
            for j, (p, a) in enumerate(peers, 1)}
    books = {p: [{"directory": f"phonebook-{p}", "url": f"http://{a}/service/ipbx/json.php/restricted/pbx_services/"
                  "phonebook", "status": 204, "count": None, "redirects": [302],
                  "final_url": f"https://{a}/service/ipbx/json.php/restricted/pbx_services/phonebook",
                  "sent_from": addr}] for p, a in peers}
    uuid = _uuid(i)
    files = dict.fromkeys(("/etc/profile.d/xivo_uuid.sh", "/etc/default/xivo", "/etc/systemd/system.conf"), uuid)
    return [
        Result(check="port-reachable", target=name, title="Interconnection ports answer", why=WHY,
               status=Status.FAIL if port_failed else Status.PASS, doc=f"{MANUAL}#prerequisite",
               message="5672/tcp timed out" if port_failed else "7 ports open: 5672, 8300, 8302, 9486, 9495, 80, 443",
               evidence={"source": "TCP connect from vm", "ports": ports, "udp": "8302/udp: consul-wan proves it"},
               facets=("amqp",) if port_failed else (),
               fix=FixOut(f"open 5672/tcp on {name} to the other XiVOs",
                          tuple(f"iptables -I INPUT -p tcp -s {a} --dport 5672 -j ACCEPT" for _, a in peers))
               if port_failed else None),
        Result(check="consul-wan", target=name, title="Consul's WAN pool holds every XiVO", why=WHY,
               status=Status.FAIL if wan_failed else Status.PASS, doc=f"{MANUAL}#join-the-consul-cluster",
               message=wan_peers[peers[0][0]] if wan_failed else f"leader {addr}:8300; datacenter {name}",
               evidence={"source": f"consul API of {name} (https://{addr}:8500)", "leader": f"{addr}:8300",
                         "datacenter": name, "wan_pool": {f"{p}.{p}": f"{a} alive" for p, a in xs},
                         "datacenters_of_xivos": {p: p for p, _ in xs}, "peers": wan_peers,
                         "datacenters": [p for p, _ in xs], "cross_dc_queries": {p: "200, 1 node" for p, _ in peers},
                         **({"problems": [{"kind": "join", "peer": peers[0][0], "text": wan_peers[peers[0][0]]}]}
                            if wan_failed else {})},
               fix=FixOut(f"join {name}'s consul to the WAN pool", (f"consul join -wan {peers[0][1]}",))
               if wan_failed else None),
        Result(check="uuid-unique", target=name, title="Each XiVO has one UUID", status=Status.PASS, why=WHY,
               message=f"{uuid} in 6 sources", doc=f"{MANUAL}#prerequisite",
               evidence={"source": "asterisk database, XIVO_UUID files, xivo-ctid /0.1/infos, Consul agent services",
                         "uuids": {f"infos.uuid (asterisk database of {name})": uuid, **files,
                                   f"xivo-ctid /0.1/infos (http://{addr}:9495)": uuid,
                                   f"tag of the xivo-ctid service in {name}'s Consul": uuid},
                         "xivo_uuid_files": files, "uuid": uuid}),
        Result(check="ctid-advertise", target=name, title="xivo-ctid is advertised", status=Status.PASS, why=WHY,
               message=f"advertised at {addr}:9495", doc=f"{MANUAL}#configure-xivo-ctid",
               evidence={"source": f"consul API of {name} (https://{addr}:8500); xivo-ctid /0.1/infos at {addr}:9495",
                         "uuid": uuid, "advertised": f"{addr}:9495 (id xivo-ctid)",
                         "registrations": {"xivo-ctid": {"address": addr, "port": 9495, "tags": [uuid],
                                                         "check": "passing"}},
                         "infos_at_advertised": f"http://{addr}:9495/0.1/infos answers uuid {uuid}",
                         "datacenter": name, "seen_by_peers": {p: f"sees it at {addr}:9495" for p, _ in peers}}),
        Result(check="directory-source", target=name, title="Remote directories answer", why=WHY,
               status=Status.FAIL if dir_failed else Status.PASS, doc=f"{MANUAL}#configuring-the-directories",
               message=f"{peers[0][0]} refused (HTTP 401)" if dir_failed else f"{len(peers)} remote directories answer",
               evidence={"source": f"asterisk database of {name}; GET /1.1/infos sent from {name}",
                         "directories": dirs,
                         **({"problems": [{"peer": peers[0][0], "kind": "unauthorised"}]} if dir_failed else {})},
               fix=FixOut(f"on {peers[0][0]}, add a web services user for {addr}") if dir_failed else None),
        Result(check="phonebook-restricted", target=name, title="Phonebooks use restricted", status=Status.PASS,
               message=f"{len(peers)} peer phonebooks answer", doc="phonebook_sharing.rst#configuring-the-directories",
               why=WHY, evidence={"source": f"asterisk database of {name}; json.php search sent from {name}",
                                  "phonebooks": books}),
        Result(check="xivo-version", target=name, title="Every XiVO runs the same version", status=Status.PASS,
               message=f"16.13 (/usr/share/xivo/XIVO-VERSION on {name})", doc=f"{MANUAL}#prerequisite", why=WHY,
               evidence={"source": f"/usr/share/xivo/XIVO-VERSION on {name}", "version": "16.13", "expected": "16.13",
                         "expected_from": "declared in the topology"}),
    ]


def big_report(n: int = 10) -> Report:
    """A full-mesh run on `n` XiVOs (8 checks' shapes): xivo-2's 5672 filtered (its upstream links
    blocked), xivo-3's consul not joined, xivo-4's directory refused, federation xivo-1<-xivo-3 down."""
    xs = _xivos(n)
    fail = {"port:xivo-2", "wan:xivo-3", "dir:xivo-4"}
    results = [r for i, x in enumerate(xs, 1) for r in _per_xivo(x, i, xs, fail)]
    results += [_federation(d, u, broken=(d[0], u[0]) == ("xivo-1", "xivo-3"), blocked=u[0] == "xivo-2")
                for d in xs for u in xs if d != u]
    results += [_lookup(a, b, blocked="xivo-4" in (a[0], b[0])) for a in xs for b in xs if a != b]
    topology = {"name": "ten-offices", "file": "/etc/xivo-doctor/topology.yml", "federation": "full-mesh",
                "xivos": [{"name": x, "address": a, "version": "16.13"} for x, a in xs],
                "pairs": [f"{d}->{u}" for d, _ in xs for u, _ in xs if d != u]}
    return Report(results=declared(results, [x for x, _ in xs]), started_at="2026-11-25T10:31:15+00:00", duration_s=4.2,
                  vantage="xivo-1 (on box)", topology=topology, timeout_s=30.0, doctor_version="0.1.0")
