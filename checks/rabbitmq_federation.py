"""rabbitmq-federation: each downstream XiVO receives the `xivo` exchange of each upstream XiVO.

Item `xivo-2->xivo-1`: downstream xivo-2 pulls from upstream xivo-1. On the downstream, as the
manual's "Configuring RabbitMQ" leaves it (XIVO-FACTS §5), it verifies:
1. the rabbitmq_federation plugin runs;
2. a federation-upstream points at the upstream's declared address and AMQP port (a hostname must
   resolve to it); max-hops is shown (the manual sets 1);
3. the policy that wins on exchange `xivo` federates it from that upstream (the manual's
   `federate-xivo`: pattern 'xivo', an unanchored regex, apply-to exchanges, upstream set all);
   RabbitMQ applies one policy per exchange, the highest priority one;
4. the link of that upstream on `xivo` is `running`; error states in plain words (LAB-NOTES §A.5);
5. end to end, messages published on the upstream reach a temporary queue on the downstream
   (LAB-NOTES §A.6), unless --passive. Without rabbitmqctl or the management API for the
   downstream, this probe alone is run (it still proves delivery).

Warm-up: each downstream's state is read as the run starts (rabbitmqctl boots an Erlang VM per
call, LAB-NOTES §A.3), then the probe message of each pair this check would probe is sent.
Metric: the probe's latency per pair (`fed_<down>_from_<up>`, judged against -w/-c).
The same on every release 15.19-16.15: docs/xivo-behaviour.md "rabbitmq-federation".
"""

from __future__ import annotations

import math
from datetime import datetime

from xivo_doctor.check import Evidence, LinkKind, Metric, Outcome, WarmUp, cannot_check_from_here, check
from xivo_doctor.checks._rabbitmq_federation_fix import federation_fix
from xivo_doctor.foundation.errors import ProbeError
from xivo_doctor.foundation.netaddr import is_ip_address
from xivo_doctor.probes.rabbitmq import federation_status as fs

EXCHANGE = "xivo"
STARTING_TOO_LONG_S = 10  # a link connects in ~15 ms (LAB-NOTES §A.6); a dropped SYN keeps it starting 60 s
UNREACHABLE = "unreachable or silent: a firewall drops {port}, or something else answers there"
# What a link error means, most specific first (LAB-NOTES §A.5, XIVO-FACTS §8).
LINK_ERRORS = (
    (("auth_failure", "ACCESS_REFUSED"), "auth", "wrong user or password in the upstream URI"),
    (("not_allowed", "access to vhost"), "permissions", "the URI's user has no permission on the upstream's vhost"),
    (("econnrefused",), "refused", "the upstream refuses AMQP (RabbitMQ down or not listening on that address)"),
    (("unknown_host", "nxdomain"), "unknown-host", "the URI's host does not resolve"),
    (("timeout", "timed_out", "etimedout", "ehostunreach", "enetunreach"), "unreachable", UNREACHABLE),
)


def warm_up(w: WarmUp) -> None:
    """Read every downstream's state at once (rabbitmqctl per XiVO, concurrently), then send the probe
    of each pair the check would probe; pika is imported meanwhile, not when the probes are sent."""
    w.chain([lambda: _warm_probes(w)])
    if not w.probes.passive and w.pairs:
        w.chain([_load_pika])


def _load_pika() -> None:
    from xivo_doctor.probes.rabbitmq import amqp_probe  # noqa: F401  (pika: ~0.1 s of imports)


def _warm_probes(w: WarmUp) -> None:
    rabbit = w.probes.rabbitmq
    downstreams = {p.downstream.name for p in w.topology.pairs}
    # The states that decide: each pair's downstream, and its upstream's when it is a downstream too.
    states = {x.name: x for p in w.pairs for x in (p.downstream, p.upstream) if x.name in downstreams}
    for x in states.values():
        w.chain([lambda x=x: rabbit.federation_running(x)])
    for pair in w.pairs:  # in order: a downstream's probes leave as soon as the states they need are read
        if _would_probe(w.probes, w.topology, pair):
            w.submit(lambda pair=pair: rabbit.probe_delivery(pair.downstream, pair.upstream))


