"""consul-wan: each XiVO's Consul has a leader, its WAN pool holds every declared peer's server
alive at the peer's declared address, datacenter names are distinct, and a query forwarded to
each peer's datacenter answers.

Facts: XIVO-FACTS §4 (one datacenter per XiVO named after its short hostname, the manual's
interconnection.json / wipe / `consul join -wan`, no leader after a partial wipe), §3 (a peer's
xivo-ctid asks its own Consul with `?dc=<this datacenter>`, without a token, on every release:
the query made here), §8 (`No path to datacenter`). The fixes follow the manual of the XiVO's
release (xivo/manual.py; docs/xivo-behaviour.md "consul-wan").

Attribution, so that one root cause shows once: when x's pool lacks peer p alive and p's pool
lacks x alive too, the fault is put on the side that lost track (knows the other not at all while
the other knows it, or holds fewer of the declared XiVOs; on a tie, the later-declared one); x's item
then only notes "reported on consul-wan[p]". A duplicate datacenter name is reported on the later-
declared XiVO of the two. When p's own pool cannot be read, x's item fails.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from xivo_doctor.check import (
    FixContext,
    FixSteps,
    LinkKind,
    LinkView,
    Metric,
    WarmUp,
    check,
    declared_addresses,
    version_at_hand,
)
from xivo_doctor.foundation.results import FixOut
from xivo_doctor.probes.consul.views import WanView
from xivo_doctor.topology.model import Topology, Xivo
from xivo_doctor.xivo.manual import consul_reset, interconnection_json, set_hostname

ALIVE = 1
STATUS_WORDS = {0: "none", 1: "alive", 2: "leaving", 3: "left", 4: "failed"}  # serf MemberStatus


def status_word(member: dict[str, Any]) -> str:
    return STATUS_WORDS.get(member.get("Status"), f"status {member.get('Status')}")


def member_at(members, addresses: str | Collection[str]) -> dict[str, Any] | None:
    """The member at one of `addresses` (a declared name resolves to them, check/addresses.py), an
    alive one first (a stale entry may share the address)."""
    wanted = {addresses.lower()} if isinstance(addresses, str) else {a.lower() for a in addresses}
    at = [m for m in members if str(m.get("Addr") or "").lower() in wanted]
    return next((m for m in at if m.get("Status") == ALIVE), at[0] if at else None)


def member_dc(member: dict[str, Any]) -> str:
    """A WAN member's datacenter: its `dc` tag, else the part after `<node>.` in its name."""
    return str((member.get("Tags") or {}).get("dc") or str(member.get("Name", "")).partition(".")[2])


def alive_declared(view: WanView, topology: Topology, book: dict[str, frozenset[str]]) -> int:
    return sum(1 for x in topology.xivos if (m := member_at(view.members, book[x.name])) and m.get("Status") == ALIVE)


def blame(xivo: Xivo, peer: Xivo, mine: WanView, theirs: WanView, topology: Topology,
          book: dict[str, frozenset[str]]) -> tuple[Xivo, str]:
    """Who is to blame for `peer` not alive in `xivo`'s pool, and why (see the module docstring)."""
    if theirs.problem:
        return xivo, f"{peer.name}'s own pool could not be read: {theirs.problem}"
    their_self = next((m for m in theirs.members if m.get("Name") == theirs.name), None)
    if their_self is not None and str(their_self.get("Addr") or "").lower() not in book[peer.name]:
        return peer, f"{peer.name} advertises itself at {their_self.get('Addr')}"
    seen_by_them = member_at(theirs.members, book[xivo.name])
    if seen_by_them is not None and seen_by_them.get("Status") == ALIVE:
        return xivo, f"{peer.name}'s own pool has {xivo.name} alive"
    i_know, they_know = member_at(mine.members, book[peer.name]) is not None, seen_by_them is not None
    if i_know != they_know:
        lost, other = (peer, xivo) if i_know else (xivo, peer)
        return lost, f"{lost.name}'s pool does not know {other.name} at all: {lost.name} never joined or forgot"
    counts = {xivo.name: alive_declared(mine, topology, book), peer.name: alive_declared(theirs, topology, book)}
    total = len(topology.xivos)
    if counts[xivo.name] != counts[peer.name]:
        cut = xivo if counts[xivo.name] < counts[peer.name] else peer
        return cut, (f"{cut.name}'s pool holds {counts[cut.name]} of the {total} declared XiVOs alive, "
                     "fewer than the other's")
    names = [x.name for x in topology.xivos]
    later = max(xivo, peer, key=lambda x: names.index(x.name))
    if not i_know:
        return later, f"neither pool knows the other: {later.name}, declared later, is the one to join"
    return later, f"each pool sees the other not alive: reported on {later.name}, declared later"


