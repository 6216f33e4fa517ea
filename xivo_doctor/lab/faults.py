"""`lab faults`, `lab break FAULT`, `lab heal`: faults made the way administrators make them.

Place in the lab: each fault edits the same file or table an admin would, or runs the same
`rabbitmqctl`/`psql`/Consul API call, then restarts what the admin would restart (docs/lab.md).
No stand-in has a hidden switch. `heal` writes every node back to the manual's healthy state and
restarts what changed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import yaml

from xivo_doctor.lab import lifecycle, postgres, rabbitmq
from xivo_doctor.lab.consul import client as consul_client
from xivo_doctor.lab.nodes import CTID_INTERCONNECTION, LabNode, write_file, write_root
from xivo_doctor.lab.state import LabError, LabState, start_standin, stop_service

Say = Callable[[str], None]


@dataclass(frozen=True)
class Fault:
    name: str
    summary: str
    apply: Callable[[LabState, LabNode, LabNode, Say], None]  # (state, node, peer, say)


def ctl(state: LabState, node: LabNode, *args: str, tool: str = "rabbitmqctl") -> str:
    argv = rabbitmq.ctl_argv(lifecycle.rabbit(state, node), state.dir, tool=tool)
    done = subprocess.run([*argv, *args], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise LabError(f"{node.name}: {tool} {' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def sql(state: LabState, node: LabNode, statement: str) -> None:
    argv, env = postgres.psql(lifecycle.dsn(state, node), statement)
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise LabError(f"{node.name}: psql failed: {done.stderr.strip()}")


def restart(state: LabState, node: LabNode, service: str, say: Say) -> None:
    lifecycle.restart(state.dir, node.name, service, say=say)


def _duplicate_uuid(state: LabState, node: LabNode, peer: LabNode, say: Say) -> None:
    """A cloned VM: the peer's UUID in `infos` and in XIVO_UUID's files; services restarted."""
    sql(state, node, f"UPDATE infos SET uuid = '{peer.uuid}'")
    root = state.root(node)
    write_file(root / "etc/profile.d/xivo_uuid.sh", f"export XIVO_UUID={peer.uuid}\n")
    write_file(root / "etc/default/xivo", f"XIVO_UUID={peer.uuid}\n")
    write_file(root / "etc/systemd/system.conf", f'[Manager]\nDefaultEnvironment="XIVO_UUID={peer.uuid}"\n')
    for service in ("xivo-confd", "xivo-ctid"):
        restart(state, node, service, say)


def _ctid_config(state: LabState, node: LabNode, config: dict, say: Say) -> None:
    path = state.root(node) / "etc/xivo-ctid/conf.d/interconnection.yml"
    write_file(path, yaml.safe_dump(config, sort_keys=False))
    restart(state, node, "xivo-ctid", say)


def _ctid_advertise_localhost(state: LabState, node: LabNode, peer: LabNode, say: Say) -> None:
    """interconnection.yml without service_discovery: advertise_address stays `localhost`."""
    _ctid_config(state, node, {"rest_api": CTID_INTERCONNECTION["rest_api"]}, say)


def _ctid_listen_loopback(state: LabState, node: LabNode, peer: LabNode, say: Say) -> None:
    """interconnection.yml without rest_api: xivo-ctid keeps listening on 127.0.0.1."""
    _ctid_config(state, node, {"service_discovery": CTID_INTERCONNECTION["service_discovery"]}, say)


def _consul_not_joined(state: LabState, node: LabNode, peer: LabNode, say: Say) -> None:
    """`consul join -wan` never run for this node: every consul forgets the WAN pool (the manual's
    wipe of /var/lib/consul/serf/), then the other nodes join each other, not this one."""
    for each in state.nodes:
        stop_service(state, each, "consul")
        shutil.rmtree(state.root(each) / "var/lib/consul/serf", ignore_errors=True)
    for each in state.nodes:
        start_standin(state, each, "consul")
    for each in state.nodes:
        lifecycle.wait_port(each.address, 8500, 20, f"consul stand-in of {each.name}")
    others = [n for n in state.nodes if n is not node]
    for each in others[1:]:
        consul_client.join_wan(each, others[0].address)


def _consul_peer_down(state: LabState, node: LabNode, peer: LabNode, say: Say) -> None:
    """The node's consul (and the serf agent inside it) stopped."""
    stop_service(state, node, "consul")


def _port_closed(state: LabState, node: LabNode, peer: LabNode, say: Say) -> None:
    """xivo-confd told to listen on 127.0.0.1 only: the peers' directories cannot reach 9486."""
    path = state.root(node) / "etc/xivo-confd/config.yml"
    config = yaml.safe_load(path.read_text())
    config["rest_api"]["https"]["listen"] = "127.0.0.1"
    write_file(path, yaml.safe_dump(config, sort_keys=False), 0o640)
    restart(state, node, "xivo-confd", say)


def _upstream_uri(peer: LabNode, password: str) -> str:
    port = "" if peer.amqp_port == 5672 else f":{peer.amqp_port}"
    return json.dumps({"uri": f"amqp://xivo:{password}@{peer.address}{port}", "max-hops": 1})


def _federation_upstream_missing(state: LabState, node: LabNode, peer: LabNode, say: Say) -> None:
    ctl(state, node, "clear_parameter", "federation-upstream", peer.name)


def _federation_wrong_password(state: LabState, node: LabNode, peer: LabNode, say: Say) -> None:
    ctl(state, node, "set_parameter", "federation-upstream", peer.name, _upstream_uri(peer, "wrong-password"))


