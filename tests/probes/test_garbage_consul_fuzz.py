"""Consul's answers fuzzed (hypothesis): each validates, and the checks' reads then work, or is refused.

Place: tests of acquisition. Generated JSON values (recursive: any JSON, and Consul's own shapes
with any part replaced by any JSON) go to the shape validation of every endpoint the probe reads
(xivo_doctor/probes/consul/shapes.py): each either raises `ShapeError` or is accepted, and an
accepted value survives what the checks do with it (checks/consul_wan.py, checks/ctid_advertise.py
read without try/except). Then the same values, served over HTTP by a stand-in on 127.10.185.3,
come out of `ConsulProbe` as an answer or a one-line `ProbeError` naming the source.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from services import starts_services

from checks.consul_wan import member_at, member_dc, status_word
from xivo_doctor.foundation.deadline import Deadline
from xivo_doctor.foundation.errors import ProbeError
from xivo_doctor.probes import Probes
from xivo_doctor.probes.consul import shapes
from xivo_doctor.topology.model import ConsulAccess, Secret, Topology, Xivo

ADDRESS = "127.10.185.3"
UUID = "a1b2c3d4-0000-4000-8000-000000000001"
MEMBER = {"Name": "xivo-1.xivo-1", "Addr": ADDRESS, "Port": 8302, "Status": 1, "Tags": {"dc": "xivo-1"}}
SERVICE = {"ID": "c1", "Service": "xivo-ctid", "Tags": [UUID, "xivo-ctid"], "Address": ADDRESS, "Port": 9495}
# Consul's own answers (LAB-NOTES §C.2), one per endpoint, to be mutated.
GOOD: dict[str, Any] = {
    "leader": f"{ADDRESS}:8300",
    "datacenters": ["xivo-1", "xivo-2"],
    "agent_self": {"Config": {"Datacenter": "xivo-1", "NodeName": "xivo-1"}, "Member": MEMBER},
    "wan_members": [MEMBER, {**MEMBER, "Name": "xivo-2.xivo-2", "Status": 4}],
    "agent_services": {"c1": SERVICE},
    "agent_checks": {"service:c1": {"CheckID": "service:c1", "Status": "passing", "Output": "ok"}},
    "health_service": [{"Node": {"Node": "xivo-1"}, "Service": SERVICE, "Checks": []}],
}

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.text(max_size=10),
                     st.floats(allow_nan=False, allow_infinity=False),
                     st.sampled_from(["Config", "Tags", "Status", "Service", UUID, "xivo-ctid", ""]))
_json = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.sampled_from(["Config", "Datacenter", "NodeName", "Name", "Addr", "Status", "Tags", "ID",
                                     "Service", "Address", "Port", "Output", "status", "since", "c1"]) | st.text(
        max_size=5), inner, max_size=5),
), max_leaves=20)


@st.composite
def _mutated(draw: st.DrawFn, good: Any) -> Any:
    """`good` with one value somewhere inside replaced by any JSON, or one key dropped."""
    if isinstance(good, dict) and good and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(good)))
        rest = {k: v for k, v in good.items() if k != key}
        return rest if draw(st.booleans()) else {**rest, key: draw(_mutated(good[key]))}
    if isinstance(good, list) and good and draw(st.booleans()):
        i = draw(st.integers(0, len(good) - 1))
        return [*good[:i], draw(_mutated(good[i])), *good[i + 1:]]
    return draw(_json)


def _values(endpoint: str) -> st.SearchStrategy[Any]:
    return st.one_of(_json, _mutated(GOOD[endpoint]))


def _as_the_checks_read(endpoint: str, value: Any) -> None:
    """What the checks do with an accepted answer, for each endpoint (must not raise)."""
    if endpoint == "agent_self":
        str(value["Config"].get("Datacenter", "")) + str(value["Config"].get("NodeName", ""))
    elif endpoint == "wan_members":
        for member in value:
            status_word(member), member_dc(member), member_at(value, member.get("Addr"))
    elif endpoint == "agent_services":
        for reg in value.values():
            UUID in (reg.get("Tags") or []), reg.get("Port") != 9495, str(reg.get("Address") or "")
    elif endpoint == "agent_checks":
        for check in value.values():
            (check.get("Output") or "").strip(), check.get("Status") or "missing"
    elif endpoint == "health_service":
        for entry in value:
            UUID in ((entry.get("Service") or {}).get("Tags") or []), entry["Service"].get("Address")


def _validates_or_refuses(endpoint: str, value: Any) -> bool:
    try:
        accepted = getattr(shapes, endpoint)(value)
    except shapes.ShapeError as exc:
        assert "\n" not in str(exc)
        return False
    _as_the_checks_read(endpoint, accepted)
    return True


FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("endpoint", sorted(GOOD))
def test_consuls_own_answers_validate(endpoint: str) -> None:
    assert _validates_or_refuses(endpoint, GOOD[endpoint])


@pytest.mark.parametrize("endpoint", sorted(GOOD))
@FUZZ
@given(data=st.data())
def test_any_json_validates_or_is_refused(endpoint: str, data: st.DataObject) -> None:
    _validates_or_refuses(endpoint, data.draw(_values(endpoint)))


# -- the same, through the probe and HTTP ---------------------------------------------------------

_PATHS = {"leader": "/v1/status/leader", "datacenters": "/v1/catalog/datacenters", "agent_self": "/v1/agent/self",
          "wan_members": "/v1/agent/members", "agent_services": "/v1/agent/services",
          "agent_checks": "/v1/agent/checks", "health_service": "/v1/health/service/xivo-ctid"}


@pytest.fixture(scope="module")
@starts_services
def served():
    body: list[bytes] = [b""]

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("X-Consul-Index", "3")
            self.send_header("Content-Length", str(len(body[0])))
            self.end_headers()
            self.wfile.write(body[0])

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer((ADDRESS, 0), Handler)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    yield httpd.server_address[1], body
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("endpoint", sorted(GOOD))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_probe_answers_or_raises_a_probe_error(served, endpoint: str, data: st.DataObject) -> None:
    port, body = served
    value = data.draw(_values(endpoint))
    raw = json.dumps(value).encode()
    body[0] = raw[: data.draw(st.integers(0, len(raw)))] if data.draw(st.booleans()) else raw  # maybe truncated
    xivo = Xivo(name="xivo-1", address=ADDRESS, consul=ConsulAccess(scheme="http", port=port, token=Secret("t")))
    probes = Probes(Topology(name="t", source=Path("t.yml"), xivos=(xivo,), pairs=(), probe_timeout=2), Deadline(30))
    call = getattr(probes.consul, endpoint)
    try:
        call(xivo, "xivo-ctid") if endpoint == "health_service" else call(xivo)
    except ProbeError as exc:
        assert str(exc).startswith(f"consul API of xivo-1 (http://{ADDRESS}:{port}): GET {_PATHS[endpoint]}"), exc
        assert "\n" not in str(exc)
