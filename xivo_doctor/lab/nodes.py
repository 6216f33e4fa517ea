"""A lab node's filesystem root: the files an admin edits on a XiVO, written healthy.

Place in the lab: `lab up` and `lab heal` call `write_root` for every node; faults then edit
these same files as an admin would (docs/lab.md lists them). Values follow XiVO's own defaults
(XIVO-FACTS §3, §4) plus the manual's interconnection steps (../shared/docs), each as the node's
own release leaves it (`releases`: which files exist and what they hold, per XiVO version).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import yaml

from xivo_doctor.lab import accounts, releases

DEFAULT_VERSION = releases.DEFAULT  # the last XiVO with json.php phonebook sharing: every check applies


@dataclass(frozen=True)
class LabNode:
    """What the lab decided for one node; saved in lab.json."""

    name: str  # xivo-1
    index: int  # 1
    address: str  # 127.10.0.1
    hostname: str  # xivo-lab-1: the short hostname, hence the Consul datacenter
    uuid: str
    version: str
    master_token: str
    amqp_port: int = 5672
    http_port: int = 80
    https_port: int = 443

    @staticmethod
    def new(index: int, address: str, version: str, **ports: int) -> LabNode:
        return LabNode(
            name=f"xivo-{index}",
            index=index,
            address=address,
            hostname=f"xivo-lab-{index}",
            uuid=str(uuid.uuid4()),
            version=version,
            master_token=secrets.token_hex(16),
            **ports,
        )

    def root(self, lab_dir: Path) -> Path:
        return lab_dir / "nodes" / self.name / "root"


def consul_default_config(node: LabNode) -> dict:
    """XiVO's generated /etc/consul/xivo/config.json (XIVO-FACTS §4), with this node's values."""
    return {
        "acl_default_policy": "deny",
        "acl_master_token": node.master_token,
        "acl_datacenter": node.hostname,
        "datacenter": node.hostname,
        "server": True,
        "bind_addr": "127.0.0.1",
        "advertise_addr": "127.0.0.1",
        "client_addr": "127.0.0.1",
        "bootstrap_expect": 1,
        "rejoin_after_leave": True,
        "data_dir": "/var/lib/consul",
        "enable_syslog": True,
        "disable_update_check": True,
        "log_level": "INFO",
        "ports": {"dns": -1, "http": -1, "https": 8500},
        "cert_file": "/usr/share/xivo-certs/server.crt",
        "key_file": "/usr/share/xivo-certs/server.key",
    }


def consul_interconnection(node: LabNode, own_network: bool = False) -> dict:
    """The manual's /etc/consul/xivo/interconnection.json. On a XiVO (and a node on its own network)
    bind_addr is 0.0.0.0; when every node shares this host the lab writes the node's address (docs/lab.md)."""
    return {"client_addr": "0.0.0.0", "bind_addr": "0.0.0.0" if own_network else node.address,
            "advertise_addr": node.address}


def ctid_defaults(node: LabNode) -> dict:
    """xivo-ctid's shipped etc/xivo-ctid/config.yml at the node's release (R1 §3)."""
    return releases.ctid_config_yml(node.version)


def ctid_interconnection(node: LabNode) -> dict:
    """The manual's /etc/xivo-ctid/conf.d/interconnection.yml at the node's release (R1 §3)."""
    return releases.ctid_interconnection(node.version, node.address)


