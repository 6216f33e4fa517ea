"""ctid-advertise evaluated on hand-made Consul and ctid answers: the registration's address
(empty, localhost, 0.0.0.0, another address), port, UUID tag, TTL check, stale registrations, the
UUID ctid answers, and each peer's anonymous `?dc=` view; with the fixes filled for this topology."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fake_versions import FakeVersions

from xivo_doctor.check import Evidence, FixContext, spec_of
from xivo_doctor.engine import registry
from xivo_doctor.foundation.errors import ProbeError
from xivo_doctor.topology.model import ConsulAccess, Secret, Topology, Xivo

SPEC = next(s for s in registry.discover() if s.id == "ctid-advertise")
CHECK = getattr(sys.modules[SPEC.module], SPEC.function_name)
U1, U2, U3 = "11111111-aaaa-4aaa-8aaa-000000000001", "22222222-bbbb-4bbb-8bbb-000000000002", \
    "33333333-cccc-4ccc-8ccc-000000000003"
X1, X2, X3 = (Xivo(name=f"xivo-{i}", address=f"10.0.0.{i}") for i in (1, 2, 3))
TOPOLOGY = Topology(name="t", source=Path("t.yml"), xivos=(X1, X2, X3), pairs=())
TOKEN = 'X-Consul-Token: $(cat /var/lib/consul/master_token)'


def reg(sid: str, uuid: str = U1, address: str = "10.0.0.1", port: int = 9495) -> dict:
    return {"ID": sid, "Service": "xivo-ctid", "Tags": [uuid, "xivo-ctid"], "Address": address, "Port": port}


def ttl(sid: str, status: str = "passing", output: str = "") -> dict:
    return {f"service:{sid}": {"CheckID": f"service:{sid}", "Status": status, "Output": output, "ServiceID": sid}}


class FakeConsul:
    def __init__(self, services: dict, checks: dict, seen: dict[str, list[dict]] | None = None) -> None:
        self.services, self.checks = services, checks
        self.seen = seen if seen is not None else {
            "xivo-2": [{"Service": reg("a1")}], "xivo-3": [{"Service": reg("a1")}]}
        self.asked: list[tuple] = []

    def source(self, xivo: Xivo) -> str:
        return f"consul API of {xivo.name} (https://{xivo.address}:8500)"

    def agent_services(self, xivo: Xivo) -> dict:
        return {"consul": {"ID": "consul", "Service": "consul", "Tags": [], "Address": "", "Port": 8300},
                **self.services}

    def agent_checks(self, xivo: Xivo) -> dict:
        return self.checks

    def agent_self(self, xivo: Xivo) -> dict:
        return {"Config": {"Datacenter": f"dc{xivo.name[-1]}"}}

    def health_service(self, xivo: Xivo, name: str, dc=None, passing=False, token=True) -> list[dict]:
        self.asked.append((xivo.name, name, dc, passing, token))
        return self.seen[xivo.name]

    def catalog_service(self, xivo: Xivo, name: str, dc=None, token=True) -> list[dict]:
        """The catalog's shape of what `seen` holds (every registration, healthy or not)."""
        self.asked.append((xivo.name, name, dc, "catalog", token))
        return [{"ServiceID": e["Service"]["ID"], "ServiceAddress": e["Service"]["Address"],
                 "ServicePort": e["Service"]["Port"], "ServiceTags": e["Service"]["Tags"]}
                for e in self.seen[xivo.name]]


class FakeCtid:
    def __init__(self, uuid: str | Exception = U1) -> None:
        self.uuid = uuid

    def infos(self, xivo: Xivo, address=None, port=None) -> dict:
        if isinstance(self.uuid, Exception):
            raise self.uuid
        return {"uuid": self.uuid, "cti_protocol_version": "2.2"}


class FakeProbes:
    def __init__(self, consul: FakeConsul, ctid: FakeCtid | None = None, versions: dict | None = None) -> None:
        self.consul, self.ctid = consul, ctid or FakeCtid()
        self.version = FakeVersions(versions or {})

    @staticmethod
    def addresses(host: str) -> tuple[str, ...]:
        return (host,) if host[:1].isdigit() else ()


