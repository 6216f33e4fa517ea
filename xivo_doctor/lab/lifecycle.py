"""`lab up`, `down`, `status`, `restart`: start the lab's processes, stop them by pid, report them.

Place in the lab: the orchestrator. It decides addresses and ports (stepping aside from ports
that services it did not start already hold), writes each node's root (`nodes`), starts the real
RabbitMQ/PostgreSQL/serf and the stand-ins, applies the manual's procedure (federation commands,
`consul join -wan`), waits until the interconnection is healthy, and writes the topology. Each node
runs one XiVO release (`--version V` for all, `V1,V2,...` one per node; `releases`), fixed when the
lab is created.
"""

from __future__ import annotations

import ipaddress
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from xivo_doctor.lab import postgres, rabbitmq, releases
from xivo_doctor.lab.bindir import write_shims
from xivo_doctor.lab.consul import client as consul_client
from xivo_doctor.lab.labtopology import write_topology
from xivo_doctor.lab.nodes import DEFAULT_VERSION, LabNode, write_root
from xivo_doctor.lab.state import (
    STANDINS,
    LabError,
    LabState,
    alive,
    bindable,
    port_open,
    read_pid,
    start_standin,
    stop_service,
    wait_port,
)

Say = Callable[[str], None]
SERVICES = ("rabbitmq", "consul", "xivo-confd", "webservices", "xivo-ctid")
NEEDED = {"rabbitmq-server": "/usr/lib/rabbitmq/bin/rabbitmq-server", "serf": "serf", "openssl": "openssl",
          "postgresql": "/usr/lib/postgresql/15/bin/initdb"}


def rabbit(state: LabState, node: LabNode) -> rabbitmq.RabbitNode:
    return rabbitmq.RabbitNode(name=node.name, index=node.index, address=node.address, root=state.root(node),
                               amqp_port=node.amqp_port, dist_port=state.dist_base + node.index,
                               epmd_port=state.epmd_port)


def dsn(state: LabState, node: LabNode) -> str:
    return (state.dir / "nodes" / node.name / "database.dsn").read_text().strip()


def _check_prerequisites() -> None:
    missing = [pkg for pkg, binary in NEEDED.items() if shutil.which(binary) is None]
    if missing:
        raise LabError(f"missing {', '.join(missing)}; run ./install-deps.sh (it installs them with apt-get)")


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
              epmd_port: int = 4370, dist_base: int = 25700) -> LabState:
    if not 2 <= count <= 50:
        raise LabError("--nodes must be between 2 and 50")
    versions = node_versions(version, count)
    start = ipaddress.IPv4Address(base)
    addresses = [str(start + i) for i in range(1, count + 1)]
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


def up(lab_dir: Path, *, count: int = 2, version: str | Sequence[str] = DEFAULT_VERSION, base: str = "127.10.0.0",
       epmd_port: int = 4370, dist_base: int = 25700, say: Say = print) -> LabState:
    """Start the lab (or what of it is down). Idempotent: running processes are left as they are.

    `version`: one release for every node, or one per node (a comma-separated text or a list); an
    existing lab keeps the releases it was created with."""
    wanted = node_versions(version, count)
    _check_prerequisites()
    began = time.monotonic()

    def step(text: str) -> None:
        say(f"[{time.monotonic() - began:5.1f} s] {text}")

    lab_dir.mkdir(parents=True, exist_ok=True)
    fresh = not (lab_dir / "lab.json").exists()
    if fresh:
        state = new_state(lab_dir, count, version, base, step, epmd_port=epmd_port, dist_base=dist_base)
        state.save()
    else:
        state = LabState.load(lab_dir)
        if len(state.nodes) != count:
            raise LabError(f"{lab_dir} holds a lab of {len(state.nodes)} nodes; `xivo-doctor lab down` then remove "
                           f"{lab_dir}, or use --dir for another lab")
    if not fresh and wanted != [n.version for n in state.nodes]:
        step(f"this lab was created with {versions_said(state)} and keeps it (for others: `xivo-doctor lab down`,"
             f" remove {lab_dir}, `xivo-doctor lab up --version ...`)")
    step(f"lab of {len(state.nodes)} nodes in {lab_dir}: "
         + ", ".join(f"{n.name} XiVO {n.version}" for n in state.nodes))
    _postgres_up(state, fresh, step)
    for node in state.nodes:
        if fresh or not state.root(node).exists():
            write_root(node, lab_dir, db_uri=dsn(state, node))
    rabbitmq_up(state, step)
    consul_up(state, step)
    if fresh:
        _federate(state, step)
    daemons_up(state, step)
    wait_healthy(state, step)
    write_topology(state)
    write_shims(state)
    state.save()
    step(f"lab up; topology in {lab_dir / 'topology.yml'}: xivo-doctor run -T {lab_dir / 'topology.yml'}")
    return state


