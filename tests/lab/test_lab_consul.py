"""lab: the Consul stand-in (`python -m xivo_doctor.lab.consul`) with real serf WAN gossip.

Two real stand-ins on 127.10.210.1 / .2 (datacenters xivo-lab-t1 / xivo-lab-t2, both XiVO 16.15, so
Consul 0.7.0 with consul-customize-anonymous-token), each with its own `serf agent`, driven with
python-consul2 as XiVO and the doctor drive Consul (LAB-NOTES §C.3). What differs per XiVO version
is in test_lab_consul_versions.py.
Failure detection is serf's wan profile (~40 s, LAB-NOTES §D): tested once, last. Timings are
printed (`pytest -s`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import consul
import pytest
import requests
from lab_consul_fixture import StandIn, make_root, serf_pids
from services import starts_services

pytestmark = [
    pytest.mark.skipif(not (shutil.which("serf") and shutil.which("openssl")), reason="serf and openssl needed"),
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]

A1, A2, A3 = "127.10.210.1", "127.10.210.2", "127.10.210.3"
DC1, DC2 = "xivo-lab-t1", "xivo-lab-t2"
TOKENS = {A1: "a1" * 16, A2: "b2" * 16}
TIMINGS: dict[str, float] = {}


@dataclass
class Lab:
    base: Path
    nodes: dict[str, StandIn]

    def client(self, address: str, token: str | None = None) -> consul.Consul:
        return consul.Consul(address, 8500, scheme="https", verify=False, token=token, timeout=5)

    def admin(self, address: str) -> consul.Consul:
        return self.client(address, TOKENS[address])


def _until(predicate, timeout: float, step: float = 0.25) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not true within {timeout} s")
        time.sleep(step)
    return time.monotonic() - started


def _wan_status(lab: Lab, name: str) -> int | None:
    return {m["Name"]: m["Status"] for m in lab.admin(A1).agent.members(wan=True)}.get(name)


@pytest.fixture(scope="module")
@starts_services
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    base = tmp_path_factory.mktemp("consul-lab")
    nodes = {a: StandIn(make_root(base, a, dc, TOKENS[a]), a) for a, dc in ((A1, DC1), (A2, DC2))}
    try:
        TIMINGS["start"] = max(node.start() for node in nodes.values())
        lab = Lab(base, nodes)
        started = time.monotonic()
        assert lab.admin(A1).agent.join(A2, wan=True) is True
        TIMINGS["join"] = time.monotonic() - started + _until(lambda: _wan_status(lab, f"{DC2}.{DC2}") == 1, 5)
        yield lab
    finally:
        for node in nodes.values():
            if node.proc and node.proc.poll() is None:
                node.proc.send_signal(signal.SIGTERM)  # both at once, then wait
        for node in nodes.values():
            node.stop()
        left = serf_pids(A1) + serf_pids(A2)
        for pid in left:  # children of our stand-ins: never leave them running
            os.kill(pid, signal.SIGKILL)
        print("\nconsul stand-in timings (s):", {k: round(v, 2) for k, v in TIMINGS.items()})
        assert not left, f"serf agents left running: {left}"


def test_agent_self_shape(lab: Lab) -> None:
    me = lab.admin(A1).agent.self()
    config = me["Config"]
    assert {k: config[k] for k in ("Datacenter", "NodeName", "Server", "Version", "AdvertiseAddr", "BindAddr",
                                   "ClientAddr")} == {"Datacenter": DC1, "NodeName": DC1, "Server": True,
                                                      "Version": "0.7.0", "AdvertiseAddr": A1, "BindAddr": A1,
                                                      "ClientAddr": A1}
    assert config["NodeID"] and config["Revision"] == "a189091a3530051285c12c726ca28ea55e015336"
    assert me["Member"]["Tags"]["dc"] == DC1 and me["Member"]["Port"] == 8301 and me["Member"]["Status"] == 1


def test_agent_endpoints_need_no_token(lab: Lab) -> None:
    """Consul <= 0.7 does not ACL-check /v1/agent/* (R1 §4c): no token, a wrong one, another DC's: all answer."""
    for client in (lab.client(A1), lab.client(A1, "wrong"), lab.client(A1, TOKENS[A2])):
        assert client.agent.self()["Config"]["Datacenter"] == DC1
        assert "consul" in client.agent.services()
        assert isinstance(client.agent.checks(), dict)
        assert {m["Name"] for m in client.agent.members(wan=True)} >= {f"{DC1}.{DC1}", f"{DC2}.{DC2}"}
        assert client.agent.join(A2, True) is True
    answer = requests.get(f"https://{A1}:8500/v1/agent/self", verify=False, timeout=5)
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "application/json"
    assert "Server" not in answer.headers  # Go's net/http sends none


def test_wan_members_both_alive(lab: Lab) -> None:
    for address in (A1, A2):
        members = {m["Name"]: m for m in lab.admin(address).agent.members(wan=True)}
        assert set(members) == {f"{DC1}.{DC1}", f"{DC2}.{DC2}"}
        two = members[f"{DC2}.{DC2}"]
        assert (two["Addr"], two["Port"], two["Status"]) == (A2, 8302, 1)
        assert {"dc": DC2, "role": "consul", "port": "8300", "vsn": "2", "vsn_min": "1", "vsn_max": "3",
                "build": "0.7.0:a189091a", "bootstrap": "1"}.items() <= two["Tags"].items()
        assert {"ProtocolMin", "ProtocolMax", "ProtocolCur", "DelegateMin", "DelegateMax", "DelegateCur"} <= set(two)
    lan = lab.admin(A1).agent.members()
    assert [(m["Name"], m["Port"]) for m in lan] == [(DC1, 8301)]
    # Only Consul's own API: no lab-only endpoint the doctor could come to depend on.
    extra = requests.get(f"https://{A1}:8500/v1/lab/member-since", verify=False, timeout=5)
    assert extra.status_code == 404


def test_join_failure_is_serfs_error(lab: Lab) -> None:
    with pytest.raises(consul.base.ConsulException, match=r"(?s)^500 .*Failed to join 127.10.210.9"):
        lab.admin(A1).agent.join("127.10.210.9", wan=True)


def test_datacenters_and_leader(lab: Lab) -> None:
    assert lab.client(A1).catalog.datacenters() == [DC1, DC2]
    assert lab.client(A2).catalog.datacenters() == [DC2, DC1]  # own first
    assert lab.client(A1).status.leader() == f"{A1}:8300"
    assert lab.client(A1).status.peers() == [f"{A1}:8300"]
    answer = requests.get(f"https://{A1}:8500/v1/status/leader", verify=False, timeout=5)
    assert answer.headers["X-Consul-KnownLeader"] == "true" and answer.headers["X-Consul-LastContact"] == "0"
    assert int(answer.headers["X-Consul-Index"]) >= 1


def test_register_ttl_pass_expire_deregister(lab: Lab) -> None:
    admin, data = lab.admin(A1), lab.nodes[A1].root / "var/lib/consul"
    index, _ = admin.catalog.service("xivo-ttl")
    admin.agent.service.register("xivo-ttl", service_id="ttl-1", address=A1, port=9495, tags=["u1", "xivo-ttl"],
                                 check=consul.Check.ttl("1s"))
    service = admin.agent.services()["ttl-1"]
    assert {k: service[k] for k in ("ID", "Service", "Tags", "Address", "Port", "EnableTagOverride")} == {
        "ID": "ttl-1", "Service": "xivo-ttl", "Tags": ["u1", "xivo-ttl"], "Address": A1, "Port": 9495,
        "EnableTagOverride": False}
    assert service["CreateIndex"] > int(index)
    assert admin.agent.checks()["service:ttl-1"]["Status"] == "critical"  # until the first pass
    assert (data / "services/ttl-1.json").exists() and (data / "checks/service%3Attl-1.json").exists()
    assert admin.agent.check.ttl_pass("service:ttl-1", "all good") is True
    check = admin.agent.checks()["service:ttl-1"]
    assert (check["Status"], check["Output"], check["ServiceID"]) == ("passing", "all good", "ttl-1")
    _, healthy = admin.health.service("xivo-ttl", passing=True)
    assert [[c["CheckID"] for c in e["Checks"]] for e in healthy] == [["serfHealth", "service:ttl-1"]]
    assert healthy[0]["Node"]["Node"] == DC1 and healthy[0]["Service"]["Port"] == 9495
    time.sleep(1.3)
    assert admin.agent.checks()["service:ttl-1"]["Status"] == "critical"
    assert admin.health.service("xivo-ttl", passing=True)[1] == []
    assert len(admin.health.service("xivo-ttl")[1]) == 1
    admin.agent.check.ttl_warn("service:ttl-1")
    assert admin.agent.checks()["service:ttl-1"]["Status"] == "warning"
    with pytest.raises(consul.base.ConsulException, match=r'^500 CheckID "nope" does not have associated TTL$'):
        admin.agent.check.ttl_pass("nope")
    assert admin.agent.service.deregister("ttl-1") is True
    assert "ttl-1" not in admin.agent.services() and "service:ttl-1" not in admin.agent.checks()
    assert not (data / "services/ttl-1.json").exists() and not (data / "checks/service%3Attl-1.json").exists()
    assert admin.catalog.service("xivo-ttl")[1] == []


def test_anonymous_sees_xivo_services_only(lab: Lab) -> None:
    admin, anonymous = lab.admin(A1), lab.client(A1)
    admin.agent.service.register("xivo-ctid", service_id="ctid-1", address=A1, port=9495, tags=["uuid-1", "xivo-ctid"],
                                 check=consul.Check.ttl("30s"))
    admin.agent.check.ttl_pass("service:ctid-1")
    admin.agent.service.register("private", service_id="private-1", port=1)
    assert anonymous.catalog.services()[1] == {"xivo-ctid": ["uuid-1", "xivo-ctid"]}
    assert set(admin.catalog.services()[1]) == {"consul", "private", "xivo-ctid"}
    assert anonymous.catalog.service("private")[1] == [] and anonymous.health.service("private")[1] == []
    assert len(admin.catalog.service("private")[1]) == 1
    entry = anonymous.catalog.service("xivo-ctid")[1][0]
    assert {k: entry[k] for k in ("Node", "Address", "Datacenter", "ServiceID", "ServiceName", "ServiceAddress",
                                  "ServicePort", "ServiceTags")} == {
        "Node": DC1, "Address": A1, "Datacenter": DC1, "ServiceID": "ctid-1", "ServiceName": "xivo-ctid",
        "ServiceAddress": A1, "ServicePort": 9495, "ServiceTags": ["uuid-1", "xivo-ctid"]}
    assert entry["CreateIndex"] <= entry["ModifyIndex"]
    assert anonymous.catalog.service("unknown") == (anonymous.catalog.service("unknown")[0], [])


def test_dc_forwarding(lab: Lab) -> None:
    # ServiceFinder's way (XIVO-FACTS §3): datacenters, then health/service?dc=&passing, no token
    finder = lab.client(A2)
    assert DC1 in finder.catalog.datacenters()
    index, found = finder.health.service("xivo-ctid", dc=DC1, passing=True)
    assert int(index) >= 1 and [e["Service"]["ID"] for e in found] == ["ctid-1"]
    assert found[0]["Node"]["Datacenter"] == DC1 and found[0]["Service"]["Address"] == A1
    assert [e["Datacenter"] for e in finder.catalog.service("xivo-ctid", dc=DC1)[1]] == [DC1]
    # the token is forwarded and DC1 resolves it against its own ACLs: DC2's master token is unknown there
    with pytest.raises(consul.base.ACLPermissionDenied, match=r"^ACL not found$"):
        lab.admin(A2).catalog.services(dc=DC1)
    assert set(lab.client(A2, TOKENS[A1]).catalog.services(dc=DC1)[1]) == {"consul", "private", "xivo-ctid"}
    assert set(lab.client(A2).catalog.services(dc=DC1)[1]) == {"xivo-ctid"}  # DC1's anonymous rules
    assert finder.status.leader() == f"{A2}:8300"
    assert requests.get(f"https://{A2}:8500/v1/status/leader", params={"dc": DC1}, verify=False,
                        timeout=5).json() == f"{A1}:8300"
    assert finder.catalog.service("xivo-ctid", dc=DC2)[1] == []  # own datacenter: answered locally
    with pytest.raises(consul.base.ConsulException, match=r"^500 No path to datacenter$"):
        finder.catalog.service("xivo-ctid", dc="nowhere")
    assert 'RPC request for DC "nowhere", no path found' in lab.nodes[A2].log()


def test_bad_json_config_refuses_to_start(lab: Lab) -> None:
    root = make_root(lab.base, A3, "xivo-lab-t3", "c3" * 16)
    # the manual's sample, copied with its `//` comment (XIVO-FACTS §4)
    (root / "etc/consul/xivo/interconnection.json").write_text(
        '{"client_addr": "0.0.0.0",\n "advertise_addr": "' + A3 + '"  // this XiVO\n}\n')
    node = StandIn(root, A3)
    node.start(wait=False)
    assert node.proc.wait(10) == 1
    assert "[ERR] Error decoding '/etc/consul/xivo/interconnection.json'" in node.log()
    assert serf_pids(A3) == []


def test_serf_port_taken_exits_nonzero(lab: Lab) -> None:
    root = make_root(lab.base, A3, "xivo-lab-t3b", "d4" * 16)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, socket.socket() as tcp:
        udp.bind((A3, 8302))
        tcp.bind((A3, 8302))
        tcp.listen()
        node = StandIn(root, A3)
        node.start(wait=False)
        try:
            assert node.proc.wait(10) == 1
        finally:
            node.stop()
    assert "[ERR] Error starting agent: WAN serf" in node.log()
    assert serf_pids(A3) == []


def test_stopped_node_fails_then_rejoins_from_snapshot(lab: Lab) -> None:
    """Stop = no `serf leave` (a stopped consul server just disappears): the peer sees it `failed`."""
    two = lab.nodes[A2]
    lab.admin(A2).agent.service.register("xivo-ctid", service_id="ctid-2", address=A2, port=9495,
                                         tags=["uuid-2", "xivo-ctid"])
    assert two.stop() == 0 and serf_pids(A2) == []
    stopped = time.monotonic()
    with pytest.raises(consul.base.ConsulException, match=r"^500 No path to datacenter$"):
        lab.client(A1).catalog.service("xivo-ctid", dc=DC2)  # serf still says alive; 8300 refuses
    TIMINGS["failure detection"] = time.monotonic() - stopped + _until(
        lambda: _wan_status(lab, f"{DC2}.{DC2}") == 4, 60, step=0.5)
    assert lab.client(A1).catalog.datacenters() == [DC1]
    failed = {m["Name"]: m for m in lab.admin(A1).agent.members(wan=True)}[f"{DC2}.{DC2}"]
    assert (failed["Addr"], failed["Port"], failed["Status"]) == (A2, 8302, 4)  # what `consul members -wan` shows
    snapshot = two.root / "var/lib/consul/serf/remote.snapshot"
    assert snapshot.exists() and A1 in snapshot.read_text()
    TIMINGS["restart"] = two.start()
    TIMINGS["rejoin"] = _until(lambda: _wan_status(lab, f"{DC2}.{DC2}") == 1, 10, step=0.1)
    assert lab.client(A1).catalog.datacenters() == [DC1, DC2]
    services = lab.client(A1).catalog.service("xivo-ctid", dc=DC2)[1]  # persisted under data_dir
    assert [s["ServiceID"] for s in services] == ["ctid-2"]
    assert json.loads((two.root / "var/lib/consul/services/ctid-2.json").read_text())["Service"]["Port"] == 9495
