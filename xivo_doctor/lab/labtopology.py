"""The topology file `lab up` writes (DIR/topology.yml): what `xivo-doctor run` checks.

Place in the lab: the hand-over to the doctor. It declares every node with on-box access (the
node's root, its database, its rabbitmqctl, the address requests "from" it leave from) or, for
nodes that are hosts of their own (`--netns`), with SSH (the lab's key and known_hosts); there,
DIR/topology-on-<node>.yml is the doctor installed on that node (on-box for it, SSH to the others). It
reads every secret from a file under the lab directory, as an admin would configure it (over SSH
the doctor reads each Consul's master token on the node: the topology holds none). Each node
declares its own release, and `webservices.phonebook_sharing: false` where it shares no phonebook
(Phonebook Sharing needs it and a peer on 16.03-16.13, `releases.phonebook_sharing`).
"""

from __future__ import annotations

import secrets
from pathlib import Path

import yaml

from xivo_doctor.lab import postgres, releases
from xivo_doctor.lab.nodes import LabNode
from xivo_doctor.lab.state import LabState

RABBITMQ_PASSWORD = "xivo"  # the manual's `rabbitmqctl add_user xivo xivo`
AUTH_SECRET = "auth.secret"  # the password of the doctor's web services user, the same on every node


def auth_password(lab_dir: Path) -> str:
    """The password of the web services user `xivo-doctor` (`postgres.LOOKUP_USER`) that `fill_node` writes
    on every node: made once per lab, kept in DIR/auth.secret (0600) so that `heal` writes the same row
    again and the topology reads it from there (`auth.password_file`)."""
    path = Path(lab_dir) / AUTH_SECRET
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(18) + "\n")
    path.chmod(0o600)
    return path.read_text().strip()


def shares_phonebook(state: LabState, node: LabNode) -> bool:
    """The manual's Phonebook Sharing set up between `node` and at least one peer (as `postgres.fill_node`)."""
    return releases.phonebook_sharing(node.version) and any(
        releases.phonebook_sharing(peer.version) for peer in state.nodes if peer is not node)


def write_topology(state: LabState) -> None:
    """DIR/topology.yml, for the doctor on this machine; on a lab of hosts also DIR/topology-on-<node>.yml
    for the doctor run on that node (`xivo-doctor lab exec NODE -- xivo-doctor run -T ...`), as an admin
    installs it on a XiVO: on-box access to that node, SSH to the others."""
    lab = state.dir
    (lab / "rabbitmq.secret").write_text(RABBITMQ_PASSWORD + "\n")
    (lab / "rabbitmq.secret").chmod(0o600)
    auth_password(lab)  # written with the databases already; a lab older than it gets it here
    if not state.net_id:
        everyone = {n.name for n in state.nodes}
        _write(lab / "topology.yml", _topology(state, on_box=everyone), "with on-box access to each")
        return
    _write(lab / "topology.yml", _topology(state, on_box=set()), "reached over SSH (the lab's key)")
    for node in state.nodes:
        _write(lab / f"topology-on-{node.name}.yml", _topology(state, on_box={node.name}),
               f"seen from {node.name} (the doctor run there: on-box access to it, SSH to the others)")


def _write(path: Path, topology: dict, access: str) -> None:
    header = (f"# Written by `xivo-doctor lab up`: the lab's XiVOs, {access}.\n"
              "# Secrets are read from files next to this one.\n")
    path.write_text(header + yaml.safe_dump(topology, sort_keys=False))


def _on_box(state: LabState, node: LabNode) -> tuple[dict, dict]:
    """(consul, on_box) of a node the doctor reads on the box: on a node sharing this host, under the node's
    root here; on a host of its own, from inside it, its files at the XiVO paths. Requests "from" the node
    leave from its address."""
    base = f"nodes/{node.name}"
    inside = bool(state.net_id)
    return ({"token_file": "/var/lib/consul/master_token" if inside else f"{base}/root/var/lib/consul/master_token"},
            {"root": "/" if inside else f"{base}/root",
             "database_file": f"{base}/database.dsn",
             "rabbitmqctl": [str(state.dir / base / "bin" / "rabbitmqctl")],
             "consul": [str(state.dir / base / "bin" / "consul")],
             "source_address": node.address})


def _topology(state: LabState, on_box: set[str]) -> dict:
    """The lab's topology, with on-box access to the nodes named in `on_box`."""
    first = state.nodes[0]
    xivos = []
    for node in state.nodes:
        xivo = {
            "name": node.name,
            "address": node.address,
            "version": node.version,
        }
        if node.name in on_box:
            xivo["consul"], xivo["on_box"] = _on_box(state, node)
        if not shares_phonebook(state, node):
            xivo["webservices"] = {"phonebook_sharing": False}
        xivos.append(xivo)
    return {
        "name": "xivo-lab",
        "probe_timeout": 2,
        "defaults": {
            "consul": {"scheme": "https", "port": 8500, "verify": False},
            "rabbitmq": {"port": first.amqp_port, "user": "xivo", "password_file": "rabbitmq.secret", "vhost": "/"},
            "ctid": {"port": 9495},
            "confd": {"port": 9486, "verify": False},
            "webservices": {"http_port": first.http_port, "https_port": first.https_port, "verify": False},
            # the doctor's web services user (`auth_password`) gets a token from xivo-auth and asks xivo-dird
            "auth": {"port": 9497, "username": postgres.LOOKUP_USER["login"], "password_file": AUTH_SECRET,
                     "verify": False},
            "dird": {"port": 9489, "verify": False},
            # nodes that are hosts of their own (--netns) are reached as real XiVOs are: over SSH
            **({"ssh": {"identity_file": "ssh/id", "known_hosts_file": "ssh/known_hosts"}} if state.net_id else {}),
        },
        "xivos": xivos,
        "federation": "full-mesh",
    }
