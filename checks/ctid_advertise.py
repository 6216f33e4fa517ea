"""ctid-advertise: each XiVO's xivo-ctid is registered in its own Consul at the XiVO's declared
address and ctid port, tagged with its UUID, its TTL check passing, with no stale registration of
another UUID; and every peer's Consul, asked as xivo-ctid's ServiceFinder asks (anonymously,
`?dc=<this XiVO's datacenter>&passing=1`), lists it with that UUID.

The UUID is xivo-ctid's own `/0.1/infos` answer at the declared address (the XIVO_UUID it runs
with, XIVO-FACTS §2/§3); uuid-unique compares it with the database and the XIVO_UUID files. With
the address and port right, that same answer is the one peers get at the advertised address.
Facts: XIVO-FACTS §3 (ctid's default `advertise_address: localhost`, the `auto` / interface rule,
tags `[<uuid>, "xivo-ctid"]`, TTL check `service:<id>`, ServiceFinder), §4 (anonymous token rule).
"""

from __future__ import annotations

from xivo_doctor.check import FixContext, FixSteps, WarmUp, check
from xivo_doctor.foundation.results import FixOut
from xivo_doctor.topology.model import Xivo

SERVICE = "xivo-ctid"
TOKEN = 'X-Consul-Token: $(cat /var/lib/consul/master_token)'


def address_problem(address: str, xivo: Xivo) -> str:
    """Why peers cannot use this advertised address ("" when it is the XiVO's declared one)."""
    if address == xivo.address:
        return ""
    if address in ("", "0.0.0.0", "::"):
        return (f"is advertised with the address {address!r}: peers get no usable address "
                "(advertise_address must resolve to the XiVO's own address)")
    if address == "localhost" or address.startswith("127.") or address == "::1":
        return (f"is advertised at {address!r}: each peer would ask itself (service_discovery.advertise_address "
                "left at its default `localhost`, or `auto` resolved to the loopback interface)")
    return f"is advertised at {address}, not at {xivo.name}'s declared address {xivo.address}"


def ctid_fix(ctx: FixContext) -> FixOut:
    xivo = ctx.xivo
    assert xivo is not None
    steps = FixSteps()
    add = steps.add
    for problem in ctx.evidence.get("problems", []):
        kind = problem["kind"]
        if kind in ("not-registered", "address"):
            add(f"on {xivo.name}, create /etc/xivo-ctid/conf.d/interconnection.yml as the manual says, naming the "
                f"interface that bears {xivo.address} (the first command shows it), then restart xivo-ctid and "
                "check its registration",
                [f"ip -o -4 addr show to {xivo.address}",
                 "cat > /etc/xivo-ctid/conf.d/interconnection.yml <<'EOF'\n"
                 "rest_api:\n  http:\n    listen: 0.0.0.0\nservice_discovery:\n  advertise_address: auto\n"
                 f"  advertise_address_interface: eth0  # the interface bearing {xivo.address}\nEOF",
                 "service xivo-ctid restart",
                 # what the manual's `consul-cli agent-services --ssl --ssl-verify=false` lists
                 f'curl -k -H "{TOKEN}" https://localhost:8500/v1/agent/services'])
        elif kind == "port":
            add(f"xivo-ctid on {xivo.name} advertises another port than its REST port {xivo.ctid.port}: remove the "
                "service_discovery.advertise_port override and restart it",
                ["grep -rn -e advertise_port -e 'port:' /etc/xivo-ctid/", "service xivo-ctid restart"])
        elif kind == "ttl":
            add(f"xivo-ctid on {xivo.name} no longer refreshes its TTL check: restart it and read its log "
                "('ttl pass failed', 'registration failed')",
                ["service xivo-ctid restart", "tail -n 50 /var/log/xivo-ctid.log"])
        elif kind == "stale":
            add(f"remove the stale xivo-ctid registration(s) from {xivo.name}'s Consul (the manual asks to remove "
                "consul data holding an old UUID; wiping consul's data as in Configure Consul also does it)",
                [f'curl -k -X PUT -H "{TOKEN}" https://localhost:8500/v1/agent/service/deregister/{sid}'
                 for sid in problem.get("ids", [])])
        elif kind == "peer-blind":
            # XiVO's consul-customize-anonymous-token (XIVO-FACTS §4): anonymous may read xivo-* services
            add(f"the peers' xivo-ctid query {xivo.name}'s datacenter without a token: let the anonymous token "
                "read xivo-* services on it, then check what a peer sees",
                [f'curl -k -X PUT -H "{TOKEN}" https://localhost:8500/v1/acl/update '
                 '-d \'{"ID":"anonymous","Rules":"{\\"service\\":{\\"xivo-\\":{\\"Policy\\":\\"read\\"}}}"}\'',
                 f"curl -k 'https://localhost:8500/v1/health/service/xivo-ctid?dc={ctx.evidence.get('datacenter')}"
                 f"&passing=1'  # on {problem.get('peer')}"])
    return steps.out()


