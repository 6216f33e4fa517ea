"""ctid-advertise: each XiVO's xivo-ctid is registered in its own Consul at the XiVO's address and
ctid port, tagged with its UUID, with no stale registration of another UUID; and each peer's
xivo-ctid, looking it up as that peer's release does, finds it.

As the daemons do it, per release (docs/xivo-behaviour.md "ctid-advertise"):
- registration: 15.19-15.20 advertise `advertise_address` as written and register an HTTP check
  (`check_url`); from 16.01 `auto` picks the interface's address and a TTL check is refreshed;
  tags `[<uuid>, "xivo-ctid"]` (16.02+) or `["xivo-ctid", <uuid>]` (before): the UUID is looked for,
  not its place;
- lookup by a peer's xivo-ctid, through the peer's own Consul with `?dc=<this datacenter>` and no
  token: the catalog (every registration, healthy or not) up to 16.14, the health endpoint with
  `passing` from 16.15. From Consul 0.6 (XiVO 15.20+) this datacenter's anonymous token decides
  what a token-less request sees: XiVO 16.15 lets it read xivo-* services at every consul start;
  before 16.15 nothing does, so a peer's lookup finds nothing and the peer knows this xivo-ctid
  only from the registration event it received over the federated bus (lost when the peer's
  xivo-ctid restarts). That is how those releases work: said, not failed.

The UUID is xivo-ctid's own `/0.1/infos` answer at the declared address; uuid-unique compares it
with its other sources.
"""

from __future__ import annotations

from xivo_doctor.check import WarmUp, check, is_address_of, version_at_hand
from xivo_doctor.checks._ctid_advertise_fix import SERVICE, ctid_fix
from xivo_doctor.topology.model import Xivo
from xivo_doctor.xivo.releases import Release, release


def address_problem(probes, address: str, xivo: Xivo, rel: Release | None) -> str:
    """Why peers cannot use this advertised address ("" when it is the XiVO's own)."""
    if is_address_of(probes, address, xivo):
        return ""
    if address in ("", "0.0.0.0", "::"):
        return (f"is advertised with the address {address!r}: peers get no usable address "
                "(advertise_address must resolve to the XiVO's own address)")
    if address == "localhost" or address.startswith("127.") or address == "::1":
        if rel is not None and not rel.advertise_auto:
            cause = "service_discovery.advertise_address left at its default `localhost` (used as written before 16.01)"
        elif rel is not None and not rel.auto_fallback:
            # 16.01-16.05: `auto` reads the configured interface only (xivo-lib-python consul_helpers@xivo-16.01)
            cause = ("service_discovery.advertise_address left at its default `localhost`, or `auto` with "
                     "advertise_address_interface naming the loopback interface")
        else:
            # 16.06+: `auto` falls back to eth*, then lo, then 127.0.0.1 when the interface is missing
            # (xivo-lib-python consul_helpers@xivo-16.06, 69d2bac)
            cause = ("service_discovery.advertise_address left at its default `localhost`, or `auto` falling back "
                     "to the loopback address: neither advertise_address_interface nor an eth* interface has one")
        return f"is advertised at {address!r}: each peer would ask itself ({cause})"
    return f"is advertised at {address}, not at {xivo.name}'s declared address {xivo.address}"


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
    rel = release(version_at_hand(probes, xivo, evidence))
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
    peers = [p for p in topology.xivos if p.name != xivo.name]
    peer_releases = {p.name: release(probes.version.at_hand(p).version) for p in peers}
    # A passing registration first: a crashed ctid leaves its old, critical one behind.
    current = next((r for r in mine if _check_status(checks, r) == "passing"), mine[0] if mine else None)
    if current is not None:
        problems += _registration(probes, xivo, current, checks, rel, peer_releases, evidence)
        if not problems:
            evidence["infos_at_advertised"] = f"http://{current.get('Address')}:{current.get('Port')}/0.1/infos " \
                                              f"answers uuid {uuid}"
    dc = probes.consul.agent_self(xivo)["Config"].get("Datacenter", "")
    evidence["datacenter"] = dc
    if problems:
        evidence["seen_by_peers"] = "not asked: the registration itself must be fixed first"
    else:
        evidence["seen_by_peers"] = {p.name: _peer_lookup(probes, xivo, p, peer_releases[p.name], rel, dc, uuid,
                                                          problems) for p in peers}
    if problems:
        evidence["problems"] = problems
    evidence.summary = (f"advertised at {evidence.get('advertised')} with uuid {uuid}, "
                        f"{evidence.get('check', 'TTL passing')}; seen by {len(peers)} peer(s) through ?dc={dc}")
    assert not problems, "; ".join(p["text"] for p in problems)


