"""The Consul stand-in's HTTP API: the subset of Consul 0.5.2–0.7.0's `/v1/...` that XiVO and the doctor use.

Place in the pipeline: lab only (docs/lab.md, "consul"). `consul.agent` serves `make_handler(agent)`
on `client_addr:ports.https` (the API) and `make_handler(agent, rpc=True)` on `bind_addr:8300`.

It behaves as the Consul version the node's XiVO ships (`consul.versions`, research R1 §4):
- `/v1/agent/*` is never ACL-checked (Consul enforces ACLs there only from 0.8);
- the request's token is `?token=`, else (Consul >= 0.6.0) the `X-Consul-Token` header, else the
  agent's `acl_token` (XiVO sets none): an empty token is the `anonymous` token;
- on Consul >= 0.6.0 discovery reads (`catalog/services`, `catalog/service/<name>`,
  `health/service/<name>`) keep only the services the token may read (`consul.acl`); no right
  gives 200 with an empty answer; a token this datacenter does not know fails with 403
  `ACL not found`. Consul 0.5.2 filters nothing. `catalog/datacenters` and `status/*` are never
  filtered;
- a service reaches the catalog only if the token it was registered with may write it (the agent's
  catalog sync; otherwise `Service '<id>' registration blocked by ACLs`); `agent/services` shows it anyway;
- `/v1/acl/create|update|destroy|info|list` over the raft store (`consul.acl`).

The 8300 listener is **the lab's own forwarding protocol**, not Consul's msgpack server RPC:
plain HTTP GETs of `/v1/catalog|health|status/...` that another stand-in forwards when a client
asks it for `?dc=<this datacenter>`, with the request's token (if any) in `X-Consul-Token`, as
Consul forwards the RPC with its token. The receiving stand-in applies its **own** version and ACLs:
the local master token is unknown there (`ACL not found`), no token gets its anonymous rules.

Shapes, status codes and headers follow LAB-NOTES §C.2/§C.3: every JSON answer carries
`X-Consul-Index` (python-consul2's `index=True` calls read it), `X-Consul-KnownLeader: true`
and `X-Consul-LastContact: 0`. There is no `Server` header (Go's net/http sends none). Nothing
beyond Consul's own API is served: the doctor must work against a real Consul, so it must not
depend on an endpoint only the lab has.
"""

from __future__ import annotations

import http.client
import json
import logging
import urllib.parse
from dataclasses import dataclass
from typing import Any

from xivo_doctor.lab.consul.acl import AclError, AclStore, Policy, http_status
from xivo_doctor.lab.consul.checks import HttpChecks
from xivo_doctor.lab.consul.config import ConsulConfig
from xivo_doctor.lab.consul.serf import STATUS_CODES, SerfAgent, SerfError
from xivo_doctor.lab.consul.state import BadRequest, State, field
from xivo_doctor.lab.consul.versions import ConsulVersion
from xivo_doctor.lab.standins.base import QuietHandler

FORWARD_TIMEOUT = 2.0
NO_PATH = "No path to datacenter"  # structs.ErrNoDCPath (LAB-NOTES §C.2)
FORWARDED_PREFIXES = ("/v1/catalog/", "/v1/health/", "/v1/status/")
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


def _serf_health(node: str) -> dict[str, Any]:
    return {"Node": node, "CheckID": "serfHealth", "Name": "Serf Health Status", "Status": "passing", "Notes": "",
            "Output": "Agent alive and reachable", "ServiceID": "", "ServiceName": "", "ServiceTags": [],
            "CreateIndex": 1, "ModifyIndex": 1}


