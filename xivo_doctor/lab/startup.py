"""Starting the lab's processes: PostgreSQL, RabbitMQ, the Consul stand-ins, the manual's federation, the daemons.

Place in the lab: the steps of `lifecycle.up` (and of the faults that restart a part of the lab,
`faults`). Each step starts what is down and leaves running processes alone: the real
PostgreSQL (one `asterisk` database per node, filled as that node's release has it), RabbitMQ
nodes and serf (through the Consul stand-in), then the stand-ins (`state.start_standin`). On a new
lab `federate` applies the manual's procedure (federation commands, `consul join -wan`);
`wait_healthy` waits until the interconnection is healthy. `rabbit` and `dsn` say how the lab
reaches a node's RabbitMQ and database.
"""

from __future__ import annotations

import grp
import pwd
import shutil
import stat
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from xivo_doctor.lab import postgres, rabbitmq
from xivo_doctor.lab.consul import client as consul_client
from xivo_doctor.lab.labtopology import auth_password
from xivo_doctor.lab.nodes import LabNode
from xivo_doctor.lab.state import LabError, LabState, alive, port_open, read_pid, start_standin, wait_port

Say = Callable[[str], None]
NEEDED = {"rabbitmq-server": "/usr/lib/rabbitmq/bin/rabbitmq-server", "serf": "serf", "openssl": "openssl",
          "postgresql": "/usr/lib/postgresql/15/bin/initdb"}
# The daemons, in the order they start: xivo-auth before xivo-dird, which asks it about every token (and
# the peers' xivo-confd and json.php, but only on a lookup); xivo-ctid last.
DAEMONS = ("xivo-confd", "webservices", "xivo-auth", "xivo-dird", "xivo-ctid")
# what a node's health waits for besides ctid and federation: these listening (HTTPS, on the node's address)
LISTENING = {"xivo-auth": 9497, "xivo-dird": 9489}


def rabbit(state: LabState, node: LabNode) -> rabbitmq.RabbitNode:
    return rabbitmq.RabbitNode(name=node.name, index=node.index, address=node.address, root=state.root(node),
                               amqp_port=node.amqp_port, dist_port=state.dist_base + node.index,
                               epmd_port=state.epmd_port, enter=tuple(state.reach(node)))


def dsn(state: LabState, node: LabNode) -> str:
    return (state.dir / "nodes" / node.name / "database.dsn").read_text().strip()


def check_prerequisites() -> None:
    missing = [pkg for pkg, binary in NEEDED.items() if shutil.which(binary) is None]
    if missing:
        raise LabError(f"missing {', '.join(missing)}; run ./install-deps.sh (it installs them with apt-get)")


def check_reachable_by_postgres(lab_dir: Path) -> None:
    """The lab's PostgreSQL cluster lives under `lab_dir` and runs as the postgres user, who must
    traverse every folder down to it (a `mktemp -d` folder is 0700): said before anything starts."""
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        return  # no postgresql installed: check_prerequisites says so
    groups = {user.pw_gid} | {g.gr_gid for g in grp.getgrall() if user.pw_name in g.gr_mem}
    blocking = []
    for folder in reversed([lab_dir, *lab_dir.parents]):
        mode = folder.stat()
        bit = (stat.S_IXUSR if mode.st_uid == user.pw_uid else stat.S_IXGRP if mode.st_gid in groups
               else stat.S_IXOTH)
        if not mode.st_mode & bit:
            blocking.append(f"{folder} (mode {stat.S_IMODE(mode.st_mode):04o})")
    if blocking:
        paths = " ".join(b.split(" (")[0] for b in blocking)
        raise LabError(f"the postgres user cannot traverse {', '.join(blocking)} to reach the lab's PostgreSQL under"
                       f" {lab_dir}: `chmod o+x {paths}`, or give --dir a folder it can reach"
                       f" (the default is /var/tmp/xivo-doctor-lab)")


def cluster_dir(state: LabState, node: LabNode) -> Path:
    """A node's own PostgreSQL cluster (nodes on their own network)."""
    return state.dir / "nodes" / node.name / "postgres"


def daemon_dsn(state: LabState, node: LabNode) -> str:
    """The `db_uri` of the node's daemons: its own localhost on its own network, else `dsn`."""
    return postgres.own_dsns(cluster_dir(state, node))[0] if state.net_id else dsn(state, node)


def own_postgres_up(state: LabState, step: Say) -> None:
    """One cluster per node, on the node's own 127.0.0.1:5432 (database and role `asterisk`, as on a XiVO);
    this machine reaches it through the cluster's socket (the DSN in database.dsn)."""
    new = [n for n in state.nodes if not (cluster_dir(state, n) / "data" / "PG_VERSION").exists()]

    secret = auth_password(state.dir)

    def make(node: LabNode) -> None:
        folder = cluster_dir(state, node)
        if (folder / postgres.MARKER).exists():  # a cluster half made (lab up killed): made again
            shutil.rmtree(folder)
        postgres.init(folder, "127.0.0.1", 5432, "127.0.0.1/32", enter=state.enter(node))
        postgres.create_node_database(folder, node.index, version=node.version, name="asterisk")
        uri = postgres.own_dsns(folder)[1]
        peers = [(p.name, p.address, p.version) for p in state.nodes if p is not node]
        postgres.fill_node(uri, uuid=node.uuid, node_address=node.address, peers=peers, version=node.version,
                           lookup_password=secret)
        dsn_file = state.dir / "nodes" / node.name / "database.dsn"
        dsn_file.write_text(uri + "\n")
        dsn_file.chmod(0o600)

    with ThreadPoolExecutor(max_workers=max(1, len(new))) as pool:
        list(pool.map(make, new))
    for node in state.nodes:
        if node not in new and not postgres.is_running(cluster_dir(state, node)):
            postgres.start(cluster_dir(state, node))
    step(f"PostgreSQL: {len(state.nodes)} clusters, one per node on its 127.0.0.1:5432 ({len(new)} new)")


