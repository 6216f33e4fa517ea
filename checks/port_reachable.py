"""port-reachable: the ports the interconnection needs between XiVOs answer on each XiVO.

Ports and the daemons behind them: XIVO-FACTS §1 (the manual's network flow table,
wazo-doc source/contributors/network.rst@xivo-16.15, and which flows cross between XiVOs).
Per release (json.php's 80/443 only while it serves the phonebook; the refused-ctid fix):
docs/xivo-behaviour.md "port-reachable".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from xivo_doctor.check import FixContext, FixSteps, Reach, WarmUp, check, version_at_hand
from xivo_doctor.foundation.errors import ProbeError
from xivo_doctor.foundation.results import FixOut
from xivo_doctor.probes.transport import tcp
from xivo_doctor.topology.model import Topology, Xivo
from xivo_doctor.xivo.manual import consul_reset, ctid_interconnection_yml, interconnection_json
from xivo_doctor.xivo.versions import phonebook_sharing_applies


@dataclass(frozen=True)
class NeededPort:
    facet: str  # the name dependents use: `port-reachable:amqp`
    port: int
    service: str
    used_for: str


def needed_ports(xivo: Xivo, version: str | None = None) -> list[NeededPort]:
    """What the peers connect to on this XiVO (XIVO-FACTS §1, "ports needed between XiVOs"), on
    `version` (the one at hand; the topology's when not given)."""
    ports = [
        NeededPort("amqp", xivo.rabbitmq.port, "RabbitMQ AMQP", "the peers' federation links"),
        NeededPort("consul-rpc", xivo.consul.rpc_port, "Consul server RPC", "cross-datacenter queries"),
        NeededPort("serf-wan", xivo.consul.serf_wan_port, "Consul Serf WAN", "WAN gossip (TCP part)"),
        NeededPort("confd", xivo.confd.port, "xivo-confd HTTPS", "the peers' xivo-dird `xivo` directories"),
        NeededPort("ctid", xivo.ctid.port, "xivo-ctid REST", "the peers' xivo-ctid fetching statuses"),
    ]
    # json.php phonebook sharing: port 80, and 443 because nginx redirects HTTP to HTTPS.
    if xivo.webservices.phonebook_sharing and phonebook_sharing_applies(version or xivo.version):
        ports += [
            NeededPort("http", xivo.webservices.http_port, "nginx HTTP", "phonebook sharing (json.php)"),
            NeededPort("https", xivo.webservices.https_port, "nginx HTTPS", "phonebook sharing (redirect target)"),
        ]
    return ports


def _refused_fix(xivo: Xivo, port: NeededPort, peers: list[Xivo], version: str | None) -> tuple[str, list[str]]:
    """What makes each daemon listen on the XiVO's address (XIVO-FACTS §1, §3, §4), with the
    manual's commands of the XiVO's release (xivo/manual.py)."""
    if port.facet == "amqp":
        return (
            f"start RabbitMQ on {xivo.name}; XiVO's /etc/rabbitmq/rabbitmq.config listens on "
            f'0.0.0.0:5672 ({{tcp_listeners, [{{"0.0.0.0", 5672}}]}}): make sure it was not narrowed',
            ["service rabbitmq-server status", "grep -n tcp_listeners /etc/rabbitmq/rabbitmq.config",
             "service rabbitmq-server restart"],
        )
    if port.facet in ("consul-rpc", "serf-wan"):
        return (
            f"Consul on {xivo.name} binds 127.0.0.1 by default: add /etc/consul/xivo/interconnection.json "
            f"with advertise_addr {xivo.address}, wipe the consul data and restart (manual: Configure Consul; "
            "the manual's sample has a comment, which is not valid JSON, so write it without)",
            consul_reset(version, configure=[interconnection_json(xivo.address)],
                         join=peers[0].address if peers else None),
        )
    if port.facet == "ctid":
        return (
            f"nothing listens for xivo-ctid on {xivo.address}:{port.port}: either xivo-ctid is not running (its "
            "status and log say why; from 16.02 it stops at start when XIVO_UUID is not set, see uuid-unique) or "
            f"its REST API listens on 127.0.0.1, its default: then on {xivo.name} create "
            "/etc/xivo-ctid/conf.d/interconnection.yml as the manual says and restart xivo-ctid",
            ["service xivo-ctid status", "tail -n 20 /var/log/xivo-ctid.log",
             ctid_interconnection_yml(xivo.address, version), "service xivo-ctid restart"],
        )
    if port.facet == "confd":
        return (
            f"xivo-confd does not answer on {xivo.address}:{port.port}: it listens on 0.0.0.0 by default, so "
            "either it is stopped or its rest_api https listen was narrowed in /etc/xivo-confd (set it back "
            "to 0.0.0.0), then restart it",
            ["service xivo-confd status", "grep -rn listen /etc/xivo-confd/", "tail -n 50 /var/log/xivo-confd.log",
             "service xivo-confd restart"],
        )
    return (
        f"nginx does not answer on {xivo.name} port {port.port}: start it",
        ["service nginx status", "service nginx restart"],
    )


def port_fix(ctx: FixContext) -> FixOut:
    xivo, topology = ctx.xivo, ctx.topology
    assert xivo is not None
    peers = [x for x in topology.xivos if x.name != xivo.name]
    entries = _tried(ctx.evidence)
    if entries and not any(e.ok for e in entries):
        # Nothing answers at all: one cause (server down, wrong address, a firewall in between)
        # is far likelier than every daemon misconfigured at once.
        return FixOut(
            summary=f"nothing answers on {xivo.address}: check that {xivo.name} is up, that {xivo.address} is "
            "its address as the other XiVOs see it (fix the topology file otherwise), and that no firewall "
            "between them drops the traffic; then run xivo-doctor again for the daemon-level fixes",
            commands=(f"ping -c 3 {xivo.address}", "ip -4 addr show  # on the XiVO: is the address there?",
                      "xivo-service status  # on the XiVO"),
        )
    steps = FixSteps()
    by_key = {f"{p.port}/tcp": p for p in needed_ports(xivo, ctx.version)}
    by_name = {x.name: x for x in peers}
    for key in dict.fromkeys(e.port for e in entries):
        port, tried = by_key.get(key), [e for e in entries if e.port == key]
        closed = [e for e in tried if not e.ok]
        if port is None or not closed:
            continue
        # tried from those peers over SSH and not answered there; else from the doctor's host, for all
        cut_off = [by_name[e.origin] for e in closed if e.origin in by_name] or peers
        answers_others = len(closed) < len(tried)
        if all(e.state == tcp.REFUSED for e in closed) and not answers_others:
            summary, cmds = _refused_fix(xivo, port, peers, ctx.version)
            # A REJECT rule answers with ICMP port unreachable, which connect() also reports as refused.
            summary += (f" (if it does listen, a firewall REJECT rule refuses too: `iptables -S INPUT` on {xivo.name}"
                        " lists it; allow the port from the other XiVOs)")
        else:
            # The manual asks to restrict consul's and ctid's HTTP ports to the other XiVOs, so
            # open each needed port to the peers only.
            rejects = any(e.state == tcp.REFUSED for e in closed)
            summary = (
                f"a firewall {'rejects' if rejects else 'drops'} {port.port}/tcp on {xivo.name}"
                + (f" for {', '.join(p.name for p in cut_off)} (it answers the others)" if answers_others else "")
                + f": allow it from {', '.join(p.name for p in cut_off) if answers_others else 'the other XiVOs'}"
                + (" (and UDP, which Serf WAN also uses)" if port.facet == "serf-wan" else "")
                + (f"; `iptables -S INPUT` on {xivo.name} shows the rule" if rejects or answers_others else "")
            )
            protos = ("tcp", "udp") if port.facet == "serf-wan" else ("tcp",)
            cmds = [
                f"iptables -I INPUT -p {proto} -s {peer.address} --dport {port.port} -j ACCEPT"
                for peer in cut_off
                for proto in protos
            ]
            if rejects or answers_others:
                cmds.insert(0, "iptables -S INPUT")
        steps.add(summary, cmds)  # 8300 and 8302 share Consul's fix: given once
    return steps.out()


@check(
    id="port-reachable",
    title="Interconnection ports answer",
    why="every other step of the interconnection travels over these ports; a closed one breaks "
    "federation, Consul, presence or directories silently",
    fix=port_fix,
    doc="contact_and_presence_sharing.rst#prerequisite",
    reach=lambda o: _tried(o.evidence),
    warm_up=lambda w: _warm_scans(w),  # defined below, beside the scans the check makes
    warm_up_order=20,  # after the rabbitmqctl reads (10): each scan is one short command per peer
)
def test_port_reachable(xivo, xivos, topology, probes, evidence):
    # which ports depends on the release (json.php up to 16.13): the XiVO's own word, else the topology's
    ports = needed_ports(xivo, version_at_hand(probes, xivo, evidence))
    targets = [(xivo.address, p.port) for p in ports]
    seen: list[tuple[NeededPort, str | None, tcp.PortProbe]] = []  # (port, the peer it was tried from, result)
    here, notes = False, []
    for peer in (x for x in topology.xivos if x.name != xivo.name):
        # Tried from the peer that connects, where SSH reaches it (a firewall may admit the
        # admin's network and drop the other XiVO); else, once, from the doctor's host.
        if peer.ssh is None or peer.on_box is not None:
            here = True
            continue
        try:
            states = probes.tcp_states_from(peer, targets, prefetch=_targets(topology, xivos, but=peer))
        except ProbeError as exc:
            notes.append(f"not tried from {peer.name}: {exc}")
            here = True
            continue
        seen += [(p, peer.name, states[(xivo.address, p.port)]) for p in ports]
    if here:
        states = probes.tcp_states(targets, prefetch=_targets(topology, xivos))
        seen += [(p, None, states[(xivo.address, p.port)]) for p in ports]
    froms = [name for name in dict.fromkeys(v for _, v, _ in seen) if name is not None]
    evidence["source"] = "TCP connect " + " and ".join(
        ([f"from {', '.join(froms)} over SSH"] if froms else []) + ([f"from {probes.vantage}"] if here else []))
    if notes:
        evidence["vantage_notes"] = notes
    # per port, then the state seen from each origin (a peer, or this host): the HTML report embeds
    # 10 XiVOs x 9 peers x 7 ports of it (issue 5: under 300 kB)
    evidence["ports"] = {
        f"{p.port}/tcp": {"service": p.service, "from": {v or probes.vantage: s.state for q, v, s in seen if q is p}}
        for p in ports
    }
    evidence["udp"] = f"{xivo.consul.serf_wan_port}/udp (Serf WAN) is not provable by a connect: consul-wan proves it"
    closed = [(p, v, s) for p, v, s in seen if s.state != tcp.OPEN]
    for facet in dict.fromkeys(p.facet for p, _, _ in closed):
        failing = {v for p, v, _ in closed if p.facet == facet}
        # from some peers only: only what involves those peers is blocked (engine/blocking.py)
        evidence.failed_facet(*((facet,) if None in failing or len(failing) == len(froms) + here
                                else (f"{facet}@{v}" for v in sorted(failing))))
    evidence.summary = f"{len(ports)} ports open" + (f" from {', '.join(froms)}" if froms and not here else "") \
        + ": " + ", ".join(str(p.port) for p in ports)
    assert not closed, _closed_words(xivo, seen, closed) + _vantage_caveat(probes, closed)


def _tried(evidence: Mapping) -> list[Reach]:
    """Each port as tried from each origin (evidence `ports`): the fix's input and the report's
    from -> to grid."""
    ports = evidence.get("ports")
    return [Reach(origin=str(origin), port=key, service=str(e.get("service", "")), state=str(state),
                  ok=state == tcp.OPEN)
            for key, e in (ports.items() if isinstance(ports, Mapping) else ()) if isinstance(e, Mapping)
            for origin, state in (e.get("from") or {}).items()]


def _warm_scans(w: WarmUp) -> None:
    """Each peer reached by SSH tries every selected XiVO's ports in one command, as the run
    starts, the very scan the items ask for (on the topology's version: a XiVO that says another
    adds its own ports when its item runs)."""
    for peer in w.topology.xivos:
        if peer.ssh is not None and peer.on_box is None and any(x is not peer for x in w.xivos):
            w.chain([lambda p=peer: w.probes.tcp_states_from(p, _targets(w.topology, w.xivos, but=p))])


def _targets(topology: Topology, xivos: tuple[Xivo, ...], but: Xivo | None = None) -> list[tcp.Target]:
    return [(x.address, p.port) for x in xivos if x is not but for p in needed_ports(x)]


def _closed_words(xivo, seen, closed) -> str:
    groups: dict[str, list[str]] = {}
    for p, v, s in closed:
        groups.setdefault(_STATE_WORDS.get(s.state, s.state), []).append(
            f"{p.port} ({p.service})" + (f" from {v}" if v else ""))
    text = "; ".join(f"{state}: {', '.join(ports)}" for state, ports in groups.items())
    if len(closed) == len(seen):
        text = f"no needed port answers on {xivo.address} (is {xivo.name} up at that address?); " + text
    return text


_STATE_WORDS = {
    tcp.REFUSED: "refused (nothing listens on that address, or a firewall rejects)",
    tcp.TIMEOUT: "timed out (filtered: no answer to the SYN)",
    tcp.UNREACHABLE: "unreachable (no route)",
}


def _vantage_caveat(probes, closed) -> str:
    if any(s.state == tcp.TIMEOUT and v is None for _, v, s in closed) and not probes.runs_on_a_xivo():
        return (
            f" (probed from {probes.vantage}, which is not one of the XiVOs: a firewall that admits "
            "only the other XiVOs also looks filtered from here; give the topology `ssh` access to try "
            "from each XiVO, or run xivo-doctor on a XiVO, to be sure)"
        )
    return ""
