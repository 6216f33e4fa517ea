"""The local Consul agent as the HTTP API sees it: its parts, and the answers made from them.

Place in the lab: `consul.agent` builds one `Agent` at start (config, Consul version, state, ACL
store, HTTP checks, serf child) and hands it to `consul.api.make_handler`; every endpoint module
(`consul.catalog`, `consul.agent_endpoint`, `consul.acl_endpoint`) reads it as `self.agent`.

What lives here is what several endpoints share, as the Consul version the node's XiVO ships does it
(`consul.versions`, research R1 §4):
- the ACL decisions: on Consul >= 0.6.0 discovery reads keep only the services the token may read
  (`consul.acl`); a service reaches the catalog only if the token it was registered with may write
  it (the agent's catalog sync; otherwise `Service '<id>' registration blocked by ACLs`);
- the members in Consul's shape (LAN: this one server; WAN: the serf child's members), the
  datacenters and where another datacenter's server is, `/v1/agent/self`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from xivo_doctor.lab.consul.acl import AclError, AclStore, Policy
from xivo_doctor.lab.consul.checks import HttpChecks
from xivo_doctor.lab.consul.config import ConsulConfig
from xivo_doctor.lab.consul.serf import STATUS_CODES, SerfAgent, SerfError
from xivo_doctor.lab.consul.state import State
from xivo_doctor.lab.consul.versions import ConsulVersion

CONSUL_SERVICE = "consul"  # the server's own service: its registration is never ACL-checked


def serf_tags(config: ConsulConfig, version: ConsulVersion) -> dict[str, str]:
    """The tags a consul server adds to dc/role/port/vsn (consul/server.go setupSerf)."""
    tags = {"vsn_min": "1", "vsn_max": str(version.protocol_max), "build": version.build}
    if config.bootstrap:
        tags["bootstrap"] = "1"
    elif config.bootstrap_expect:
        tags["expect"] = str(config.bootstrap_expect)
    return tags


@dataclass
class Agent:
    """Everything a request may need: the config, the Consul version, local state, ACLs, the serf child."""

    config: ConsulConfig
    version: ConsulVersion
    state: State
    acls: AclStore
    checks: HttpChecks
    serf: SerfAgent
    log: logging.Logger
    node_id: str

    # -- ACLs ----------------------------------------------------------------------------------
    def discovery_policy(self, token: str) -> Policy | None:
        """The token's rights on discovery reads; None when this Consul does not filter them (0.5.2).

        AclError (`ACL not found`) if the token is unknown here (consul/acl.go filterACL → resolveToken).
        """
        return self.acls.resolve(token) if self.version.filters_discovery else None

    def sync_problem(self, service: dict[str, Any]) -> str | None:
        """Why the agent's catalog sync of `service` fails (None: it is in the catalog).

        Catalog.Register checks `ServiceWrite` with the token the service was registered with.
        """
        if service["Service"] == CONSUL_SERVICE:
            return None
        try:
            policy = self.acls.resolve(self.state.service_token(service["ID"]))
        except AclError as exc:
            return str(exc)
        return None if policy.service_write(service["Service"]) else "Permission denied"

    def catalog_services(self, token: str) -> list[dict[str, Any]]:
        """The services of the catalog this token may see (AclError if the token is unknown)."""
        policy = self.discovery_policy(token)
        return [s for s in self.state.services().values()
                if self.sync_problem(s) is None and (policy is None or policy.service_read(s["Service"]))]

    def log_sync(self, service_id: str) -> None:
        """What consul's anti-entropy logs after a registration (command/agent/local.go syncService)."""
        service = self.state.services().get(service_id)
        problem = None if service is None else self.sync_problem(service)
        if problem is None:
            self.log.info(f"agent: Synced service '{service_id}'")
        elif "Permission denied" in problem:
            self.log.warning(f"agent: Service '{service_id}' registration blocked by ACLs")
        else:
            self.log.error(f"agent: failed to sync remote state: {problem}")

    # -- members -------------------------------------------------------------------------------
    def lan_member(self) -> dict[str, Any]:
        c = self.config
        return {"Name": c.node_name, "Addr": c.advertise_addr, "Port": 8301,
                "Tags": {"dc": c.datacenter, "role": "consul", "port": str(c.server_port), "vsn": "2",
                         **serf_tags(c, self.version)},
                "Status": 1, "ProtocolMin": 1, "ProtocolMax": 5, "ProtocolCur": 2,
                "DelegateMin": 2, "DelegateMax": 4, "DelegateCur": 4}

    def wan_members(self) -> list[dict[str, Any]]:
        """serf members in Consul's shape (LAB-NOTES §D: alive/leaving/left/failed → 1/2/3/4)."""
        out = []
        for m in self.serf.members():
            proto = m.get("protocol") or {}
            out.append({"Name": m["name"], "Addr": m["addr"].rsplit(":", 1)[0].strip("[]"), "Port": m["port"],
                        "Tags": m.get("tags") or {}, "Status": STATUS_CODES.get(m["status"], 0),
                        "ProtocolMin": 1, "ProtocolMax": 5, "ProtocolCur": 2,
                        "DelegateMin": proto.get("min", 2), "DelegateMax": proto.get("max", 5),
                        "DelegateCur": proto.get("version", 5)})
        return out

    def server_for(self, dc: str) -> tuple[str, int] | None:
        """An alive WAN member of datacenter `dc`: where its server (our 8300 listener) is."""
        try:
            members = self.wan_members()
        except SerfError:
            return None
        for m in members:
            if m["Status"] == 1 and m["Tags"].get("dc") == dc and m["Tags"].get("role") == "consul":
                return m["Addr"], int(m["Tags"].get("port", 8300))
        return None

    def datacenters(self) -> list[str]:
        """Own datacenter first, then the other alive WAN datacenters, sorted (a failed server is dropped)."""
        try:
            dcs = {m["Tags"].get("dc") for m in self.wan_members() if m["Status"] == 1}
        except SerfError:
            dcs = set()
        own = self.config.datacenter
        return [own, *sorted(d for d in dcs if d and d != own)]

    def node(self, meta_key: str = "Meta") -> dict[str, Any]:
        c = self.config
        return {"ID": self.node_id, "Node": c.node_name, "Address": c.advertise_addr, "Datacenter": c.datacenter,
                "TaggedAddresses": {"lan": c.advertise_addr, "wan": c.advertise_addr}, meta_key: {}}

    def self_info(self) -> dict[str, Any]:
        c = self.config
        ports = {"DNS": -1, "HTTP": c.http_port, "HTTPS": c.https_port, "RPC": 8400, "SerfLan": 8301,
                 "SerfWan": c.serf_wan_port, "Server": c.server_port}
        return {"Config": {"Datacenter": c.datacenter, "NodeName": c.node_name, "NodeID": self.node_id,
                           "Server": True, "Revision": self.version.revision, "Version": self.version.version,
                           "VersionPrerelease": "", "AdvertiseAddr": c.advertise_addr,
                           "AdvertiseAddrWan": c.advertise_addr, "BindAddr": c.bind_addr, "ClientAddr": c.client_addr,
                           "Ports": ports, "DataDir": c.raw.get("data_dir"), "ACLDatacenter": c.acl_datacenter,
                           "ACLDefaultPolicy": c.acl_default_policy, "Domain": "consul."},
                "Coord": {"Adjustment": 0, "Error": 1.5, "Height": 0, "Vec": [0] * 8},
                "Member": self.lan_member()}