class ConsulHandler(QuietHandler):
    agent: Agent
    rpc: bool = False
    query: list[tuple[str, str]]
    body: bytes

    def do_GET(self) -> None:
        self.dispatch("GET")

    def do_PUT(self) -> None:
        self.dispatch("PUT")

    def do_POST(self) -> None:
        self.dispatch("POST")

    def do_DELETE(self) -> None:
        self.dispatch("DELETE")

    # -- plumbing ----------------------------------------------------------------------------
    def send_response(self, code: int, message: str | None = None) -> None:
        """As Go's net/http: a Date header, no Server header."""
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def meta(self) -> dict[str, str]:
        return {"X-Consul-Index": str(self.agent.state.index), "X-Consul-KnownLeader": "true",
                "X-Consul-LastContact": "0"}

    def reply(self, body: Any) -> None:
        self.send_json(200, body, self.meta())

    def empty(self, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def request_token(self, params: dict[str, str]) -> str:
        """parseToken: `?token=`, then (>= 0.6.0) `X-Consul-Token`, then the agent's acl_token.

        On the forwarding listener the token is the forwarded RPC's (header set by `forward`).
        """
        if self.rpc:
            return self.headers.get("X-Consul-Token") or ""
        if params.get("token"):
            return params["token"]
        if self.agent.version.reads_token_header and self.headers.get("X-Consul-Token"):
            return str(self.headers.get("X-Consul-Token"))
        return self.agent.config.acl_token

    def failed(self, method: str, message: str) -> None:
        """An RPC error as consul's HTTP wrapper answers it (403 for ACL errors, else 500) and logs it."""
        if not self.rpc:  # on the forwarding listener the error goes back to the forwarding agent, which logs it
            shown = urllib.parse.urlsplit(self.path)
            query = "&".join(f"{k}=<hidden>" if k == "token" else f"{k}={v}" for k, v in self.query)
            self.agent.log.error(f"http: Request {method} {shown.path}{'?' + query if query else ''}, "
                                 f"error: {message} from={self.client_address[0]}:{self.client_address[1]}")
        self.send_text(http_status(message), message)

    def dispatch(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(url.path)
        self.query = urllib.parse.parse_qsl(url.query, keep_blank_values=True)
        self.body = self.read_body()  # always: an unread body would corrupt the next keep-alive request
        params = dict(self.query)
        try:
            if self.rpc and (method != "GET" or not path.startswith(FORWARDED_PREFIXES)):
                return self.send_text(404, f"lab consul RPC: only forwarded reads are served, not {path}\n")
            token = self.request_token(params)
            dc = params.get("dc")
            if dc and dc != self.agent.config.datacenter and path.startswith(FORWARDED_PREFIXES) \
                    and path != "/v1/catalog/datacenters":
                return self.forward(method, dc, url.path, token)
            self.route(method, path, params, token)
        except AclError as exc:
            self.failed(method, str(exc))
        except BadRequest as exc:
            self.send_text(400, str(exc))
        except SerfError as exc:
            self.agent.log.error(f"agent: {exc}")
            self.send_text(500, str(exc))
        except Exception as exc:  # a stand-in bug must still answer, as consul answers 500 with the error
            self.agent.log.exception(f"http: Request {method} {path}: {exc}")
            self.send_text(500, f"{type(exc).__name__}: {exc}")

    def forward(self, method: str, dc: str, raw_path: str, token: str) -> None:
        """?dc=<other>: to that datacenter's server, with the token (LAB-NOTES §C.2 for the 500)."""
        target = None if self.rpc else self.agent.server_for(dc)
        if target is None:
            self.agent.log.warning(f'consul.rpc: RPC request for DC "{dc}", no path found')
            return self.send_text(500, NO_PATH)
        query = urllib.parse.urlencode([(k, v) for k, v in self.query if k not in ("dc", "token")])
        conn = http.client.HTTPConnection(*target, timeout=FORWARD_TIMEOUT)
        try:
            conn.request("GET", raw_path + (f"?{query}" if query else ""),
                         headers={"X-Consul-Token": token} if token else {})
            answer = conn.getresponse()
            body = answer.read()
        except OSError as exc:
            self.agent.log.error(f'consul.rpc: RPC failed to server {target[0]}:{target[1]} in DC "{dc}": {exc}')
            return self.send_text(500, NO_PATH)
        finally:
            conn.close()
        if answer.status in (403, 500):  # the remote server's RPC error, as this agent's HTTP wrapper logs it
            return self.failed(method, body.decode("utf-8", "replace"))
        self.send_response(answer.status)
        for name in ("Content-Type", "X-Consul-Index", "X-Consul-KnownLeader", "X-Consul-LastContact"):
            if answer.getheader(name) is not None:
                self.send_header(name, answer.getheader(name))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    # -- endpoints ---------------------------------------------------------------------------
    def route(self, method: str, path: str, params: dict[str, str], token: str) -> None:
        # Consul <= 0.7 does not check the HTTP method of agent, catalog, health and status endpoints.
        agent = self.agent
        parts = path.strip("/").split("/", 3)  # v1, area, endpoint, rest
        area, endpoint, rest = [*parts, "", "", ""][1:4]
        if area == "agent":
            return self.agent_endpoint(endpoint, rest, params, token)
        if area == "acl":
            return self.acl_endpoint(method, endpoint, rest, token)
        if area == "catalog" and endpoint == "datacenters":
            return self.reply(agent.datacenters())
        if area == "status" and endpoint in ("leader", "peers"):
            # A one-server datacenter is its own leader (consul-wait-leader polls this, XIVO-FACTS §4).
            leader = f"{agent.config.advertise_addr}:{agent.config.server_port}"
            return self.reply(leader if endpoint == "leader" else [leader])
        if area == "catalog" and endpoint == "services" and not rest:
            names: dict[str, set[str]] = {}
            for s in agent.catalog_services(token):
                names.setdefault(s["Service"], set()).update(s["Tags"])
            return self.reply({name: sorted(tags) for name, tags in sorted(names.items())})
        if area in ("catalog", "health") and endpoint == "service" and rest:
            services = [s for s in agent.catalog_services(token)
                        if s["Service"] == rest and (not params.get("tag") or params["tag"] in s["Tags"])]
            if area == "health":
                return self.reply(self.health(services, "passing" in params))
            return self.reply([{**agent.node("NodeMeta"), "ServiceID": s["ID"], "ServiceName": s["Service"],
                                "ServiceAddress": s["Address"], "ServicePort": s["Port"], "ServiceTags": s["Tags"],
                                "ServiceEnableTagOverride": s["EnableTagOverride"],
                                "CreateIndex": s["CreateIndex"], "ModifyIndex": s["ModifyIndex"]}
                               for s in services])
        self.send_text(404, f"Not found: {path}\n")

    def health(self, services: list[dict[str, Any]], passing: bool) -> list[dict[str, Any]]:
        """health/service: consul 0.7 filters on the mere presence of `passing` (ServiceFinder sends `passing=True`)."""
        checks = self.agent.state.checks()
        node = self.agent.config.node_name
        out = []
        for s in services:
            own = [{**c, "ServiceTags": s["Tags"]} for c in checks.values() if c["ServiceID"] == s["ID"]]
            entry = {"Node": self.agent.node(), "Service": s, "Checks": [_serf_health(node), *own]}
            if not passing or all(c["Status"] == "passing" for c in entry["Checks"]):
                out.append(entry)
        return out

    def agent_endpoint(self, endpoint: str, rest: str, params: dict[str, str], token: str) -> None:
        """/v1/agent/*: no ACL check on Consul <= 0.7 (R1 §4c); a registration keeps its token."""
        agent, state = self.agent, self.agent.state
        if endpoint == "self":
            return self.reply(agent.self_info())
        if endpoint == "members":
            # The server only checks that `wan` is non-empty (LAB-NOTES §C.2).
            return self.reply(agent.wan_members() if params.get("wan") else [agent.lan_member()])
        if endpoint == "services":
            return self.reply(state.services())
        if endpoint == "checks":
            return self.reply(state.checks())
        if endpoint == "service" and rest == "register":
            try:
                body = json.loads(self.body or b"{}")
            except ValueError as exc:
                raise BadRequest(f"Request decode failed: {exc}") from exc
            if not isinstance(body, dict):
                raise BadRequest("Request decode failed: not a JSON object")
            service_id = state.register(body, token)
            agent.log_sync(service_id)
            agent.checks.sync()
            return self.empty()
        if endpoint == "service" and rest.startswith("deregister/"):
            state.deregister(rest.split("/", 1)[1])
            agent.checks.sync()
            return self.empty()
        if endpoint == "check" and rest.startswith("deregister/"):
            state.deregister_check(rest.split("/", 1)[1])
            agent.checks.sync()
            return self.empty()
        if endpoint == "check" and rest.split("/", 1)[0] in ("pass", "warn", "fail") and "/" in rest:
            action, check_id = rest.split("/", 1)
            status = {"pass": "passing", "warn": "warning", "fail": "critical"}[action]
            try:
                state.update_ttl(check_id, status, params.get("note", ""))
            except KeyError:
                return self.send_text(500, f'CheckID "{check_id}" does not have associated TTL')
            return self.empty()
        if endpoint == "join" and rest:
            if not params.get("wan"):
                # Each lab XiVO is a one-server datacenter: there is no LAN pool to join (fidelity limit).
                return self.send_text(500, "lab consul: only WAN joins are emulated (use ?wan=1)")
            address = rest if ":" in rest else f"{rest}:{agent.config.serf_wan_port}"
            agent.serf.join(address)  # serf logs `agent: (WAN) joining: [...]` / `joined: 1 nodes`
            return self.empty()
        self.send_text(404, f"Not found: {urllib.parse.urlsplit(self.path).path}\n")

    def acl_endpoint(self, method: str, endpoint: str, rest: str, token: str) -> None:
        """/v1/acl/* (command/agent/acl_endpoint.go); the RPC errors become 403/500 through `failed`."""
        acls = self.agent.acls
        if not acls.enabled:
            return self.send_text(401, "ACL support disabled")
        if endpoint in ("create", "update", "destroy") and method != "PUT":
            return self.empty(405)
        if endpoint in ("create", "update"):
            body: Any = {}
            if self.body:
                try:
                    body = json.loads(self.body)
                except ValueError as exc:
                    return self.send_text(400, f"Request decode failed: {exc}")
                if not isinstance(body, dict):
                    return self.send_text(400, "Request decode failed: not a JSON object")
            acl_id = str(field(body, "ID") or "")
            if endpoint == "update" and not acl_id:
                return self.send_text(400, "ACL ID must be set")
            new_id = acls.apply_set(token, acl_id, str(field(body, "Name") or ""),
                                    str(field(body, "Type") or "client"), str(field(body, "Rules") or ""))
            return self.reply({"ID": new_id})
        if endpoint in ("destroy", "info") and not rest:
            return self.send_text(400, "Missing ACL")
        if endpoint == "destroy":
            acls.apply_delete(token, rest)
            return self.reply(True)
        if endpoint == "info":
            return self.reply(acls.get(rest))
        if endpoint == "list":
            return self.reply(acls.list(token))
        self.send_text(404, f"Not found: {urllib.parse.urlsplit(self.path).path}\n")


def make_handler(agent: Agent, rpc: bool = False) -> type[ConsulHandler]:
    return type("ConsulRPCHandler" if rpc else "ConsulAPIHandler", (ConsulHandler,), {"agent": agent, "rpc": rpc})
