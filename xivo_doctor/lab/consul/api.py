"""The Consul stand-in's HTTP API: the subset of Consul 0.5.2–0.7.0's `/v1/...` that XiVO and the doctor use.

Place in the pipeline: lab only (docs/lab.md, "consul"). `consul.agent` serves `make_handler(agent)`
on `client_addr:ports.https` (the API) and `make_handler(agent, rpc=True)` on `bind_addr:8300`.
This module is the dispatcher: which listener, which datacenter, which area. The areas are answered
by `consul.agent_endpoint` (`/v1/agent/*`), `consul.catalog` (`/v1/catalog|health|status/*`) and
`consul.acl_endpoint` (`/v1/acl/*`), over `consul.request` (token, Consul's headers and errors)
and `consul.local_agent` (what the agent knows and decides).

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
import urllib.parse

from xivo_doctor.lab.consul.acl import AclError
from xivo_doctor.lab.consul.acl_endpoint import AclEndpoints
from xivo_doctor.lab.consul.agent_endpoint import AgentEndpoints
from xivo_doctor.lab.consul.catalog import CatalogEndpoints
from xivo_doctor.lab.consul.local_agent import Agent
from xivo_doctor.lab.consul.serf import SerfError
from xivo_doctor.lab.consul.state import BadRequest

FORWARD_TIMEOUT = 2.0
NO_PATH = "No path to datacenter"  # structs.ErrNoDCPath (LAB-NOTES §C.2)
FORWARDED_PREFIXES = ("/v1/catalog/", "/v1/health/", "/v1/status/")


class ConsulHandler(AgentEndpoints, AclEndpoints, CatalogEndpoints):
    def do_GET(self) -> None:
        self.dispatch("GET")

    def do_PUT(self) -> None:
        self.dispatch("PUT")

    def do_POST(self) -> None:
        self.dispatch("POST")

    def do_DELETE(self) -> None:
        self.dispatch("DELETE")

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

    # -- routing -----------------------------------------------------------------------------
    def route(self, method: str, path: str, params: dict[str, str], token: str) -> None:
        # Consul <= 0.7 does not check the HTTP method of agent, catalog, health and status endpoints.
        parts = path.strip("/").split("/", 3)  # v1, area, endpoint, rest
        area, endpoint, rest = [*parts, "", "", ""][1:4]
        if area == "agent":
            return self.agent_endpoint(endpoint, rest, params, token)
        if area == "acl":
            return self.acl_endpoint(method, endpoint, rest, token)
        if area in ("catalog", "health", "status"):
            return self.catalog_endpoint(area, endpoint, rest, params, token, path)
        self.send_text(404, f"Not found: {path}\n")


def make_handler(agent: Agent, rpc: bool = False) -> type[ConsulHandler]:
    return type("ConsulRPCHandler" if rpc else "ConsulAPIHandler", (ConsulHandler,), {"agent": agent, "rpc": rpc})
