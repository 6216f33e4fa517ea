"""Firewall faults: an `iptables` rule on a node with its own network, as an admin types it on a XiVO.

Place in the lab: beside `faults` (which dispatches `lab break firewall-drop PORT` here and calls
`flush` from `heal`). The most common real interconnection fault is a firewall: a DROP rule makes
a peer's connection time out (the packet is never answered), a REJECT rule answers with ICMP port
unreachable, which the peer's kernel reports as "connection refused". Either for every peer or,
with `--from PEER`, for that peer only (`-s PEER`). Rules only make sense where the node has its
own network stack (`lab up`, the default); on a lab sharing this host's network they are refused.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from xivo_doctor.lab.nodes import LabNode
from xivo_doctor.lab.state import LabError, LabState

Say = Callable[[str], None]
IPTABLES = "/usr/sbin/iptables"
# fault -> (iptables target, what it does)
FAULTS = {
    "firewall-drop": ("DROP", "an iptables rule on the node drops TCP to PORT (for everyone, or --from PEER only): "
                              "connections time out"),
    "firewall-reject": ("REJECT", "an iptables rule on the node rejects TCP to PORT (for everyone, or --from PEER "
                                  "only): connections are refused"),
}


def rule(port: int, target: str, source: str | None) -> list[str]:
    """The rule an admin inserts: `iptables -I INPUT -p tcp --dport PORT [-s PEER] -j DROP|REJECT`."""
    return ["-I", "INPUT", "-p", "tcp", "--dport", str(port), *(["-s", source] if source else []), "-j", target]


def _iptables(state: LabState, node: LabNode, *args: str) -> str:
    done = subprocess.run([*state.enter(node), IPTABLES, *args], capture_output=True, text=True, timeout=30)
    if done.returncode:
        raise LabError(f"{node.name}: iptables {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def apply(state: LabState, name: str, node: LabNode, port: int | None, source: LabNode | None, say: Say) -> None:
    if not state.net_id:
        raise LabError(f"{name} needs nodes with their own network: this lab's share this host's"
                       f" (`xivo-doctor lab down`, remove {state.dir}, `xivo-doctor lab up`)")
    if port is None or not 0 < port < 65536:
        raise LabError(f"{name} needs a TCP port: `xivo-doctor lab break {name} 9486 [--node xivo-2] [--from xivo-1]`")
    if source is node:
        raise LabError(f"--from {node.name}: give a peer of {node.name}, not the node itself")
    inserted = rule(port, FAULTS[name][0], source.address if source else None)
    _iptables(state, node, *inserted)
    say(f"{node.name}: iptables {' '.join(inserted)}")


def flush(state: LabState, node: LabNode) -> None:
    """Heal: the node's INPUT chain back to XiVO's default (empty, policy ACCEPT)."""
    if state.net_id:
        _iptables(state, node, "-F", "INPUT")
        _iptables(state, node, "-P", "INPUT", "ACCEPT")