def _registration(probes, xivo, current, checks, rel, peer_releases, evidence) -> list[dict]:
    sid, address, port = current.get("ID"), str(current.get("Address") or ""), current.get("Port")
    evidence["advertised"] = f"{address}:{port} (id {sid})"
    problems = []
    why = address_problem(probes, address, xivo, rel)
    if why:
        problems.append({"kind": "address", "text": f"{SERVICE} of {xivo.name} {why}"})
    if port != xivo.ctid.port:
        problems.append({"kind": "port", "text": f"{SERVICE} of {xivo.name} is advertised on port {port}, "
                         f"not on its REST port {xivo.ctid.port}"})
    http = rel is not None and rel.ctid_check == "http"
    status = _check_status(checks, current, "HTTP" if http else "TTL")
    evidence["check"] = f"{'HTTP check' if http else 'TTL'} {status}"
    if status != "passing":
        output = ((checks.get(f"service:{sid}") or {}).get("Output") or "").strip()
        kind = "the HTTP check of check_url" if http else "the TTL check"
        text = f"{kind} service:{sid} of {SERVICE} on {xivo.name} is {status}" + (
            f" ({output[:120]})" if output else "")
        # Only a peer of 16.15 or later looks it up among passing services: the others read the catalog.
        filtering = [p for p, r in peer_releases.items() if r is None or r.ctid_lookup == "health-passing"]
        if filtering:
            problems.append({"kind": "health", "check": "http" if http else "ttl", "text": text})
            evidence["check note"] = f"{', '.join(filtering)} look(s) it up among passing services only"
        else:
            evidence["check note"] = (f"{text}; the peers' xivo-ctid (XiVO 16.14 or older) read the catalog, "
                                      "whatever the check says")
    return problems


def _peer_lookup(probes, xivo, peer, peer_rel, rel, dc, uuid, problems) -> str:
    """What `peer`'s xivo-ctid finds asking its own Consul for this datacenter, as its release asks."""
    by_catalog = peer_rel is not None and peer_rel.ctid_lookup == "catalog"
    if by_catalog:
        entries = probes.consul.catalog_service(peer, SERVICE, dc=dc, token=False)
        tagged = [e for e in entries if uuid in (e.get("ServiceTags") or [])]
        where = [f"{e.get('ServiceAddress')}:{e.get('ServicePort')}" for e in tagged]
        asked = (f"asked anonymously for {SERVICE} in the catalog of datacenter '{dc}' (as xivo-ctid 16.14 and "
                 "older asks)")
        others = [{"ID": e.get("ServiceID"), "Address": e.get("ServiceAddress"), "Port": e.get("ServicePort"),
                   "Tags": e.get("ServiceTags")} for e in entries]
    else:
        entries = probes.consul.health_service(peer, SERVICE, dc=dc, passing=True, token=False)
        tagged = [e for e in entries if uuid in ((e.get("Service") or {}).get("Tags") or [])]
        where = [f"{e['Service'].get('Address')}:{e['Service'].get('Port')}" for e in tagged]
        asked = f"asked anonymously for passing {SERVICE} in datacenter '{dc}' (as xivo-ctid asks)"
        others = [e.get("Service") or {} for e in entries]
    if tagged:
        return f"sees it at {', '.join(where)}" + (" in the catalog" if by_catalog else "")
    closed = rel is not None and rel.consul_filters_discovery and not rel.anonymous_reads_xivo
    if by_catalog and closed and (hidden := _hidden(probes, xivo, uuid)):
        # 15.20-16.14 as shipped: this datacenter hides xivo-ctid from token-less requests; the peer
        # learnt it from the registration event on the federated bus (docs/xivo-behaviour.md).
        return (f"sees nothing in the catalog: {xivo.name}'s Consul {rel.consul} hides services from the anonymous "
                "token, as XiVO shipped it before 16.15; its xivo-ctid knows this one only from the registration "
                "event it received over the federated bus, and forgets it when it restarts (XiVO 16.15 opens the "
                "anonymous token at every consul start)" + hidden)
    problems.append({"kind": "peer-blind", "peer": peer.name, "lookup": "catalog" if by_catalog else "health",
                     "text": f"{peer.name}'s Consul, {asked}, lists none tagged {uuid}"
                             + (f" ({_listing(others)})" if others else "")})
    return f"lists {len(entries)} other(s)"


def _hidden(probes, xivo, uuid) -> str:
    """"" when this XiVO's own catalog does not list its xivo-ctid (missing, not hidden); else a note:
    listed to its master token, or, without the token (consul.token), not confirmed."""
    if xivo.consul.token is None:
        return " (not confirmed: the topology gives no consul.token to read the catalog as the master token)"
    entries = probes.consul.catalog_service(xivo, SERVICE, token=True)
    return " (its catalog lists it to the master token)" if any(
        uuid in (e.get("ServiceTags") or []) for e in entries) else ""


def _check_status(checks: dict, registration: dict, kind: str = "TTL") -> str:
    return (checks.get(f"service:{registration.get('ID')}") or {}).get("Status") or f"missing (no {kind} check)"


def _listing(registrations) -> str:
    return ", ".join(f"id {r.get('ID')} at {r.get('Address')!r}:{r.get('Port')} tagged {r.get('Tags')}"
                     for r in registrations)


def _warm_reads(w: WarmUp, xivo: Xivo) -> list:
    """What the check reads of this XiVO, one after another: its Consul (a TLS handshake each) and its
    xivo-ctid (the peers' `?dc=` lookups depend on what these say: the check asks them itself)."""
    return [lambda: w.probes.consul.agent_self(xivo), lambda: w.probes.ctid.infos(xivo),
            lambda: w.probes.consul.agent_services(xivo), lambda: w.probes.consul.agent_checks(xivo),
            lambda: w.probes.version.at_hand(xivo)]