def consul_wan_fix(ctx: FixContext) -> FixOut:
    """Commands on this XiVO (others say where), from the Configure Consul section of the manual of
    the XiVO's release (xivo/manual.py)."""
    xivo, topology = ctx.xivo, ctx.topology
    assert xivo is not None
    peers = [p for p in topology.xivos if p.name != xivo.name]
    steps = FixSteps()
    for problem in ctx.evidence.get("problems", []):
        peer = topology.xivo(problem["peer"]) if problem.get("peer") else None
        steps.add(*_fix_for(problem["kind"], xivo, peer, peers[0].address if peers else None, problem, ctx.version))
    return steps.out()


def _fix_for(kind: str, xivo: Xivo, peer: Xivo | None, join: str | None, problem: dict,
             version: str | None) -> tuple[str, list[str]]:
    if kind == "no-leader":
        return (f"on {xivo.name}, stop consul, remove its data as the manual says (raft/peers.json still holds "
                "the old 127.0.0.1:8300) and start it again, then rejoin the pool",
                consul_reset(version, join=join))
    if kind == "own-address":
        return (f"on {xivo.name}, set advertise_addr {xivo.address} in /etc/consul/xivo/interconnection.json (the "
                "manual's sample carries a comment, which is not JSON: write it without), wipe consul's data, "
                "check the configuration, start and rejoin",
                consul_reset(version, configure=[interconnection_json(xivo.address)], join=join))
    if kind == "duplicate-dc" and peer is not None:
        dc = problem["dc"]
        return (f"{xivo.name} and {peer.name} have the same short hostname, hence the same datacenter name: give "
                f"{xivo.name} another hostname, write it as datacenter and acl_datacenter in /etc/consul/xivo/"
                "config.json (the consul package rewrites it from `hostname -s` at every configure), wipe consul's "
                "data and rejoin",
                [set_hostname(version, "<new short hostname>"),
                 *consul_reset(version, configure=[
                     f"sed -i 's/\"{dc}\"/\"<new short hostname>\"/g' /etc/consul/xivo/config.json"],
                     join=peer.address)])
    if kind == "join" and peer is not None:
        return (f"join {xivo.name}'s consul to the WAN pool (one join is enough: members propagate)",
                [f"consul join -wan {peer.address}", "consul members -wan"])
    if kind == "failed" and peer is not None:
        return (f"{peer.name}'s consul stopped answering {xivo.name}'s gossip: check that consul runs on {peer.name} "
                "and that 8302 (TCP and UDP) passes both ways",
                [f"service consul status  # on {peer.name}",
                 *[f"iptables -I INPUT -p {proto} -s {src.address} --dport 8302 -j ACCEPT  # on {dst.name}"
                   for src, dst in ((xivo, peer), (peer, xivo)) for proto in ("tcp", "udp")],
                 "consul members -wan"])
    if kind == "no-path" and peer is not None:
        return (f"{xivo.name}'s consul cannot forward queries to {peer.name}'s datacenter: server RPC 8300/tcp must "
                f"pass from {xivo.name} to {peer.name}",
                [f"iptables -I INPUT -p tcp -s {xivo.address} --dport 8300 -j ACCEPT  # on {peer.name}",
                 f"consul monitor  # on {xivo.name}: look for 'RPC request for DC ... no path found'"])
    return (f"{xivo.name}'s consul lists the pool and its datacenters inconsistently: read its log",
            ["consul members -wan", "consul monitor"])


