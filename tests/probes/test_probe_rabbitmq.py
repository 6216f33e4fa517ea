"""RabbitProbe against a fake `rabbitmqctl` printing captured outputs, a stub management API, and
AMQP failures on real sockets (no RabbitMQ needed)."""

from __future__ import annotations

import json
import threading
import time
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from servers import BlackHole
from xivo_doctor.foundation.deadline import Deadline
from xivo_doctor.foundation.errors import ProbeError, ProbeTimeout
from xivo_doctor.probes.session import Probes
from xivo_doctor.topology.model import (
    OnBoxAccess,
    Pair,
    RabbitMQAccess,
    RabbitMQManagement,
    Secret,
    Topology,
    Xivo,
)

# What the lab's RabbitMQ 3.10.8 answered to the probe's combined eval (healthy xivo-2).
COMBINED = """{xivo_doctor,
    {{2026,11,25},{9,22,30}},
    [[{exchange,<<"xivo">>},
      {upstream_exchange,<<"xivo">>},
      {type,exchange},
      {vhost,<<"/">>},
      {upstream,<<"xivo-1">>},
      {id,<<"eae578b3">>},
      {status,running},
      {local_connection,<<"<xivo-2@localhost.1795598384.780.0>">>},
      {uri,<<"amqp://127.10.2.1">>},
      {timestamp,{{2026,11,25},{9,19,51}}}]],
    [[{vhost,<<"/">>},
      {component,<<"federation-upstream">>},
      {name,<<"xivo-1">>},
      {value,
          [{<<"max-hops">>,1},
           {<<"uri">>,<<"amqp://xivo:s3cret@127.10.2.1">>}]}]],
    [[{vhost,<<"/">>},
      {name,<<"federate-xivo">>},
      {pattern,<<"xivo">>},
      {'apply-to',<<"exchanges">>},
      {definition,[{<<"federation-upstream-set">>,<<"all">>}]},
      {priority,1}]],
    [rabbitmq_federation]}
"""
UNDEF = "{'EXIT',{undef,[{rabbit_policy,list,[<<47>>],[]}]}}"
NOPROC = "{'EXIT',{noproc,{gen_server,call,[rabbit_federation_status,status,infinity]}}}"
PARAMS_JSON = ('[\n{"component":"federation-upstream","name":"xivo-1",'
               '"value":"{\\"max-hops\\":1,\\"uri\\":\\"amqp://xivo:s3cret@127.10.2.1\\"}"}\n]\n')
POLICIES_TEXT = '/\tfederate-xivo\txivo\texchanges\t{"federation-upstream-set":"all"}\t1\n'
FAKE = """#!/bin/sh
# A stand-in for rabbitmqctl / rabbitmq-plugins: logs its arguments, answers from files beside it.
D=$(dirname "$0"); T=$(basename "$0")
echo "$T $*" >> "$D/calls"
case "$*" in
  eval*) K=eval;; *list_parameters*--formatter*) K=params-json;; *list_parameters*) K=params;;
  *list_policies*--formatter*) K=policies-json;; *list_policies*) K=policies;; list*) K=plugins;; *) K=other;;
esac
[ -f "$D/$K.sleep" ] && sleep "$(cat "$D/$K.sleep")"
[ -f "$D/$K.out" ] && cat "$D/$K.out"
[ -f "$D/$K.err" ] && cat "$D/$K.err" >&2
exit "$(cat "$D/$K.rc" 2>/dev/null || echo 0)"
"""


class Fake:
    def __init__(self, folder: Path) -> None:
        self.dir = folder
        for tool in ("rabbitmqctl", "rabbitmq-plugins"):
            (folder / tool).write_text(FAKE)
            (folder / tool).chmod(0o755)

    def answer(self, kind: str, out: str = "", rc: int = 0, err: str = "", sleep: float = 0) -> None:
        (self.dir / f"{kind}.out").write_text(out)
        (self.dir / f"{kind}.rc").write_text(str(rc))
        (self.dir / f"{kind}.err").write_text(err)
        if sleep:
            (self.dir / f"{kind}.sleep").write_text(str(sleep))

    def calls(self) -> list[str]:
        path = self.dir / "calls"
        return path.read_text().splitlines() if path.exists() else []


def xivo(name: str, address: str, *, ctl: tuple[str, ...] | None = None, **rabbit) -> Xivo:
    access = RabbitMQAccess(password=Secret("s3cret"), **rabbit)
    return Xivo(name, address, rabbitmq=access, on_box=OnBoxAccess(rabbitmqctl=ctl) if ctl else None)


def probes_for(*xivos: Xivo, seconds: float = 10, timeout: float = 2) -> Probes:
    pairs = tuple(Pair(a, b) for a in xivos for b in xivos if a is not b)
    return Probes(Topology("t", Path("t.yml"), xivos, pairs, probe_timeout=timeout), Deadline(seconds))


