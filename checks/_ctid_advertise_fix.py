"""ctid-advertise's fix: the manual's xivo-ctid and Consul steps of the XiVO's own release.

Place in the pipeline: the checks; a private part of the ctid-advertise check (checks/ctid_advertise.py;
a file named `_*.py` is not a check of its own). The commands follow the manual page of the release
at hand (docs/xivo-behaviour.md "ctid-advertise"): 15.19-15.20 advertise the address as written with
the `check_url` xivo-ctid's HTTP check calls; 16.01 and later write `auto` and the interface.
"""

from __future__ import annotations

from xivo_doctor.check import FixContext, FixSteps
from xivo_doctor.foundation.results import FixOut
from xivo_doctor.xivo.manual import ctid_interconnection_yml as interconnection_yml
from xivo_doctor.xivo.releases import release

SERVICE = "xivo-ctid"
TOKEN = 'X-Consul-Token: $(cat /var/lib/consul/master_token)'
ANONYMOUS_READS_XIVO = '{"ID":"anonymous","Rules":"{\\"service\\":{\\"xivo-\\":{\\"Policy\\":\\"read\\"}}}"}'


def ctid_fix(ctx: FixContext) -> FixOut:
    xivo = ctx.xivo
    assert xivo is not None
    version = ctx.version
    rel = release(version)
    steps = FixSteps()
    for problem in ctx.evidence.get("problems", []):
        kind = problem["kind"]
        if kind in ("not-registered", "address"):
            auto = rel is None or rel.advertise_auto
            steps.add(
                f"on {xivo.name}, create /etc/xivo-ctid/conf.d/interconnection.yml as the manual says"
                + (f", naming the interface that bears {xivo.address} (the first command shows it"
                   + (")" if rel is None or rel.auto_fallback else
                      "; before 16.06 xivo-ctid does not start when that interface is missing)")
                   if auto else f", with its address {xivo.address} written out (no `auto` before 16.01)")
                + ", then restart xivo-ctid and check its registration",
                [*([f"ip -o -4 addr show to {xivo.address}"] if auto else []),
                 interconnection_yml(xivo.address, version),
                 "service xivo-ctid restart",
                 # what the manual's `consul-cli agent-services --ssl --ssl-verify=false` lists
                 f'curl -k -H "{TOKEN}" https://localhost:8500/v1/agent/services'])
        elif kind == "port":
            steps.add(f"xivo-ctid on {xivo.name} advertises another port than its REST port {xivo.ctid.port}: "
                      "remove the service_discovery.advertise_port override and restart it",
                      ["grep -rn -e advertise_port -e 'port:' /etc/xivo-ctid/", "service xivo-ctid restart"])
        elif kind == "health" and problem.get("check") == "http":
            steps.add(f"the HTTP check Consul runs for xivo-ctid on {xivo.name} fails: point check_url at an "
                      f"address where xivo-ctid answers (http://{xivo.address}:9495/0.1/infos, xivo-ctid listening "
                      "on 0.0.0.0) and restart xivo-ctid; Consul runs it every 5 minutes",
                      [interconnection_yml(xivo.address, version), "service xivo-ctid restart"])
        elif kind == "health":
            steps.add(f"xivo-ctid on {xivo.name} no longer refreshes its TTL check (after `ttl pass failed` it "
                      "never registers again): restart it and read its log ('ttl pass failed', 'registration "
                      "failed')", ["service xivo-ctid restart", "tail -n 50 /var/log/xivo-ctid.log"])
        elif kind == "stale":
            steps.add(f"remove the stale xivo-ctid registration(s) from {xivo.name}'s Consul (the manual asks to "
                      "remove consul data holding an old UUID; wiping consul's data as in Configure Consul also "
                      "does it)",
                      [f'curl -k -X PUT -H "{TOKEN}" https://localhost:8500/v1/agent/service/deregister/{sid}'
                       for sid in problem.get("ids", [])])
        elif kind == "peer-blind":
            steps.add(*_peer_blind(xivo, rel, problem, str(ctx.evidence.get("datacenter") or "")))
    return steps.out()


def _peer_blind(xivo, rel, problem: dict, dc: str) -> tuple[str, list[str]]:
    peer = problem.get("peer")
    if problem.get("lookup") == "health":
        check = f"curl -k 'https://localhost:8500/v1/health/service/{SERVICE}?dc={dc}&passing=1'  # on {peer}"
    else:
        check = f"curl -k 'https://localhost:8500/v1/catalog/service/{SERVICE}?dc={dc}'  # on {peer}"
    if rel is not None and rel.anonymous_reads_xivo:
        # 16.15's consul package runs consul-customize-anonymous-token at every consul start (its
        # ExecStartPost, failures ignored); the 0.7.0~xivo3 one was broken (wazo-consul-config 5ae736b,
        # fixed by fe727aa): send the request the fixed script sends, which a restart then keeps doing.
        return (f"{peer}'s xivo-ctid looks up {xivo.name}'s datacenter without a token, and {xivo.name}'s "
                "anonymous token cannot read xivo-* services although 16.15's consul-customize-anonymous-token "
                "should grant it at every consul start: grant it as the script does (check that the script's "
                "Rules read {\"service\": {\"xivo-\": {\"Policy\": \"read\"}}}; the 0.7.0~xivo3 one was broken), "
                "then check what the peer sees",
                [f'curl -k -X PUT -H "{TOKEN}" https://localhost:8500/v1/acl/update -d \'{ANONYMOUS_READS_XIVO}\'',
                 "grep body= /usr/bin/consul-customize-anonymous-token", check])
    header = TOKEN if rel is None or rel.consul_filters_discovery else None  # Consul 0.5.2: ?token= only
    update = ("curl -k -X PUT " + (f'-H "{header}" https://localhost:8500/v1/acl/update' if header else
                                   "'https://localhost:8500/v1/acl/update?token='$(cat /var/lib/consul/master_token)")
              + f" -d '{ANONYMOUS_READS_XIVO}'")
    return (f"{peer}'s xivo-ctid looks up {xivo.name}'s datacenter without a token: let the anonymous token of "
            f"{xivo.name}'s Consul read xivo-* services (what XiVO 16.15 does at every consul start), then check "
            "what the peer sees", [update, check])