@check(
    id="consul-wan",
    title="Consul's WAN pool holds every XiVO",
    why="xivo-ctid finds the other XiVOs' presence through Consul's cross-datacenter queries; a XiVO "
    "missing from the WAN pool shows no presence or phone status of its users elsewhere",
    fix=consul_wan_fix,
    doc="contact_and_presence_sharing.rst#join-the-consul-cluster",
    depends_on=["port-reachable:consul-rpc", "port-reachable:serf-wan"],
    involves="peers",
    warm_up=lambda w: [w.chain(_warm_reads(w, x)) for x in w.xivos],
    metrics=lambda o: [Metric(f"wan_alive_{o.xivo}", _alive_in_pool(o.evidence), minimum=0, maximum=len(o.xivos))],
    link=LinkKind("consul-wan", "Consul WAN", "a line per two XiVOs: each one's WAN pool holds the other alive",
                  directed=False, order=20),
    links=lambda o: _peer_views(o.evidence),
)
def test_consul_wan(xivo, topology, probes, evidence):
    api = probes.consul
    evidence["source"] = api.source(xivo)
    version_at_hand(probes, xivo, evidence)  # for the fix: the manual's steps change with the release
    leader = api.leader(xivo)
    evidence["leader"] = leader
    no_leader = (f"{xivo.name}'s consul has no leader (/v1/status/leader is empty): its raft data still names "
                 "an old address")
    if not leader:
        evidence["problems"] = [{"kind": "no-leader", "text": no_leader}]
    assert leader, no_leader
    config = api.agent_self(xivo)["Config"]
    members = api.wan_members(xivo)
    dc = str(config.get("Datacenter", ""))
    mine = WanView(f"{config.get('NodeName', '')}.{dc}", dc, tuple(members))
    evidence["datacenter"] = dc
    evidence["wan_pool"] = {str(m.get("Name")): f"{m.get('Addr')} {status_word(m)}" for m in members}
    peers = [p for p in topology.xivos if p.name != xivo.name]
    book = {x.name: declared_addresses(probes, x) for x in topology.xivos}
    seen = {p.name: member_at(members, book[p.name]) for p in peers}
    alive = [p for p in peers if seen[p.name] is not None and seen[p.name].get("Status") == ALIVE]
    # A peer's own view only when it is missing here: to know its datacenter and who is to blame.
    views = {p.name: api.wan_view(p) for p in peers if p not in alive}
    dc_of = {xivo.name: dc, **{p.name: member_dc(seen[p.name]) if seen[p.name] else views[p.name].datacenter
                               for p in peers}}
    evidence["datacenters_of_xivos"] = {name: d for name, d in dc_of.items() if d}

    problems, notes = [], []
    me = next((m for m in members if m.get("Name") == mine.name), None)
    if me is None or str(me.get("Addr") or "").lower() not in book[xivo.name]:
        where = f"at {me.get('Addr')}" if me else f"nowhere (no member {mine.name})"
        problems.append({"kind": "own-address", "text": f"{xivo.name}'s consul is in its WAN pool {where}, not at "
                         f"its declared address {xivo.address} (advertise_addr)"})
    twins = _duplicates(xivo, topology, dc_of, problems, notes)
    evidence["peers"] = _pool(xivo, topology, mine, seen, views, twins, problems, notes, book)

    datacenters = api.datacenters(xivo)
    evidence["datacenters"] = datacenters
    shared = {d for d in dc_of.values() if list(dc_of.values()).count(d) > 1}
    cross = {}
    for p in alive:
        peer_dc = dc_of[p.name]
        if not peer_dc or peer_dc in shared:
            continue  # a duplicate name: reported above, a query would be ambiguous
        if peer_dc not in datacenters:
            problems.append({"kind": "dc-missing", "peer": p.name, "text": f"{p.name}'s datacenter '{peer_dc}' is "
                             f"missing from {xivo.name}'s datacenters {datacenters} although its server is alive"})
            continue
        query = api.dc_query(xivo, peer_dc)
        cross[peer_dc] = query.detail
        if not query.answered:
            problems.append({"kind": "no-path", "peer": p.name, "text": f"a query through {xivo.name}'s consul for "
                             f"datacenter '{peer_dc}' ({p.name}) answered {query.detail}"})
    evidence["cross_dc_queries"] = cross
    if notes:
        evidence["reported_elsewhere"] = notes
    if problems:
        evidence["problems"] = problems
    evidence.summary = (f"leader {leader}; datacenter {dc}; alive in the WAN pool: "
                        f"{', '.join(p.name for p in alive) or 'no peer'}"
                        + (f"; ?dc= answers from {', '.join(cross)}" if cross else "")
                        + (f"; {len(notes)} finding(s) reported elsewhere" if notes else ""))
    assert not problems, "; ".join(p["text"] for p in problems)


def _duplicates(xivo: Xivo, topology: Topology, dc_of: dict[str, str], problems: list, notes: list) -> set[str]:
    """Same datacenter name (same short hostname): on the later-declared XiVO of the two. Returns the
    names sharing this XiVO's datacenter."""
    order = [x.name for x in topology.xivos]
    twins = set()
    for i, a in enumerate(order):
        for b in order[i + 1:]:
            if not dc_of.get(a) or dc_of.get(b) != dc_of[a]:
                continue
            if b == xivo.name:
                problems.append({"kind": "duplicate-dc", "peer": a, "dc": dc_of[b], "text": f"{b}'s datacenter "
                                 f"name '{dc_of[b]}' (its short hostname) is also {a}'s"})
            else:
                notes.append(f"{a} and {b} share the datacenter name '{dc_of[b]}': reported on consul-wan[{b}]")
            if xivo.name in (a, b):
                twins.add(b if a == xivo.name else a)
    return twins