def run(consul: FakeConsul, ctid: FakeCtid | None = None, versions: dict | None = None) -> tuple[Evidence, str | None]:
    evidence = Evidence()
    try:
        CHECK(xivo=X1, topology=TOPOLOGY, probes=FakeProbes(consul, ctid, versions), evidence=evidence)
    except AssertionError as exc:
        return evidence, str(exc).split("\nassert ", 1)[0]
    return evidence, None


def fix(evidence: Evidence):
    return spec_of(CHECK).fill_fix(FixContext(TOPOLOGY, X1, None, dict(evidence)))


def test_declaration():
    assert SPEC.depends_on == ("port-reachable:ctid", "port-reachable:consul-rpc", "uuid-unique", "consul-wan")
    assert SPEC.involves == "peers"
    assert SPEC.doc == "contact_and_presence_sharing.rst#configure-xivo-ctid"


def test_a_good_registration_seen_by_every_peer_passes():
    consul = FakeConsul({"a1": reg("a1")}, ttl("a1"))
    evidence, failure = run(consul)
    assert failure is None
    assert evidence.summary == (f"advertised at 10.0.0.1:9495 (id a1) with uuid {U1}, TTL passing; "
                                "seen by 2 peer(s) through ?dc=dc1")
    assert evidence["seen_by_peers"] == {"xivo-2": "sees it at 10.0.0.1:9495", "xivo-3": "sees it at 10.0.0.1:9495"}
    assert evidence["infos_at_advertised"] == f"http://10.0.0.1:9495/0.1/infos answers uuid {U1}"
    # exactly xivo-ctid's ServiceFinder query: the peer's consul, ?dc=<this one>, passing, no token
    assert consul.asked == [("xivo-2", "xivo-ctid", "dc1", True, False), ("xivo-3", "xivo-ctid", "dc1", True, False)]
    assert "problems" not in evidence


@pytest.mark.parametrize(("address", "words"), [
    ("localhost", "is advertised at 'localhost': each peer would ask itself (service_discovery.advertise_address "
                  "left at its default `localhost`, or `auto` falling back to the loopback address: neither "
                  "advertise_address_interface nor an eth* interface has one)"),
    ("127.0.0.1", "is advertised at '127.0.0.1': each peer would ask itself (service_discovery.advertise_address "
                  "left at its default `localhost`, or `auto` falling back to the loopback address: neither "
                  "advertise_address_interface nor an eth* interface has one)"),
    ("", "is advertised with the address '': peers get no usable address (advertise_address must resolve to "
         "the XiVO's own address)"),
    ("0.0.0.0", "is advertised with the address '0.0.0.0': peers get no usable address (advertise_address must "
                "resolve to the XiVO's own address)"),
    ("192.168.1.124", "is advertised at 192.168.1.124, not at xivo-1's declared address 10.0.0.1"),
])
def test_an_address_peers_cannot_use_fails_with_the_manuals_ctid_config(address, words):
    consul = FakeConsul({"a1": reg("a1", address=address)}, ttl("a1"))
    evidence, failure = run(consul)
    assert failure == f"xivo-ctid of xivo-1 {words}"
    assert evidence["seen_by_peers"] == "not asked: the registration itself must be fixed first"
    assert consul.asked == []
    out = fix(evidence)
    assert out.commands == (
        "ip -o -4 addr show to 10.0.0.1",
        "cat > /etc/xivo-ctid/conf.d/interconnection.yml <<'EOF'\nrest_api:\n  http:\n    listen: 0.0.0.0\n"
        "service_discovery:\n  advertise_address: auto\n  advertise_address_interface: eth0  # the interface "
        "bearing 10.0.0.1\nEOF",
        "service xivo-ctid restart",
        f'curl -k -H "{TOKEN}" https://localhost:8500/v1/agent/services',
    )
    assert out.summary.startswith("on xivo-1, create /etc/xivo-ctid/conf.d/interconnection.yml as the manual says")
    assert out.doc == "contact_and_presence_sharing.rst#configure-xivo-ctid"


def test_a_wrong_port_fails():
    evidence, failure = run(FakeConsul({"a1": reg("a1", port=9496)}, ttl("a1")))
    assert failure == "xivo-ctid of xivo-1 is advertised on port 9496, not on its REST port 9495"
    assert "infos_at_advertised" not in evidence
    assert fix(evidence).commands == ("grep -rn -e advertise_port -e 'port:' /etc/xivo-ctid/",
                                      "service xivo-ctid restart")


