"""One HTTP request to the Consul stand-in: its token, and answers in Consul's shape.

Place in the lab: the base of the stand-in's handler. The endpoint modules (`consul.catalog`,
`consul.agent_endpoint`, `consul.acl_endpoint`) subclass `ConsulRequest` and answer with its
`reply`/`empty`/`failed`; `consul.api.ConsulHandler` combines them and dispatches.

As the Consul version the node's XiVO ships (`consul.versions`, research R1 §4): the request's
token is `?token=`, else (Consul >= 0.6.0) the `X-Consul-Token` header, else the agent's
`acl_token` (XiVO sets none): an empty token is the `anonymous` token. On the forwarding listener
(`rpc`, see `consul.api`) the token is the forwarded RPC's, in `X-Consul-Token`.

Shapes, status codes and headers follow LAB-NOTES §C.2/§C.3: every JSON answer carries
`X-Consul-Index` (python-consul2's `index=True` calls read it), `X-Consul-KnownLeader: true`
and `X-Consul-LastContact: 0`. There is no `Server` header (Go's net/http sends none). An RPC
error is answered as consul's HTTP wrapper does: 403 for ACL errors, else 500 (`consul.acl.http_status`).
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from xivo_doctor.lab.consul.acl import http_status
from xivo_doctor.lab.consul.local_agent import Agent
from xivo_doctor.lab.standins.base import QuietHandler


class ConsulRequest(QuietHandler):
    """What every endpoint shares; `agent` and `rpc` are set by `consul.api.make_handler`."""

    agent: Agent
    rpc: bool = False
    query: list[tuple[str, str]]
    body: bytes

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