@check(
    id="ctid-advertise",
    title="xivo-ctid is advertised in Consul at the XiVO's address, with its UUID",
    why="the other XiVOs fetch this XiVO's user and phone statuses from the address xivo-ctid advertises in "
    "Consul; advertised as localhost or under another UUID, they show no presence for its users",
    fix=ctid_fix,
    doc="contact_and_presence_sharing.rst#configure-xivo-ctid",
    depends_on=["port-reachable:ctid", "port-reachable:consul-rpc", "uuid-unique", "consul-wan"],
    involves="peers",
    warm_up=lambda w: [w.chain(_warm_reads(w, x)) for x in w.xivos],
)
def test_ctid_advertise(xivo, topology, probes, evidence):
    uuid = probes.ctid.infos(xivo)["uuid"]
    services = probes.consul.agent_services(xivo)
    checks = probes.consul.agent_checks(xivo)
    evidence["source"] = f"{probes.consul.source(xivo)}; xivo-ctid /0.1/infos at {xivo.address}:{xivo.ctid.port}"
    evidence["uuid"] = uuid
    regs = [s for s in services.values() if isinstance(s, dict) and s.get("Service") == SERVICE]
    evidence["registrations"] = {
        str(r.get("ID")): {"address": r.get("Address"), "port": r.get("Port"), "tags": r.get("Tags"),
                           "check": (checks.get(f"service:{r.get('ID')}") or {}).get("Status", "no check")}
        for r in regs
    }
    problems: list[dict] = []
    mine = [r for r in regs if uuid in (r.get("Tags") or [])]
    stale = [r for r in regs if uuid not in (r.get("Tags") or [])]
    if not mine:
        seen = f"; registered: {_listing(regs)}" if regs else ""
        problems.append({"kind": "not-registered", "text": f"{SERVICE} of {xivo.name} is not registered in its "
                         f"Consul with its UUID {uuid} (the UUID /0.1/infos answers){seen}"})
    if stale:
        problems.append({"kind": "stale", "ids": [str(r.get("ID")) for r in stale],
                         "text": f"{xivo.name}'s Consul holds {len(stale)} stale {SERVICE} registration(s) of "
                         f"another UUID: {_listing(stale)}"})
    # The one ServiceFinder would get: a passing registration first (a crashed ctid leaves its old,
    # critical one behind, which the peers' `passing` filter skips).
    current = next((r for r in mine if _check_status(checks, r) == "passing"), mine[0] if mine else None)
    if current is not None:
        sid, address, port = current.get("ID"), str(current.get("Address") or ""), current.get("Port")
        evidence["advertised"] = f"{address}:{port} (id {sid})"
        why = address_problem(address, xivo)
        if why:
            problems.append({"kind": "address", "text": f"{SERVICE} of {xivo.name} {why}"})
        if port != xivo.ctid.port:
            problems.append({"kind": "port", "text": f"{SERVICE} of {xivo.name} is advertised on port {port}, "
                             f"not on its REST port {xivo.ctid.port}"})
        status = _check_status(checks, current)
        if status != "passing":
            output = (checks.get(f"service:{sid}") or {}).get("Output") or ""
            problems.append({"kind": "ttl", "text": f"the TTL check service:{sid} of {SERVICE} on {xivo.name} is "
                             f"{status}" + (f" ({output.strip()[:120]})" if output.strip() else "")})
        if not why and port == xivo.ctid.port:
            evidence["infos_at_advertised"] = f"http://{address}:{port}/0.1/infos answers uuid {uuid}"
    dc = probes.consul.agent_self(xivo)["Config"].get("Datacenter", "")
    evidence["datacenter"] = dc
    peers = [p for p in topology.xivos if p.name != xivo.name]
    if problems:
        evidence["seen_by_peers"] = "not asked: the registration itself must be fixed first"
    else:
        # Exactly ServiceFinder's query (XIVO-FACTS §3): the peer's own Consul, no token, ?dc=, passing.
        seen_by = {}
        for peer in peers:
            entries = probes.consul.health_service(peer, SERVICE, dc=dc, passing=True, token=False)
            tagged = [e for e in entries if uuid in ((e.get("Service") or {}).get("Tags") or [])]
            where = [f"{e['Service'].get('Address')}:{e['Service'].get('Port')}" for e in tagged]
            seen_by[peer.name] = f"sees it at {', '.join(where)}" if tagged else f"lists {len(entries)} other(s)"
            if not tagged:
                problems.append({"kind": "peer-blind", "peer": peer.name, "text": f"{peer.name}'s Consul, asked "
                                 f"anonymously for passing {SERVICE} in datacenter '{dc}' (as xivo-ctid asks), lists "
                                 f"none tagged {uuid}" + (f" ({_listing(e.get('Service') or {} for e in entries)})"
                                                          if entries else "")})
        evidence["seen_by_peers"] = seen_by
    if problems:
        evidence["problems"] = problems
    evidence.summary = (f"advertised at {evidence.get('advertised')} with uuid {uuid}, TTL passing; "
                        f"seen by {len(peers)} peer(s) through ?dc={dc}")
    assert not problems, "; ".join(p["text"] for p in problems)


def _check_status(checks: dict, registration: dict) -> str:
    return (checks.get(f"service:{registration.get('ID')}") or {}).get("Status") or "missing (no TTL check)"


def _listing(registrations) -> str:
    return ", ".join(f"id {r.get('ID')} at {r.get('Address')!r}:{r.get('Port')} tagged {r.get('Tags')}"
                     for r in registrations)


def _warm_reads(w: WarmUp, xivo: Xivo) -> list:
    """What the check reads of this XiVO, one after another: its Consul (a TLS handshake each) and its
    xivo-ctid (the peers' `?dc=` lookups depend on what these say: the check asks them itself)."""
    return [lambda: w.probes.consul.agent_self(xivo), lambda: w.probes.ctid.infos(xivo),
            lambda: w.probes.consul.agent_services(xivo), lambda: w.probes.consul.agent_checks(xivo)]