@pytest.fixture
def fake(tmp_path):
    return Fake(tmp_path)


def test_one_rabbitmqctl_call_reads_links_upstreams_and_policies(fake):
    fake.answer("eval", COMBINED)
    x2 = xivo("xivo-2", "127.10.2.2", ctl=(str(fake.dir / "rabbitmqctl"),))
    rabbit = probes_for(x2).rabbitmq
    rabbit.prefetch([x2])
    assert rabbit.source(x2) == "rabbitmqctl on xivo-2"
    assert [link["status"] for link in rabbit.federation_links(x2)] == ["running"]
    assert rabbit.upstreams(x2)["xivo-1"]["uri"] == "amqp://xivo:***@127.10.2.1"
    assert rabbit.policies(x2)[0]["definition"] == {"federation-upstream-set": "all"}
    assert rabbit.node_time(x2) == "2026-11-25 09:22:30" and rabbit.federation_plugin(x2) == "running"
    assert len(fake.calls()) == 1 and fake.calls()[0].startswith("rabbitmqctl eval {xivo_doctor, ")
    assert "s3cret" not in repr(rabbit.upstreams(x2))


def test_parts_an_older_rabbitmq_lacks_fall_back_to_the_cli_commands(fake):
    fake.answer("eval", COMBINED[:COMBINED.index("    [[{vhost")] + f"    {UNDEF},\n    {UNDEF},\n    {UNDEF}}}\n")
    fake.answer("params-json", PARAMS_JSON)
    fake.answer("policies-json", "Error: invalid option --formatter\n", rc=64)
    fake.answer("policies", POLICIES_TEXT)
    x2 = xivo("xivo-2", "127.10.2.2", ctl=(str(fake.dir / "rabbitmqctl"),))
    rabbit = probes_for(x2).rabbitmq
    assert rabbit.upstreams(x2)["xivo-1"]["max-hops"] == 1
    assert rabbit.policies(x2)[0]["name"] == "federate-xivo"
    assert fake.calls()[1:] == ["rabbitmqctl -q list_parameters -p / --formatter json",
                                "rabbitmqctl -q list_policies -p / --formatter json",
                                "rabbitmqctl -q list_policies -p /"]


@pytest.mark.parametrize(("enabled", "state"), [("[rabbitmq_federation]", "enabled, not running"),
                                                ("[]", "not enabled")])
def test_plugin_off_is_told_from_enabled_plugins(fake, enabled, state):
    fake.answer("eval", COMBINED.replace(COMBINED[COMBINED.index("[[{exchange"):COMBINED.index("    [[{vhost")],
                                         NOPROC + ",\n").replace("[rabbitmq_federation]}", enabled + "}"))
    x2 = xivo("xivo-2", "127.10.2.2", ctl=(str(fake.dir / "rabbitmqctl"),))
    rabbit = probes_for(x2).rabbitmq
    assert rabbit.federation_links(x2) is None and rabbit.federation_running(x2) is False
    assert rabbit.federation_plugin(x2) == state


def test_plugins_come_from_the_sibling_rabbitmq_plugins(fake):
    fake.answer("plugins", 'Listing plugins with pattern ".*" ...\nrabbitmq_federation\n')
    x2 = xivo("xivo-2", "127.10.2.2", ctl=("env", "A=1", str(fake.dir / "rabbitmqctl")))
    assert probes_for(x2).rabbitmq.plugins(x2) == {"rabbitmq_federation"}
    assert fake.calls() == ["rabbitmq-plugins list -e -m"]


def test_a_failing_rabbitmqctl_is_an_error_asked_once_and_never_shows_a_password(fake):
    fake.answer("eval", rc=69, err="Error:\nunable to perform an operation on node 'xivo-2@localhost' "
                                   "(upstream amqp://xivo:s3cret@127.10.2.1)\n")
    x2 = xivo("xivo-2", "127.10.2.2", ctl=(str(fake.dir / "rabbitmqctl"),))
    rabbit = probes_for(x2).rabbitmq
    for _ in range(2):
        with pytest.raises(ProbeError) as caught:
            rabbit.federation_links(x2)
        assert str(caught.value) == ("rabbitmqctl on xivo-2: exit 69: unable to perform an operation on node "
                                     "'xivo-2@localhost' (upstream amqp://xivo:***@127.10.2.1)")
    assert len(fake.calls()) == 1
    assert rabbit.federation_running(x2) is None  # a hint for other items: unknown, never raises


