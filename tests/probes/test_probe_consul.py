"""ConsulProbe and CtidProbe against a small HTTP server on 127.10.1.200 started by the test:
Consul's shapes read through python-consul2, every failure translated into a ProbeError naming the
source (closed port, 500 No path to datacenter, 403, a missing X-Consul-Index, not JSON, timeout),
the environment's CONSUL_HTTP_* ignored, no token in any message, answers and failures cached."""

from __future__ import annotations

import json
import os
import socket
import time
import warnings
from pathlib import Path

import pytest
from services import starts_services

from servers import Routes
from xivo_doctor.foundation.deadline import Deadline
from xivo_doctor.foundation.errors import ProbeError, ProbeTimeout
from xivo_doctor.probes import Probes
from xivo_doctor.probes.consul.agent import DcQuery, WanView
from xivo_doctor.topology.model import ConsulAccess, CtidAccess, Secret, Topology, Xivo

ADDRESS = "127.10.1.200"
TOKEN = "5ecret-master-token"
INDEX = {"X-Consul-Index": "7"}
MEMBERS = [{"Name": "xivo-lab-1.xivo-lab-1", "Addr": ADDRESS, "Port": 8302,
            "Tags": {"dc": "xivo-lab-1", "role": "consul", "port": "8300"}, "Status": 1}]
SELF = {"Config": {"Datacenter": "xivo-lab-1", "NodeName": "xivo-lab-1", "AdvertiseAddr": ADDRESS}}
HEALTH = [{"Node": {"Node": "xivo-lab-1"}, "Service": {"ID": "a1", "Service": "xivo-ctid", "Tags": ["u-1", "xivo-ctid"],
                                                      "Address": ADDRESS, "Port": 9495}, "Checks": []}]


@pytest.fixture
@starts_services
def server():
    s = Routes(ADDRESS)
    s.routes.update({
        "/v1/status/leader": (200, {}, json.dumps(f"{ADDRESS}:8300")),
        "/v1/catalog/datacenters": (200, {}, ["xivo-lab-1", "xivo-lab-2"]),
        "/v1/agent/self": (200, {}, SELF),
        "/v1/agent/members": (200, {}, MEMBERS),
        "/v1/agent/services": (200, {}, {"a1": HEALTH[0]["Service"]}),
        "/v1/agent/checks": (200, {}, {"service:a1": {"CheckID": "service:a1", "Status": "passing"}}),
        "/v1/health/service/xivo-ctid": (200, INDEX, HEALTH),
        "/0.1/infos": (200, {}, {"uuid": "u-1", "cti_protocol_version": "2.2"}),
    })
    yield s
    s.close()


def xivo(port: int) -> Xivo:
    return Xivo(name="xivo-1", address=ADDRESS, consul=ConsulAccess(scheme="http", port=port, token=Secret(TOKEN)),
                ctid=CtidAccess(port=port))


def probes(*xivos: Xivo, timeout: float = 2.0) -> Probes:
    return Probes(Topology(name="t", source=Path("t.yml"), xivos=xivos, pairs=(), probe_timeout=timeout),
                  Deadline(30))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind((ADDRESS, 0))
        return s.getsockname()[1]


def test_reads_consuls_shapes_with_the_master_token(server):
    x = xivo(server.port)
    consul = probes(x).consul
    assert consul.leader(x) == f"{ADDRESS}:8300"
    assert consul.datacenters(x) == ["xivo-lab-1", "xivo-lab-2"]
    assert consul.agent_self(x)["Config"]["Datacenter"] == "xivo-lab-1"
    assert consul.wan_members(x) == MEMBERS
    assert consul.agent_services(x)["a1"]["Tags"] == ["u-1", "xivo-ctid"]
    assert consul.agent_checks(x)["service:a1"]["Status"] == "passing"
    assert consul.health_service(x, "xivo-ctid", dc="xivo-lab-2", passing=True) == HEALTH
    by_path = {r["path"]: r for r in server.requests}
    assert by_path["/v1/agent/members"]["query"] == "wan=1"
    assert by_path["/v1/health/service/xivo-ctid"]["query"] == "passing=1&dc=xivo-lab-2"
    assert {r["token"] for p, r in by_path.items() if p.startswith("/v1/agent/")} == {TOKEN}


