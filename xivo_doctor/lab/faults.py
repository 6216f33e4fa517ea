"""`lab faults`, `lab break FAULT`: faults made the way administrators make them.

Place in the lab: each fault edits the same file or table an admin would, or runs the same
`rabbitmqctl`/`psql`/Consul API call, then restarts what the admin would restart (docs/lab.md).
No stand-in has a hidden switch. A fault is made as on the node's own release (`releases`: the
files and daemons differ per XiVO version); one that makes no sense there is refused in one line.
`healing` writes every node back to the manual's healthy state.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

import yaml

from xivo_doctor.lab import firewall, lifecycle, postgres, rabbitmq, release_faults, releases, releases_lookup
from xivo_doctor.lab.consul import client as consul_client
from xivo_doctor.lab.nodes import LabNode, ctid_interconnection, write_file
from xivo_doctor.lab.state import LabError, LabState, start_standin, stop_service

Say = Callable[[str], None]


@dataclass(frozen=True)
class Fault:
    name: str
    summary: str
    apply: Callable[[LabState, LabNode, LabNode, Say], None]  # (state, node, peer, say)
    # why the fault makes no sense for (node, peer) on their releases; None when it does
    refused: Callable[[LabNode, LabNode], str | None] = lambda node, peer: None


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


def query(state: LabState, node: LabNode, statement: str) -> str:
    """One value read with psql (unaligned, tuples only)."""
    argv, env = postgres.psql(lifecycle.dsn(state, node), statement)
    done = subprocess.run([*argv, "-A", "-t"], env=env, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise LabError(f"{node.name}: psql failed: {done.stderr.strip()}")
    return done.stdout.strip()


def restart(state: LabState, node: LabNode, service: str, say: Say) -> None:
    lifecycle.restart(state.dir, node.name, service, say=say)


def _duplicate_uuid(state: LabState, node: LabNode, peer: LabNode, say: Say) -> None:
    """A cloned VM: the peer's UUID in `infos` and (16.02+, R1 §2) in XIVO_UUID's files; services restarted."""
    sql(state, node, f"UPDATE infos SET uuid = '{peer.uuid}'")
    if releases.uuid_files(node.version):
        root = state.root(node)
        write_file(root / "etc/profile.d/xivo_uuid.sh", releases.uuid_profile(peer.uuid))
        write_file(root / "etc/default/xivo", releases.uuid_default_line(peer.uuid))
        write_file(root / "etc/systemd/system.conf", releases.uuid_system_conf(peer.uuid))
    for service in ("xivo-confd", "xivo-ctid"):
        restart(state, node, service, say)


def _uuid_not_configured(state: LabState, node: LabNode, peer: LabNode, say: Say) -> None:
    """The upgrade to 16.02+ ran while PostgreSQL was offline, so the postinst skipped
    xivo-configure-uuid (R1 §2): no /etc/profile.d/xivo_uuid.sh, no `export XIVO_UUID` in
    /etc/default/xivo, Debian's commented `#DefaultEnvironment=`; then `service xivo-ctid restart`,
    which stops on `undefined environment variable XIVO_UUID`."""
    root = state.root(node)
    (root / "etc/profile.d/xivo_uuid.sh").unlink(missing_ok=True)
    default = root / "etc/default/xivo"
    if default.exists():
        kept = [line for line in default.read_text().splitlines(keepends=True)
                if not line.strip().startswith(("export XIVO_UUID=", "XIVO_UUID="))]
        if kept:
            write_file(default, "".join(kept))
        else:
            default.unlink()
    write_file(root / "etc/systemd/system.conf", releases.SYSTEM_CONF_DEBIAN)
    restart(state, node, "xivo-ctid", say)


def _uuid_files_refused(node: LabNode, peer: LabNode) -> str | None:
    if releases.uuid_files(node.version):
        return None
    return (f"{node.name} runs XiVO {node.version}: xivo-configure-uuid and the XIVO_UUID files only exist from "
            f"16.02 (its xivo-ctid reads the UUID from the database)")


def _ctid_config(state: LabState, node: LabNode, config: dict, say: Say) -> None:
    path = state.root(node) / "etc/xivo-ctid/conf.d/interconnection.yml"
    write_file(path, yaml.safe_dump(config, sort_keys=False))
    restart(state, node, "xivo-ctid", say)


def _ctid_advertise_localhost(state: LabState, node: LabNode, peer: LabNode, say: Say) -> None:
    """advertise_address left at its default `localhost`: 16.01+ interconnection.yml without
    service_discovery; 15.19-15.20 the manual's `advertise_address: <IP>` line removed (its
    `check_url` stays)."""
    manual = ctid_interconnection(node)
    if releases.ctid_http_check(node.version):
        discovery = {k: v for k, v in manual["service_discovery"].items() if k != "advertise_address"}
        _ctid_config(state, node, {"rest_api": manual["rest_api"], "service_discovery": discovery}, say)
    else:
        _ctid_config(state, node, {"rest_api": manual["rest_api"]}, say)


def _ctid_listen_loopback(state: LabState, node: LabNode, peer: LabNode, say: Say) -> None:
    """interconnection.yml without rest_api: xivo-ctid keeps listening on 127.0.0.1."""
    _ctid_config(state, node, {"service_discovery": ctid_interconnection(node)["service_discovery"]}, say)


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
    """The directory URL written with `private` instead of `restricted` (phonebook_sharing.rst); up to
    16.12 the definition names its directory by that same URL, so it was chosen with `private` too."""
    replace = "replace(uri, '/json.php/restricted/', '/json.php/private/')"
    where = f"uri LIKE '%//{peer.address}/%/json.php/restricted/%'"
    statements = [f"UPDATE directories SET uri = {replace} WHERE dirtype = 'phonebook' AND {where}"]
    if not releases.ctidirectories_by_id(node.version):
        statements.insert(0, f"UPDATE ctidirectories SET uri = {replace} WHERE {where}")
    sql(state, node, "; ".join(statements))


def _phonebook_refused(node: LabNode, peer: LabNode) -> str | None:
    if releases.phonebook_sharing(node.version) and releases.phonebook_sharing(peer.version):
        return None
    return (f"{node.name} (XiVO {node.version}) has no phonebook directory for {peer.name} (XiVO {peer.version}): "
            f"Phonebook Sharing needs both on 16.03 to 16.13")


def _dird_stopped(state: LabState, node: LabNode, peer: LabNode, say: Say) -> None:
    """`service xivo-dird stop` on the node: its lookups, the peers' included, go unanswered."""
    stop_service(state, node, "xivo-dird")


