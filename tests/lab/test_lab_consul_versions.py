"""lab: the Consul stand-in behaves as the Consul of its node's XiVO version (research R1 §4, R3 §2).

Three real stand-ins, WAN-joined: 127.10.210.21 runs XiVO 15.19 (Consul 0.5.2), .22 XiVO 16.13 (Consul
0.7.0) and .23 XiVO 16.15 (Consul 0.7.0~xivo4, with consul-customize-anonymous-token). Single nodes on
.24–.27 for restarts and raft wipes. Requests are made with `requests`, choosing how the token travels
(`?token=` or `X-Consul-Token`), since Consul 0.5.2 reads only the first.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from lab_consul_fixture import CUSTOMIZE_SCRIPT, StandIn, make_root, serf_pids
from services import starts_services

from xivo_doctor.lab.consul import acl, versions

pytestmark = [
    pytest.mark.skipif(not (shutil.which("serf") and shutil.which("openssl")), reason="serf and openssl needed"),
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]

V1519, V1613, V1615 = "127.10.210.21", "127.10.210.22", "127.10.210.23"
SOLO = ("127.10.210.24", "127.10.210.25", "127.10.210.26", "127.10.210.27")
VERSIONS = {V1519: "15.19", V1613: "16.13", V1615: "16.15"}
DCS = {V1519: "xivo-lab-v1519", V1613: "xivo-lab-v1613", V1615: "xivo-lab-v1615"}
TOKENS = {V1519: "15" * 16, V1613: "13" * 16, V1615: "ff" * 16}
ALL = {"consul", "private", "xivo-ctid"}
JSON_RULE = json.dumps({"service": {"xivo-": {"Policy": "read"}}})  # what XiVO 16.15's script sets


def call(address: str, method: str, path: str, *, token: str | None = None, how: str = "query",
         body: Any = None, **params: str) -> requests.Response:
    """One request to a stand-in; the token as `?token=` (how="query") or `X-Consul-Token` (how="header")."""
    headers = {}
    if token is not None:
        if how == "query":
            params["token"] = token
        else:
            headers["X-Consul-Token"] = token
    return requests.request(method, f"https://{address}:8500{path}", params=params, headers=headers,
                            data=None if body is None else json.dumps(body), verify=False, timeout=5)


def until(predicate, timeout: float, step: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        time.sleep(step)


def stop_all(nodes: list[StandIn], addresses: list[str]) -> None:
    for node in nodes:
        if node.proc and node.proc.poll() is None:
            node.proc.send_signal(signal.SIGTERM)
    for node in nodes:
        node.stop()
    left = [pid for a in addresses for pid in serf_pids(a)]
    for pid in left:  # children of our stand-ins: never leave them running
        os.kill(pid, signal.SIGKILL)
    assert not left, f"serf agents left running: {left}"


@dataclass
class Trio:
    base: Path
    nodes: dict[str, StandIn]

    def services(self, address: str, token: str | None = None, how: str = "query", **params: str) -> requests.Response:
        return call(address, "GET", "/v1/catalog/services", token=token, how=how, **params)


@pytest.fixture(scope="module")
@starts_services
def trio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trio]:
    base = tmp_path_factory.mktemp("consul-versions")
    nodes = {a: StandIn(make_root(base, a, DCS[a], TOKENS[a], version=VERSIONS[a]), a) for a in VERSIONS}
    try:
        for node in nodes.values():
            node.start()
        for address in (V1613, V1615):
            assert call(address, "PUT", f"/v1/agent/join/{V1519}", wan="1").status_code == 200
        for address in VERSIONS:
            until(lambda a=address: len(call(a, "GET", "/v1/catalog/datacenters").json()) == 3, 10)
        for address, token in TOKENS.items():  # ?token=: the transport every version reads
            ctid = {"ID": f"ctid-{VERSIONS[address]}", "Name": "xivo-ctid", "Address": address, "Port": 9495,
                    "Tags": [f"uuid-{VERSIONS[address]}", "xivo-ctid"], "Check": {"TTL": "300s"}}
            assert call(address, "PUT", "/v1/agent/service/register", token=token, body=ctid).status_code == 200
            assert call(address, "PUT", f"/v1/agent/check/pass/service:ctid-{VERSIONS[address]}").status_code == 200
            private = {"ID": f"private-{VERSIONS[address]}", "Name": "private", "Port": 1}
            assert call(address, "PUT", "/v1/agent/service/register", token=token, body=private).status_code == 200
        yield Trio(base, nodes)
    finally:
        stop_all(list(nodes.values()), list(VERSIONS))


@pytest.fixture
@starts_services
def solo(tmp_path: Path) -> Iterator[list[StandIn]]:
    """Single stand-ins a test creates with `make_root(...)`, all stopped at the end."""
    started: list[StandIn] = []
    try:
        yield started
    finally:
        stop_all(started, list(SOLO))


# -- the table ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("xivo", "consul", "package"), [
    ("15.19", "0.5.2", "0.5.2-1~xivo24"), ("15.20", "0.6.0", "0.6.0~xivo8"), ("16.01", "0.6.3", "0.6.3~xivo1"),
    ("16.03", "0.6.3", "0.6.3~xivo1"), ("16.04", "0.6.4", "0.6.4~xivo2"), ("16.08.2", "0.6.4", "0.6.4~xivo2"),
    ("16.12", "0.6.4", "0.6.4~xivo2"), ("16.13", "0.7.0", "0.7.0~xivo2"), ("16.14", "0.7.0", "0.7.0~xivo2"),
    ("16.15", "0.7.0", "0.7.0~xivo4"),
])
def test_consul_of_each_xivo(xivo: str, consul: str, package: str) -> None:
    found = versions.for_xivo(xivo)
    assert (found.version, found.package) == (consul, package)
    assert found.customize_anonymous_token is (xivo == "16.15")
    assert found.filters_discovery is found.reads_token_header is (xivo != "15.19")


@pytest.mark.parametrize("text", ["15.10", "16.16", "17.01", "<html>", ""])
def test_versions_the_lab_does_not_run_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a XiVO version the lab runs"):
        versions.for_xivo(text)


def test_rules_json_and_hcl_longest_prefix_wins() -> None:
    assert acl.parse_rules(JSON_RULE) == acl.parse_rules('service "xivo-" { policy = "read" }')
    rules = acl.parse_rules('# comment\nservice "" { policy = "read" }\nservice "xivo-" { policy = "deny" }\n'
                            'service "xivo-ctid" {\n  policy = "write"\n}\nkey "" { policy = "deny" }')
    policy = acl.Policy(rules=rules)
    assert [policy.service_read(n) for n in ("consul", "xivo-confd", "xivo-ctid")] == [True, False, True]
    assert [policy.service_write(n) for n in ("consul", "xivo-ctid")] == [False, True]
    assert acl.Policy(rules=acl.parse_rules("")).service_read("xivo-ctid") is False  # parent: deny
    assert acl.Policy(parent_allows=True).service_read("x") is True
    with pytest.raises(acl.RulesError, match=r'^Invalid service policy: &acl.ServicePolicy\{Name:"xivo-", '
                                             r'Policy:"reed"\}$'):
        acl.parse_rules('service "xivo-" { policy = "reed" }')
    with pytest.raises(acl.RulesError, match=r"^Failed to parse ACL rules"):
        acl.parse_rules("service:xivo-:read")  # XiVO's first, broken script revision (0.7.0~xivo3, R1 §4b)


# -- agent endpoints: never ACL-checked on these versions -------------------------------------------
@pytest.mark.parametrize("address", list(VERSIONS))
def test_agent_endpoints_answer_without_a_token(trio: Trio, address: str) -> None:
    for path, params in (("/v1/agent/self", {}), ("/v1/agent/services", {}), ("/v1/agent/checks", {}),
                         ("/v1/agent/members", {"wan": "1"}), ("/v1/agent/members", {})):
        answer = call(address, "GET", path, **params)
        assert answer.status_code == 200, (path, answer.text)
    body = {"ID": "anon-1", "Name": "xivo-anon", "Port": 2, "Check": {"TTL": "60s"}}
    assert call(address, "PUT", "/v1/agent/service/register", body=body).status_code == 200
    assert "anon-1" in call(address, "GET", "/v1/agent/services").json()
    # python-consul 0.4.7's ttl_pass is a GET: Consul <= 0.7 does not check the method
    assert call(address, "GET", "/v1/agent/check/pass/service:anon-1").status_code == 200
    assert call(address, "GET", "/v1/agent/checks").json()["service:anon-1"]["Status"] == "passing"
    assert call(address, "PUT", "/v1/agent/service/deregister/anon-1").status_code == 200
    assert "anon-1" not in call(address, "GET", "/v1/agent/services").json()
    other = V1519 if address != V1519 else V1613
    assert call(address, "PUT", f"/v1/agent/join/{other}", wan="1").status_code == 200


def test_registration_without_write_right_stays_out_of_the_catalog(trio: Trio) -> None:
    """The agent keeps it (agent/services); its catalog sync is refused (ServiceWrite of the token)."""
    body = {"ID": "anon-2", "Name": "xivo-anon", "Port": 2}
    assert call(V1613, "PUT", "/v1/agent/service/register", body=body).status_code == 200
    try:
        assert "anon-2" in call(V1613, "GET", "/v1/agent/services").json()
        assert call(V1613, "GET", "/v1/catalog/service/xivo-anon", token=TOKENS[V1613]).json() == []
        assert "agent: Service 'anon-2' registration blocked by ACLs" in trio.nodes[V1613].log()
    finally:
        call(V1613, "PUT", "/v1/agent/service/deregister/anon-2")


# -- version, build, headers --------------------------------------------------------------------
def test_version_in_agent_self_members_and_no_server_header(trio: Trio) -> None:
    expected = {V1519: ("0.5.2", "9a9cc9341bb487651a0399e3fc5e1e8a42e62dd9", "0.5.2:9a9cc934", "2"),
                V1613: ("0.7.0", "a189091a3530051285c12c726ca28ea55e015336", "0.7.0:a189091a", "3"),
                V1615: ("0.7.0", "a189091a3530051285c12c726ca28ea55e015336", "0.7.0:a189091a", "3")}
    for address, (version, revision, build, vsn_max) in expected.items():
        answer = call(address, "GET", "/v1/agent/self")
        assert "Server" not in answer.headers
        config, member = answer.json()["Config"], answer.json()["Member"]
        assert (config["Version"], config["Revision"], member["Tags"]["build"]) == (version, revision, build)
        wan = {m["Name"]: m["Tags"] for m in call(V1613, "GET", "/v1/agent/members", wan="1").json()}
        tags = wan[f"{DCS[address]}.{DCS[address]}"]
        assert (tags["build"], tags["vsn"], tags["vsn_min"], tags["vsn_max"]) == (build, "2", "1", vsn_max)
    assert "Version: 'v0.5.2' (package 0.5.2-1~xivo24)" in trio.nodes[V1519].log()


# -- discovery filtering ------------------------------------------------------------------------
def test_15_19_does_not_filter_discovery(trio: Trio) -> None:
    assert set(trio.services(V1519).json()) == ALL
    assert set(trio.services(V1519, "not-a-token").json()) == ALL  # no token is even resolved
    assert [s["ServiceID"] for s in call(V1519, "GET", "/v1/catalog/service/private").json()] == ["private-15.19"]
    healthy = call(V1519, "GET", "/v1/health/service/xivo-ctid", passing="1").json()
    assert [e["Service"]["ID"] for e in healthy] == ["ctid-15.19"]


@pytest.mark.parametrize("how", ["query", "header"])
def test_16_13_filters_discovery_by_token(trio: Trio, how: str) -> None:
    answer = trio.services(V1613)
    assert (answer.status_code, answer.json()) == (200, {})  # anonymous, no rules: nothing, not an error
    assert call(V1613, "GET", "/v1/catalog/service/xivo-ctid").json() == []
    assert call(V1613, "GET", "/v1/health/service/xivo-ctid", passing="1").json() == []
    assert set(trio.services(V1613, TOKENS[V1613], how).json()) == ALL
    assert len(call(V1613, "GET", "/v1/catalog/service/private", token=TOKENS[V1613], how=how).json()) == 1
    unknown = trio.services(V1613, TOKENS[V1615], how)
    assert (unknown.status_code, unknown.text) == (403, "ACL not found")
    assert sorted(call(V1613, "GET", "/v1/catalog/datacenters").json()) == sorted(DCS.values())  # never filtered
    assert call(V1613, "GET", "/v1/status/leader").json() == f"{V1613}:8300"


def test_16_15_anonymous_reads_the_xivo_services(trio: Trio) -> None:
    assert trio.services(V1615).json() == {"xivo-ctid": ["uuid-16.15", "xivo-ctid"]}
    assert call(V1615, "GET", "/v1/catalog/service/private").json() == []
    healthy = call(V1615, "GET", "/v1/health/service/xivo-ctid", passing="True").json()
    assert [e["Service"]["ID"] for e in healthy] == ["ctid-16.15"]
    assert set(trio.services(V1615, TOKENS[V1615], "header").json()) == ALL
    assert trio.services(V1615, "nope").status_code == 403
    info = call(V1615, "GET", "/v1/acl/info/anonymous").json()
    assert [(a["ID"], a["Type"], a["Rules"]) for a in info] == [("anonymous", "client", JSON_RULE)]
    assert info[0]["Name"] == ""  # acl/update replaces the whole token: the script sends no Name
    assert "consul-customize-anonymous-token: token 'anonymous' updated" in trio.nodes[V1615].log()


# -- token transport ----------------------------------------------------------------------------
def test_15_19_reads_only_the_token_query_parameter(trio: Trio) -> None:
    update = {"ID": "lab-client", "Name": "lab", "Rules": ""}
    header = call(V1519, "PUT", "/v1/acl/update", token=TOKENS[V1519], how="header", body=update)
    assert (header.status_code, header.text) == (403, "Permission denied")  # the header is ignored: anonymous
    query = call(V1519, "PUT", "/v1/acl/update", token=TOKENS[V1519], body=update)
    assert (query.status_code, query.json()) == (200, {"ID": "lab-client"})
    body = {"ID": "hdr-1", "Name": "xivo-hdr", "Port": 3}
    assert call(V1519, "PUT", "/v1/agent/service/register", token=TOKENS[V1519], how="header",
                body=body).status_code == 200
    try:
        assert "xivo-hdr" not in trio.services(V1519).json()  # registered anonymously: blocked by ACLs
        assert call(V1519, "PUT", "/v1/agent/service/register", token=TOKENS[V1519], body=body).status_code == 200
        assert "xivo-hdr" in trio.services(V1519).json()
    finally:
        call(V1519, "PUT", "/v1/agent/service/deregister/hdr-1")
    # the same header on 16.13 is read
    assert set(trio.services(V1613, TOKENS[V1613], "header").json()) == ALL


# -- ?dc=: the token travels, the remote datacenter decides ----------------------------------------
def test_cross_datacenter_requests_carry_the_token(trio: Trio) -> None:
    dc1519, dc1613, dc1615 = DCS[V1519], DCS[V1613], DCS[V1615]
    # 16.13 asks 16.15: the remote anonymous rules; the local master token is unknown there
    assert set(trio.services(V1613, dc=dc1615).json()) == {"xivo-ctid"}
    refused = trio.services(V1613, TOKENS[V1613], "header", dc=dc1615)
    assert (refused.status_code, refused.text) == (403, "ACL not found")
    assert f"/v1/catalog/services?dc={dc1615}, error: ACL not found" in trio.nodes[V1613].log()
    assert set(trio.services(V1613, TOKENS[V1615], "header", dc=dc1615).json()) == ALL
    # 16.15 asks 16.13 as its xivo-ctid does (R1 §5): nothing
    assert call(V1615, "GET", "/v1/health/service/xivo-ctid", dc=dc1613, passing="True").json() == []
    # 0.5.2 resolves no token on reads: anything goes
    assert set(trio.services(V1613, TOKENS[V1613], "header", dc=dc1519).json()) == ALL
    assert set(trio.services(V1615, dc=dc1519).json()) == ALL
    # 15.19 asks 16.13: ?token= travels; its header does not exist, so that request is anonymous
    assert trio.services(V1519, TOKENS[V1519], dc=dc1613).text == "ACL not found"
    assert trio.services(V1519, TOKENS[V1613], "header", dc=dc1613).json() == {}
    assert set(trio.services(V1519, TOKENS[V1613], dc=dc1613).json()) == ALL
    ctid = call(V1519, "GET", "/v1/catalog/service/xivo-ctid", dc=dc1615).json()
    assert [(e["ServiceID"], e["Datacenter"]) for e in ctid] == [("ctid-16.15", dc1615)]


# -- the ACL endpoints --------------------------------------------------------------------------
def test_16_13_acl_update_and_info(trio: Trio) -> None:
    master = TOKENS[V1613]
    info = call(V1613, "GET", "/v1/acl/info/anonymous").json()  # acl/info needs no token on 0.6/0.7
    assert [{k: a[k] for k in ("ID", "Name", "Type", "Rules")} for a in info] == [
        {"ID": "anonymous", "Name": "Anonymous Token", "Type": "client", "Rules": ""}]
    assert info[0]["CreateIndex"] <= info[0]["ModifyIndex"]
    assert call(V1613, "GET", "/v1/acl/info/nope").json() == []
    anonymous_rule = {"ID": "anonymous", "Rules": JSON_RULE}
    for token, expected in ((None, "Permission denied"), ("nope", "ACL not found")):
        answer = call(V1613, "PUT", "/v1/acl/update", token=token, how="header", body=anonymous_rule)
        assert (answer.status_code, answer.text) == (403, expected)
    missing = call(V1613, "PUT", "/v1/acl/update", token=master, body={"Rules": ""})
    assert (missing.status_code, missing.text) == (400, "ACL ID must be set")
    bad = call(V1613, "PUT", "/v1/acl/update", token=master, body={"ID": "anonymous", "Rules": "service:xivo-:read"})
    assert bad.status_code == 500 and bad.text.startswith("ACL rule compilation failed: Failed to parse ACL rules")
    assert call(V1613, "GET", "/v1/acl/update", token=master).status_code == 405
    try:
        answer = call(V1613, "PUT", "/v1/acl/update", token=master, how="header", body=anonymous_rule)
        assert (answer.status_code, answer.json()) == (200, {"ID": "anonymous"})
        assert trio.services(V1613).json() == {"xivo-ctid": ["uuid-16.13", "xivo-ctid"]}
        assert set(trio.services(V1615, dc=DCS[V1613]).json()) == {"xivo-ctid"}  # what a peer now sees
        hcl = 'service "" { policy = "read" }\nservice "priv" { policy = "deny" }'
        assert call(V1613, "PUT", "/v1/acl/update", token=master, body={"ID": "anonymous", "Rules": hcl}).ok
        assert set(trio.services(V1613).json()) == {"consul", "xivo-ctid"}
        stored = json.loads((trio.nodes[V1613].root / "var/lib/consul/raft/acl.json").read_text())
        assert {a["ID"]: a["Rules"] for a in stored["ACLs"]}["anonymous"] == hcl
        listed = call(V1613, "GET", "/v1/acl/list", token=master).json()
        assert {a["ID"]: a["Type"] for a in listed} == {"anonymous": "client", master: "management"}
        assert call(V1613, "GET", "/v1/acl/list").status_code == 403
    finally:
        call(V1613, "PUT", "/v1/acl/update", token=master, body={"ID": "anonymous", "Name": "Anonymous Token"})
    assert trio.services(V1613).json() == {}


def test_acl_rules_survive_a_restart_and_go_with_raft(solo: list[StandIn], tmp_path: Path) -> None:
    address, token = SOLO[0], "24" * 16
    node = StandIn(make_root(tmp_path, address, "xivo-lab-s1613", token, version="16.13"), address)
    solo.append(node)
    node.start()
    body = {"ID": "anonymous", "Name": "Anonymous Token", "Rules": 'service "xivo-" { policy = "read" }'}
    assert call(address, "PUT", "/v1/acl/update", token=token, body=body).ok
    assert node.stop() == 0
    node.start()
    assert call(address, "GET", "/v1/acl/info/anonymous").json()[0]["Rules"] == body["Rules"]
    assert node.stop() == 0
    shutil.rmtree(node.root / "var/lib/consul/raft")  # the manual's wipe
    node.start()
    info = call(address, "GET", "/v1/acl/info/anonymous").json()
    assert [(a["Name"], a["Rules"]) for a in info] == [("Anonymous Token", "")]
    assert call(address, "GET", "/v1/acl/info/" + token).json()[0]["Type"] == "management"  # from the config


def test_16_15_customizes_the_anonymous_token_at_every_start(solo: list[StandIn], tmp_path: Path) -> None:
    address, token = SOLO[1], "25" * 16
    node = StandIn(make_root(tmp_path, address, "xivo-lab-s1615", token, version="16.15"), address)
    solo.append(node)
    node.start()
    assert call(address, "GET", "/v1/acl/info/anonymous").json()[0]["Rules"] == JSON_RULE
    assert call(address, "PUT", "/v1/acl/update", token=token, body={"ID": "anonymous", "Rules": ""}).ok
    assert call(address, "GET", "/v1/acl/info/anonymous").json()[0]["Rules"] == ""
    assert node.stop() == 0
    node.start()  # ExecStartPost again
    assert call(address, "GET", "/v1/acl/info/anonymous").json()[0]["Rules"] == JSON_RULE
    assert node.stop() == 0
    shutil.rmtree(node.root / "var/lib/consul/raft")
    node.start()
    assert call(address, "GET", "/v1/acl/info/anonymous").json()[0]["Rules"] == JSON_RULE
    assert node.stop() == 0
    (node.root / "var/lib/consul/master_token").write_text("not-the-master\n")  # the script's token is refused
    node.start()
    assert "consul-customize-anonymous-token: failed (ignored): ACL not found" in node.log()


@pytest.mark.parametrize(("version", "script"), [("16.15", False), ("16.13", True), ("15.19", True)])
def test_customization_needs_16_15_and_its_script(solo: list[StandIn], tmp_path: Path, version: str,
                                                  script: bool) -> None:
    address, token = SOLO[2], "26" * 16
    root = make_root(tmp_path, address, "xivo-lab-s", token, version=version, customize_script=script)
    assert (root / CUSTOMIZE_SCRIPT).exists() is script
    node = StandIn(root, address)
    solo.append(node)
    node.start()
    assert call(address, "GET", "/v1/acl/info/anonymous").json()[0]["Rules"] == ""


def test_missing_version_file_is_the_labs_default_xivo(solo: list[StandIn], tmp_path: Path) -> None:
    address = SOLO[3]
    node = StandIn(make_root(tmp_path, address, "xivo-lab-s0", "27" * 16, version=None), address)
    solo.append(node)
    node.start()
    assert call(address, "GET", "/v1/agent/self").json()["Config"]["Version"] == "0.7.0"
    assert "lab: XiVO version unknown" in node.log()
    assert call(address, "GET", "/v1/catalog/services").json() == {}  # 16.13: filtered, no customization


# -- HTTP checks (xivo-ctid 15.19/15.20) -----------------------------------------------------------
@dataclass
class Target:
    """An HTTP server standing for xivo-ctid's /0.1/infos, whose answer the test chooses."""

    mode: str = "ok"   # ok | error | busy | slow
    requests: list[dict[str, str]] = field(default_factory=list)
    servers: list[ThreadingHTTPServer] = field(default_factory=list)

    def serve(self, address: str, port: int) -> None:
        target = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                target.requests.append({k.lower(): v for k, v in self.headers.items()})
                if target.mode == "slow":
                    time.sleep(2.5)
                status, body = {"error": (500, b"boom"), "busy": (429, b"later")}.get(target.mode,
                                                                                    (200, b'{"uuid": "u"}'))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        server = ThreadingHTTPServer((address, port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.servers.append(server)

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()
        self.servers.clear()


@pytest.fixture
@starts_services
def target() -> Iterator[Target]:
    serving = Target()
    try:
        yield serving
    finally:
        serving.close()


def _check(address: str, check_id: str) -> dict[str, Any]:
    return call(address, "GET", "/v1/agent/checks").json()[check_id]


def test_http_check_as_xivo_ctid_15_19_registers_it(trio: Trio, target: Target) -> None:
    url = "http://localhost:19495/0.1/infos"  # localhost: the node itself (its address here)
    target.serve(V1519, 19495)
    service = {"ID": "ctid-http", "Name": "xivo-ctid-http", "Address": V1519, "Port": 19495,
               "Check": {"HTTP": url, "Interval": "1s", "Timeout": "1s"}}
    assert call(V1519, "PUT", "/v1/agent/service/register", token=TOKENS[V1519], body=service).status_code == 200
    try:
        check = _check(V1519, "service:ctid-http")
        # critical until its first run, which comes after a random stagger within the 1 s interval
        # (consul.checks, `lib.RandomStagger`): on a busy machine it may already have run (CI, once)
        assert check["ServiceID"] == "ctid-http"
        assert (check["Status"], check["Output"]) == ("critical", "") or check["Status"] == "passing", check
        until(lambda: _check(V1519, "service:ctid-http")["Status"] == "passing", 5)
        assert _check(V1519, "service:ctid-http")["Output"] == f'HTTP GET {url}: 200 OK Output: {{"uuid": "u"}}'
        assert target.requests[0]["user-agent"] == "Consul Health Check"
        assert "accept" not in target.requests[0]  # Consul 0.5.2: no Accept header (0.6.4+)
        healthy = call(V1519, "GET", "/v1/health/service/xivo-ctid-http", passing="1").json()
        assert [e["Service"]["ID"] for e in healthy] == ["ctid-http"]
        target.mode = "error"
        until(lambda: _check(V1519, "service:ctid-http")["Status"] == "critical", 5)
        assert _check(V1519, "service:ctid-http")["Output"] == (
            f"HTTP GET {url}: 500 Internal Server Error Output: boom")
        target.mode = "slow"
        until(lambda: "Client.Timeout exceeded" in _check(V1519, "service:ctid-http")["Output"], 6)
        target.mode = "ok"
        target.close()
        until(lambda: "connection refused" in _check(V1519, "service:ctid-http")["Output"], 5)
        assert _check(V1519, "service:ctid-http")["Output"] == (
            f"Get {url}: dial tcp 127.0.0.1:19495: connection refused")  # Go 1.4's words (Consul 0.5.2)
        assert f"agent: http request failed '{url}'" in trio.nodes[V1519].log()
        # a daemon listening on 127.0.0.1 only is reached through localhost too, as on a XiVO
        target.serve("127.0.0.1", 19495)
        until(lambda: _check(V1519, "service:ctid-http")["Status"] == "passing", 5)
    finally:
        call(V1519, "PUT", "/v1/agent/service/deregister/ctid-http")


def test_http_check_accept_header_and_interval_required(trio: Trio, target: Target) -> None:
    target.serve(V1613, 19496)
    no_interval = {"ID": "h-1", "Name": "xivo-h", "Port": 1, "Check": {"HTTP": "http://localhost:19496/"}}
    answer = call(V1613, "PUT", "/v1/agent/service/register", token=TOKENS[V1613], body=no_interval)
    assert (answer.status_code, answer.text) == (400, "Must provide TTL or Script/DockerContainerID/HTTP/TCP and "
                                                      "Interval!")
    service = {"ID": "h-2", "Name": "xivo-h", "Port": 1,
               "Check": {"HTTP": f"http://{V1613}:19496/0.1/infos", "Interval": "1s"}}
    assert call(V1613, "PUT", "/v1/agent/service/register", token=TOKENS[V1613], body=service).status_code == 200
    try:
        until(lambda: _check(V1613, "service:h-2")["Status"] == "passing", 5)
        assert target.requests[0]["accept"] == "text/plain, text/*, */*"  # Consul >= 0.6.4
        target.mode = "busy"
        until(lambda: _check(V1613, "service:h-2")["Status"] == "warning", 5)  # 429 Too Many Requests
        target.close()
        until(lambda: _check(V1613, "service:h-2")["Status"] == "critical", 5)
        assert _check(V1613, "service:h-2")["Output"] == (
            f"Get http://{V1613}:19496/0.1/infos: dial tcp {V1613}:19496: getsockopt: connection refused")
        target.mode = "ok"
        target.serve(V1613, 19496)
    finally:
        call(V1613, "PUT", "/v1/agent/service/deregister/h-2")
    count = len(target.requests)
    time.sleep(2.2)
    assert len(target.requests) == count  # the check stopped with its service