def _would_probe(probes, topology, pair) -> bool:
    """Whether the check sends the probe: it judges the downstream's configuration and link first
    (the same functions, on evidence thrown away) and leaves an upstream whose plugin is off alone.
    A state that cannot be read: no (the check reports it, and sends nothing either)."""
    down, up, rabbit = pair.downstream, pair.upstream, probes.rabbitmq
    if probes.passive or not (down.rabbitmq.password and up.rabbitmq.password):
        return False
    seen = Evidence()
    try:
        if rabbit.source(down) is not None and (_configuration(down, up, probes, seen)
                                                or _link(down, seen["upstream"], rabbit, seen)):
            return False
    except ProbeError:
        return False
    reported = any(p.downstream.name == up.name for p in topology.pairs)
    return not (reported and rabbit.federation_running(up) is False)


def latency(o: Outcome) -> list[Metric]:
    """The probe message's latency, `U` when none crossed (failed, blocked, --passive)."""
    ms = o.evidence.get("latency_ms")
    known = isinstance(ms, int | float) and not isinstance(ms, bool) and math.isfinite(ms)
    return [Metric(f"fed_{o.xivo}_from_{o.peer}", float(ms) if known else None, "ms", minimum=0, thresholds=True,
                   words=f"federation latency {o.xivo}←{o.peer}")]


@check(
    id="rabbitmq-federation",
    title="RabbitMQ federation brings each peer's messages",
    why="presence and status changes of the other XiVO's users reach this XiVO only through the "
    "federated `xivo` exchange; without it remote contacts show no status",
    fix=federation_fix,
    doc="contact_and_presence_sharing.rst#setup-message-federation",
    depends_on=["port-reachable:amqp"],
    warm_up=warm_up,
    warm_up_order=10,  # first: each downstream's rabbitmqctl boots an Erlang VM, the longest read of a run
    metrics=latency,
    # Messages flow upstream -> downstream (XIVO-FACTS §5: the downstream opens the link).
    link=LinkKind("federation", "RabbitMQ federation", "an arrow per upstream → downstream: the way messages "
                  "flow", directed=True, flows_to_xivo=True, order=10, carries="messages",
                  roles=("downstream", "upstream")),
)
def test_rabbitmq_federation(pair, topology, xivos, probes, evidence):
    down, up = pair.downstream, pair.upstream
    rabbit = probes.rabbitmq
    source = rabbit.source(down)
    can_probe = not probes.passive and down.rabbitmq.password and up.rabbitmq.password
    if source is None:
        if not can_probe:
            cannot_check_from_here(
                f"the federation of {down.name} is read with rabbitmqctl on it (give on_box.rabbitmqctl, or run "
                f"xivo-doctor on {down.name}) or its management API (rabbitmq.management); the probe message "
                "that proves delivery " + ("is off with --passive" if probes.passive else
                                           "needs rabbitmq.password for both XiVOs in the topology"))
        evidence["source"] = "the probe message only"
        evidence["not checked"] = (f"plugin, upstream, policy and link state of {down.name}: give on_box.rabbitmqctl "
                                   f"(or run xivo-doctor on {down.name}) or rabbitmq.management")
    else:
        rabbit.prefetch([x for x in xivos if any(p.downstream.name == x.name for p in topology.pairs)])
        evidence["source"] = source
        problems = _configuration(down, up, probes, evidence)
        if not problems:
            problems = _link(down, evidence["upstream"], rabbit, evidence)
        evidence["problems"] = [step for step, _ in problems]
        assert not problems, "; ".join(text for _, text in problems)
    _upstream_plugin_off(pair, topology, rabbit)
    link_words = f"link from {evidence['upstream']!r} running" if source else "settings not read from here"
    if not can_probe:
        evidence["probe"] = "probe skipped: --passive" if probes.passive else (
            "not run: the topology gives no rabbitmq.password for " + (down.name if not down.rabbitmq.password
                                                                        else up.name))
        evidence.summary = f"{link_words} ({evidence['probe']})"
        return
    result = rabbit.probe_delivery(down, up)
    evidence["probe"] = result
    evidence["latency_ms"] = result["latency_ms"]
    evidence["problems"] = [] if result["delivered"] else ["delivery"]
    evidence.summary = f"a probe message crossed in {result['latency_ms']} ms ({link_words})"
    assert result["delivered"], (
        f"no probe message published on {up.name}'s exchange {EXCHANGE} reached {down.name} within "
        f"{result['waited_s']} s ({result['published']} published)"
        + (" although the link says running" if source else
           f"; the federation configuration of {down.name} could not be read from here"))