def _peer_definition(peer: LabNode) -> str:
    # the name of the node's `xivo` definition for the peer P, `xivo-P`, as fill_node writes it (docs/lab.md
    # "Database"; P is the peer's name without its `xivo-`)
    return f"xivo-{peer.name.removeprefix('xivo-')}"


def _dird_not_restarted(state: LabState, node: LabNode, peer: LabNode, say: Say) -> None:
    """The peer's definition was missing from the `default` context's direct directories when xivo-dird
    last started (it reads them once, at start: research-directory-lookup.md §1.1); the admin then put it
    back in Services → CTI Server → Directories → Contexts and never restarted xivo-dird. The tables are
    right again, xivo-dird still has no such source in the profile."""
    name = _peer_definition(peer)
    before = query(state, node, "SELECT directories FROM cticontexts WHERE name = 'default'")
    kept = [each for each in before.split(",") if each != name]
    if len(kept) == len(before.split(",")):
        raise LabError(f"{node.name}: the `default` context has no {name!r} among its directories ({before!r})")
    sql(state, node, f"UPDATE cticontexts SET directories = '{','.join(kept)}' WHERE name = 'default'")
    restart(state, node, "xivo-dird", say)  # returns once it listens: it has read the tables
    sql(state, node, f"UPDATE cticontexts SET directories = '{before}' WHERE name = 'default'")


def _lookup_acl_missing(state: LabState, node: LabNode, peer: LabNode, say: Say) -> None:
    """The doctor's web services user saved with no ACL line (Configuration → Management → Web Services
    Access): xivo-auth gives its tokens no ACL, and xivo-dird (16.03+) refuses their lookups."""
    sql(state, node, f"UPDATE accesswebservice SET acl = '{{}}' WHERE login = '{postgres.LOOKUP_USER['login']}'")


