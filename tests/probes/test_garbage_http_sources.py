"""Consul's API answering garbage, end to end: the items that read it are `error` naming the source.

Place: tests of acquisition and evaluation together. Real HTTP servers on 127.10.185.x stand in for
two XiVOs' Consul API and xivo-ctid (healthy first: the baseline run passes, so the test can fail);
then one endpoint of xivo-1 answers garbage (wrong JSON shapes, wrong types inside, no
`X-Consul-Index`, HTTP errors with text or HTML bodies, truncated JSON, an HTML page with 200) and
the checks run in-process (`run_checks`) as `xivo-doctor run` does. The shape validation itself is
fuzzed (hypothesis) in tests/test_garbage_consul_fuzz.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from services import starts_services

from servers import Listener, Routes, serve
from xivo_doctor.engine.options import RunOptions
from xivo_doctor.engine.plugin import run_checks
from xivo_doctor.engine.run import Run
from xivo_doctor.foundation.results import Report, Status
from xivo_doctor.topology import load_topology

ADDRESSES = ("127.10.185.1", "127.10.185.2")
HTTP_PORT = 18500  # Consul's API and xivo-ctid's REST API, one stand-in server per XiVO
RPC_PORT, SERF_PORT = 18300, 18302
UUIDS = ("a1b2c3d4-0000-4000-8000-000000000001", "a1b2c3d4-0000-4000-8000-000000000002")
CHECKS = ("port-reachable", "uuid-unique", "consul-wan", "ctid-advertise")


def healthy_routes(i: int) -> dict[str, tuple[int, dict[str, str], bytes]]:
    """Consul's answers (LAB-NOTES §C.2) for a healthy 2-XiVO pool, as seen by XiVO `i`."""
    address, dc = ADDRESSES[i], f"xivo-{i + 1}"
    members = [{"Name": f"xivo-{j + 1}.xivo-{j + 1}", "Addr": a, "Port": SERF_PORT, "Status": 1,
                "Tags": {"dc": f"xivo-{j + 1}", "role": "consul"}} for j, a in enumerate(ADDRESSES)]
    service = {"ID": f"ctid-{i}", "Service": "xivo-ctid", "Tags": [UUIDS[i], "xivo-ctid"], "Address": address,
               "Port": HTTP_PORT}
    # Any ?dc= query answers both XiVOs' passing ctid (the stand-in does not read the query).
    health = [{"Node": {"Node": f"xivo-{j + 1}"}, "Checks": [],
               "Service": {"ID": f"ctid-{j}", "Service": "xivo-ctid", "Tags": [UUIDS[j], "xivo-ctid"], "Address": a,
                           "Port": HTTP_PORT}} for j, a in enumerate(ADDRESSES)]
    routes = {
        "/v1/status/leader": f"{address}:{RPC_PORT}",
        "/v1/catalog/datacenters": ["xivo-1", "xivo-2"],
        "/v1/agent/self": {"Config": {"Datacenter": dc, "NodeName": dc, "AdvertiseAddr": address}},
        "/v1/agent/members": members,
        "/v1/agent/services": {f"ctid-{i}": service},
        "/v1/agent/checks": {f"service:ctid-{i}": {"CheckID": f"service:ctid-{i}", "Status": "passing",
                                                   "Output": ""}},
        "/v1/health/service/xivo-ctid": health,
        "/0.1/infos": {"uuid": UUIDS[i]},
    }
    json_header = {"Content-Type": "application/json", "X-Consul-Index": "7"}
    return {path: (200, json_header, json.dumps(body).encode()) for path, body in routes.items()}


@pytest.fixture(scope="module")
@starts_services
def lab(tmp_path_factory) -> Iterator[tuple[Path, list[Routes]]]:
    folder = tmp_path_factory.mktemp("garbage-http")
    path = folder / "topology.yml"
    path.write_text(
        "name: garbage-http\nprobe_timeout: 2\n"
        f"defaults:\n  consul: {{scheme: http, port: {HTTP_PORT}, rpc_port: {RPC_PORT}, serf_wan_port: {SERF_PORT}}}\n"
        f"  ctid: {{port: {HTTP_PORT}}}\n"
        "xivos:\n" + "".join(f"  - name: xivo-{i}\n    address: {a}\n" for i, a in enumerate(ADDRESSES, 1)))
    with ExitStack() as stack:
        for address in ADDRESSES:
            serve(stack, Listener, address, (RPC_PORT, SERF_PORT))
        servers = [Routes(a, HTTP_PORT, healthy_routes(i)) for i, a in enumerate(ADDRESSES)]
        for server in servers:
            stack.callback(server.close)
        yield path, servers


