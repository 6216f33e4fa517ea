"""The Consul stand-in's HTTP API: the subset of Consul 0.7's `/v1/...` that XiVO and the doctor use.

Place in the pipeline: lab only (docs/lab.md, "consul"). `consul.agent` serves `make_handler(agent)`
on `client_addr:ports.https` (the API) and `make_handler(agent, rpc=True)` on `bind_addr:8300`.

The 8300 listener is **the lab's own forwarding protocol**, not Consul's msgpack server RPC:
plain HTTP GETs of `/v1/catalog|health|status/...` that another stand-in forwards when a client asks
it for `?dc=<this datacenter>`. They carry no token, so the anonymous rules apply there as they
would to a token-less request on a real XiVO (XIVO-FACTS §3: ServiceFinder sends no token).

Shapes, status codes and headers follow LAB-NOTES §C.2/§C.3: every JSON answer carries
`X-Consul-Index` (python-consul2's `index=True` calls read it), `X-Consul-KnownLeader: true`
and `X-Consul-LastContact: 0`. Nothing beyond Consul's own API is served: the doctor must work
against a real Consul, so it must not depend on an endpoint only the lab has.
"""

from __future__ import annotations

import http.client
import json
import logging
import urllib.parse
from dataclasses import dataclass
from typing import Any

from xivo_doctor.lab.consul.config import ConsulConfig
from xivo_doctor.lab.consul.serf import STATUS_CODES, SerfAgent, SerfError
from xivo_doctor.lab.consul.state import BadRequest, State
from xivo_doctor.lab.standins.base import QuietHandler

VERSION, REVISION = "0.7.1", "a9afa0c"  # the consul XiVO 16.x shipped (XIVO-FACTS §4)
FORWARD_TIMEOUT = 2.0
NO_PATH = "No path to datacenter"  # structs.ErrNoDCPath (LAB-NOTES §C.2)
FORWARDED_PREFIXES = ("/v1/catalog/", "/v1/health/", "/v1/status/")


