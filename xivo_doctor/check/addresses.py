"""Comparing an address a daemon shows with the address the topology declares for a XiVO.

Place in the pipeline: the checks' API. The topology may name a XiVO by host name, while Consul's
WAN `Addr`, xivo-ctid's advertised address and most directory URIs carry IP addresses (and a URI
may carry a name): comparing them as text would fail a healthy XiVO. The declared name is resolved
once per run from the doctor's host, bounded by the deadline (`Probes.addresses`), and addresses
are compared; the evidence shows both.
"""

from __future__ import annotations

from typing import Any

from xivo_doctor.topology.model import Xivo


def declared_addresses(probes: Any, xivo: Xivo) -> frozenset[str]:
    """The declared address, and the IP addresses it stands for."""
    return frozenset({xivo.address.lower(), *probes.addresses(xivo.address)})


def is_address_of(probes: Any, seen: str | None, xivo: Xivo) -> bool:
    """Whether `seen` (an IP or a name, as a daemon shows it) is `xivo`'s declared address."""
    if not seen:
        return False
    mine = declared_addresses(probes, xivo)
    return seen.lower() in mine or bool(set(probes.addresses(seen)) & mine)


def shown(probes: Any, xivo: Xivo) -> str:
    """`name (1.2.3.4)` for a declared name, the address alone for an IP: what the evidence says."""
    resolved = [a for a in probes.addresses(xivo.address) if a != xivo.address]
    return f"{xivo.address} ({', '.join(resolved)})" if resolved else xivo.address
