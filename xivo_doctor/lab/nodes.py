"""A lab node's filesystem root: the files an admin edits on a XiVO, written healthy.

Place in the lab: `lab up` and `lab heal` call `write_root` for every node; faults then edit
these same files as an admin would (docs/lab.md lists them). Values follow XiVO's own defaults
(XIVO-FACTS §3, §4) plus the manual's interconnection steps (../shared/docs).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import yaml

DEFAULT_VERSION = "16.13"  # the last XiVO with json.php phonebook sharing: every check applies


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


def consul_interconnection(node: LabNode) -> dict:
    """The manual's /etc/consul/xivo/interconnection.json. On a XiVO bind_addr is 0.0.0.0; the lab
    writes the node's address because every node shares this host (docs/lab.md)."""
    return {"client_addr": "0.0.0.0", "bind_addr": node.address, "advertise_addr": node.address}


# xivo-ctid's shipped config.yml, the keys that matter here (XIVO-FACTS §3)
CTID_DEFAULTS = {
    "rest_api": {"http": {"listen": "127.0.0.1", "port": 9495}, "cors": {"enabled": True}},
    "service_discovery": {
        "advertise_address": "localhost",
        "advertise_address_interface": "eth0",
        "advertise_port": 9495,
        "ttl_interval": 30,
        "refresh_interval": 27,
        "retry_interval": 2,
        "extra_tags": [],
    },
    "bus": {"username": "guest", "password": "guest", "host": "localhost", "port": 5672, "exchange_name": "xivo"},
}

# The manual's /etc/xivo-ctid/conf.d/interconnection.yml
CTID_INTERCONNECTION = {
    "rest_api": {"http": {"listen": "0.0.0.0"}},
    "service_discovery": {"advertise_address": "auto", "advertise_address_interface": "eth0"},
}


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


def write_root(node: LabNode, lab_dir: Path, *, db_uri: str) -> set[str]:
    """Write the node's healthy files; return the services whose files changed."""
    root = node.root(lab_dir)
    for folder in ("run", "var/log/nginx", "var/lib/consul/services", "var/lib/consul/checks"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    make_certificate(root, node.address)
    changed: set[str] = set()

    def put(service: str, relative: str, text: str, mode: int = 0o644) -> None:
        if write_file(root / relative, text, mode):
            changed.add(service)

    uuid_line = f"export XIVO_UUID={node.uuid}\n"
    put("system", "etc/hostname", node.hostname + "\n")
    put("system", "usr/share/xivo/XIVO-VERSION", node.version + "\n")
    put("system", "etc/xivo-lab/interfaces.json", json.dumps({"eth0": node.address}) + "\n")
    # xivo-configure-uuid writes XIVO_UUID in these places (XIVO-FACTS §2)
    put("uuid", "etc/profile.d/xivo_uuid.sh", uuid_line)
    put("uuid", "etc/default/xivo", f"XIVO_UUID={node.uuid}\n")
    put("uuid", "etc/systemd/system.conf", f'[Manager]\nDefaultEnvironment="XIVO_UUID={node.uuid}"\n')

    put("consul", "etc/consul/xivo/config.json", json.dumps(consul_default_config(node), indent=4) + "\n", 0o600)
    put("consul", "etc/consul/xivo/interconnection.json", json.dumps(consul_interconnection(node), indent=4) + "\n")
    put("consul", "var/lib/consul/master_token", node.master_token + "\n", 0o600)
    consul_client = {"consul": {"scheme": "https", "host": "localhost", "port": 8500,
                                "verify": "/usr/share/xivo-certs/server.crt"}}
    token = {"consul": {"token": node.master_token}}
    put("xivo-ctid", "var/lib/consul/default_xivo_consul_config.yml", yaml.safe_dump(consul_client))
    put("xivo-ctid", "var/lib/consul/default_xivo_consul_token.yml", yaml.safe_dump(token), 0o640)

    put("xivo-ctid", "etc/xivo-ctid/config.yml", yaml.safe_dump(CTID_DEFAULTS, sort_keys=False))
    # XiVO links these two into conf.d (debian/xivo-ctid.links); the lab copies them
    put("xivo-ctid", "etc/xivo-ctid/conf.d/050-xivo-consul-config.yml", yaml.safe_dump(consul_client))
    put("xivo-ctid", "etc/xivo-ctid/conf.d/050-xivo-consul-token.yml", yaml.safe_dump(token), 0o640)
    put("xivo-ctid", "etc/xivo-ctid/conf.d/interconnection.yml", yaml.safe_dump(CTID_INTERCONNECTION, sort_keys=False))

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
