"""Where a new lab's nodes go: their releases, addresses and ports.

Place in the lab: `lifecycle.up` calls `new_state` once, when it creates a lab (an existing lab keeps
what `lab.json` says). Nodes get consecutive addresses after `--base` (PostgreSQL the `.254` one) and
one XiVO release each (`--version V` for all, `V1,V2,...` one per node; `releases`). The ports a
XiVO uses are the same on every node; for AMQP and nginx the lab steps aside from ports that services
it did not start already hold (and says so), the others must be free on the lab addresses. Nodes on
their own network (`--netns`, `netns`) have every port to themselves and the machine is `.254`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from pathlib import Path

from xivo_doctor.lab import netns, releases
from xivo_doctor.lab.nodes import LabNode
from xivo_doctor.lab.state import LabError, LabState, bindable

Say = Callable[[str], None]


def _pick_port(addresses: list[str], preferred: int, fallbacks: list[int], what: str, notes: list[str]) -> int:
    """The port every node uses for `what`: `preferred` unless a service the lab did not start
    holds it (on 0.0.0.0, say); never touch that service, step aside and say so."""
    for port in [preferred, *fallbacks]:
        if all(bindable(a, port) for a in addresses):
            if port != preferred:
                notes.append(f"port {preferred} ({what}) is taken on this machine by a service the lab did not "
                             f"start; left it alone, the lab nodes use {port} instead (written in topology.yml)")
            return port
    raise LabError(f"no free port for {what} (tried {preferred}, {', '.join(map(str, fallbacks))})")


def node_versions(version: str | Sequence[str], count: int) -> list[str]:
    """The release of each of `count` nodes from `--version` (one for all, or one per node)."""
    try:
        return releases.parse_versions(version if isinstance(version, str) else list(version), count)
    except ValueError as exc:
        raise LabError(str(exc)) from None


def new_state(lab_dir: Path, count: int, version: str | Sequence[str], base: str, say: Say, *,
              epmd_port: int = 4370, dist_base: int = 25700, own_network: bool = False) -> LabState:
    if not 2 <= count <= 50:
        raise LabError("--nodes must be between 2 and 50")
    versions = node_versions(version, count)
    start = ipaddress.IPv4Address(base)
    addresses = [str(start + i) for i in range(1, count + 1)]
    if own_network:  # each node has all of its ports: XiVO's own, nothing to step aside from
        nodes = [LabNode.new(i, a, v) for i, (a, v) in enumerate(zip(addresses, versions, strict=True), 1)]
        return LabState(dir=lab_dir, nodes=nodes, postgres_address=netns.host_address(base), epmd_port=epmd_port,
                        dist_base=dist_base, net_id=netns.lab_id(lab_dir))
    notes: list[str] = []
    amqp = _pick_port(addresses, 5672, [5673, 5674, 15672 + 1], "RabbitMQ AMQP", notes)
    http = _pick_port(addresses, 80, [8080, 8081], "nginx HTTP", notes)
    https = _pick_port(addresses, 443, [8443, 8444], "nginx HTTPS", notes)
    for port, what in ((8500, "Consul API"), (8300, "Consul RPC"), (8302, "Serf WAN"), (9486, "xivo-confd"),
                       (9495, "xivo-ctid"), (7373, "serf RPC")):
        if not all(bindable(a, port) for a in addresses):
            raise LabError(f"port {port} ({what}) is taken on the lab addresses by a service the lab did not start;"
                           f" stop it or choose other addresses with --base")
    nodes = [LabNode.new(i, a, v, amqp_port=amqp, http_port=http, https_port=https)
             for i, (a, v) in enumerate(zip(addresses, versions, strict=True), 1)]
    pg_address = str(start + 254)
    for note in notes:
        say(note)
    return LabState(dir=lab_dir, nodes=nodes, postgres_address=pg_address, notes=notes, epmd_port=epmd_port,
                    dist_base=dist_base)


def versions_said(state: LabState) -> str:
    """`XiVO 16.13` when every node runs it, else `xivo-1 XiVO 16.13, xivo-2 XiVO 16.15`."""
    if len({n.version for n in state.nodes}) == 1:
        return f"XiVO {state.nodes[0].version}"
    return ", ".join(f"{n.name} XiVO {n.version}" for n in state.nodes)