@pytest.mark.parametrize(("checks", "state"), [
    (ttl("a1", "critical", "TTL expired"), "critical (TTL expired)"),
    (ttl("a1", "warning"), "warning"),
    ({}, "missing (no TTL check)"),
])
def test_a_ttl_check_not_passing_fails(checks, state):
    evidence, failure = run(FakeConsul({"a1": reg("a1")}, checks))
    assert failure == f"the TTL check service:a1 of xivo-ctid on xivo-1 is {state}"
    assert fix(evidence).commands == ("service xivo-ctid restart", "tail -n 50 /var/log/xivo-ctid.log")


def test_a_registration_tagged_with_another_uuid_than_ctid_answers():
    """ctid answers U1 but the only registration carries U2 (infos answering another UUID)."""
    evidence, failure = run(FakeConsul({"b2": reg("b2", uuid=U2)}, ttl("b2")))
    assert failure == (
        f"xivo-ctid of xivo-1 is not registered in its Consul with its UUID {U1} (the UUID /0.1/infos answers); "
        f"registered: id b2 at '10.0.0.1':9495 tagged ['{U2}', 'xivo-ctid']; xivo-1's Consul holds 1 stale "
        f"xivo-ctid registration(s) of another UUID: id b2 at '10.0.0.1':9495 tagged ['{U2}', 'xivo-ctid']")
    commands = fix(evidence).commands
    assert f'curl -k -X PUT -H "{TOKEN}" https://localhost:8500/v1/agent/service/deregister/b2' in commands
    assert "service xivo-ctid restart" in commands


def test_a_stale_second_registration_of_another_uuid_fails_with_its_deregistration():
    consul = FakeConsul({"a1": reg("a1"), "old": reg("old", uuid=U3, address="10.0.0.9")},
                        {**ttl("a1"), **ttl("old", "critical")})
    evidence, failure = run(consul)
    assert failure == (f"xivo-1's Consul holds 1 stale xivo-ctid registration(s) of another UUID: id old at "
                       f"'10.0.0.9':9495 tagged ['{U3}', 'xivo-ctid']")
    out = fix(evidence)
    assert out.commands == (f'curl -k -X PUT -H "{TOKEN}" https://localhost:8500/v1/agent/service/deregister/old',)
    assert "wiping consul's data" in out.summary


def test_a_critical_leftover_of_the_same_uuid_is_harmless():
    """A crashed ctid leaves its old registration behind; the peers' passing filter skips it."""
    consul = FakeConsul({"old": reg("old", address="localhost"), "a1": reg("a1")},
                        {**ttl("old", "critical"), **ttl("a1")})
    evidence, failure = run(consul)
    assert failure is None
    assert evidence["advertised"] == "10.0.0.1:9495 (id a1)"
    assert evidence["registrations"]["old"]["check"] == "critical"


def test_not_registered_at_all():
    evidence, failure = run(FakeConsul({}, {}))
    assert failure == (f"xivo-ctid of xivo-1 is not registered in its Consul with its UUID {U1} "
                       "(the UUID /0.1/infos answers)")
    assert "service xivo-ctid restart" in fix(evidence).commands


def test_a_peer_that_does_not_see_it_fails_with_the_anonymous_token_rule():
    seen = {"xivo-2": [{"Service": reg("a1")}], "xivo-3": [{"Service": reg("zz", uuid=U3, address="10.0.0.3")}]}
    evidence, failure = run(FakeConsul({"a1": reg("a1")}, ttl("a1"), seen))
    assert failure == (f"xivo-3's Consul, asked anonymously for passing xivo-ctid in datacenter 'dc1' (as xivo-ctid "
                       f"asks), lists none tagged {U1} (id zz at '10.0.0.3':9495 tagged ['{U3}', 'xivo-ctid'])")
    assert evidence["seen_by_peers"] == {"xivo-2": "sees it at 10.0.0.1:9495", "xivo-3": "lists 1 other(s)"}
    commands = fix(evidence).commands
    assert commands[0] == (f'curl -k -X PUT -H "{TOKEN}" https://localhost:8500/v1/acl/update -d '
                           '\'{"ID":"anonymous","Rules":"{\\"service\\":{\\"xivo-\\":{\\"Policy\\":\\"read\\"}}}"}\'')
    assert commands[1] == ("curl -k 'https://localhost:8500/v1/health/service/xivo-ctid?dc=dc1&passing=1'  "
                           "# on xivo-3")