def test_anonymous_health_query_sends_no_token_as_xivo_ctid_does(server):
    x = xivo(server.port)
    consul = probes(x).consul
    assert consul.health_service(x, "xivo-ctid", dc="xivo-lab-2", passing=True, token=False) == HEALTH
    assert server.requests[-1]["token"] is None
    query = consul.dc_query(x, "xivo-lab-2")  # the same query, cached: no second request
    assert query == DcQuery("xivo-lab-2", True, "1 passing xivo-ctid", tuple(HEALTH))
    assert len(server.requests) == 1


def test_closed_port_is_a_probe_error_naming_the_source():
    port = closed_port()
    x = xivo(port)
    with pytest.raises(ProbeError) as caught:
        probes(x).consul.leader(x)
    assert str(caught.value) == (f"consul API of xivo-1 (http://{ADDRESS}:{port}): "
                                 "GET /v1/status/leader: cannot connect: connection refused")


def test_no_path_to_datacenter_is_a_probe_error_and_an_answer_for_dc_query(server):
    server.routes["/v1/health/service/xivo-ctid"] = (500, {}, "No path to datacenter")
    x = xivo(server.port)
    consul = probes(x).consul
    with pytest.raises(ProbeError) as caught:
        consul.health_service(x, "xivo-ctid", dc="nope")
    assert caught.value.detail == "GET /v1/health/service/xivo-ctid?dc=nope: HTTP 500 No path to datacenter"
    assert consul.dc_query(x, "nope") == DcQuery("nope", False, "HTTP 500 No path to datacenter")


def test_403_says_the_token_was_refused_without_showing_it(server):
    server.routes["/v1/agent/self"] = (403, {}, f"Permission denied for {TOKEN}")
    x = xivo(server.port)
    with pytest.raises(ProbeError) as caught:
        probes(x).consul.agent_self(x)
    assert caught.value.detail == ("GET /v1/agent/self: HTTP 403 Permission denied for ********: "
                                   "the topology's consul token (consul.token_file) was refused")
    assert TOKEN not in str(caught.value)


def test_a_5xx_echoing_the_token_does_not_leak_it(server):
    server.routes["/v1/agent/services"] = (500, {}, f"rpc error: token {TOKEN} unknown")
    x = xivo(server.port)
    with pytest.raises(ProbeError) as caught:
        probes(x).consul.agent_services(x)
    assert TOKEN not in str(caught.value) and "********" in str(caught.value)


def test_missing_x_consul_index_means_not_consuls_api(server):
    server.routes["/v1/health/service/xivo-ctid"] = (200, {}, HEALTH)
    x = xivo(server.port)
    with pytest.raises(ProbeError) as caught:
        probes(x).consul.health_service(x, "xivo-ctid")
    assert caught.value.detail == ("GET /v1/health/service/xivo-ctid: answered without the X-Consul-Index "
                                   "header: is this Consul's API?")


@pytest.mark.parametrize(("body", "expected"), [
    ("<html>hello</html>", "GET /v1/status/leader: answered something that is not JSON: is this Consul's API?"),
    ('["a"]', "GET /v1/status/leader: answered JSON not of Consul's shape (the answer is a list, not a string): "
              "is this Consul's API?"),
])
def test_an_answer_of_the_wrong_shape_is_a_probe_error(server, body, expected):
    server.routes["/v1/status/leader"] = (200, {}, body)
    x = xivo(server.port)
    with pytest.raises(ProbeError) as caught:
        probes(x).consul.leader(x)
    assert caught.value.detail == expected


def test_no_leader_is_the_empty_string(server):
    server.routes["/v1/status/leader"] = (200, {}, '""')
    x = xivo(server.port)
    assert probes(x).consul.leader(x) == ""