def _upstream_plugin_off(pair, topology, rabbit) -> None:
    """With the federation plugin off on the upstream, publishing on its `xivo` exchange fails
    (406: the exchange type x-federation-upstream of the links' leftover exchanges is gone, seen
    in the lab), so nothing can cross. That root cause is the upstream's own item as a downstream:
    reported there once, this item cannot be judged until it is fixed."""
    up = pair.upstream
    reporter = next((p for p in topology.pairs if p.downstream.name == up.name), None)
    if reporter is not None and rabbit.federation_running(up) is False:
        cannot_check_from_here(
            f"the federation plugin does not run on {up.name}, so its exchange {EXCHANGE} takes no message: "
            f"rabbitmq-federation[{reporter.id}] reports it; check again once it is fixed")


def _configuration(down, up, probes, evidence) -> list[tuple[str, str]]:
    """Plugin, upstream, policy: every problem at once (one run shows all that needs fixing)."""
    problems, rabbit = [], probes.rabbitmq
    plugin = rabbit.federation_plugin(down)
    evidence["plugin"] = f"rabbitmq_federation {plugin}"
    if plugin != "running":
        restart = plugin == "enabled, not running"
        problems.append(("restart" if restart else "plugin", f"the rabbitmq_federation plugin is {plugin} on "
                         f"{down.name}" + (" (RabbitMQ was not restarted since it was enabled)" if restart else "")))
    upstreams = rabbit.upstreams(down)
    evidence["upstreams"] = {n: {"uri": u["uri"], "max-hops": u["max-hops"]} for n, u in upstreams.items()}
    name, problem = _upstream(down, up, upstreams, probes, evidence)
    evidence["upstream"] = name
    if problem:
        problems.append(problem)
    problem = _policy(down, name, rabbit.policies(down), evidence)
    if problem:
        problems.append(problem)
    return problems


def _upstream(down, up, upstreams, probes, evidence) -> tuple[str, tuple[str, str] | None]:
    exact, wrong_port, notes = [], [], []
    for name, u in upstreams.items():
        for uri in u["uris"]:
            same, note = _same_host(uri["host"], up.address, probes.rabbitmq)
            notes += [note] if note else []
            port = uri["port"] or fs.DEFAULT_PORTS.get(uri["scheme"])
            if same and port == up.rabbitmq.port:
                exact.append((name, uri))
            elif same:
                wrong_port.append((name, uri, port))
    if notes:
        evidence["uri hosts"] = f"resolved from {probes.vantage}: " + "; ".join(dict.fromkeys(notes))
    if exact:
        name, uri = exact[0]
        evidence["uri_user"] = uri["user"]
        hops = upstreams[name]["max-hops"]
        evidence["max-hops"] = hops if hops is not None else "not set (RabbitMQ's default: 1)"
        if hops not in (None, 1):
            evidence["max-hops note"] = (f"{hops}, where the manual sets 1: in a full mesh of three or more XiVOs "
                                         "a message may then arrive more than once")
        if len(exact) > 1:
            evidence["duplicates"] = f"{len(exact)} upstreams point at {up.name}: " + ", ".join(n for n, _ in exact)
        return name, None
    if wrong_port:
        name, uri, port = wrong_port[0]
        return name, ("upstream-port", f"upstream {name!r} on {down.name} ({uri['masked']}) uses port {port}, but "
                                       f"{up.name}'s AMQP port is {up.rabbitmq.port}")
    where = f"{up.name}'s address {up.address}" + (f" port {up.rabbitmq.port}" if up.rabbitmq.port != 5672 else "")
    if up.name in upstreams:
        uri = upstreams[up.name]["uri"]
        return up.name, ("upstream-address", f"upstream {up.name!r} on {down.name} points at {uri}, not at {where}"
                                             + (f" ({evidence['uri hosts']})" if notes else ""))
    have = ", ".join(f"{n} -> {u['uri']}" for n, u in upstreams.items()) or "none"
    return up.name, ("upstream-missing", f"{down.name} has no federation-upstream pointing at {where} "
                                         f"(its upstreams: {have})")


