"""consul-wan evaluated on hand-made Consul answers: leader, pool membership (left / failed /
missing / wrong address) with the attribution that reports a root cause once (2 and 3 XiVOs),
duplicate datacenter names, `?dc=` answering 500, and the fixes filled with this topology's values."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from fake_versions import FakeVersions

from xivo_doctor.check import Evidence, FixContext, spec_of
from xivo_doctor.engine import registry
from xivo_doctor.foundation.errors import ProbeError
from xivo_doctor.probes.consul.agent import DcQuery, WanView
from xivo_doctor.topology.model import Topology, Xivo

SPEC = next(s for s in registry.discover() if s.id == "consul-wan")
MODULE = sys.modules[SPEC.module]
CHECK = getattr(MODULE, SPEC.function_name)
WIPE = ("rm -rf /var/lib/consul/raft/ /var/lib/consul/serf/ /var/lib/consul/services/ /var/lib/consul/tmp/ "
        "/var/lib/consul/checks/")


def topo(count: int) -> Topology:
    xivos = tuple(Xivo(name=f"xivo-{i}", address=f"10.0.0.{i}") for i in range(1, count + 1))
    return Topology(name="t", source=Path("t.yml"), xivos=xivos, pairs=())


def member(i: int, status: int = 1, addr: str | None = None, dc: str | None = None) -> dict:
    dc = dc or f"dc{i}"
    return {"Name": f"node{i}.{dc}", "Addr": addr or f"10.0.0.{i}", "Port": 8302,
            "Tags": {"dc": dc, "role": "consul", "port": "8300"}, "Status": status}


class FakeConsul:
    """The ConsulProbe methods consul-wan calls, answering from per-XiVO tables."""

    def __init__(self, pools: dict[str, list[dict]], *, dcs: dict[str, str] | None = None,
                 leader: str = "10.0.0.1:8300", no_path: set[str] = frozenset(),
                 down: set[str] = frozenset(), datacenters: dict[str, list[str]] | None = None) -> None:
        self.pools, self.leader_value, self.no_path, self.down = pools, leader, no_path, down
        self.dcs = dcs or {}
        self.datacenter_lists = datacenters or {}
        self.asked: list[tuple] = []

    def _x(self, xivo: Xivo) -> str:
        if xivo.name in self.down:
            raise ProbeError(self.source(xivo), "GET /v1/agent/self: cannot connect: connection refused")
        return xivo.name

    def dc(self, name: str) -> str:
        return self.dcs.get(name, f"dc{name.rsplit('-', 1)[1]}")

    def source(self, xivo: Xivo) -> str:
        return f"consul API of {xivo.name} (https://{xivo.address}:8500)"

    def leader(self, xivo: Xivo) -> str:
        self._x(xivo)
        return self.leader_value

    def agent_self(self, xivo: Xivo) -> dict:
        name = self._x(xivo)
        return {"Config": {"Datacenter": self.dc(name), "NodeName": f"node{name.rsplit('-', 1)[1]}"}}

    def wan_members(self, xivo: Xivo) -> list[dict]:
        return self.pools[self._x(xivo)]

    def wan_view(self, xivo: Xivo) -> WanView:
        try:
            config = self.agent_self(xivo)["Config"]
        except ProbeError as exc:
            return WanView(problem=str(exc))
        dc = config["Datacenter"]
        return WanView(f"{config['NodeName']}.{dc}", dc, tuple(self.pools[xivo.name]))

    def datacenters(self, xivo: Xivo) -> list[str]:
        own = self.dc(xivo.name)
        alive = sorted({m["Tags"]["dc"] for m in self.pools[xivo.name] if m["Status"] == 1} - {own})
        return self.datacenter_lists.get(xivo.name, [own, *alive])

    def dc_query(self, xivo: Xivo, dc: str) -> DcQuery:
        self.asked.append((xivo.name, dc))
        if dc in self.no_path:
            return DcQuery(dc, False, "HTTP 500 No path to datacenter")
        return DcQuery(dc, True, "1 passing xivo-ctid")


class FakeProbes:
    def __init__(self, consul: FakeConsul, names: dict[str, tuple[str, ...]] | None = None,
                 versions: dict[str, str] | None = None) -> None:
        self.consul = consul
        self.names = names or {}  # host name -> the addresses it resolves to
        self.version = FakeVersions(versions)

    def addresses(self, host: str) -> tuple[str, ...]:
        return (host,) if host[:1].isdigit() else self.names.get(host, ())


def run(topology: Topology, name: str, consul: FakeConsul, names=None,
        versions: dict[str, str] | None = None) -> tuple[Evidence, str | None]:
    """The item's evidence and its failure message (None when it passes)."""
    evidence = Evidence()
    try:
        CHECK(xivo=topology.xivo(name), topology=topology, probes=FakeProbes(consul, names, versions),
              evidence=evidence)
    except AssertionError as exc:
        return evidence, str(exc).split("\nassert ", 1)[0]
    return evidence, None