def test_the_environment_does_not_redirect_or_retoken_the_client(server, monkeypatch):
    monkeypatch.setenv("CONSUL_HTTP_ADDR", "127.0.0.9:1")
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", "env-token")
    monkeypatch.setenv("CONSUL_HTTP_SSL", "true")
    monkeypatch.setenv("CONSUL_HTTP_SSL_VERIFY", "true")
    x = xivo(server.port)
    assert probes(x).consul.agent_services(x)
    assert server.requests[-1]["token"] == TOKEN
    assert os.environ["CONSUL_HTTP_ADDR"] == "127.0.0.9:1"  # hidden only while the client is built


def test_python_consul2s_deprecation_warnings_do_not_escape(server):
    x = xivo(server.port)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        probes(x).consul.leader(x)
    assert not [w for w in seen if issubclass(w.category, DeprecationWarning)]


def test_answers_and_failures_are_asked_once_per_run(server):
    server.routes["/v1/agent/checks"] = (500, {}, "boom")
    x = xivo(server.port)
    consul = probes(x).consul
    assert consul.leader(x) == consul.leader(x)
    for _ in range(2):
        with pytest.raises(ProbeError):
            consul.agent_checks(x)
    assert server.paths() == ["/v1/status/leader", "/v1/agent/checks"]


def test_a_slow_consul_times_out_within_the_probe_timeout(server):
    def slow():
        time.sleep(1.5)
        return '"x:8300"'

    server.routes["/v1/status/leader"] = (200, {}, slow)
    x = xivo(server.port)
    started = time.monotonic()
    with pytest.raises(ProbeTimeout) as caught:
        probes(x, timeout=0.3).consul.leader(x)
    assert time.monotonic() - started < 1.2
    assert caught.value.detail == "GET /v1/status/leader: timed out after 0.3 s"


def test_wan_view_reports_an_unreadable_pool_as_data():
    x = xivo(closed_port())
    view = probes(x).consul.wan_view(x)
    assert view.members == () and view.problem.startswith("consul API of xivo-1")
    assert "cannot connect" in view.problem


def test_wan_view_of_a_readable_pool(server):
    x = xivo(server.port)
    assert probes(x).consul.wan_view(x) == WanView("xivo-lab-1.xivo-lab-1", "xivo-lab-1", tuple(MEMBERS))


# -- CtidProbe: /0.1/infos -----------------------------------------------------------------------

def test_ctid_infos_reads_the_uuid(server):
    x = xivo(server.port)
    assert probes(x).ctid.infos(x) == {"uuid": "u-1", "cti_protocol_version": "2.2"}
    assert server.paths() == ["/0.1/infos"]


@pytest.mark.parametrize(("status", "body", "expected"), [
    (200, "<html><body>It works</body></html>", "answered HTTP 200 with something that is not JSON"),
    (404, {"reason": ["nope"]}, "answered HTTP 404"),
    (200, {"cti_protocol_version": "2.2"}, "answered JSON without a `uuid` string"),
    (200, ["u-1"], "answered JSON without a `uuid` string"),
])
def test_ctid_infos_that_is_not_ctids_answer_is_a_probe_error(server, status, body, expected):
    server.routes["/0.1/infos"] = (status, {}, body)
    x = xivo(server.port)
    with pytest.raises(ProbeError) as caught:
        probes(x).ctid.infos(x)
    assert caught.value.source == f"xivo-ctid REST API of xivo-1 (http://{ADDRESS}:{server.port}/0.1/infos)"
    assert caught.value.detail.startswith(expected)


def test_ctid_infos_at_another_address_and_port():
    port = closed_port()
    x = xivo(port)
    with pytest.raises(ProbeError) as caught:
        probes(x).ctid.infos(x, "127.10.1.201", port)
    assert caught.value.source == f"xivo-ctid REST API of xivo-1 (http://127.10.1.201:{port}/0.1/infos)"
