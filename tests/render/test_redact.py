"""Redaction rules (xivo_doctor/foundation/redact.py): what is masked, what stays readable, pseudonyms.

The end-to-end proof (every output of a real run on the lab grepped for planted secrets) is
tests/test_canary.py; these pin each rule on its own.
"""

from __future__ import annotations

import pytest

from conftest import write_topology
from xivo_doctor.foundation.redact import MASK, Redactor
from xivo_doctor.foundation.results import FixOut, Report, Result, Status
from xivo_doctor.topology import load_topology
from xivo_doctor.topology.redaction import redactor_for

TOPOLOGY = """
name: acme
defaults:
  consul: {token: "${CANARY_TOKEN}"}
  rabbitmq: {password: "Rabbit-Canary-77"}
  confd: {password_file: confd.secret}
xivos:
  - {name: xivo-1, address: 192.168.1.124}
  - {name: xivo-2, address: "${XIVO2_ADDRESS}"}
  - {name: paris, address: paris.acme.example}
"""


@pytest.fixture
def topology(tmp_path, monkeypatch):
    monkeypatch.setenv("CANARY_TOKEN", "tok/en+with=chars")
    monkeypatch.setenv("XIVO2_ADDRESS", "192.168.1.125")
    (tmp_path / "confd.secret").write_text("Confd-Canary-88\n")
    return load_topology(write_topology(tmp_path, TOPOLOGY))


def test_topology_secrets_from_every_spelling_are_masked(topology):
    r = redactor_for(topology)
    text = r.text("t=tok/en+with=chars enc=tok%2Fen%2Bwith%3Dchars rabbit Rabbit-Canary-77 confd Confd-Canary-88")
    assert text == f"t={MASK} enc={MASK} rabbit {MASK} confd {MASK}"


def test_env_values_are_secrets_but_names_and_addresses_stay(topology):
    assert "tok/en+with=chars" in topology.env_values
    assert "192.168.1.125" not in topology.env_values  # an address identifies the XiVO
    assert redactor_for(topology).text("xivo-2 at 192.168.1.125") == "xivo-2 at 192.168.1.125"


@pytest.mark.parametrize(("raw", "shown"), [
    ("amqp://xivo:S3cr3t!@192.168.1.125:5672", f"amqp://xivo:{MASK}@192.168.1.125:5672"),
    ("uri amqps://u:p%40ss@h/vhost", f"uri amqps://u:{MASK}@h/vhost"),
    ("postgresql://asterisk:proformatique@localhost/asterisk", f"postgresql://asterisk:{MASK}@localhost/asterisk"),
    ("Authorization: Basic eGl2bzpzZWNyZXQ=", f"Authorization: {MASK}"),
    ('Authorization: Digest username="xivo-doctor", realm="x", response="6629fae4"', f"Authorization: {MASK}"),
    ("curl -H 'X-Consul-Token: 5b8a-1c2d'", f"curl -H 'X-Consul-Token: {MASK}'"),
    ("GET /v1/agent/self?token=5b8a-1c2d&dc=x", f"GET /v1/agent/self?token={MASK}&dc=x"),
    ('{"password": "hunter22", "user": "x"}', f'{{"password": "{MASK}", "user": "x"}}'),
    ("acl_master_token = abc123def", f"acl_master_token = {MASK}"),
])
def test_credentials_the_topology_never_knew_are_masked_by_shape(raw, shown):
    assert Redactor().text(raw) == shown


@pytest.mark.parametrize("placeholder", [
    "rabbitmqctl set_parameter federation-upstream xivo-2 "
    "'{\"uri\":\"amqp://xivo:<password of the xivo user on xivo-2>@192.168.1.125\",\"max-hops\":1}'",
    "curl -sk -H 'X-Consul-Token: $(cat /var/lib/consul/master_token)' https://localhost:8500/v1/agent/services",
    "rabbitmqctl add_user xivo <password of the xivo user on xivo-2>",
    "set password: <the password you gave the web services user>",
])
def test_the_fixes_placeholders_stay_readable(placeholder):
    assert Redactor().text(placeholder) == placeholder


def test_a_short_secret_is_masked_as_a_word_not_inside_names():
    r = Redactor(["xivo"])
    assert r.text("user xivo on xivo-1, url amqp://xivo:xivo@h") == f"user {MASK} on xivo-1, url amqp://{MASK}:{MASK}@h"


def test_a_secret_learned_during_the_run_is_masked_from_then_on_with_the_known_ones():
    """A master token read on a XiVO over SSH: the topology never held it, the outputs mask it."""
    redactor = Redactor(["TopologyPassword1"], addresses=True, known_addresses=["10.1.2.3"])
    line = "acl 5f1c0ffee5f1c0ffee refused; TopologyPassword1 at 10.1.2.3"
    assert "5f1c0ffee5f1c0ffee" in redactor.text(line)
    redactor.learn(["5f1c0ffee5f1c0ffee", ""])
    assert redactor.text(line) == f"acl {MASK} refused; {MASK} at 10.0.0.1"
    assert redactor.text("t=5f1c0ffee5f1c0ffee%20") .count(MASK) == 1


def test_evidence_values_under_secret_keys_are_masked_and_structure_kept():
    r = Redactor()
    data = {"password": "p", "xivo_password": "q", "token": "t", "password_set": True,
            "rows": [{"uri": "amqp://a:b@c", "token": None}], "n": 3}
    assert r.value(data) == {"password": MASK, "xivo_password": MASK, "token": MASK, "password_set": True,
                             "rows": [{"uri": f"amqp://a:{MASK}@c", "token": None}], "n": 3}