def fix(topology: Topology, name: str, evidence: Evidence):
    return spec_of(CHECK).fill_fix(FixContext(topology, topology.xivo(name), None, dict(evidence)))


def healthy(count: int) -> dict[str, list[dict]]:
    return {f"xivo-{i}": [member(j) for j in range(1, count + 1)] for i in range(1, count + 1)}


def test_declaration():
    assert SPEC.depends_on == ("port-reachable:consul-rpc", "port-reachable:serf-wan")
    assert SPEC.involves == "peers"
    assert SPEC.doc == "contact_and_presence_sharing.rst#join-the-consul-cluster"


def test_a_healthy_pool_passes_and_says_what_it_saw():
    t = topo(2)
    consul = FakeConsul(healthy(2))
    evidence, failure = run(t, "xivo-1", consul)
    assert failure is None
    assert evidence.summary == ("leader 10.0.0.1:8300; datacenter dc1; alive in the WAN pool: xivo-2; "
                                "?dc= answers from dc2")
    assert evidence["wan_pool"] == {"node1.dc1": "10.0.0.1 alive", "node2.dc2": "10.0.0.2 alive"}
    assert evidence["cross_dc_queries"] == {"dc2": "1 passing xivo-ctid"}
    assert evidence["source"] == "consul API of xivo-1 (https://10.0.0.1:8500)"
    assert consul.asked == [("xivo-1", "dc2")]
    assert "problems" not in evidence


def test_no_leader_fails_with_the_wipe():
    t = topo(2)
    evidence, failure = run(t, "xivo-2", FakeConsul(healthy(2), leader=""))
    assert failure == ("xivo-2's consul has no leader (/v1/status/leader is empty): its raft data still names "
                       "an old address")
    commands = fix(t, "xivo-2", evidence).commands
    assert commands[:3] == ("xivo-service stop", "service consul stop  # xivo-service stop leaves consul running",
                            WIPE)
    assert commands[-1] == "consul join -wan 10.0.0.1"


@pytest.mark.parametrize(("version", "backup", "wiped", "start"), [
    # contact_and_presence_sharing.rst "Configure Consul" at each tag (xivo/manual.py)
    ("15.19", True, "raft serf services tmp", "service consul start"),
    ("16.06", True, "raft serf services tmp checks", "service consul start"),
    ("16.07", False, "raft serf services tmp checks", "service consul start"),
    ("16.15", False, "raft serf services tmp checks", "systemctl start consul"),
])
def test_the_wipe_follows_the_manual_of_the_xivos_release(version, backup, wiped, start):
    t = topo(2)
    evidence, failure = run(t, "xivo-2", FakeConsul(healthy(2), leader=""), versions={"xivo-2": version})
    assert failure and evidence["version"] == f"{version} (/usr/share/xivo/XIVO-VERSION on xivo-2)"
    commands = [c.split("  #")[0] for c in fix(t, "xivo-2", evidence).commands]
    assert commands[commands.index("service consul stop") + 1] == "rm -rf " + " ".join(
        f"/var/lib/consul/{d}/" for d in wiped.split())
    assert start in commands
    # up to 16.06 the KV store (dird's personal contacts, favourites) is saved before and restored after
    kv = [c for c in commands if "consul-kv" in c]
    assert kv == (["xivo-backup-consul-kv -o /tmp/backup-consul-kv.json",
                   "xivo-restore-consul-kv -i /tmp/backup-consul-kv.json"] if backup else [])
    if backup:
        assert commands.index(kv[0]) < commands.index("xivo-service stop")
        assert commands.index(start) < commands.index(kv[1]) < commands.index("xivo-service start")