@dataclass
class Agent:
    """Everything a request may need: the config, local state, the serf child."""

    config: ConsulConfig
    state: State
    serf: SerfAgent
    log: logging.Logger
    node_id: str

    def allowed(self, token: str | None) -> bool:
        """Master token (or a default `allow` policy): what agent endpoints need (XIVO-FACTS §4)."""
        master = self.config.acl_master_token
        return self.config.acl_default_policy == "allow" or (master is not None and token == master)

    def visible(self, service: str, token: str | None) -> bool:
        """XiVO's consul-customize-anonymous-token: anonymous may read `xivo-*` services (XIVO-FACTS §4)."""
        return self.allowed(token) or service.startswith("xivo-")

    def lan_member(self) -> dict[str, Any]:
        c = self.config
        return {"Name": c.node_name, "Addr": c.advertise_addr, "Port": 8301,
                "Tags": {"dc": c.datacenter, "role": "consul", "port": str(c.server_port), "vsn": "2",
                         "bootstrap": "1", "build": f"{VERSION}:'{REVISION}'"},
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
                           "Server": True, "Revision": REVISION, "Version": VERSION,
                           "AdvertiseAddr": c.advertise_addr, "AdvertiseAddrWan": c.advertise_addr,
                           "BindAddr": c.bind_addr, "ClientAddr": c.client_addr, "Ports": ports,
                           "DataDir": c.raw.get("data_dir"), "ACLDatacenter": c.raw.get("acl_datacenter", ""),
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
    server_version = f"Consul/{VERSION}"

    def do_GET(self) -> None:
        self.dispatch("GET")

    def do_PUT(self) -> None:
        self.dispatch("PUT")

    def do_POST(self) -> None:
        self.dispatch("POST")

    def do_DELETE(self) -> None:
        self.dispatch("DELETE")

    # -- plumbing ----------------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        return {"X-Consul-Index": str(self.agent.state.index), "X-Consul-KnownLeader": "true",
                "X-Consul-LastContact": "0"}

    def reply(self, body: Any) -> None:
        self.send_json(200, body, self.meta())

    def empty(self, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def dispatch(self, method: str) -> None:
        url = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(url.path)
        self.query = urllib.parse.parse_qsl(url.query, keep_blank_values=True)
        self.body = self.read_body()  # always: an unread body would corrupt the next keep-alive request
        params = dict(self.query)
        token = None if self.rpc else (self.headers.get("X-Consul-Token") or params.get("token"))
        try:
            if self.rpc and (method != "GET" or not path.startswith(FORWARDED_PREFIXES)):
                return self.send_text(404, f"lab consul RPC: only forwarded reads are served, not {path}\n")
            if path.startswith("/v1/agent/") and not self.agent.allowed(token):
                return self.send_text(403, "Permission denied")
            dc = params.get("dc")
            if dc and dc != self.agent.config.datacenter and path.startswith(FORWARDED_PREFIXES) \
                    and path != "/v1/catalog/datacenters":
                return self.forward(dc, url.path)
            self.route(method, path, params, token)
        except BadRequest as exc:
            self.send_text(400, str(exc))
        except SerfError as exc:
            self.agent.log.error(f"agent: {exc}")
            self.send_text(500, str(exc))
        except Exception as exc:  # a stand-in bug must still answer, as consul answers 500 with the error
            self.agent.log.exception(f"http: Request {method} {path}: {exc}")
            self.send_text(500, f"{type(exc).__name__}: {exc}")

    def forward(self, dc: str, raw_path: str) -> None:
        """?dc=<other>: to that datacenter's server, without dc and token (LAB-NOTES §C.2 for the 500)."""
        target = None if self.rpc else self.agent.server_for(dc)
        if target is None:
            self.agent.log.warning(f'consul.rpc: RPC request for DC "{dc}", no path found')
            return self.send_text(500, NO_PATH)
        query = urllib.parse.urlencode([(k, v) for k, v in self.query if k not in ("dc", "token")])
        conn = http.client.HTTPConnection(*target, timeout=FORWARD_TIMEOUT)
        try:
            conn.request("GET", raw_path + (f"?{query}" if query else ""))
            answer = conn.getresponse()
            body = answer.read()
        except OSError as exc:
            self.agent.log.error(f'consul.rpc: RPC failed to server {target[0]}:{target[1]} in DC "{dc}": {exc}')
            return self.send_text(500, NO_PATH)
        finally:
            conn.close()
        self.send_response(answer.status)
        for name in ("Content-Type", "X-Consul-Index", "X-Consul-KnownLeader", "X-Consul-LastContact"):
            if answer.getheader(name) is not None:
                self.send_header(name, answer.getheader(name))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    # -- endpoints ---------------------------------------------------------------------------
    def route(self, method: str, path: str, params: dict[str, str], token: str | None) -> None:
        agent, state = self.agent, self.agent.state
        parts = path.strip("/").split("/", 3)  # v1, area, endpoint, rest
        area, endpoint, rest = [*parts, "", "", ""][1:4]
        if method == "PUT" or (area, endpoint) in (("agent", "service"), ("agent", "check"), ("agent", "join")):
            return self.write(method, endpoint, rest, params)
        if area == "agent" and endpoint == "self":
            return self.reply(agent.self_info())
        if area == "agent" and endpoint == "members":
            # The server only checks that `wan` is non-empty (LAB-NOTES §C.2).
            return self.reply(agent.wan_members() if params.get("wan") else [agent.lan_member()])
        if area == "agent" and endpoint == "services":
            return self.reply(state.services())
        if area == "agent" and endpoint == "checks":
            return self.reply(state.checks())
        if area == "catalog" and endpoint == "datacenters":
            return self.reply(agent.datacenters())
        services = [s for s in state.services().values() if agent.visible(s["Service"], token)
                    and (not params.get("tag") or params["tag"] in s["Tags"])]
        if area == "catalog" and endpoint == "services" and not rest:
            names: dict[str, set[str]] = {}
            for s in services:
                names.setdefault(s["Service"], set()).update(s["Tags"])
            return self.reply({name: sorted(tags) for name, tags in sorted(names.items())})
        if area == "catalog" and endpoint == "service" and rest:
            return self.reply([{**agent.node("NodeMeta"), "ServiceID": s["ID"], "ServiceName": s["Service"],
                                "ServiceAddress": s["Address"], "ServicePort": s["Port"], "ServiceTags": s["Tags"],
                                "ServiceEnableTagOverride": s["EnableTagOverride"],
                                "CreateIndex": s["CreateIndex"], "ModifyIndex": s["ModifyIndex"]}
                               for s in services if s["Service"] == rest])
        if area == "health" and endpoint == "service" and rest:
            return self.reply(self.health(rest, services, "passing" in params))
        if area == "status" and endpoint in ("leader", "peers"):
            # A one-server datacenter is its own leader (consul-wait-leader polls this, XIVO-FACTS §4).
            leader = f"{agent.config.advertise_addr}:{agent.config.server_port}"
            return self.reply(leader if endpoint == "leader" else [leader])
        self.send_text(404, f"Not found: {path}\n")

    def health(self, name: str, services: list[dict[str, Any]], passing: bool) -> list[dict[str, Any]]:
        """health/service: consul 0.7 filters on the mere presence of `passing` (ServiceFinder sends `passing=True`)."""
        checks = self.agent.state.checks()
        node = self.agent.config.node_name
        out = []
        for s in services:
            if s["Service"] != name:
                continue
            own = [{**c, "ServiceTags": s["Tags"]} for c in checks.values() if c["ServiceID"] == s["ID"]]
            entry = {"Node": self.agent.node(), "Service": s, "Checks": [_serf_health(node), *own]}
            if not passing or all(c["Status"] == "passing" for c in entry["Checks"]):
                out.append(entry)
        return out

    def write(self, method: str, endpoint: str, rest: str, params: dict[str, str]) -> None:
        if method != "PUT":
            return self.empty(405)
        agent, state = self.agent, self.agent.state
        if endpoint == "service" and rest == "register":
            try:
                body = json.loads(self.body or b"{}")
            except ValueError as exc:
                raise BadRequest(f"Request decode failed: {exc}") from exc
            if not isinstance(body, dict):
                raise BadRequest("Request decode failed: not a JSON object")
            state.register(body)
            return self.empty()
        if endpoint == "service" and rest.startswith("deregister/"):
            state.deregister(rest.split("/", 1)[1])
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


def make_handler(agent: Agent, rpc: bool = False) -> type[ConsulHandler]:
    return type("ConsulRPCHandler" if rpc else "ConsulAPIHandler", (ConsulHandler,), {"agent": agent, "rpc": rpc})