def _result(**kw) -> Result:
    base = dict(check="rabbitmq-federation", target="xivo-1->xivo-2", status=Status.FAIL, title="federation",
                message="link error: amqp://xivo:Wrong-Pass-99@192.168.1.125 refused",
                evidence={"upstream": {"uri": "amqp://xivo:Wrong-Pass-99@192.168.1.125"}},
                fix=FixOut("set the password Rabbit-Canary-77", ("echo Rabbit-Canary-77",), "doc.rst#x"),
                why="because", blocked_by=("port-reachable[xivo-2]",))
    base.update(kw)
    return Result(**base)


def test_a_result_is_redacted_in_every_field(topology):
    out = redactor_for(topology).redact_result(_result())
    flat = repr((out.message, dict(out.evidence), out.fix))
    assert "Wrong-Pass-99" not in flat and "Rabbit-Canary-77" not in flat
    assert out.fix.commands == (f"echo {MASK}",)
    assert out.status is Status.FAIL and out.blocked_by == ("port-reachable[xivo-2]",)


def _report(results, topology) -> Report:
    return Report(results=tuple(results), started_at="2026-11-25T10:00:00+00:00", duration_s=1.0,
                  vantage="doctor.acme.example", topology=topology.describe(), timeout_s=30.0, doctor_version="0")


def test_addresses_get_stable_pseudonyms_across_the_whole_report(topology):
    results = [
        _result(message="192.168.1.125 refused; see 192.168.1.124 and 10.20.30.40"),
        Result(check="consul-wan", target="xivo-1", status=Status.FAIL, title="wan",
               message="paris.acme.example (xivo-lab-3) not in the pool of xivo-lab-1",
               evidence={"datacenter": "xivo-lab-1", "datacenters_of_xivos": {"xivo-1": "xivo-lab-3", "paris": "x"},
                         "advertised": "127.0.0.1", "other": "10.20.30.40"}),
    ]
    out = redactor_for(topology, addresses=True).report(_report(results, topology))
    assert out.results[0].message == "10.0.0.2 refused; see 10.0.0.1 and 10.0.1.1"
    # host names: the XiVO's (in the topology), and those learnt from evidence (Consul datacenters)
    second = out.results[1]
    assert second.message == "host-1.example (host-3.example) not in the pool of host-2.example"
    assert second.evidence["datacenter"] == "host-2.example"
    assert second.evidence["advertised"] == "127.0.0.1"  # loopback is the finding, kept
    assert second.evidence["other"] == "10.0.1.1"  # the same address, the same pseudonym
    text = repr(out)
    for real in ("192.168.1.12", "10.20.30.40", "acme.example", "xivo-lab-"):
        assert real not in text
    assert out.topology["xivos"][2]["address"] == "host-1.example"
    assert out.topology["xivos"][0]["name"] == "xivo-1"  # names are the topology's own labels: kept
    assert second.evidence["datacenters_of_xivos"] == {"xivo-1": "host-3.example", "paris": "host-4.example"}


def test_pseudonyms_leave_file_names_versions_and_doc_references_alone():
    r = Redactor(addresses=True)
    text = "see contact_and_presence_sharing.rst#setup and /etc/consul/xivo/config.json, version 16.13, at 10:11:12"
    assert r.text(text) == text
    assert r.text("fe80::1 and 2001:db8::2 and ::1") == "fd00::1:1 and fd00::1:2 and ::1"


def test_a_run_applies_pseudonyms_once(topology):
    from xivo_doctor.engine.options import RunOptions
    from xivo_doctor.engine.run import Run

    run = Run(RunOptions(topology=topology, redact_addresses=True))
    run.results.append(run.secret_redactor().redact_result(_result()))
    report = run.report()
    assert report.results[0].message == f"link error: amqp://xivo:{MASK}@10.0.0.2 refused"


def test_the_manuals_xivo_xivo_password_is_masked_as_a_credential_not_as_a_name(tmp_path):
    # contact_and_presence_sharing.rst: `rabbitmqctl add_user xivo xivo`, uri amqp://xivo:xivo@...
    topo = load_topology(write_topology(tmp_path, """
defaults: {rabbitmq: {user: xivo, password: xivo}}
xivos: [{name: xivo-1, address: 10.1.1.1}, {name: xivo-2, address: 10.1.1.2}]
"""))
    r = redactor_for(topo)
    assert r.text("exchange xivo, user xivo, uri amqp://xivo:xivo@10.1.1.2") == \
        f"exchange xivo, user xivo, uri amqp://xivo:{MASK}@10.1.1.2"
    assert r.value({"password": "xivo"}) == {"password": MASK}


def test_addresses_at_the_end_of_a_sentence_and_in_erlang_terms_get_pseudonyms():
    r = Redactor(addresses=True)
    assert r.text("connecting to 192.0.2.7. Then {peer_host,{192,0,2,7}} and {127,0,0,1}") == \
        "connecting to 10.0.1.1. Then {peer_host,{10,0,1,1}} and {127,0,0,1}"
    assert r.text("1.2.3.4.5 and 10.0.0.300") == "1.2.3.4.5 and 10.0.0.300"  # not addresses