def test_unknown_output_is_an_error_not_a_guess(fake):
    fake.answer("eval", "Listing everything ...\nsomething else\n")
    x2 = xivo("xivo-2", "127.10.2.2", ctl=(str(fake.dir / "rabbitmqctl"),))
    with pytest.raises(ProbeError, match="cannot read the output of rabbitmqctl eval"):
        probes_for(x2).rabbitmq.federation_links(x2)


def test_a_hung_rabbitmqctl_ends_with_the_run_deadline(fake, own_peers):
    fake.answer("eval", COMBINED, sleep=30)
    x2 = xivo("xivo-2", "127.10.2.2", ctl=(str(fake.dir / "rabbitmqctl"),))
    started = time.monotonic()
    with pytest.raises(ProbeTimeout, match=r"timed out after 1 s \(the run's deadline, -t\)"):
        probes_for(x2, seconds=1).rabbitmq.federation_links(x2)
    assert time.monotonic() - started < 2


def test_a_missing_rabbitmqctl(tmp_path):
    x2 = xivo("xivo-2", "127.10.2.2", ctl=(str(tmp_path / "nowhere" / "rabbitmqctl"),))
    with pytest.raises(ProbeError, match=r"cannot run .*rabbitmqctl: No such file or directory"):
        probes_for(x2).rabbitmq.federation_links(x2)


# -- management API (stub) -------------------------------------------------------------------------

API = {
    "/api/federation-links/%2F": [{"node": "rabbit@xivo-2", "exchange": "xivo", "upstream_exchange": "xivo",
                                   "type": "exchange", "vhost": "/", "upstream": "xivo-1", "status": "error",
                                   "error": "econnrefused", "uri": "amqp://127.10.2.1",
                                   "timestamp": "2026-11-25 7:58:18"}],
    "/api/parameters/federation-upstream/%2F": [{"vhost": "/", "component": "federation-upstream", "name": "xivo-1",
                                                 "value": {"uri": "amqp://xivo:s3cret@127.10.2.1", "max-hops": 1}}],
    "/api/policies/%2F": [{"vhost": "/", "name": "federate-xivo", "pattern": "xivo", "apply-to": "exchanges",
                           "definition": {"federation-upstream-set": "all"}, "priority": 1}],
}


@pytest.fixture
def api():
    answers = dict(API)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.headers.get("Authorization") is None:
                self.send_response(401)
                self.end_headers()
                return
            body = json.dumps(answers.get(self.path, {"error": "Object Not Found"})).encode()
            self.send_response(200 if self.path in answers else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], answers
    server.shutdown()
    server.server_close()


def test_management_api_as_a_remote_source(api):
    port, _ = api
    x2 = xivo("xivo-2", "127.0.0.1", management=RabbitMQManagement(port=port))
    rabbit = probes_for(x2).rabbitmq
    assert rabbit.source(x2) == f"RabbitMQ management API of xivo-2 (http://127.0.0.1:{port}/api)"
    [link] = rabbit.federation_links(x2)
    assert (link["status"], link["error"], link["upstream"]) == ("error", "econnrefused", "xivo-1")
    assert rabbit.upstreams(x2)["xivo-1"]["uri"] == "amqp://xivo:***@127.10.2.1"
    assert rabbit.policies(x2)[0]["priority"] == 1 and rabbit.node_time(x2) is None


def test_management_api_without_the_federation_management_plugin(api):
    port, answers = api
    del answers["/api/federation-links/%2F"]
    x2 = xivo("xivo-2", "127.0.0.1", management=RabbitMQManagement(port=port))
    with pytest.raises(ProbeError, match="rabbitmq_federation_management is not enabled"):
        probes_for(x2).rabbitmq.federation_links(x2)


# -- the end-to-end probe's failures (its success needs two federated brokers: the lab proves it) ----

def test_probe_names_the_amqp_endpoint_when_refused():
    x1, x2 = xivo("xivo-1", "127.10.201.1", port=15999), xivo("xivo-2", "127.10.201.2", port=15999)
    with pytest.raises(ProbeError) as caught:
        probes_for(x1, x2).rabbitmq.probe_delivery(x2, x1)
    assert str(caught.value) == "AMQP on xivo-2 (127.10.201.2:15999): connecting: connection refused"


def test_probe_times_out_on_a_black_hole():
    with ExitStack() as stack:
        hole = BlackHole("127.10.201.2", 15998)
        stack.callback(hole.close)
        x1, x2 = xivo("xivo-1", "127.10.201.1", port=15998), xivo("xivo-2", "127.10.201.2", port=15998)
        started = time.monotonic()
        with pytest.raises(ProbeTimeout, match=r"AMQP on xivo-2 \(127.10.201.2:15998\): connecting: timed out"):
            probes_for(x1, x2, timeout=0.5).rabbitmq.probe_delivery(x2, x1)
        assert time.monotonic() - started < 1.5
