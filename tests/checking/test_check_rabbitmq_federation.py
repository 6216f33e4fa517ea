"""rabbitmq-federation evaluated on hand-made probe data (no RabbitMQ): messages, evidence, fixes."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from checks.rabbitmq_federation import test_rabbitmq_federation as check_federation
from xivo_doctor.check import Evidence, FixContext, spec_of
from xivo_doctor.foundation.errors import CannotCheckFromHere
from xivo_doctor.probes.rabbitmq import federation_status as fs
from xivo_doctor.topology.model import OnBoxAccess, Pair, RabbitMQAccess, Secret, Topology, Xivo

BOX = OnBoxAccess(rabbitmqctl=("rabbitmqctl",))
AMQP = RabbitMQAccess(password=Secret("s3cret"))
X1 = Xivo("xivo-1", "192.168.1.124", rabbitmq=AMQP, on_box=BOX)
X2 = Xivo("xivo-2", "192.168.1.125", rabbitmq=AMQP, on_box=BOX)
PAIR = Pair(X2, X1)  # downstream xivo-2 pulls from upstream xivo-1
TOPOLOGY = Topology("t", Path("t.yml"), (X1, X2), (Pair(X1, X2), PAIR))
POLICY = {"vhost": "/", "name": "federate-xivo", "pattern": "xivo", "apply-to": "exchanges",
          "definition": {"federation-upstream-set": "all"}, "priority": 1}


def link(status="running", error=None, upstream="xivo-1", stamp="2026-11-25 07:58:18"):
    return {"exchange": "xivo", "upstream_exchange": "xivo", "type": "exchange", "vhost": "/", "upstream": upstream,
            "status": status, "error": error, "uri": "amqp://192.168.1.124", "timestamp": stamp}


class FakeRabbit:
    """The RabbitProbe methods the check uses, answering from `state` (per XiVO name)."""

    def __init__(self, state, dns=None, delivery=None):
        self.state, self.dns, self.asked_probe = state, dns or {}, []
        self.delivery = delivery or {"delivered": True, "published": 2, "waited_s": 0.03, "latency_ms": 0.8}

    def source(self, xivo):
        return f"rabbitmqctl on {xivo.name}" if xivo.on_box else None

    def prefetch(self, xivos):
        pass

    def federation_links(self, xivo):
        return self.state[xivo.name]["links"]

    def upstreams(self, xivo):
        return {name: fs.upstream(v) for name, v in self.state[xivo.name]["upstreams"].items()}

    def policies(self, xivo):
        return self.state[xivo.name]["policies"]

    def node_time(self, xivo):
        return self.state[xivo.name].get("now", "2026-11-25 07:58:20")

    def federation_plugin(self, xivo):
        return "running" if self.federation_links(xivo) is not None else self.state[xivo.name]["plugin"]

    def federation_running(self, xivo):
        return self.federation_links(xivo) is not None if xivo.name in self.state else None

    def resolve(self, host):
        return self.dns.get(host, [])

    def probe_delivery(self, down, up):
        self.asked_probe.append((down.name, up.name))
        return self.delivery


class FakeProbes:
    def __init__(self, rabbit, passive=False):
        self.rabbitmq, self.passive, self.vantage = rabbit, passive, "doctor-host"


def healthy(uri="amqp://xivo:s3cret@192.168.1.124", **over):
    node = {"links": [link()], "upstreams": {"xivo-1": {"uri": uri, "max-hops": 1}}, "policies": [POLICY]}
    return {"xivo-2": {**node, **over},
            "xivo-1": {"links": [link(upstream="xivo-2")], "policies": [POLICY],
                       "upstreams": {"xivo-2": {"uri": "amqp://xivo:s3cret@192.168.1.125", "max-hops": 1}}}}


def run(state, *, pair=PAIR, topology=TOPOLOGY, passive=False, **rabbit):
    evidence, fake = Evidence(), FakeRabbit(state, **rabbit)
    check_federation(pair=pair, topology=topology, xivos=topology.xivos, probes=FakeProbes(fake, passive),
                     evidence=evidence)
    return evidence, fake


def failing(state, **kw):
    evidence = Evidence()
    fake = FakeRabbit(state, **{k: v for k, v in kw.items() if k in ("dns", "delivery")})
    with pytest.raises(AssertionError) as caught:
        check_federation(pair=PAIR, topology=TOPOLOGY, xivos=TOPOLOGY.xivos,
                         probes=FakeProbes(fake, kw.get("passive", False)), evidence=evidence)
    message = str(caught.value).split("\nassert ", 1)[0]
    fix = spec_of(check_federation).fill_fix(FixContext(TOPOLOGY, X2, X1, dict(evidence)))
    return message, evidence, fix


def test_healthy_pair_passes_with_latency():
    evidence, fake = run(healthy())
    assert evidence.summary == "a probe message crossed in 0.8 ms (link from 'xivo-1' running)"
    assert evidence["latency_ms"] == 0.8 and evidence["source"] == "rabbitmqctl on xivo-2"
    assert evidence["upstreams"] == {"xivo-1": {"uri": "amqp://xivo:***@192.168.1.124", "max-hops": 1}}
    assert evidence["plugin"] == "rabbitmq_federation running" and evidence["policy"]["name"] == "federate-xivo"
    assert fake.asked_probe == [("xivo-2", "xivo-1")]
    assert "s3cret" not in repr(dict(evidence))


def test_a_hostname_that_resolves_to_the_address_passes_and_says_so():
    evidence, _ = run(healthy("amqp://xivo:s3cret@xivo-1.example"), dns={"xivo-1.example": ["192.168.1.124"]})
    assert evidence["uri hosts"] == "resolved from doctor-host: xivo-1.example -> 192.168.1.124"


def test_an_explicit_port_that_matches_passes():
    evidence, _ = run(healthy("amqp://xivo:s3cret@192.168.1.124:5672"))
    assert evidence["upstream"] == "xivo-1"


def test_a_hostname_resolving_elsewhere_fails_naming_the_address():
    message, evidence, fix = failing(healthy("amqp://xivo:s3cret@old-xivo-1.example"),
                                     dns={"old-xivo-1.example": ["10.0.0.9"]})
    assert message == ("upstream 'xivo-1' on xivo-2 points at amqp://xivo:***@old-xivo-1.example, not at xivo-1's "
                       "address 192.168.1.124 (resolved from doctor-host: old-xivo-1.example -> 10.0.0.9)")
    assert evidence["problems"] == ["upstream-address"]
    assert fix.commands == ("rabbitmqctl set_parameter federation-upstream xivo-1 '{\"uri\":\"amqp://xivo:<password "
                            "of the xivo user on xivo-1>@192.168.1.124\",\"max-hops\":1}'  # on xivo-2",)
    assert fix.doc == "contact_and_presence_sharing.rst#setup-message-federation"


def test_a_hostname_that_does_not_resolve():
    message, _, _ = failing(healthy("amqp://xivo:s3cret@nowhere.invalid"))
    assert message.endswith("(resolved from doctor-host: nowhere.invalid does not resolve)")


def test_the_wrong_port():
    message, evidence, _ = failing(healthy("amqp://xivo:s3cret@192.168.1.124:5673"))
    assert message == ("upstream 'xivo-1' on xivo-2 (amqp://xivo:***@192.168.1.124:5673) uses port 5673, but "
                       "xivo-1's AMQP port is 5672")
    assert evidence["problems"] == ["upstream-port"]


def test_no_upstream_for_the_peer():
    state = healthy()
    state["xivo-2"]["upstreams"] = {"xivo-3": {"uri": "amqp://xivo:s3cret@192.168.1.126", "max-hops": 1}}
    message, evidence, fix = failing(state)
    assert message == ("xivo-2 has no federation-upstream pointing at xivo-1's address 192.168.1.124 "
                       "(its upstreams: xivo-3 -> amqp://xivo:***@192.168.1.126)")
    assert evidence["problems"] == ["upstream-missing"]
    assert fix.summary == "declare on xivo-2 an upstream for xivo-1 at 192.168.1.124"


def test_plugin_off_reports_every_configuration_problem_at_once():
    state = healthy(links=None, plugin="not enabled", policies=[])
    message, evidence, fix = failing(state)
    assert message == ("the rabbitmq_federation plugin is not enabled on xivo-2; no policy applies to exchange xivo "
                       "on xivo-2 (its policies: none)")
    assert evidence["problems"] == ["plugin", "policy"]
    assert fix.commands == (
        "rabbitmq-plugins enable rabbitmq_federation  # on xivo-2", "service rabbitmq-server restart  # on xivo-2",
        "rabbitmqctl set_policy federate-xivo 'xivo' '{\"federation-upstream-set\":\"all\"}' --priority 1 "
        "--apply-to exchanges  # on xivo-2")
    assert fix.doc == "contact_and_presence_sharing.rst#create-a-rabbitmq-user"


def test_plugin_enabled_but_not_restarted():
    message, _, fix = failing(healthy(links=None, plugin="enabled, not running"))
    assert message.endswith("(RabbitMQ was not restarted since it was enabled)")
    assert fix.commands == ("service rabbitmq-server restart  # on xivo-2",)


def test_policy_pattern_not_matching():
    state = healthy(policies=[{**POLICY, "pattern": "^amq\\."}])
    message, _, _ = failing(state)
    assert message == ("no policy applies to exchange xivo on xivo-2 (its policies: federate-xivo "
                       "(pattern '^amq\\\\.', apply-to exchanges))")


def test_a_higher_priority_policy_shadows_federate_xivo():
    ha = {"vhost": "/", "name": "ha-all", "pattern": ".*", "apply-to": "all", "definition": {"ha-mode": "all"},
          "priority": 5}
    message, _, fix = failing(healthy(policies=[POLICY, ha]))
    assert message == ("policy 'ha-all' (priority 5) also matches exchange xivo and wins over 'federate-xivo' "
                       "(priority 1), but does not federate: RabbitMQ applies one policy per exchange")
    assert "--priority 6 --apply-to exchanges" in fix.commands[0]


def test_a_policy_naming_another_upstream():
    message, _, _ = failing(healthy(policies=[{**POLICY, "definition": {"federation-upstream": "xivo-3"}}]))
    assert message == "policy 'federate-xivo' federates exchange xivo from upstream 'xivo-3' only, not 'xivo-1'"


def test_max_hops_other_than_one_is_mentioned_not_failed():
    state = healthy()
    state["xivo-2"]["upstreams"]["xivo-1"]["max-hops"] = 2
    evidence, _ = run(state)
    assert evidence["max-hops note"].startswith("2, where the manual sets 1")


@pytest.mark.parametrize(("error", "step", "words"), [
    ("econnrefused", "refused", "the upstream refuses AMQP (RabbitMQ down or not listening on that address)"),
    ('{auth_failure,"ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN."}', "auth",
     "wrong user or password in the upstream URI"),
    ("unknown_host", "unknown-host", "the URI's host does not resolve"),
    ("handshake_receive_timed_out", "unreachable",
     "unreachable or silent: a firewall drops 5672, or something else answers there"),
])
def test_link_errors_in_plain_words(error, step, words):
    message, evidence, fix = failing(healthy(links=[link("error", error)]))
    assert message == f"the link from 'xivo-1' is in error ({error}): {words}"
    assert evidence["problems"] == [step]
    assert fix.commands  # each names what to run, and where


def test_wrong_password_fix_creates_the_user_only_where_missing_with_a_placeholder():
    _, _, fix = failing(healthy(links=[link("error", '{auth_failure,"ACCESS_REFUSED"}')]))
    assert fix.commands[0] == ('rabbitmqctl list_users -q | grep -q "^xivo[[:space:]]" || rabbitmqctl add_user xivo '
                               "<password of the xivo user on xivo-1>  # on xivo-1")  # only where it is missing
    assert "change_password" not in repr(fix)  # the upstream's other downstreams log in with that password
    assert fix.commands[-1].startswith("rabbitmqctl set_parameter federation-upstream xivo-1 ")
    assert "s3cret" not in repr(fix)


def test_link_starting_for_long_vs_just_starting():
    message, _, fix = failing(healthy(links=[link("starting", stamp="2026-11-25 07:57:18")]))
    assert message == ("the link from 'xivo-1' has been starting for 62 s: unreachable or silent: a firewall drops "
                       "5672, or something else answers there")
    assert fix.commands == ("iptables -I INPUT -p tcp -s 192.168.1.125 --dport 5672 -j ACCEPT  # on xivo-1",)
    message, evidence, _ = failing(healthy(links=[link("starting")]))
    assert message.startswith("the link from 'xivo-1' is still starting (for 2 s): run again in a minute")
    assert evidence["problems"] == ["starting"]


def test_no_link_for_the_upstream():
    message, _, _ = failing(healthy(links=[]))
    assert message.startswith("no federation link from upstream 'xivo-1' on exchange xivo of xivo-2")


def test_probe_not_delivered_although_the_link_runs():
    lost = {"delivered": False, "published": 97, "waited_s": 2.0, "latency_ms": None}
    message, evidence, fix = failing(healthy(), delivery=lost)
    assert message == ("no probe message published on xivo-1's exchange xivo reached xivo-2 within 2.0 s "
                       "(97 published) although the link says running")
    assert evidence["problems"] == ["delivery"]
    assert fix.commands[0] == "rabbitmqctl list_exchanges name type  # on xivo-1"


def test_passive_mode_skips_the_probe():
    evidence, fake = run(healthy(), passive=True)
    assert fake.asked_probe == [] and evidence["probe"] == "probe skipped: --passive"
    assert evidence.summary == "link from 'xivo-1' running (probe skipped: --passive)"


def test_without_on_box_access_the_probe_alone_proves_delivery():
    x1, x2 = (Xivo(x.name, x.address, rabbitmq=AMQP) for x in (X1, X2))
    topology = Topology("t", Path("t.yml"), (x1, x2), (Pair(x1, x2), Pair(x2, x1)))
    evidence, fake = run({}, pair=Pair(x2, x1), topology=topology)
    assert fake.asked_probe == [("xivo-2", "xivo-1")] and evidence["source"] == "the probe message only"
    assert evidence.summary == "a probe message crossed in 0.8 ms (settings not read from here)"
    assert evidence["not checked"].startswith("plugin, upstream, policy and link state of xivo-2")
    with pytest.raises(CannotCheckFromHere, match="is off with --passive"):
        run({}, pair=Pair(x2, x1), topology=topology, passive=True)


def test_the_upstreams_plugin_off_is_reported_once_by_its_own_item():
    state = copy.deepcopy(healthy())
    state["xivo-1"]["links"] = None  # xivo-1's plugin off: its exchange xivo takes no message
    with pytest.raises(CannotCheckFromHere, match=r"rabbitmq-federation\[xivo-1->xivo-2\] reports it"):
        run(state)