def _same_host(host, address, rabbit) -> tuple[bool, str | None]:
    """Is `host` (from an upstream URI) the declared `address`? A name counts when it resolves to it."""
    if host is None:
        return False, None
    if host.lower() == address.lower():
        return True, None
    if is_ip_address(host) and is_ip_address(address):
        return False, None
    mine = set(rabbit.resolve(host)) if not is_ip_address(host) else {host}
    theirs = set(rabbit.resolve(address)) if not is_ip_address(address) else {address}
    if not mine:
        return False, f"{host} does not resolve"
    return bool(mine & theirs), f"{host} -> {', '.join(sorted(mine))}"


def _policy(down, upstream, policies, evidence) -> tuple[str, str] | None:
    vhost = down.rabbitmq.vhost
    applying = [p for p in policies if p["vhost"] in (None, vhost) and p["apply-to"] in ("exchanges", "all")
                and fs.pattern_matches(p["pattern"], EXCHANGE)]
    if not applying:
        have = ", ".join(f"{p['name']} (pattern {p['pattern']!r}, apply-to {p['apply-to']})" for p in policies)
        return "policy", (f"no policy applies to exchange {EXCHANGE} on {down.name} (its policies: {have or 'none'})")
    federating = [p for p in applying if _federates(p)]
    # RabbitMQ applies the one matching policy of highest priority.
    winner = max(applying, key=lambda p: (p["priority"], bool(_federates(p))))
    evidence["policy"] = {k: winner[k] for k in ("name", "pattern", "apply-to", "definition", "priority")}
    if not _federates(winner):
        if federating:
            return "policy-shadowed", (
                f"policy {winner['name']!r} (priority {winner['priority']}) also matches exchange {EXCHANGE} and "
                f"wins over {federating[0]['name']!r} (priority {federating[0]['priority']}), but does not federate: "
                "RabbitMQ applies one policy per exchange")
        return "policy", f"policy {winner['name']!r} wins on exchange {EXCHANGE} of {down.name} but does not federate"
    named = winner["definition"].get("federation-upstream")
    if named is not None and named != upstream:
        return "policy", (f"policy {winner['name']!r} federates exchange {EXCHANGE} from upstream {named!r} only, "
                          f"not {upstream!r}")
    if winner["definition"].get("federation-upstream-set", "all") != "all":
        evidence["policy note"] = "a named upstream set: its members are not read here; the link state tells"
    return None


def _federates(policy) -> bool:
    return bool({"federation-upstream-set", "federation-upstream"} & set(policy["definition"]))


def _link(down, upstream, rabbit, evidence) -> list[tuple[str, str]]:
    links = rabbit.federation_links(down) or []
    link = next((x for x in links if x["upstream"] == upstream and x["exchange"] == EXCHANGE
                 and x["vhost"] in (None, down.rabbitmq.vhost)), None)
    evidence["link"] = link
    if link is None:
        return [("link-missing", f"no federation link from upstream {upstream!r} on exchange {EXCHANGE} of "
                                 f"{down.name}: does the exchange exist there? (XiVO's daemons declare it at start)")]
    uri = rabbit.upstreams(down)[upstream]["uris"][0]
    port = uri["port"] or fs.DEFAULT_PORTS.get(uri["scheme"], 5672)
    if link["status"] == "running":
        return []
    if link["status"] == "starting":
        age = _age_s(link["timestamp"], rabbit.node_time(down))
        since = f"for {age} s" if age is not None else f"since {link['timestamp']}"
        if age is not None and age < STARTING_TOO_LONG_S:
            return [("starting", f"the link from {upstream!r} is still starting ({since}): run again in a minute; "
                                 "if it stays so: " + UNREACHABLE.format(port=port))]
        return [("unreachable", f"the link from {upstream!r} has been starting {since}: "
                                + UNREACHABLE.format(port=port))]
    error = link["error"] or "no reason given"
    for markers, step, words in LINK_ERRORS:
        if any(m.lower() in error.lower() for m in markers):
            if step == "auth" and not uri["user"]:  # no user in the URI: guest, refused from afar (XIVO-FACTS §5)
                words += " (the URI names no user, so RabbitMQ tries guest, which logs in from localhost only)"
            return [(step, f"the link from {upstream!r} is in error ({error}): {words.format(port=port)}")]
    return [("link-error", f"the link from {upstream!r} is {link['status']} ({error})")]


def _age_s(stamp, now) -> int | None:
    if not stamp or not now:
        return None
    fmt = "%Y-%m-%d %H:%M:%S"
    return int((datetime.strptime(now, fmt) - datetime.strptime(stamp, fmt)).total_seconds())
