"""Warm the run's cache in the background as soon as the run starts.

Place in the pipeline: acquisition. The slow reads (rabbitmqctl: an Erlang VM boot per call,
LAB-NOTES §A.3; Consul's HTTPS API: a TLS handshake per call; the on-box database) are started
here, one thread per XiVO and source, while pytest starts, collects and runs the fast checks.
A check then asks `Probes.cached` for the same key and either finds the answer or waits for the
fetch already under way (one lock per key): nothing is asked twice, and the checks conclude
exactly what they would without it. Failures are left in the cache (ProbeError) or dropped (any
other error: the check asks again and reports it itself). Only what the selected checks would
read is fetched: `nagios --check port-reachable` boots no Erlang VM.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence

from xivo_doctor.probes.session import Probes
from xivo_doctor.topology.model import Xivo

Task = Callable[[], object]


def start(probes: Probes, checks: Iterable[str], xivos: Sequence[Xivo]) -> list[threading.Thread]:
    """Start the background reads the checks `checks` (all when empty) will need for `xivos`."""
    wanted = set(checks)

    def on(check: str) -> bool:
        return not wanted or check in wanted

    topology = probes.topology
    chains: list[list[Task]] = []
    if on("rabbitmq-federation"):
        downstreams = {p.downstream.name for p in topology.pairs}
        rabbit = probes.rabbitmq
        chains += [[_bind(rabbit.federation_running, x)] for x in xivos if x.name in downstreams]
    if on("consul-wan") or on("ctid-advertise"):
        consul = probes.consul
        for x in xivos:
            chain = [_bind(consul.agent_self, x)]
            if on("consul-wan"):
                chain += [_bind(consul.leader, x), _bind(consul.wan_members, x), _bind(consul.datacenters, x)]
            if on("ctid-advertise"):
                chain += [_bind(probes.ctid.infos, x), _bind(consul.agent_services, x),
                          _bind(consul.agent_checks, x)]
            chains.append(chain)
    if on("uuid-unique") or on("directory-source"):
        onbox = probes.onbox
        chains += [[_bind(onbox.uuid_readings, x)] for x in topology.xivos if onbox.has_database(x)]
    threads = [threading.Thread(target=_run_chain, args=(chain,), name="prefetch", daemon=True) for chain in chains]
    for thread in threads:  # daemon: a read still hanging at the deadline never delays the exit
        thread.start()
    return threads


def _bind(method: Callable[[Xivo], object], xivo: Xivo) -> Task:
    return lambda: method(xivo)


def _run_chain(chain: list[Task]) -> None:
    for task in chain:
        try:
            task()
        except Exception:  # cached (ProbeError) or asked again by the check, which reports it
            continue
