"""The Consul stand-in's `/v1/agent/*`: self, members, services, checks, (de)registration, TTLs, WAN join.

Place in the lab: a part of the stand-in's HTTP handler (`consul.api.ConsulHandler` routes the
`agent` area here). This is what xivo-ctid's registration (`standins.ctid_registration`) and the
manual's `consul join -wan` call, and what the doctor reads of the local agent.

As Consul 0.5.2–0.7.0 (`consul.versions`, research R1 §4c): `/v1/agent/*` is never ACL-checked
(Consul enforces ACLs there only from 0.8); a registration keeps the request's token, which decides
whether the agent's catalog sync lets the service in (`Agent.log_sync`, `consul.local_agent`);
`agent/services` shows the service anyway. Every lab XiVO is a one-server datacenter: only WAN
joins are emulated (they go to the serf child, `consul.serf`).
"""

from __future__ import annotations

import json
import urllib.parse

from xivo_doctor.lab.consul.request import ConsulRequest
from xivo_doctor.lab.consul.state import BadRequest


class AgentEndpoints(ConsulRequest):
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