@pytest.fixture
def run(lab) -> Iterator:
    path, servers = lab

    def go(path_answer: tuple[str, tuple] | None = None) -> dict[str, object]:
        servers[0].routes = healthy_routes(0)
        if path_answer:
            servers[0].routes[path_answer[0]] = path_answer[1]
        report: Report = run_checks(Run(RunOptions(topology=load_topology(path), timeout=30, checks=tuple(CHECKS))))
        return {r.item_id: r for r in report.results}

    yield go
    servers[0].routes = healthy_routes(0)


def test_the_healthy_stand_ins_pass(run) -> None:
    # port-reachable fails on the ports nobody stands in for (AMQP, confd, nginx): facets that block nothing here
    results = {i: r for i, r in run().items() if not i.startswith("port-reachable")}
    assert {i: r.status for i, r in results.items()} == {i: Status.PASS for i in results}, \
        {i: r.message for i, r in results.items() if r.status is not Status.PASS}
    assert {"consul-wan[xivo-1]", "ctid-advertise[xivo-1]", "uuid-unique[xivo-1]"} <= set(results)


def _json(value: object, headers: dict[str, str] | None = None) -> tuple:
    return (200, {"Content-Type": "application/json", "X-Consul-Index": "7", **(headers or {})},
            json.dumps(value).encode())


HTML = b"<!DOCTYPE html><html><head><title>Error</title></head><body><h1>Bad Gateway</h1></body></html>"
_SERVICE = {"ID": "ctid-0", "Service": "xivo-ctid", "Tags": [UUIDS[0], "xivo-ctid"], "Address": ADDRESSES[0],
            "Port": HTTP_PORT}
_MEMBER = {"Name": "xivo-1.xivo-1", "Addr": ADDRESSES[0], "Port": SERF_PORT, "Status": 1, "Tags": {"dc": "xivo-1"}}