def test_never_joined_lab_shape_is_reported_on_the_later_declared_xivo_only():
    """consul-not-joined in the 2-node lab: each pool holds only itself."""
    t = topo(2)
    consul = FakeConsul({"xivo-1": [member(1)], "xivo-2": [member(2)]})
    evidence1, failure1 = run(t, "xivo-1", consul)
    assert failure1 is None
    assert evidence1["reported_elsewhere"] == [
        "xivo-2 (10.0.0.2) is not in xivo-1's WAN pool: reported on consul-wan[xivo-2] (neither pool knows the "
        "other: xivo-2, declared later, is the one to join)"]
    evidence2, failure2 = run(t, "xivo-2", consul)
    assert failure2 == ("xivo-1 (10.0.0.1) is not in xivo-2's WAN pool (neither pool knows the other: xivo-2, "
                        "declared later, is the one to join)")
    out = fix(t, "xivo-2", evidence2)
    assert out.commands == ("consul join -wan 10.0.0.1", "consul members -wan")
    assert out.summary == "join xivo-2's consul to the WAN pool (one join is enough: members propagate)"


def test_a_peer_that_forgot_the_pool_is_blamed_even_when_declared_first():
    """xivo-1's pool shows xivo-2 `left`; xivo-2's pool holds only itself: xivo-2 forgot."""
    t = topo(2)
    consul = FakeConsul({"xivo-1": [member(1), member(2, status=3)], "xivo-2": [member(2)]})
    evidence1, failure1 = run(t, "xivo-1", consul)
    assert failure1 is None
    assert evidence1["reported_elsewhere"] == [
        "xivo-2 (10.0.0.2) is left in xivo-1's WAN pool: reported on consul-wan[xivo-2] (xivo-2's pool "
        "does not know xivo-1 at all: xivo-2 never joined or forgot)"]
    assert evidence1["peers"] == {"xivo-2": "xivo-2 (10.0.0.2) is left in xivo-1's WAN pool"}
    _, failure2 = run(t, "xivo-2", consul)
    assert failure2 == ("xivo-1 (10.0.0.1) is not in xivo-2's WAN pool (xivo-2's pool does not know xivo-1 at "
                        "all: xivo-2 never joined or forgot)")
    # the other way round: xivo-1 forgot, though declared first
    consul = FakeConsul({"xivo-1": [member(1)], "xivo-2": [member(2), member(1, status=3)]})
    assert run(t, "xivo-1", consul)[1] == ("xivo-2 (10.0.0.2) is not in xivo-1's WAN pool (xivo-1's pool does not "
                                           "know xivo-2 at all: xivo-1 never joined or forgot)")
    assert run(t, "xivo-2", consul)[1] is None


def test_a_failed_peer_whose_pool_cannot_be_read_fails_here():
    t = topo(2)
    consul = FakeConsul({"xivo-1": [member(1), member(2, status=4)], "xivo-2": []}, down={"xivo-2"})
    evidence, failure = run(t, "xivo-1", consul)
    assert failure == ("xivo-2 (10.0.0.2) is failed in xivo-1's WAN pool (xivo-2's own pool could not "
                       "be read: consul API of xivo-2 (https://10.0.0.2:8500): GET /v1/agent/self: cannot connect: "
                       "connection refused)")
    out = fix(t, "xivo-1", evidence)
    assert "iptables -I INPUT -p udp -s 10.0.0.1 --dport 8302 -j ACCEPT  # on xivo-2" in out.commands
    assert "iptables -I INPUT -p udp -s 10.0.0.2 --dport 8302 -j ACCEPT  # on xivo-1" in out.commands
    assert out.commands[0] == "service consul status  # on xivo-2"


def test_mutual_failure_between_two_is_reported_once_on_the_later_declared():
    t = topo(2)
    consul = FakeConsul({"xivo-1": [member(1), member(2, status=4)], "xivo-2": [member(2), member(1, status=4)]})
    assert run(t, "xivo-1", consul)[1] is None
    assert run(t, "xivo-2", consul)[1] == ("xivo-1 (10.0.0.1) is failed in xivo-2's WAN pool (each pool sees the "
                                           "other not alive: reported on xivo-2, declared later)")


def test_a_peer_alive_in_my_pool_only_one_way_fails_here():
    t = topo(2)
    consul = FakeConsul({"xivo-1": [member(1), member(2, status=4)], "xivo-2": [member(2), member(1)]})
    assert run(t, "xivo-1", consul)[1] == ("xivo-2 (10.0.0.2) is failed in xivo-1's WAN pool (xivo-2's own pool "
                                           "has xivo-1 alive)")


