"""How the lab talks to a node's Consul stand-in: as an admin would, through Consul's HTTP API.

Place in the lab: `consul join -wan <addr>` (the manual's step) is `PUT /v1/agent/join/<addr>?wan=1`;
the orchestrator also reads `/v1/agent/services` to wait for xivo-ctid. Agent endpoints need no token
on the Consul of any XiVO 15.19–16.15 (ACLs reach `/v1/agent/*` only with Consul 0.8); the master
token is sent anyway, which changes nothing (Consul 0.5.2 ignores the header).
"""

from __future__ import annotations

import requests
import urllib3

from xivo_doctor.lab import tls
from xivo_doctor.lab.nodes import LabNode

# The lab's certificates are self-signed, as XiVO's are (XIVO-FACTS §11): no verification here.
urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)


def api(node: LabNode, method: str, path: str, timeout: float = 5.0, **params: str) -> requests.Response:
    with tls.session() as s:  # the TLS context shared: the health wait asks every node every 0.3 s
        return s.request(method, f"https://{node.address}:8500{path}", params=params or None, timeout=timeout,
                         verify=False, headers={"X-Consul-Token": node.master_token})


def join_wan(node: LabNode, address: str) -> None:
    """`consul join -wan <address>` run on `node`."""
    answer = api(node, "PUT", f"/v1/agent/join/{address}", wan="1", timeout=10)
    if answer.status_code != 200:
        raise RuntimeError(f"{node.name}: consul join -wan {address} failed: {answer.status_code} {answer.text}")


def ctid_registered(node: LabNode) -> bool:
    try:
        services = api(node, "GET", "/v1/agent/services", timeout=2).json()
    except (requests.RequestException, ValueError):
        return False
    return any(s.get("Service") == "xivo-ctid" and s.get("Address") == node.address for s in services.values())


def ctid_addresses(node: LabNode) -> str:
    """Where the node's Consul has xivo-ctid registered (`registered at localhost:9495`), or ''."""
    try:
        services = api(node, "GET", "/v1/agent/services", timeout=2).json()
    except (requests.RequestException, ValueError):
        return "its Consul does not answer"
    found = [f"{s.get('Address')}:{s.get('Port')}" for s in services.values() if s.get("Service") == "xivo-ctid"]
    return f"registered at {', '.join(found)}" if found else ""


def wan_member_names(node: LabNode) -> list[str]:
    """Names of the alive members of the node's WAN pool (`consul members -wan`)."""
    members = api(node, "GET", "/v1/agent/members", wan="1").json() or []
    return [m["Name"] for m in members if m.get("Status") == 1]
