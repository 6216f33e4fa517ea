"""The Consul stand-in's configuration: `etc/consul/xivo/*.json` merged as `consul agent -config-dir` does.

Place in the pipeline: lab only (docs/lab.md, "consul"). `python -m xivo_doctor.lab.consul` reads
its node's config dir through `load_config`, which turns the merged JSON into the few values the
stand-in acts on. Nothing is hidden: every address, port, path and token comes from these files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xivo_doctor.lab.standins.base import Node, deep_merge

CONFIG_DIR = "/etc/consul/xivo"  # consul.service: CONFIG_DIR=/etc/consul/xivo (XIVO-FACTS §4)


class ConfigError(Exception):
    """What `consul agent` prints before refusing to start (it exits 1)."""


@dataclass(frozen=True)
class ConsulConfig:
    datacenter: str
    node_name: str
    bind_addr: str            # after Node.listen_address (0.0.0.0 → the node's address, docs/lab.md)
    advertise_addr: str
    client_addr: str
    https_port: int           # ports.https; <= 0 disables HTTPS (XiVO: 8500)
    http_port: int            # ports.http; XiVO sets -1 (XIVO-FACTS §4)
    server_port: int          # ports.server, the server RPC port advertised in the serf `port` tag
    serf_wan_port: int        # ports.serf_wan
    cert_file: str            # as written in the config (a XiVO absolute path)
    key_file: str
    acl_master_token: str | None
    acl_default_policy: str   # XiVO: "deny"
    acl_datacenter: str       # XiVO: the datacenter itself; "" disables ACLs
    acl_token: str            # the agent's default token for requests without one (XiVO: none)
    bootstrap: bool           # bootstrap, or bootstrap_expect 1 (consul treats it as bootstrap): serf tag bootstrap=1
    bootstrap_expect: int     # > 1: serf tag expect=<n>
    rejoin_after_leave: bool  # XiVO: true
    data_dir: Path            # resolved under the node's root
    raw: dict[str, Any]       # the merged JSON, for agent/self


def merged_json(node: Node) -> dict[str, Any]:
    """Every `*.json` of the config dir in lexical order, later files overriding earlier ones.

    Consul merges the files of `-config-dir` in lexical order (XIVO-FACTS §4: the manual's
    interconnection.json overrides config.json). A file that is not valid JSON (the manual's sample
    has a `//` comment) stops consul with `Error decoding '<file>': <reason>`.
    """
    folder = node.path(CONFIG_DIR)
    if not folder.is_dir():
        raise ConfigError(f"Error reading '{CONFIG_DIR}': no such directory")
    merged: dict[str, Any] = {}
    for path in sorted(folder.glob("*.json")):
        shown = f"{CONFIG_DIR}/{path.name}"
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"Error reading '{shown}': {exc}") from exc
        except json.JSONDecodeError as exc:
            raise ConfigError(f"Error decoding '{shown}': {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"Error decoding '{shown}': not a JSON object")
        merged = deep_merge(merged, data)
    return merged


def _port(ports: dict[str, Any], name: str, default: int) -> int:
    value = ports.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"Error decoding config: ports.{name} must be a number, got {value!r}")
    return value


def load_config(node: Node) -> ConsulConfig:
    raw = merged_json(node)
    short = node.hostname()
    ports = raw.get("ports") or {}
    bind = node.listen_address(str(raw.get("bind_addr", "0.0.0.0")))
    advertise_configured = raw.get("advertise_addr")
    # Consul advertises bind_addr when advertise_addr is not set (bound to all: the node's private address).
    advertise = (node.listen_address(str(advertise_configured)) if advertise_configured
                 else node.address if bind == "0.0.0.0" else bind)
    data_dir = raw.get("data_dir")
    if not data_dir:
        raise ConfigError("Must specify data directory using -data-dir")
    return ConsulConfig(
        datacenter=str(raw.get("datacenter") or short),
        node_name=str(raw.get("node_name") or short),
        bind_addr=bind,
        advertise_addr=advertise,
        client_addr=node.listen_address(str(raw.get("client_addr", "127.0.0.1"))),
        https_port=_port(ports, "https", 8500),
        http_port=_port(ports, "http", -1),
        server_port=_port(ports, "server", 8300),
        serf_wan_port=_port(ports, "serf_wan", 8302),
        cert_file=str(raw.get("cert_file", "")),
        key_file=str(raw.get("key_file", "")),
        acl_master_token=raw.get("acl_master_token") or None,
        acl_default_policy=str(raw.get("acl_default_policy", "allow")),
        acl_datacenter=str(raw.get("acl_datacenter") or ""),
        acl_token=str(raw.get("acl_token") or ""),
        bootstrap=bool(raw.get("bootstrap")) or raw.get("bootstrap_expect") == 1,
        bootstrap_expect=expect if isinstance(expect := raw.get("bootstrap_expect"), int) and expect > 1 else 0,
        rejoin_after_leave=bool(raw.get("rejoin_after_leave", False)),
        data_dir=node.path(str(data_dir)),
        raw=raw,
    )