def write_file(path: Path, text: str, mode: int = 0o644) -> bool:
    """Write `text` if it differs; True when the file changed (so the caller knows what to restart)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_text() == text:
        return False
    path.write_text(text)
    path.chmod(mode)
    return True


def make_certificate(root: Path, address: str) -> None:
    """A self-signed certificate as XiVO's /usr/share/xivo-certs (its CN is the node's address)."""
    crt, key = root / "usr/share/xivo-certs/server.crt", root / "usr/share/xivo-certs/server.key"
    if crt.exists() and key.exists():
        return
    crt.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650", "-subj", f"/CN={address}",
         "-addext", f"subjectAltName=IP:{address},IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(crt)],
        check=True, capture_output=True, timeout=60,
    )
    key.chmod(0o600)


def write_root(node: LabNode, lab_dir: Path, *, db_uri: str, netns: str = "") -> set[str]:
    """Write the node's healthy files; return the services whose files changed. `netns`: the node's
    network namespace when it has its own network (its stand-ins then bind as a XiVO's daemons do)."""
    root = node.root(lab_dir)
    # var/lib/xivo-confgend: the cache of the files it generates for xivo-dird (made before the mount
    # namespace binds var/lib entries one by one, so that it is the node's own there too)
    for folder in ("run", "var/log/nginx", "var/lib/consul/services", "var/lib/consul/checks",
                   "var/lib/xivo-confgend/dird"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    make_certificate(root, node.address)
    changed: set[str] = set()

    def put(service: str, relative: str, text: str, mode: int = 0o644) -> None:
        if write_file(root / relative, text, mode):
            changed.add(service)

    put("system", "etc/hostname", node.hostname + "\n")
    put("system", "usr/share/xivo/XIVO-VERSION", node.version + "\n")
    put("system", "etc/xivo-lab/interfaces.json", json.dumps({"eth0": node.address}) + "\n")
    if netns:
        put("system", "etc/xivo-lab/netns", netns + "\n")
        # Debian's installer names the host in /etc/hosts (127.0.1.1); sudo warns on every command without it
        hosts = Path("/etc/hosts").read_text() if Path("/etc/hosts").is_file() else "127.0.0.1\tlocalhost\n"
        put("system", "etc/hosts", hosts.rstrip("\n") + f"\n127.0.1.1\t{node.hostname}\n")
        # who logs in, and what their shell runs first, as on a fresh Debian XiVO (lab.accounts)
        accounts.write(root, lambda relative, text, mode: put("system", relative, text, mode))
    if releases.uuid_files(node.version):
        # xivo-configure-uuid (16.02+) writes XIVO_UUID in these places, in these formats (R1 §2)
        put("uuid", "etc/profile.d/xivo_uuid.sh", releases.uuid_profile(node.uuid))
        put("uuid", "etc/default/xivo", releases.uuid_default_line(node.uuid))
        put("uuid", "etc/systemd/system.conf", releases.uuid_system_conf(node.uuid))
    # xivo-dao's own configuration: where every daemon's DAO finds the database (ctid <= 16.01 reads
    # its UUID there, `infos.uuid`, R1 §2)
    put("xivo-ctid", "etc/xivo-dao/config.yml", yaml.safe_dump({"db_uri": db_uri}), 0o640)

    put("consul", "etc/consul/xivo/config.json", json.dumps(consul_default_config(node), indent=4) + "\n", 0o600)
    interconnection = consul_interconnection(node, own_network=bool(netns))
    put("consul", "etc/consul/xivo/interconnection.json", json.dumps(interconnection, indent=4) + "\n")
    put("consul", "var/lib/consul/master_token", node.master_token + "\n", 0o600)
    if node.version == "16.15":
        # consul 0.7.0~xivo4 (XiVO 16.15) ships this script; consul.service runs it as ExecStartPost after
        # consul-wait-leader, failures ignored: the local anonymous token gets service "xivo-" read (R1 §4b).
        # The consul stand-in runs its `body=` ACL update at start (lab.consul.agent).
        put("consul", "usr/bin/consul-customize-anonymous-token", (
            "#!/bin/sh\n"
            "# XiVO 16.15 (consul 0.7.0~xivo4): give the anonymous token read access to the xivo-* services\n"
            "body='{\"ID\": \"anonymous\", \"Rules\": \"{\\\"service\\\": {\\\"xivo-\\\": "
            "{\\\"Policy\\\": \\\"read\\\"}}}\"}'\n"
            "token=$(cat /var/lib/consul/master_token)\n"
            'curl -k -s -o /dev/null -XPUT "https://localhost:8500/v1/acl/update" -d "${body}" '
            '-H "X-Consul-Token: ${token}"\n'), 0o755)
    consul_client = {"consul": {"scheme": "https", "host": "localhost", "port": 8500,
                                "verify": "/usr/share/xivo-certs/server.crt"}}
    token = {"consul": {"token": node.master_token}}
    put("xivo-ctid", "var/lib/consul/default_xivo_consul_config.yml", yaml.safe_dump(consul_client))
    put("xivo-ctid", "var/lib/consul/default_xivo_consul_token.yml", yaml.safe_dump(token), 0o640)

    put("xivo-ctid", "etc/xivo-ctid/config.yml", yaml.safe_dump(ctid_defaults(node), sort_keys=False))
    # XiVO links these two into conf.d (debian/xivo-ctid.links); the lab copies them
    put("xivo-ctid", "etc/xivo-ctid/conf.d/050-xivo-consul-config.yml", yaml.safe_dump(consul_client))
    put("xivo-ctid", "etc/xivo-ctid/conf.d/050-xivo-consul-token.yml", yaml.safe_dump(token), 0o640)
    put("xivo-ctid", "etc/xivo-ctid/conf.d/interconnection.yml",
        yaml.safe_dump(ctid_interconnection(node), sort_keys=False))

    confd = {
        "db_uri": db_uri,
        "rest_api": {"https": {"listen": "0.0.0.0", "port": 9486,
                               "certificate": "/usr/share/xivo-certs/server.crt",
                               "private_key": "/usr/share/xivo-certs/server.key"}},
    }
    put("xivo-confd", "etc/xivo-confd/config.yml", yaml.safe_dump(confd, sort_keys=False), 0o640)
    web = {"db_uri": db_uri, "listen": "0.0.0.0", "http_port": node.http_port, "https_port": node.https_port}
    put("webservices", "etc/xivo-web-interface/lab.yml", yaml.safe_dump(web, sort_keys=False), 0o640)
    return changed