def _postgres_up(state: LabState, fresh: bool, step: Say) -> None:
    pg_dir = state.dir / "postgres"
    if not (pg_dir / "data" / "PG_VERSION").exists():
        step(f"PostgreSQL: new cluster on {state.postgres_address}:{state.postgres_port}")
        postgres.init(pg_dir, state.postgres_address, state.postgres_port)
    elif not postgres.is_running(pg_dir):
        step("PostgreSQL: starting")
        postgres.start(pg_dir)
    for node in state.nodes:
        dsn_file = state.dir / "nodes" / node.name / "database.dsn"
        if not dsn_file.exists():
            dsn_file.parent.mkdir(parents=True, exist_ok=True)
            uri = postgres.create_node_database(pg_dir, node.index, version=node.version)
            dsn_file.write_text(uri + "\n")
            dsn_file.chmod(0o600)
            peers = [(p.name, p.address, p.version) for p in state.nodes if p is not node]
            postgres.fill_node(uri, uuid=node.uuid, node_address=node.address, peers=peers, version=node.version)
    step(f"PostgreSQL: {len(state.nodes)} `asterisk` databases ready")


def rabbitmq_up(state: LabState, step: Say) -> None:
    rabbitmq.start_epmd(state.dir, state.epmd_port)
    down = [n for n in state.nodes if not rabbitmq.is_running(rabbit(state, n))]
    if not down:
        return
    step(f"RabbitMQ: starting {len(down)} node(s) ({', '.join(n.name for n in down)})")
    for node in down:
        rabbitmq.write_config(rabbit(state, node))
        rabbitmq.write_ctl_wrappers(rabbit(state, node), state.dir)
        rabbitmq.start(rabbit(state, node), state.dir)
    with ThreadPoolExecutor(max_workers=len(down)) as pool:
        waits = list(pool.map(lambda n: rabbitmq.wait_ready(rabbit(state, n), 120), down))
    step(f"RabbitMQ: {len(down)} node(s) accept AMQP (slowest {max(waits):.1f} s)")


def consul_up(state: LabState, step: Say) -> None:
    started = [n for n in state.nodes if _ensure(state, n, "consul")]
    for node in started:
        wait_port(node.address, 8500, 20, f"consul stand-in of {node.name}")
    if started:
        step(f"Consul: stand-in and serf agent up on {len(started)} node(s)")


def _federate(state: LabState, step: Say) -> None:
    """The manual's procedure, as an admin runs it on each XiVO: RabbitMQ user, upstream per peer
    and policy; then `consul join -wan` (one join suffices, members propagate)."""
    first = state.nodes[0]
    for node in state.nodes[1:]:
        consul_client.join_wan(node, first.address)
    step(f"Consul: every node joined the WAN pool through {first.name}")

    def setup(node: LabNode) -> None:
        peers = [rabbit(state, p) for p in state.nodes if p is not node]
        rabbitmq.setup_federation(rabbit(state, node), state.dir, peers)

    with ThreadPoolExecutor(max_workers=len(state.nodes)) as pool:
        list(pool.map(setup, state.nodes))
    step("RabbitMQ: xivo user, one federation-upstream per peer and the federate-xivo policy set")


def daemons_up(state: LabState, step: Say) -> None:
    for service in ("xivo-confd", "webservices", "xivo-ctid"):
        started = [n for n in state.nodes if _ensure(state, n, service)]
        if started:
            step(f"{service}: started on {len(started)} node(s)")


def _ensure(state: LabState, node: LabNode, service: str) -> bool:
    """Start the stand-in unless it runs; True when it was started."""
    if alive(read_pid(state.pidfile(node, service))):
        return False
    start_standin(state, node, service)
    return True