def _federation_policy_missing(state: LabState, node: LabNode, peer: LabNode, say: Say) -> None:
    ctl(state, node, "clear_policy", "federate-xivo")


def _federation_plugin_disabled(state: LabState, node: LabNode, peer: LabNode, say: Say) -> None:
    ctl(state, node, "disable", "rabbitmq_federation", tool="rabbitmq-plugins")


def _phonebook_private_url(state: LabState, node: LabNode, peer: LabNode, say: Say) -> None:
    """The directory URL written with `private` instead of `restricted` (phonebook_sharing.rst)."""
    sql(state, node, "UPDATE directories SET uri = replace(uri, '/json.php/restricted/', '/json.php/private/') "
                     f"WHERE dirtype = 'phonebook' AND uri LIKE '%//{peer.address}/%'")


def _version_mismatch(state: LabState, node: LabNode, peer: LabNode, say: Say) -> None:
    """One server left on the previous release: its version file says 16.12."""
    write_file(state.root(node) / "usr/share/xivo/XIVO-VERSION", "16.12\n")


CATALOGUE = [
    Fault("duplicate-uuid", "a cloned VM: the node has its peer's UUID in `infos` and XIVO_UUID", _duplicate_uuid),
    Fault("ctid-advertise-localhost", "xivo-ctid's advertise_address left at its default (localhost)",
          _ctid_advertise_localhost),
    Fault("ctid-listen-loopback", "xivo-ctid's REST API left listening on 127.0.0.1", _ctid_listen_loopback),
    Fault("consul-not-joined", "`consul join -wan` never done for the node", _consul_not_joined),
    Fault("consul-peer-down", "the node's consul (and its serf agent) stopped", _consul_peer_down),
    Fault("port-closed", "xivo-confd listening on 127.0.0.1 only: port 9486 closed on the node's address",
          _port_closed),
    Fault("federation-upstream-missing", "the node has no federation-upstream for its peer",
          _federation_upstream_missing),
    Fault("federation-wrong-password", "the node's upstream to its peer carries a wrong password",
          _federation_wrong_password),
    Fault("federation-policy-missing", "the federate-xivo policy is missing on the node", _federation_policy_missing),
    Fault("federation-plugin-disabled", "rabbitmq_federation disabled on the node", _federation_plugin_disabled),
    Fault("phonebook-private-url", "the node's phonebook directory for its peer uses `private`, not `restricted`",
          _phonebook_private_url),
    Fault("version-mismatch", "the node still runs 16.12 while the others run the lab's version", _version_mismatch),
]
FAULTS = {f.name: f for f in CATALOGUE}


def break_(lab_dir, name: str, node_name: str | None, say: Say = print) -> tuple[LabNode, LabNode]:
    """Make fault `name` on `node_name` (default: the second node; its peer is the first)."""
    if name not in FAULTS:
        raise LabError(f"unknown fault {name!r}; `xivo-doctor lab faults` lists them")
    state = LabState.load(lab_dir)
    node = state.node(node_name or state.nodes[1].name)
    peer = next(n for n in state.nodes if n is not node)
    FAULTS[name].apply(state, node, peer, say)
    say(f"{name} made on {node.name} (peer {peer.name}); `xivo-doctor lab heal` undoes it")
    return node, peer


def heal(lab_dir, say: Say = print) -> None:
    """Back to the healthy interconnection: files, tables, RabbitMQ definitions, Consul membership."""
    state = LabState.load(lab_dir)
    for node in state.nodes:
        uri = lifecycle.dsn(state, node)
        sql(state, node, "TRUNCATE infos, accesswebservice, directories, ctidirectories, ctidirectoryfields, "
                         "cticontexts, userfeatures, phonebook, phonebooknumber, phonebookaddress "
                         "RESTART IDENTITY CASCADE")
        peers = [(p.name, p.address) for p in state.nodes if p is not node]
        postgres.fill_node(uri, uuid=node.uuid, node_address=node.address, peers=peers, version=node.version)
        changed = write_root(node, state.dir, db_uri=uri)
        for service in ("xivo-confd", "webservices", "xivo-ctid", "consul"):
            # XiVO daemons read XIVO_UUID at start: a UUID change restarts them all
            if service in changed or ("uuid" in changed and service.startswith("xivo-")):
                stop_service(state, node, service)
    _restart_missing_and_refederate(state, say)
    say("healed: the lab is the manual's healthy interconnection again")


def _restart_missing_and_refederate(state: LabState, say: Say) -> None:
    lifecycle.rabbitmq_up(state, say)

    def refederate(node: LabNode) -> None:
        # The manual's commands again (idempotent); each node on its own, all nodes at once.
        ctl(state, node, "enable", "rabbitmq_federation", tool="rabbitmq-plugins")
        peers = [lifecycle.rabbit(state, p) for p in state.nodes if p is not node]
        rabbitmq.setup_federation(lifecycle.rabbit(state, node), state.dir, peers)

    with ThreadPoolExecutor(max_workers=len(state.nodes)) as pool:
        list(pool.map(refederate, state.nodes))
    lifecycle.consul_up(state, say)
    for node in state.nodes:
        if len(consul_client.wan_member_names(node)) < len(state.nodes):
            consul_client.join_wan(node, next(n for n in state.nodes if n is not node).address)
    lifecycle.daemons_up(state, say)
    lifecycle.wait_healthy(state, say)
