"""Each lab node as a host of its own: a network namespace, an `eth0` on the lab's bridge, its own loopback.

Place in the lab: `lifecycle.up --netns` calls `create` before anything starts and `down` calls
`destroy` after every process stopped; every process of a node is started through `enter(ns)`
(`nsenter --net=...`, which execs the command, so the pid the lab records is the daemon's own).
Inside a node's namespace, `0.0.0.0` means all of the node's interfaces, `127.0.0.1` is the node,
a connection from a peer arrives from the peer's address, and `iptables` filters for that node only.

The addresses: one /24 per lab inside 198.18.0.0/15, the block RFC 2544 sets aside for network
benchmarks, which no real network uses by default (docs/lab.md). Nodes are .1, .2, ... and the
machine itself is .254 on the bridge (each node has its own PostgreSQL, on its own 127.0.0.1).
The nodes have no default route: an answer to anything outside the /24 has nowhere to go, so
nothing of the lab is reachable from outside the machine, even where it forwards packets.

Names derive from a lab id (6 hex digits of the lab directory's path, kept in lab.json), so that a
`down` after a `kill -9` of `up` halfway finds every namespace and link by name: `xdl<id>` the
bridge, `xdl<id>-<n>` node n's namespace, `xdl<id>v<n>` the host end of its veth pair.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from xivo_doctor.lab.errors import LabError

RANGE = ipaddress.IPv4Network("198.18.0.0/15")  # RFC 2544: benchmarking, never routed by default
DEFAULT_BASE = "198.18.0.0"
HOST_SUFFIX = 254  # the machine's own address on the bridge
NETNS_DIR = Path("/run/netns")
ALIAS_PREFIX = "xivo-doctor lab "  # the bridge's alias: this, then the lab directory


def lab_id(lab_dir: Path) -> str:
    return hashlib.sha1(str(Path(lab_dir).resolve()).encode()).hexdigest()[:6]


def bridge_name(net_id: str) -> str:
    return f"xdl{net_id}"


def ns_name(net_id: str, index: int) -> str:
    return f"xdl{net_id}-{index}"


def veth_name(net_id: str, index: int) -> str:
    return f"xdl{net_id}v{index}"  # at most 12 characters: a Linux interface name holds 15


def enter(ns: str, mount_ns: Path | None = None, uts_ns: Path | None = None) -> list[str]:
    """argv prefix running a command in network namespace `ns` (and the node's mount and hostname
    namespaces, `mountns`)."""
    return ["nsenter", f"--net={NETNS_DIR / ns}", *([f"--mount={mount_ns}"] if mount_ns else []),
            *([f"--uts={uts_ns}"] if uts_ns else []), "--"]


def inside(ns: str) -> bool:
    """This process already runs in namespace `ns` (a shell or a shim on that node)."""
    return in_namespace(NETNS_DIR / ns)


def in_namespace(path: Path | str) -> bool:
    """This process runs in the network namespace bound at `path` (/run/netns/<name>)."""
    try:
        return os.stat("/proc/self/ns/net").st_ino == os.stat(path).st_ino
    except OSError:
        return False


def network_of(base: str) -> ipaddress.IPv4Network:
    """The lab's /24 from `--base`; refused in one line outside 198.18.0.0/15 or not on a /24."""
    try:
        net = ipaddress.IPv4Network(f"{base}/24")
    except ValueError:
        raise LabError(f"--base {base}: with --netns give the first address of a /24 in {RANGE} "
                       f"(e.g. {DEFAULT_BASE})") from None
    if not net.subnet_of(RANGE):
        raise LabError(f"--base {base}: with --netns the lab's addresses stay in {RANGE} (RFC 2544, never routed"
                       f" by default); e.g. --base {DEFAULT_BASE}")
    return net


def host_address(base: str) -> str:
    return str(network_of(base).network_address + HOST_SUFFIX)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and done.returncode:
        raise LabError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")
    return done


def check_capability() -> None:
    """Creating namespaces needs root with CAP_SYS_ADMIN and CAP_NET_ADMIN: try, leave nothing."""
    try:
        done = subprocess.run(["unshare", "--net", "--", "ip", "link", "set", "lo", "up"],
                              capture_output=True, text=True, timeout=10)
    except FileNotFoundError as exc:
        raise LabError(f"cannot create network namespaces: {exc.filename} is missing; run ./install-deps.sh") from None
    if done.returncode:
        why = (done.stderr.strip().splitlines() or ["refused"])[-1]
        raise LabError(f"cannot create network namespaces here ({why}): `lab up` needs root with "
                       f"CAP_SYS_ADMIN and CAP_NET_ADMIN (in a container: --privileged, or --cap-add both), or "
                       f"`lab up --no-netns` for nodes that share this host's network")


def _routes() -> list[dict]:
    return json.loads(_ip("-j", "-4", "route", "show", "table", "all").stdout or "[]")


