"""The Consul stand-in's discovery reads: `/v1/catalog/*`, `/v1/health/service/*`, `/v1/status/*`.

Place in the lab: a part of the stand-in's HTTP handler (`consul.api.ConsulHandler` routes these
areas here). These are the reads another stand-in forwards for `?dc=<this datacenter>` (the lab's
8300 listener, `consul.api`), so they answer the same on either listener.

As the Consul version the node's XiVO ships (`consul.versions`, research R1 §4): on Consul >= 0.6.0
`catalog/services`, `catalog/service/<name>` and `health/service/<name>` keep only the services the
token may read (`consul.acl`, through `Agent.catalog_services`); no right gives 200 with an empty
answer; a token this datacenter does not know fails with 403 `ACL not found`. Consul 0.5.2 filters
nothing. `catalog/datacenters` and `status/*` are never filtered. A service is in the catalog only
once the agent's catalog sync let it in (`Agent.sync_problem`).
"""

from __future__ import annotations

from typing import Any

from xivo_doctor.lab.consul.request import ConsulRequest


def _serf_health(node: str) -> dict[str, Any]:
    return {"Node": node, "CheckID": "serfHealth", "Name": "Serf Health Status", "Status": "passing", "Notes": "",
            "Output": "Agent alive and reachable", "ServiceID": "", "ServiceName": "", "ServiceTags": [],
            "CreateIndex": 1, "ModifyIndex": 1}


class CatalogEndpoints(ConsulRequest):
    def catalog_endpoint(self, area: str, endpoint: str, rest: str, params: dict[str, str], token: str,
                         path: str) -> None:
        """/v1/catalog/*, /v1/health/*, /v1/status/* (`area` is one of those)."""
        agent = self.agent
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