def test_a_peer_seeing_nothing_at_all():
    _, failure = run(FakeConsul({"a1": reg("a1")}, ttl("a1"), {"xivo-2": [], "xivo-3": [{"Service": reg("a1")}]}))
    assert failure == (f"xivo-2's Consul, asked anonymously for passing xivo-ctid in datacenter 'dc1' (as xivo-ctid "
                       f"asks), lists none tagged {U1}")


def test_ctid_answering_html_is_an_error_not_a_failure():
    error = ProbeError("xivo-ctid REST API of xivo-1 (http://10.0.0.1:9495/0.1/infos)",
                       "answered HTTP 200 with something that is not JSON: '<html>'")
    with pytest.raises(ProbeError):
        run(FakeConsul({"a1": reg("a1")}, ttl("a1")), FakeCtid(error))


def test_no_secret_and_no_empty_fix():
    evidence, _ = run(FakeConsul({"a1": reg("a1", address="localhost")}, ttl("a1")))
    out = fix(evidence)
    assert out.summary and out.commands
    assert "$(cat /var/lib/consul/master_token)" in out.commands[-1]  # the token is read on the box, never printed


# --- per release (docs/xivo-behaviour.md "ctid-advertise") -------------------------------------------

ALL_1613 = {"xivo-1": "16.13", "xivo-2": "16.13", "xivo-3": "16.13"}
X1_TOKEN = Xivo(name="xivo-1", address="10.0.0.1", consul=ConsulAccess(token=Secret("master")))


def test_a_peer_of_16_13_looks_in_the_catalog_without_a_token():
    consul = FakeConsul({"a1": reg("a1")}, ttl("a1"))
    evidence, failure = run(consul, versions=ALL_1613)
    assert failure is None
    assert consul.asked == [("xivo-2", "xivo-ctid", "dc1", "catalog", False),
                            ("xivo-3", "xivo-ctid", "dc1", "catalog", False)]
    assert evidence["seen_by_peers"]["xivo-2"] == "sees it at 10.0.0.1:9495 in the catalog"


def test_on_16_13_a_lookup_hidden_by_the_anonymous_token_is_said_not_failed():
    """Consul 0.7.0 of 16.13 hides xivo-ctid from token-less requests (acl_default_policy deny, no rule for
    the anonymous token before 16.15): that is how 16.13 ships, the peer's ctid learns it from the bus.
    Before issue 13 the 16.15 lookup was asked and the item failed on every healthy 16.13 XiVO."""
    seen = {"xivo-1": [{"Service": reg("a1")}], "xivo-2": [], "xivo-3": []}
    consul = FakeConsul({"a1": reg("a1")}, ttl("a1"), seen)
    evidence = Evidence()
    CHECK(xivo=X1_TOKEN, topology=TOPOLOGY, probes=FakeProbes(consul, versions=ALL_1613), evidence=evidence)
    note = evidence["seen_by_peers"]["xivo-2"]
    assert note.startswith("sees nothing in the catalog: xivo-1's Consul 0.7.0 hides services from the anonymous "
                           "token, as XiVO shipped it before 16.15")
    assert note.endswith("(its catalog lists it to the master token)")
    assert ("xivo-1", "xivo-ctid", None, "catalog", True) in consul.asked  # its own catalog, as the master token


def test_on_16_13_missing_from_its_own_catalog_is_a_failure():
    seen = {"xivo-1": [], "xivo-2": [], "xivo-3": []}
    evidence = Evidence()
    with pytest.raises(AssertionError, match="xivo-2's Consul, asked anonymously for xivo-ctid in the catalog"):
        CHECK(xivo=X1_TOKEN, topology=TOPOLOGY, probes=FakeProbes(FakeConsul({"a1": reg("a1")}, ttl("a1"), seen),
                                                                  versions=ALL_1613), evidence=evidence)