@pytest.mark.parametrize("lonely", [1, 2, 3])
def test_three_xivos_one_never_joined_only_that_one_fails(lonely):
    t = topo(3)
    others = [i for i in (1, 2, 3) if i != lonely]
    pools = {f"xivo-{i}": [member(j) for j in others] for i in others}
    pools[f"xivo-{lonely}"] = [member(lonely)]
    consul = FakeConsul(pools)
    failures = {x.name: run(t, x.name, consul)[1] for x in t.xivos}
    assert [n for n, f in failures.items() if f] == [f"xivo-{lonely}"]
    assert failures[f"xivo-{lonely}"].count("is not in") == 2
    assert f"xivo-{lonely}'s pool holds 1 of the 3 declared XiVOs alive, fewer than the other's" in \
        failures[f"xivo-{lonely}"]
    evidence = run(t, f"xivo-{others[0]}", consul)[0]
    assert evidence["reported_elsewhere"][0].endswith(
        f"reported on consul-wan[xivo-{lonely}] (xivo-{lonely}'s pool holds 1 of the 3 declared XiVOs alive, "
        "fewer than the other's)")


def test_three_xivos_one_left_and_forgotten():
    """xivo-3 wiped its serf data: xivo-1 and xivo-2 still show it left."""
    t = topo(3)
    pools = {"xivo-1": [member(1), member(2), member(3, status=3)],
             "xivo-2": [member(1), member(2), member(3, status=3)], "xivo-3": [member(3)]}
    failures = {x.name: run(t, x.name, FakeConsul(pools))[1] for x in t.xivos}
    assert [n for n, f in failures.items() if f] == ["xivo-3"]


def test_a_peer_advertising_a_wrong_address_is_reported_on_that_peer():
    t = topo(2)
    wrong = member(2, status=4, addr="127.0.0.1")
    consul = FakeConsul({"xivo-1": [member(1), wrong], "xivo-2": [member(2, addr="127.0.0.1")]})
    evidence1, failure1 = run(t, "xivo-1", consul)
    assert failure1 is None
    assert evidence1["reported_elsewhere"] == [
        "xivo-2 (10.0.0.2) is not in xivo-1's WAN pool (members at no declared address: node2.dc2 at 127.0.0.1): "
        "reported on consul-wan[xivo-2] (xivo-2 advertises itself at 127.0.0.1)"]
    evidence2, failure2 = run(t, "xivo-2", consul)
    assert failure2.startswith("xivo-2's consul is in its WAN pool at 127.0.0.1, not at its declared address "
                               "10.0.0.2 (advertise_addr); xivo-1 (10.0.0.1) is not in xivo-2's WAN pool")
    out = fix(t, "xivo-2", evidence2)
    written = next(c for c in out.commands if c.startswith("cat > /etc/consul/xivo/interconnection.json"))
    body = written.split("\n", 1)[1].rsplit("\nEOF", 1)[0]
    assert json.loads(body) == {"client_addr": "0.0.0.0", "bind_addr": "0.0.0.0", "advertise_addr": "10.0.0.2"}
    assert "//" not in body
    order = [c.split("  #")[0] for c in out.commands]
    assert order[:4] == ["xivo-service stop", "service consul stop", WIPE, written]
    assert order[4:8] == ["consul configtest --config-dir /etc/consul/xivo/", "service consul start",
                          "xivo-service start", "consul join -wan 10.0.0.1"]


def test_duplicate_datacenter_names_fail_on_the_later_declared_xivo():
    t = topo(2)
    pools = {"xivo-1": [member(1, dc="xivo"), member(2, dc="xivo")],
             "xivo-2": [member(1, dc="xivo"), member(2, dc="xivo")]}
    consul = FakeConsul(pools, dcs={"xivo-1": "xivo", "xivo-2": "xivo"})
    evidence1, failure1 = run(t, "xivo-1", consul)
    assert failure1 is None
    assert evidence1["reported_elsewhere"] == [
        "xivo-1 and xivo-2 share the datacenter name 'xivo': reported on consul-wan[xivo-2]"]
    assert consul.asked == []  # no ?dc= query towards an ambiguous name
    evidence2, failure2 = run(t, "xivo-2", consul)
    assert failure2 == "xivo-2's datacenter name 'xivo' (its short hostname) is also xivo-1's"
    out = fix(t, "xivo-2", evidence2)
    assert out.commands[0] == "hostnamectl set-hostname <new short hostname>"
    assert "sed -i 's/\"xivo\"/\"<new short hostname>\"/g' /etc/consul/xivo/config.json" in out.commands
    assert WIPE in out.commands and out.commands[-1] == "consul join -wan 10.0.0.1"