# Garbage served by xivo-1 for one endpoint; the same for every endpoint, then shapes per endpoint.
ANY = {
    "http-500-text": (500, {"Content-Type": "text/plain"}, b"rpc error: EOF"),
    "http-500-html": (500, {"Content-Type": "text/html"}, HTML),
    "http-403": (403, {"Content-Type": "text/plain"}, b"Permission denied"),
    "http-404": (404, {"Content-Type": "text/plain"}, b"404 page not found"),
    "html-200": (200, {"Content-Type": "text/html", "X-Consul-Index": "7"}, HTML),
    "truncated": (200, {"Content-Type": "application/json", "X-Consul-Index": "7"}, b'[{"Name": "xivo-1.xi'),
    "empty-200": (200, {"X-Consul-Index": "7"}, b""),
    "null": _json(None),
    "number": _json(42),
    "true": _json(True),
    "string": _json("xivo-1"),
    "list": _json(["x"]),
    "object": _json({"Config": "x"}),
}
SHAPES = {
    "/v1/status/leader": {},
    "/v1/catalog/datacenters": {"numbers-inside": _json([1, 2]), "objects-inside": _json([{"dc": "xivo-2"}])},
    "/v1/agent/self": {"no-config": _json({"Member": {}}), "datacenter-number": _json({"Config": {"Datacenter": 1,
                                                                                                  "NodeName": "x"}}),
                       "no-nodename": _json({"Config": {"Datacenter": "xivo-1"}})},
    "/v1/agent/members": {"object": _json({"xivo-1": _MEMBER}), "strings-inside": _json(["xivo-1.xivo-1"]),
                          "tags-string": _json([{**_MEMBER, "Tags": "dc=xivo-1"}]),
                          "status-string": _json([{**_MEMBER, "Status": "alive"}]),
                          "status-list": _json([{**_MEMBER, "Status": [1]}]),
                          "no-addr": _json([{k: v for k, v in _MEMBER.items() if k != "Addr"}]),
                          "name-list": _json([{**_MEMBER, "Name": ["x"]}]), "empty-object": _json({})},
    "/v1/agent/services": {"list": _json([_SERVICE]), "port-string": _json({"ctid-0": {**_SERVICE, "Port": "18500"}}),
                           "tags-string": _json({"ctid-0": {**_SERVICE, "Tags": f"{UUIDS[0]},xivo-ctid"}}),
                           "tags-number": _json({"ctid-0": {**_SERVICE, "Tags": 7}}),
                           "service-null": _json({"ctid-0": None}), "no-address": _json({"ctid-0": {
                               k: v for k, v in _SERVICE.items() if k != "Address"}})},
    "/v1/agent/checks": {"list": _json([{"Status": "passing"}]), "check-string": _json({"service:ctid-0": "passing"}),
                         "status-number": _json({"service:ctid-0": {"Status": 1}})},
    "/v1/health/service/xivo-ctid": {
        "no-index": (200, {"Content-Type": "application/json"}, json.dumps([{"Service": _SERVICE}]).encode()),
        "object": _json({"Service": _SERVICE}), "service-string": _json([{"Service": "xivo-ctid"}]),
        "port-string": _json([{"Service": {**_SERVICE, "Port": "x"}}]), "empty-object": _json({}),
        "numbers-inside": _json([1])},
}
# The item that reads each endpoint of xivo-1 first; every answer there must make it `error`.
READER = {
    "/v1/status/leader": "consul-wan[xivo-1]", "/v1/catalog/datacenters": "consul-wan[xivo-1]",
    "/v1/agent/self": "consul-wan[xivo-1]", "/v1/agent/members": "consul-wan[xivo-1]",
    "/v1/agent/services": "ctid-advertise[xivo-1]", "/v1/agent/checks": "ctid-advertise[xivo-1]",
    # read anonymously by xivo-2's ctid-advertise (ServiceFinder's query through the peer's Consul)
    "/v1/health/service/xivo-ctid": "ctid-advertise[xivo-2]",
}
# Not garbage, so not cases here (judged by the checks' own tests): a string leader, a list of
# datacenters, null members (a client agent) and null health entries (python-consul2's reading of
# "none"); a 5xx to ServiceFinder's `?dc=` query is an answer about the WAN (consul-wan fails, tested below).
WELL_FORMED = {("/v1/status/leader", "string"), ("/v1/catalog/datacenters", "list"), ("/v1/agent/members", "null"),
               ("/v1/health/service/xivo-ctid", "null"), ("/v1/health/service/xivo-ctid", "http-500-text"),
               ("/v1/health/service/xivo-ctid", "http-500-html")}
CASES = [(path, name, answer) for path in READER for name, answer in {**ANY, **SHAPES[path]}.items()
         if (path, name) not in WELL_FORMED]


@pytest.mark.parametrize(("path", "name", "answer"), CASES, ids=[f"{p.rsplit('/', 1)[-1]}-{n}" for p, n, _ in CASES])
def test_consul_garbage_is_an_error_naming_the_source(run, path: str, name: str, answer: tuple) -> None:
    results = run((path, answer))
    for item, result in results.items():
        assert "internal error" not in result.message, (item, result.message)
        assert "\n" not in result.message.strip(), (item, result.message)
    reader = results[READER[path]]
    assert reader.status is Status.ERROR, (reader.status, reader.message)
    assert reader.message.startswith(f"could not check: consul API of xivo-1 (http://{ADDRESSES[0]}:{HTTP_PORT}): "), \
        reader.message
    # uuid-unique may still pass on its other sources, never on a UUID read from the garbage
    if path == "/v1/agent/services":
        readings = results["uuid-unique[xivo-1]"].evidence["uuids"]
        consul = [v for k, v in readings.items() if "Consul" in k]
        assert consul and all(v.startswith("not read: consul API of xivo-1") for v in consul), readings


def test_health_5xx_through_xivo_1_is_no_path_for_consul_wan(run) -> None:
    """ServiceFinder's `?dc=` query answered 500 is an answer about the interconnection (XIVO-FACTS §8)."""
    results = run(("/v1/health/service/xivo-ctid", ANY["http-500-text"]))
    wan = results["consul-wan[xivo-1]"]
    assert wan.status is Status.FAIL and "answered HTTP 500 rpc error: EOF" in wan.message, wan.message
    assert results["ctid-advertise[xivo-2]"].status in (Status.ERROR, Status.SKIP)
