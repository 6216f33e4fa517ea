"""The Consul stand-in's `/v1/acl/create|update|destroy|info|list`, over the raft store (`consul.acl`).

Place in the lab: a part of the stand-in's HTTP handler (`consul.api.ConsulHandler` routes the `acl`
area here); XiVO's anonymous-token script (written by `lab.nodes`) PUTs `acl/update`. Follows
hashicorp/consul's 0.6-era `command/agent/acl_endpoint.go` (research R1 §4c): `create`, `update`
and `destroy` want a PUT (else 405); `update` replaces the whole token, creating it if missing; the
ACL RPCs' errors (`AclError`) are answered by `ConsulRequest.failed` (403 for ACL errors, else 500).
With ACLs disabled every endpoint answers 401 `ACL support disabled`.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from xivo_doctor.lab.consul.request import ConsulRequest
from xivo_doctor.lab.consul.state import field


class AclEndpoints(ConsulRequest):
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