def test_duplicate_datacenter_of_a_peer_missing_from_the_pool_is_found_through_its_own_api():
    t = topo(2)
    consul = FakeConsul({"xivo-1": [member(1, dc="xivo")], "xivo-2": [member(2, dc="xivo")]},
                        dcs={"xivo-1": "xivo", "xivo-2": "xivo"})
    evidence1, failure1 = run(t, "xivo-1", consul)
    assert failure1 is None
    assert evidence1["reported_elsewhere"][1] == ("xivo-2 (10.0.0.2) is not in xivo-1's WAN pool: a consequence "
                                                  "of the duplicate datacenter name")
    assert run(t, "xivo-2", consul)[1] == "xivo-2's datacenter name 'xivo' (its short hostname) is also xivo-1's"


def test_a_cross_datacenter_query_answering_500_fails():
    t = topo(2)
    evidence, failure = run(t, "xivo-1", FakeConsul(healthy(2), no_path={"dc2"}))
    assert failure == ("a query through xivo-1's consul for datacenter 'dc2' (xivo-2) answered HTTP 500 "
                       "No path to datacenter")
    assert evidence["cross_dc_queries"] == {"dc2": "HTTP 500 No path to datacenter"}
    assert fix(t, "xivo-1", evidence).commands[0] == "iptables -I INPUT -p tcp -s 10.0.0.1 --dport 8300 -j ACCEPT  " \
                                                     "# on xivo-2"


def test_a_datacenter_missing_from_the_catalog_fails():
    t = topo(2)
    _, failure = run(t, "xivo-1", FakeConsul(healthy(2), datacenters={"xivo-1": ["dc1"]}))
    assert failure == "xivo-2's datacenter 'dc2' is missing from xivo-1's datacenters ['dc1'] although its server " \
                      "is alive"


def test_its_own_consul_unreachable_is_a_probe_error_not_a_failure():
    t = topo(2)
    with pytest.raises(ProbeError):
        run(t, "xivo-2", FakeConsul(healthy(2), down={"xivo-2"}))


def test_blame_is_the_same_seen_from_both_sides():
    """For every mutual case, x's verdict about p and p's verdict about x name the same culprit."""
    t = topo(2)
    x1, x2 = t.xivos
    for s12 in (None, 3, 4):
        for s21 in (None, 3, 4):
            pool1 = [member(1)] + ([member(2, status=s12)] if s12 else [])
            pool2 = [member(2)] + ([member(1, status=s21)] if s21 else [])
            v1, v2 = WanView("node1.dc1", "dc1", tuple(pool1)), WanView("node2.dc2", "dc2", tuple(pool2))
            book = {x.name: frozenset({x.address}) for x in t.xivos}
            assert MODULE.blame(x1, x2, v1, v2, t, book)[0] is MODULE.blame(x2, x1, v2, v1, t, book)[0], (s12, s21)


def test_a_xivo_declared_by_name_is_found_at_the_address_the_name_resolves_to():
    """issue 13: the topology may name a XiVO by host name while the WAN pool carries addresses;
    compared as text, every peer declared by name was "not in the pool"."""
    by_name = Topology(name="t", source=Path("t.yml"), pairs=(), xivos=(
        Xivo(name="xivo-1", address="10.0.0.1"), Xivo(name="xivo-2", address="xivo-2.example.com")))
    consul = FakeConsul({"xivo-1": [member(1), member(2)], "xivo-2": [member(1), member(2)]})
    _, failure = run(by_name, "xivo-2", consul)
    assert failure.startswith("xivo-2's consul is in its WAN pool at 10.0.0.2, not at its declared address")
    evidence, failure = run(by_name, "xivo-1", consul, names={"xivo-2.example.com": ("10.0.0.2",)})
    assert failure is None and evidence["peers"]["xivo-2"].startswith("alive at xivo-2.example.com")
    _, failure = run(by_name, "xivo-2", consul, names={"xivo-2.example.com": ("10.0.0.2",)})
    assert failure is None
