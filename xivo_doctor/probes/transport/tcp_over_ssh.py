"""TCP connects tried on a XiVO over SSH: is a peer's port open, refused or filtered *from that XiVO*?

Place in the pipeline: acquisition, transport. A firewall may admit the doctor's host and drop the
other XiVO (or the reverse): what matters is what the XiVO that connects sees, as testinfra tests
reachability from the host under test. `Probes.tcp_states_from` sends ONE command per XiVO and per
run over its SSH connection (probes/transport/ssh.py): a bash loop that opens every asked
`/dev/tcp/ADDRESS/PORT` at once, each under coreutils' `timeout` (both on every XiVO, a Debian),
and prints one line per target: `ADDRESS:PORT EXIT MESSAGE`. Nothing is written on the XiVO: a
connection is opened and closed, as the doctor's own scan does.

Reading the outcome as the local scan does (tcp.py): exit 0 connected; 124 (`timeout` killed it)
no answer to the SYN, filtered; bash's "Connection refused" refused (RST, or a REJECT rule's ICMP
port-unreachable: Linux reports both as ECONNREFUSED); "No route to host" / "Network is
unreachable" unreachable; a name that does not resolve there, unresolved.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from xivo_doctor.foundation.errors import ProbeError
from xivo_doctor.probes.transport.tcp import OPEN, REFUSED, TIMEOUT, UNREACHABLE, UNRESOLVED, PortProbe, Target
from xivo_doctor.topology.model import Xivo

# $1: seconds per connect; then ADDRESS:PORT... Each target in its own subshell, all at once; as
# few processes as may be (each a fork on the XiVO, and in the lab on this host): bash 4.3 (Debian
# jessie, XiVO 16.x) has no $EPOCHREALTIME, so no time is measured there.
SCRIPT = r"""t=$1; shift
for target in "$@"; do
  (
    out=$(timeout "$t" bash -c 'exec 3<>"/dev/tcp/$0/$1"' "${target%:*}" "${target##*:}" 2>&1); rc=$?
    printf '%s %s %s\n' "$target" "$rc" "${out//$'\n'/ }"
  ) &
done
wait"""
SLACK = 3.0  # s for the SSH round trip and bash's start, beyond the connect timeout


def command(targets: Iterable[Target], timeout: float) -> list[str]:
    return ["bash", "-c", SCRIPT, "xivo-doctor-connect", str(max(1, math.ceil(timeout))),
            *(f"{address}:{port}" for address, port in targets)]


def scan_from(ssh: Any, xivo: Xivo, targets: Iterable[Target], timeout: float) -> dict[Target, PortProbe]:
    """Connect from `xivo` (over its SSH connection `ssh`, a transport.ssh.SshLinks) to every target.
    Raises ProbeError when SSH to it fails, or when its answer cannot be read."""
    wanted = list(dict.fromkeys(targets))
    if not wanted:
        return {}
    ran = ssh.run(xivo, command(wanted, timeout), what="TCP connects", timeout=timeout + SLACK)
    found: dict[Target, PortProbe] = {}
    for line in (ran.output or "").splitlines():
        parts = line.split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            continue
        address, _, port = parts[0].rpartition(":")
        if not port.isdigit():
            continue
        state, detail = _outcome(int(parts[1]), parts[2].strip() if len(parts) > 2 else "", timeout)
        found[(address, int(port))] = PortProbe(address, int(port), state, f"{detail} (from {xivo.name})", None)
    absent = [f"{a}:{p}" for a, p in wanted if (a, p) not in found]
    if absent:
        said = " ".join((ran.errors or ran.problem or "no output").split())[:200]
        raise ProbeError(f"TCP connects from {xivo.name} over SSH", f"no answer for {', '.join(absent)} ({said})")
    return {t: found[t] for t in wanted}


def _outcome(code: int, message: str, timeout: float) -> tuple[str, str]:
    if code == 0:
        return OPEN, "connected"
    if code == 124:
        return TIMEOUT, f"no answer within {max(1, math.ceil(timeout))} s (SYN dropped)"
    if "Connection refused" in message:
        return REFUSED, "connection refused"
    if "No route to host" in message or "Network is unreachable" in message:
        return UNREACHABLE, "no route to host" if "No route" in message else "network is unreachable"
    if "Name or service not known" in message or "not known" in message or "resolution" in message:
        return UNRESOLVED, message[:200]
    return UNREACHABLE, message[:200] or f"exit code {code}"