def test_on_15_19_consul_filters_nothing_so_an_empty_catalog_fails():
    versions = dict.fromkeys(("xivo-1", "xivo-2", "xivo-3"), "15.19")
    seen = {"xivo-1": [{"Service": reg("a1")}], "xivo-2": [], "xivo-3": [{"Service": reg("a1")}]}
    evidence, failure = run(FakeConsul({"a1": reg("a1")}, ttl("a1"), seen), versions=versions)
    assert failure == ("xivo-2's Consul, asked anonymously for xivo-ctid in the catalog of datacenter 'dc1' (as "
                       f"xivo-ctid 16.14 and older asks), lists none tagged {U1}")
    assert fix(evidence).commands == (
        "curl -k -X PUT 'https://localhost:8500/v1/acl/update?token='$(cat /var/lib/consul/master_token) -d "
        '\'{"ID":"anonymous","Rules":"{\\"service\\":{\\"xivo-\\":{\\"Policy\\":\\"read\\"}}}"}\'',
        "curl -k 'https://localhost:8500/v1/catalog/service/xivo-ctid?dc=dc1'  # on xivo-2")


def test_a_check_not_passing_matters_only_to_peers_that_filter_on_it():
    """15.19's HTTP check of check_url starts critical (Consul staggers its first run up to 5 min):
    the peers' 15.19 xivo-ctid read the catalog whatever it says. A 16.15 peer asks for passing ones."""
    versions = dict.fromkeys(("xivo-1", "xivo-2", "xivo-3"), "15.19")
    evidence, failure = run(FakeConsul({"a1": reg("a1")}, ttl("a1", "critical")), versions=versions)
    assert failure is None
    assert evidence["check note"].startswith("the HTTP check of check_url service:a1 of xivo-ctid on xivo-1 is "
                                             "critical; the peers' xivo-ctid (XiVO 16.14 or older) read the catalog")
    versions["xivo-3"] = "16.15"
    _, failure = run(FakeConsul({"a1": reg("a1")}, ttl("a1", "critical")), versions=versions)
    assert failure == "the HTTP check of check_url service:a1 of xivo-ctid on xivo-1 is critical"


def test_the_fix_writes_the_manuals_ctid_config_of_the_release():
    before_auto = dict.fromkeys(("xivo-1", "xivo-2", "xivo-3"), "15.20")
    evidence, _ = run(FakeConsul({"a1": reg("a1", address="localhost")}, ttl("a1")), versions=before_auto)
    out = fix(evidence)
    assert out.commands[0] == (
        "cat > /etc/xivo-ctid/conf.d/interconnection.yml <<'EOF'\nrest_api:\n  http:\n    listen: 0.0.0.0\n"
        "service_discovery:\n  advertise_address: 10.0.0.1\n  check_url: http://10.0.0.1:9495/0.1/infos\nEOF")
    assert "with its address 10.0.0.1 written out (no `auto` before 16.01)" in out.summary
    no_fallback = dict.fromkeys(("xivo-1", "xivo-2", "xivo-3"), "16.03")
    evidence, _ = run(FakeConsul({"a1": reg("a1", address="localhost")}, ttl("a1")), versions=no_fallback)
    assert "before 16.06 xivo-ctid does not start when that interface is missing" in fix(evidence).summary


def test_on_16_15_the_fix_is_the_consul_packages_own_anonymous_rule():
    versions = dict.fromkeys(("xivo-1", "xivo-2", "xivo-3"), "16.15")
    seen = {"xivo-1": [{"Service": reg("a1")}], "xivo-2": [], "xivo-3": [{"Service": reg("a1")}]}
    evidence, failure = run(FakeConsul({"a1": reg("a1")}, ttl("a1"), seen), versions=versions)
    assert failure.startswith("xivo-2's Consul, asked anonymously for passing xivo-ctid in datacenter 'dc1'")
    # the request the fixed script (consul 0.7.0~xivo4) sends; the ~xivo3 one was broken, so a restart
    # alone may repair nothing
    assert fix(evidence).commands == (
        "curl -k -X PUT -H \"X-Consul-Token: $(cat /var/lib/consul/master_token)\" "
        "https://localhost:8500/v1/acl/update -d "
        "'{\"ID\":\"anonymous\",\"Rules\":\"{\\\"service\\\":{\\\"xivo-\\\":{\\\"Policy\\\":\\\"read\\\"}}}\"}'",
        "grep body= /usr/bin/consul-customize-anonymous-token",
        "curl -k 'https://localhost:8500/v1/health/service/xivo-ctid?dc=dc1&passing=1'  # on xivo-2")
