"""`lab up`, `down`, `status`, `restart`: start the lab's processes, stop them by pid, report them.

Place in the lab: the orchestrator. It decides addresses and ports (stepping aside from ports
that services it did not start already hold; `layout`), writes each node's root (`nodes`), starts the
real RabbitMQ/PostgreSQL/serf and the stand-ins, applies the manual's procedure (federation commands,
`consul join -wan`), waits until the interconnection is healthy (those steps: `startup`), and writes
the topology. Each node runs one XiVO release (`--version V` for all, `V1,V2,...` one per node;
`releases`), fixed when the lab is created.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# `faults`, `shim` and the tests call some names imported here as `lifecycle.<name>` (node_versions;
# rabbit, dsn, rabbitmq_up, consul_up, daemons_up, wait_healthy; state's wait_port): keep them here.
from xivo_doctor.lab import mountns, netns, postgres, rabbitmq
from xivo_doctor.lab.bindir import write_shims
from xivo_doctor.lab.hosts import hosts_up
from xivo_doctor.lab.labtopology import auth_password, write_topology
from xivo_doctor.lab.layout import new_state, node_versions, versions_said
from xivo_doctor.lab.nodes import DEFAULT_VERSION, LabNode, write_root
from xivo_doctor.lab.startup import (
    LISTENING,
    Say,
    check_prerequisites,
    check_reachable_by_postgres,
    cluster_dir,
    consul_up,
    daemon_dsn,
    daemons_up,
    dsn,
    federate,
    postgres_up,
    rabbit,
    rabbitmq_up,
    wait_healthy,
)
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

SERVICES = ("rabbitmq", "consul", "xivo-confd", "webservices", "xivo-auth", "xivo-dird", "xivo-ctid")


def up(lab_dir: Path, *, count: int = 2, version: str | Sequence[str] = DEFAULT_VERSION, base: str | None = None,
       epmd_port: int = 4370, dist_base: int = 25700, own_network: bool = False, say: Say = print) -> LabState:
    """Start the lab (or what of it is down). Idempotent: running processes are left as they are.

    `version`: one release for every node, or one per node (a comma-separated text or a list); an
    existing lab keeps the releases it was created with. `own_network` (`--netns`): each node in its
    own network namespace on the lab's bridge (`netns`); an existing lab keeps what it was created with.
    `base`: the address before the first node's (default 127.10.0.0, or netns.DEFAULT_BASE)."""
    wanted = node_versions(version, count)
    check_prerequisites()
    began = time.monotonic()

    def step(text: str) -> None:
        say(f"[{time.monotonic() - began:5.1f} s] {text}")

    fresh = not (lab_dir / "lab.json").exists()
    base = base or (netns.DEFAULT_BASE if own_network else "127.10.0.0")
    if fresh and own_network:  # said before anything is written: a refused lab leaves nothing behind
        netns.network_of(base)
        netns.check_capability()
        netns.check_range(base, netns.lab_id(lab_dir))
    lab_dir.mkdir(parents=True, exist_ok=True)
    check_reachable_by_postgres(lab_dir.resolve())
    if fresh:
        state = new_state(lab_dir, count, version, base, step, epmd_port=epmd_port, dist_base=dist_base,
                          own_network=own_network)
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
    if state.net_id:
        base = str(ipaddress.IPv4Interface(state.nodes[0].address + "/24").network.network_address)
        if not fresh:  # a new lab was checked before its lab.json was written
            netns.check_capability()
            netns.check_range(base, state.net_id)
        netns.create(state.net_id, base, [n.address for n in state.nodes], lab_dir)
        step(f"network: {len(state.nodes)} namespaces on bridge {netns.bridge_name(state.net_id)} "
             f"({base}/24, this machine {netns.host_address(base)})")
    postgres_up(state, fresh, step)
    if not fresh:  # a lab made before the doctor's web services user was part of it gets it here
        for node in state.nodes:
            if postgres.add_missing_lookup_user(dsn(state, node), version=node.version,
                                                password=auth_password(lab_dir)):
                step(f"PostgreSQL: {node.name}: the doctor's web services user `{postgres.LOOKUP_USER['login']}` added")
    for node in state.nodes:
        if fresh or not state.root(node).exists():
            write_root(node, lab_dir, db_uri=daemon_dsn(state, node), netns=state.ns(node))
    if state.net_id:
        hosts_up(state, step)
    rabbitmq_up(state, step)
    consul_up(state, step)
    if fresh:
        federate(state, step)
    daemons_up(state, step)
    wait_healthy(state, step)
    write_topology(state)
    write_shims(state)
    state.save()
    step(f"lab up; topology in {lab_dir / 'topology.yml'}: xivo-doctor run -T {lab_dir / 'topology.yml'}")
    return state