def postgres_up(state: LabState, fresh: bool, step: Say) -> None:
    if state.net_id:
        own_postgres_up(state, step)
        return
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
            postgres.fill_node(uri, uuid=node.uuid, node_address=node.address, peers=peers, version=node.version,
                               lookup_password=auth_password(state.dir))
    step(f"PostgreSQL: {len(state.nodes)} `asterisk` databases ready")


def rabbitmq_up(state: LabState, step: Say) -> None:
    if not state.net_id:  # nodes sharing the host share the lab's epmd; on its own network a node's
        rabbitmq.start_epmd(state.dir, state.epmd_port)  # broker starts its own, as on a XiVO
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


def federate(state: LabState, step: Say) -> None:
    """The manual's procedure, as an admin runs it on each XiVO: RabbitMQ user, upstream per peer
    and policy; then `consul join -wan` (one join suffices, members propagate)."""
    first = state.nodes[0]
    for node in state.nodes[1:]:
        consul_client.join_wan(node, first.address)
    step(f"Consul: every node joined the WAN pool through {first.name}")

    def setup(node: LabNode) -> None:
        peers = [rabbit(state, p) for p in state.nodes if p is not node]
        rabbitmq.setup_federation(rabbit(state, node), state.dir, peers)
        rabbitmq.save_healthy(rabbit(state, node), state.dir, state.federation_record(node))

    with ThreadPoolExecutor(max_workers=len(state.nodes)) as pool:
        list(pool.map(setup, state.nodes))
    step("RabbitMQ: xivo user, one federation-upstream per peer and the federate-xivo policy set")


def daemons_up(state: LabState, step: Say) -> None:
    for service in DAEMONS:
        started = [n for n in state.nodes if _ensure(state, n, service)]
        if started:
            step(f"{service}: started on {len(started)} node(s)")


def _ensure(state: LabState, node: LabNode, service: str) -> bool:
    """Start the stand-in unless it runs; True when it was started."""
    if alive(read_pid(state.pidfile(node, service))):
        return False
    start_standin(state, node, service)
    return True


def wait_healthy(state: LabState, step: Say, timeout: float = 60.0,
                 links_seen_running: frozenset[str] = frozenset()) -> None:
    """Until every ctid is registered in its consul, every federation link runs and every xivo-confd,
    webservices, xivo-auth and xivo-dird listens. `links_seen_running`: the nodes whose links the caller
    has just seen all running (and has not touched since), whose rabbitmqctl need not be asked again."""
    end = time.monotonic() + timeout
    pending = {n.name for n in state.nodes}

    def healthy(node: LabNode) -> bool:
        return _listening(node) and consul_client.ctid_registered(node) and (
            node.name in links_seen_running or _links_running(state, node))

    # the nodes at once: each asks its rabbitmqctl, which boots an Erlang VM (~0.5 s a node; `heal`
    # and every fix of the fault matrix wait here)
    with ThreadPoolExecutor(max_workers=len(state.nodes)) as pool:
        while pending and time.monotonic() < end:
            waiting = [n for n in state.nodes if n.name in pending]
            for node, ok in zip(waiting, pool.map(healthy, waiting), strict=True):
                if ok:
                    pending.discard(node.name)
            if pending:
                time.sleep(0.3)
    if pending:
        what = "; ".join(f"{n.name}: {', '.join(_unhealthy(state, n)) or 'healthy now'}"
                         for n in state.nodes if n.name in pending)
        raise LabError(f"not healthy after {timeout:g} s: {what} (`xivo-doctor lab heal` restores the manual's"
                       f" interconnection; logs under {state.dir}/nodes/<name>/root/var/log)")
    step("healthy: every xivo-ctid registered, every federation link running, xivo-confd, webservices, xivo-auth"
         " and xivo-dird listening")


def _served(node: LabNode) -> dict[str, int]:
    """The stand-ins healthy means listening on the node's address (`lab status` asks the same): heal
    restarts confd and webservices too, and a test that reads them right after must find them up."""
    return {"xivo-confd": 9486, "webservices": node.https_port, **LISTENING}


def _listening(node: LabNode) -> bool:
    return all(port_open(node.address, port) for port in _served(node).values())


def _links_running(state: LabState, node: LabNode) -> bool:
    status = rabbitmq.federation_status(rabbit(state, node), state.dir)
    return status.count("{status,running}") >= len(state.nodes) - 1


def _unhealthy(state: LabState, node: LabNode) -> list[str]:
    """What keeps `node` from being healthy, service by service, in words an admin can act on."""
    reasons = []
    if not alive(read_pid(state.pidfile(node, "xivo-ctid"))):
        reasons.append("xivo-ctid is not running")
    elif not consul_client.ctid_registered(node):
        reasons.append(f"xivo-ctid is not registered in its Consul at {node.address}"
                       f" ({consul_client.ctid_addresses(node) or 'not registered at all'})")
    for service, port in _served(node).items():
        if not alive(read_pid(state.pidfile(node, service))):
            reasons.append(f"{service} is not running")
        elif not port_open(node.address, port):
            reasons.append(f"{service} is not listening on {node.address}:{port}")
    status = rabbitmq.federation_status(rabbit(state, node), state.dir)
    if "noproc" in status:
        reasons.append("RabbitMQ's federation plugin is not running")
    else:
        links = rabbitmq.link_states(status)
        for peer in state.nodes:
            if peer is not node and links.get(peer.name, "missing") != "running":
                reasons.append(f"RabbitMQ federation link from {peer.name} {links.get(peer.name, 'missing')}")
    return reasons
