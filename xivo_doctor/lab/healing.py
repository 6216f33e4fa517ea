"""`lab heal`: back to the manual's healthy interconnection, whatever a fault, a fix or a hand changed.

Place in the lab: after `faults` (which breaks), used by `xivo-doctor lab heal`, `lab up` on an existing
lab and the tests between faults. Tables and files are written back every time; a service is
restarted only where what it reads at start changed (RabbitMQ's federation commands: `rabbitmq.
restore_federation`; xivo-dird: `standins.dird_settings`), since each restart costs the fault matrix
about a second per heal. docs/lab.md "Heal".
"""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor

from xivo_doctor.lab import firewall, lifecycle, postgres, rabbitmq
from xivo_doctor.lab.consul import client as consul_client
from xivo_doctor.lab.faults import Say, sql
from xivo_doctor.lab.labtopology import auth_password
from xivo_doctor.lab.nodes import LabNode, write_root
from xivo_doctor.lab.standins import dird_config, dird_settings
from xivo_doctor.lab.standins.base import Node
from xivo_doctor.lab.state import LabState, stop_service


def heal(lab_dir, say: Say = print) -> None:
    """Back to the healthy interconnection: files, tables, RabbitMQ definitions, Consul membership."""
    state = LabState.load(lab_dir)
    stops: list[tuple[LabNode, str]] = []
    # ctid <= 16.01 reads `infos.uuid` at start (R1 §2); every dird keeps the peers' UUIDs it fetched
    changed_uuids = {node.name for node in state.nodes if _database_uuid(state, node) != node.uuid}
    for node in state.nodes:
        uri = lifecycle.dsn(state, node)
        changed_uuid = node.name in changed_uuids
        # a lab made before `ctidisplays`, `ctimain` and `ctireversedirectories` were part of the schema gets them here
        sql(state, node, "CREATE TABLE IF NOT EXISTS ctidisplays (id serial PRIMARY KEY, name varchar(50), "
                         "data text NOT NULL, deletable integer, description text); "
                         "CREATE TABLE IF NOT EXISTS ctimain (id serial PRIMARY KEY, ctis_active integer NOT NULL "
                         "DEFAULT 1, tlscertfile varchar(128), tlsprivkeyfile varchar(128), context_separation "
                         "integer, live_reload_conf integer); "
                         "CREATE TABLE IF NOT EXISTS ctireversedirectories (id serial PRIMARY KEY, directories text "
                         "NOT NULL)")
        sql(state, node, "TRUNCATE infos, accesswebservice, directories, ctidirectories, ctidirectoryfields, "
                         "cticontexts, ctidisplays, ctimain, ctireversedirectories, userfeatures, phonebook, "
                         "phonebooknumber, phonebookaddress RESTART IDENTITY CASCADE")
        peers = [(p.name, p.address, p.version) for p in state.nodes if p is not node]
        postgres.fill_node(uri, uuid=node.uuid, node_address=node.address, peers=peers, version=node.version,
                           lookup_password=auth_password(state.dir))
        firewall.flush(state, node)
        changed = write_root(node, state.dir, db_uri=lifecycle.daemon_dsn(state, node), netns=state.ns(node))
        if changed_uuid:
            changed.add("uuid")
        for service in ("xivo-confd", "webservices", "xivo-ctid", "consul"):
            # XiVO daemons read the UUID at start: a UUID change restarts them all
            if service in changed or ("uuid" in changed and service.startswith("xivo-")):
                stops.append((node, service))
        # xivo-dird reads its sources and profiles from the tables just written, only at start: restarted
        # unless what it read then is what they say now (dird_settings; about 1 s of each heal)
        if changed_uuids or "uuid" in changed or not _dird_loaded_now(state, node, uri):
            stops.append((node, "xivo-dird"))
    # all at once: a stand-in takes about 0.5 s to stop (its HTTP server's poll interval)
    if stops:
        with ThreadPoolExecutor(max_workers=len(stops)) as pool:
            list(pool.map(lambda stop: stop_service(state, *stop), stops))
    _restart_missing_and_refederate(state, say)
    say("healed: the lab is the manual's healthy interconnection again")


def _dird_loaded_now(state: LabState, node: LabNode, uri: str) -> bool:
    database = dird_config.Database(uri)
    try:
        return dird_settings.loaded_now(Node(state.root(node)), database)
    finally:
        database.close()


def _database_uuid(state: LabState, node: LabNode) -> str | None:
    argv, env = postgres.psql(lifecycle.dsn(state, node), "SELECT uuid FROM infos")
    done = subprocess.run([*argv, "-A", "-t"], env=env, capture_output=True, text=True, timeout=30)
    return (done.stdout.strip() or None) if done.returncode == 0 else None


def _restart_missing_and_refederate(state: LabState, say: Say) -> None:
    lifecycle.rabbitmq_up(state, say)

    def refederate(node: LabNode) -> bool:
        # The manual's commands again; each node on its own, all nodes at once.
        peers = [lifecycle.rabbit(state, p) for p in state.nodes if p is not node]
        return rabbitmq.restore_federation(lifecycle.rabbit(state, node), state.dir, peers,
                                           state.federation_record(node))

    with ThreadPoolExecutor(max_workers=len(state.nodes)) as pool:
        # a node left alone whose links that read saw running needs no second rabbitmqctl (~1.5 s a heal)
        running = frozenset(n.name for n, ok in zip(state.nodes, pool.map(refederate, state.nodes), strict=True) if ok)
    lifecycle.consul_up(state, say)
    for node in state.nodes:
        if len(consul_client.wan_member_names(node)) < len(state.nodes):
            consul_client.join_wan(node, next(n for n in state.nodes if n is not node).address)
    lifecycle.daemons_up(state, say)
    lifecycle.wait_healthy(state, say, links_seen_running=running)