def _lookup_acl_refused(node: LabNode, peer: LabNode) -> str | None:
    if releases_lookup.dird_lookup_acl(node.version):
        return None
    return (f"{node.name} runs XiVO {node.version}: its xivo-dird checks no ACL before 16.03 (any valid token "
            "may look up)")


def _version_mismatch(state: LabState, node: LabNode, peer: LabNode, say: Say) -> None:
    """One server left on the previous release: its version file says the release before its own."""
    write_file(state.root(node) / "usr/share/xivo/XIVO-VERSION", f"{releases.previous(node.version)}\n")


def _version_refused(node: LabNode, peer: LabNode) -> str | None:
    if releases.previous(node.version) is not None:
        return None
    return f"{node.name} runs XiVO {node.version}: no earlier release has the interconnection (15.19 is the first)"


CATALOGUE = [
    Fault("duplicate-uuid", "a cloned VM: the node has its peer's UUID in `infos` (and XIVO_UUID from 16.02)",
          _duplicate_uuid),
    Fault("uuid-not-configured", "16.02+: xivo-configure-uuid skipped at the upgrade (PostgreSQL offline): no "
          "XIVO_UUID files, xivo-ctid restarted and stopped", _uuid_not_configured, _uuid_files_refused),
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
          _phonebook_private_url, _phonebook_refused),
    Fault("version-mismatch", "the node's version file says the release before its own (left on the previous "
          "release)", _version_mismatch, _version_refused),
    Fault("directory-uri-trailing-slash", "the node's xivo directory for its peer typed https://<peer>:9486/: "
          "xivo-confgend fails the sources file, xivo-dird keeps its old sources",
          lambda st, n, p, say: release_faults.directory_uri_trailing_slash(st, n, p, say, sql)),
    Fault("anonymous-token-not-customised", "16.15 with consul 0.7.0~xivo3: its broken "
          "consul-customize-anonymous-token leaves the anonymous token without read rights; peers' xivo-ctid "
          "find nothing", lambda st, n, p, say: release_faults.anonymous_token_not_customised(st, n, p, say, restart),
          release_faults.only_16_15),
    Fault("dird-stopped", "the node's xivo-dird stopped (`service xivo-dird stop`)", _dird_stopped),
    Fault("dird-not-restarted", "the node's xivo directory for its peer put back in the `default` context after "
          "xivo-dird started, xivo-dird never restarted: the tables are right, xivo-dird is stale",
          _dird_not_restarted),
    Fault("lookup-acl-missing", "16.03+: the doctor's web services user `xivo-doctor` on the node has an empty "
          "ACL: xivo-dird refuses its lookups", _lookup_acl_missing, _lookup_acl_refused),
]
FAULTS = {f.name: f for f in CATALOGUE}


def break_(lab_dir, name: str, node_name: str | None, say: Say = print, *, port: int | None = None,
           from_node: str | None = None) -> tuple[LabNode, LabNode]:
    """Make fault `name` on `node_name` (default: the second node; its peer is the first, or `from_node`).
    `port` and `from_node` are the firewall faults' (`firewall`)."""
    if name not in FAULTS and name not in firewall.FAULTS:
        raise LabError(f"unknown fault {name!r}; `xivo-doctor lab faults` lists them")
    state = LabState.load(lab_dir)
    node = state.node(node_name or state.nodes[1].name)
    source = state.node(from_node) if from_node else None
    peer = source or next(n for n in state.nodes if n is not node)
    if name in firewall.FAULTS:
        firewall.apply(state, name, node, port, source, say)
        say(f"{name} made on {node.name} (from {source.name if source else 'everyone'});"
            f" `xivo-doctor lab heal` undoes it")
        return node, peer
    if port is not None or from_node:
        raise LabError(f"{name} takes no port and no --from (only firewall-drop and firewall-reject do)")
    refused = FAULTS[name].refused(node, peer)
    if refused is not None:
        raise LabError(f"{name} makes no sense here: {refused}")
    FAULTS[name].apply(state, node, peer, say)
    say(f"{name} made on {node.name} (peer {peer.name}); `xivo-doctor lab heal` undoes it")
    return node, peer