def wait_healthy(state: LabState, step: Say, timeout: float = 60.0) -> None:
    """Until every ctid is registered in its consul and every federation link runs."""
    end = time.monotonic() + timeout
    pending = {n.name for n in state.nodes}
    while pending and time.monotonic() < end:
        for node in state.nodes:
            if node.name in pending and consul_client.ctid_registered(node) and _links_running(state, node):
                pending.discard(node.name)
        if pending:
            time.sleep(0.3)
    if pending:
        raise LabError(f"not healthy after {timeout:g} s: {', '.join(sorted(pending))} (see `xivo-doctor lab status`"
                       f" and the logs under {state.dir}/nodes/<name>/root/var/log)")
    step("healthy: every xivo-ctid registered, every federation link running")


def _links_running(state: LabState, node: LabNode) -> bool:
    status = rabbitmq.federation_status(rabbit(state, node), state.dir)
    return status.count("{status,running}") >= len(state.nodes) - 1


def down(lab_dir: Path, say: Say = print) -> None:
    """Stop every process the lab started, by pid. Removes no file."""
    state = LabState.load(lab_dir)
    for service in ("xivo-ctid", "webservices", "xivo-confd", "consul"):
        for node in state.nodes:
            stop_service(state, node, service)
    say("stand-ins stopped")
    with ThreadPoolExecutor(max_workers=len(state.nodes)) as pool:
        list(pool.map(lambda n: rabbitmq.stop(rabbit(state, n), state.dir), state.nodes))
    rabbitmq.stop_epmd(state.dir, state.epmd_port)
    say("RabbitMQ nodes and the lab's epmd stopped")
    postgres.stop(state.dir / "postgres")
    say(f"PostgreSQL stopped; files kept in {lab_dir}")


def status(lab_dir: Path) -> list[tuple[str, str, str, str, str]]:
    """(node, service, pid, address:port, up|down) for every process of the lab; the node column
    says its release (`xivo-1 16.13`, and what its version file says when an admin changed it)."""
    state = LabState.load(lab_dir)
    rows = []
    pg_pid = postgres.pid(state.dir / "postgres")
    pg_up = alive(pg_pid) and port_open(state.postgres_address, state.postgres_port)
    rows.append(("lab", "postgresql", str(pg_pid or "-"), f"{state.postgres_address}:{state.postgres_port}",
                 "up" if pg_up else "down"))
    ports = {"consul": 8500, "xivo-ctid": 9495, "xivo-confd": 9486}
    for node in state.nodes:
        try:
            written = (state.root(node) / "usr/share/xivo/XIVO-VERSION").read_text().strip()
        except OSError:
            written = "no version file"
        shown = f"{node.name} {node.version}" + (f" (XIVO-VERSION: {written})" if written != node.version else "")
        for service in SERVICES:
            pid = read_pid(state.pidfile(node, service))
            port = {"rabbitmq": node.amqp_port, "webservices": node.https_port}.get(service, ports.get(service, 0))
            listening = port_open(node.address, port)
            rows.append((shown, service, str(pid or "-"), f"{node.address}:{port}",
                         "up" if alive(pid) and listening else ("running, not listening" if alive(pid) else "down")))
    return rows


def restart_rabbitmq(state: LabState, node: LabNode, attempts: int = 2) -> None:
    """Stop, wait until the old VM has let go of the node's ports, start, wait until it serves.

    Under load a new node started the instant the old one's launcher exits can find its
    distribution port or name still held and halt; so wait for the ports, and retry once."""
    target = rabbit(state, node)
    for attempt in range(attempts):
        rabbitmq.stop(target, state.dir)
        end = time.monotonic() + 15
        while time.monotonic() < end and not (bindable("127.0.0.1", target.dist_port)
                                              and bindable(node.address, node.amqp_port)):
            time.sleep(0.1)
        rabbitmq.start(target, state.dir)
        try:
            rabbitmq.wait_ready(target, 120)
            return
        except RuntimeError:
            if attempt == attempts - 1:
                raise
            time.sleep(1)


def restart(lab_dir: Path, name: str, service: str, say: Say = print) -> None:
    """Stop and start one service of one node, as `systemctl restart` would."""
    state = LabState.load(lab_dir)
    node = state.node(name)
    if service == "rabbitmq":
        restart_rabbitmq(state, node)
    elif service in STANDINS:
        stop_service(state, node, service)
        start_standin(state, node, service)
        if service == "consul":
            wait_port(node.address, 8500, 20, f"consul stand-in of {name}")
    else:
        raise LabError(f"unknown service {service!r}; one of: rabbitmq, {', '.join(STANDINS)}")
    say(f"{name}: {service} restarted")