def down(lab_dir: Path, say: Say = print) -> None:
    """Stop every process the lab started, by pid; with --netns, remove its namespaces, links and
    mounts too. Removes no file."""
    state = LabState.load(lab_dir)
    for service in ("sshd", "xivo-ctid", "xivo-dird", "xivo-auth", "webservices", "xivo-confd", "consul"):
        for node in state.nodes:
            stop_service(state, node, service)
    say("stand-ins stopped")
    with ThreadPoolExecutor(max_workers=len(state.nodes)) as pool:
        list(pool.map(lambda n: rabbitmq.stop(rabbit(state, n), state.dir), state.nodes))
    rabbitmq.stop_epmd(state.dir, state.epmd_port)
    say("RabbitMQ nodes and the lab's epmd stopped")
    for cluster in ([cluster_dir(state, n) for n in state.nodes] if state.net_id else [state.dir / "postgres"]):
        if (cluster / postgres.MARKER).exists():
            postgres.stop(cluster)
    say(f"PostgreSQL stopped; files kept in {lab_dir}")
    if state.net_id:  # last: what still runs inside is the lab's, and goes with its namespaces
        removed = netns.destroy(state.net_id) + mountns.destroy(state.net_id)
        say(f"network and files: {len(removed)} namespaces, links and mounts removed")


def status(lab_dir: Path) -> list[tuple[str, str, str, str, str]]:
    """(node, service, pid, address:port, up|down) for every process of the lab; the node column
    says its release (`xivo-1 16.13`, and what its version file says when an admin changed it)."""
    state = LabState.load(lab_dir)
    rows = []
    if not state.net_id:
        pg_pid = postgres.pid(state.dir / "postgres")
        pg_up = alive(pg_pid) and port_open(state.postgres_address, state.postgres_port)
        rows.append(("lab", "postgresql", str(pg_pid or "-"), f"{state.postgres_address}:{state.postgres_port}",
                     "up" if pg_up else "down"))
    ports = {"consul": 8500, "xivo-ctid": 9495, "xivo-confd": 9486, "sshd": 22, **LISTENING}
    for node in state.nodes:
        try:
            written = (state.root(node) / "usr/share/xivo/XIVO-VERSION").read_text().strip()
        except OSError:
            written = "no version file"
        shown = f"{node.name} {node.version}" + (f" (XIVO-VERSION: {written})" if written != node.version else "")
        if state.net_id:  # its own cluster on its own 127.0.0.1: seen here through the cluster's socket
            pg_pid = postgres.pid(cluster_dir(state, node))
            socket_there = (cluster_dir(state, node) / "sock" / ".s.PGSQL.5432").exists()
            rows.append((shown, "postgresql", str(pg_pid or "-"), "127.0.0.1:5432",
                         "up" if alive(pg_pid) and socket_there else "down"))
        for service in (*SERVICES, "sshd") if state.net_id else SERVICES:
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
        # (a node on its own network: `stop` waited for its processes, nothing else binds there)
        end = time.monotonic() + (0 if state.net_id else 15)
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
        elif service in LISTENING:  # xivo-dird has read its configuration once it listens
            wait_port(node.address, LISTENING[service], 20, f"{service} stand-in of {name}")
    else:
        raise LabError(f"unknown service {service!r}; one of: rabbitmq, {', '.join(STANDINS)}")
    say(f"{name}: {service} restarted")