def _pool(xivo: Xivo, topology: Topology, mine: WanView, seen: dict, views: dict, twins: set[str],
          problems: list, notes: list, book: dict[str, frozenset[str]]) -> dict[str, str]:
    """Each peer's state in this XiVO's pool; a peer not alive is a problem here or a note (blame)."""
    declared = set().union(*book.values())
    unplaced = [f"{m.get('Name')} at {m.get('Addr')}" for m in mine.members
                if str(m.get("Addr") or "").lower() not in declared]
    states = {}
    for p in (p for p in topology.xivos if p.name != xivo.name):
        m = seen[p.name]
        if m is not None and m.get("Status") == ALIVE:
            states[p.name] = f"alive at {p.address} as {m.get('Name')}"
            continue
        state = "not in" if m is None else f"{status_word(m)} in"
        text = f"{p.name} ({p.address}) is {state} {xivo.name}'s WAN pool"
        if m is None and unplaced:
            text += f" (members at no declared address: {', '.join(unplaced)})"
        states[p.name] = text
        if p.name in twins:
            notes.append(f"{text}: a consequence of the duplicate datacenter name")
            continue
        culprit, why = blame(xivo, p, mine, views[p.name], topology, book)
        if culprit is not xivo:
            notes.append(f"{text}: reported on consul-wan[{culprit.name}] ({why})")
        else:
            kind = "failed" if m is not None and status_word(m) == "failed" else "join"
            problems.append({"kind": kind, "peer": p.name, "text": f"{text} ({why})"})
    return states


# -- warm-up, metric and picture ---------------------------------------------------------------------

def _warm_reads(w: WarmUp, xivo: Xivo) -> list:
    """This XiVO's Consul reads, one after another (a TLS handshake each), then its `?dc=` queries.
    `probes.consul` is looked up in the warm-up's thread: its import (python-consul2, requests)
    would otherwise hold the thread that starts the warm-ups."""
    reads = ("agent_self", "leader", "wan_members", "datacenters")
    return [*(lambda m=m: getattr(w.probes.consul, m)(xivo) for m in reads), lambda: _warm_queries(w, xivo)]


def _warm_queries(w: WarmUp, xivo: Xivo) -> None:
    """The `?dc=` query the check sends through `xivo`'s Consul for each alive peer's datacenter, when
    the pool is healthy: a leader, every peer alive at its address, distinct datacenters. Otherwise the
    check asks what it needs itself."""
    consul = w.probes.consul
    if not consul.leader(xivo):
        return
    dc = str(consul.agent_self(xivo)["Config"].get("Datacenter", ""))
    members = consul.wan_members(xivo)
    peers = [p for p in w.topology.xivos if p.name != xivo.name]
    found = {p.name: member_at(members, declared_addresses(w.probes, p)) for p in peers}
    if not all(m is not None and m.get("Status") == ALIVE for m in found.values()):
        return
    dcs = [member_dc(m) for m in found.values() if m is not None]
    if len(set(dcs)) < len(dcs) or dc in dcs:
        return
    known = consul.datacenters(xivo)
    for peer_dc in (d for d in dcs if d and d in known):
        w.submit(lambda peer_dc=peer_dc: consul.dc_query(xivo, peer_dc))


def _alive_in_pool(evidence) -> int | None:
    """Members alive in the XiVO's WAN pool (`wan_pool`: member -> "<address> <status>"); None when
    the pool was not read."""
    pool = evidence.get("wan_pool")
    if not isinstance(pool, Mapping):
        return None
    return sum(1 for v in pool.values() if str(v).split()[-1:] == ["alive"])


def _peer_views(evidence) -> dict[str, LinkView]:
    """How this XiVO's pool holds each peer: alive (and no problem named for it) or not."""
    peers = evidence.get("peers")
    if not isinstance(peers, Mapping):
        return {}
    problem_peers = {str(p["peer"]) for p in evidence.get("problems", ()) if isinstance(p, Mapping) and "peer" in p}
    return {str(name): LinkView(str(state).startswith("alive") and name not in problem_peers, str(state))
            for name, state in peers.items()}