def _route_over(base: str, net_id: str) -> dict | None:
    """The route of this machine that covers `base`'s /24 (other than this lab's bridge), if any."""
    net = network_of(base)
    for route in _routes():
        dst = route.get("dst", "")
        if dst in ("default", "") or route.get("dev") == bridge_name(net_id) or route.get("type") in ("broadcast",):
            continue
        with contextlib.suppress(ValueError):
            if ipaddress.IPv4Network(dst if "/" in dst else f"{dst}/32", strict=False).overlaps(net):
                return route
    return None


def routed_elsewhere(base: str, net_id: str = "") -> str:
    """What already routes `base`'s /24 on this machine (other than this lab's bridge), or "" if nothing does."""
    route = _route_over(base, net_id)
    if route is None:
        return ""
    how = f"dev {route['dev']}" if route.get("dev") else route.get("type", "a route")
    return f"{how} {route['dst']}"


def check_range(base: str, net_id: str) -> None:
    """Refuse, in one line, a /24 that this machine already routes (other than through this lab's bridge)."""
    route = _route_over(base, net_id)
    if route is None:
        return
    dev = route.get("dev", "")
    owner = _lab_of(dev) if dev.startswith(bridge_name("")) else ""
    # A lab left by a killed run keeps its bridge: name it and the command that removes it.
    remedy = (f"`xivo-doctor lab down --dir {owner}` removes that lab, or choose another --base in {RANGE}"
              if owner else f"choose another --base in {RANGE}")
    whose = f", the xivo-doctor lab in {owner}" if owner else ""
    raise LabError(f"{network_of(base)} is already routed on this machine ({routed_elsewhere(base, net_id)}{whose}):"
                   f" the lab will not shadow it; {remedy}")


def _lab_of(bridge: str) -> str:
    """The lab directory a lab's bridge was made for (its alias, set by `create`), or ""."""
    shown = _ip("-j", "link", "show", "dev", bridge, check=False).stdout or "[]"
    with contextlib.suppress(ValueError, IndexError, AttributeError):
        alias = json.loads(shown)[0].get("ifalias", "")
        return alias.removeprefix(ALIAS_PREFIX) if alias.startswith(ALIAS_PREFIX) else ""
    return ""


def _links() -> set[str]:
    return {link["ifname"] for link in json.loads(_ip("-j", "link", "show").stdout or "[]")}


def namespaces() -> set[str]:
    return {line.split()[0] for line in _ip("netns", "list").stdout.splitlines() if line.strip()}


def create(net_id: str, base: str, addresses: list[str], lab_dir: Path | None = None) -> None:
    """The bridge with the machine's .254, then one namespace per node with eth0 on it; idempotent."""
    net = network_of(base)
    bridge, links, existing = bridge_name(net_id), _links(), namespaces()
    if bridge not in links:
        _ip("link", "add", bridge, "type", "bridge")
        _ip("addr", "add", f"{host_address(base)}/{net.prefixlen}", "dev", bridge)
    if lab_dir is not None:  # so that a later `lab up` refused on this range can name the lab to take down
        _ip("link", "set", "dev", bridge, "alias", f"{ALIAS_PREFIX}{Path(lab_dir).resolve()}"[:255], check=False)
    _ip("link", "set", bridge, "up")
    for index, address in enumerate(addresses, 1):
        ns, veth = ns_name(net_id, index), veth_name(net_id, index)
        if ns not in existing:
            _ip("netns", "add", ns)
        if veth not in links:
            _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("-n", ns, "addr", "add", f"{address}/{net.prefixlen}", "dev", "eth0")
        _ip("link", "set", veth, "master", bridge, "up")
        _ip("-n", ns, "link", "set", "eth0", "up")
        _ip("-n", ns, "link", "set", "lo", "up")


def _kill_inside(ns: str) -> None:
    """Whatever still runs in one of the lab's namespaces is the lab's: after a kill -9 of `up`, say."""
    pids = [int(p) for p in _ip("netns", "pids", ns, check=False).stdout.split() if p.isdigit()]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = [pid for pid in pids if _running(pid)]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        end = time.monotonic() + 3
        while time.monotonic() < end and any(_running(pid) for pid in pids):
            time.sleep(0.05)


def _running(pid: int) -> bool:
    """Alive and not a zombie (reaped here when it is this process's child)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def destroy(net_id: str) -> list[str]:
    """Remove every namespace and link named after `net_id` (and stop what runs inside); what was removed."""
    removed = []
    prefix = bridge_name(net_id)
    for ns in sorted(n for n in namespaces() if n.startswith(prefix + "-")):
        _kill_inside(ns)
        _ip("netns", "del", ns, check=False)
        removed.append(ns)
    for link in sorted(link for link in _links() if link == prefix or link.startswith(prefix + "v")):
        _ip("link", "del", link, check=False)  # a veth's host end outlives its namespace for a moment
        removed.append(link)
    return removed
