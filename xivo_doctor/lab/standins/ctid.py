"""Lab stand-in for xivo-ctid's REST API (9495) and its Consul registration; behaviour from XIVO-FACTS §3.

Place in the pipeline: none — the lab is the system being inspected (docs/lab.md). Started as
`python -m xivo_doctor.lab.standins.ctid --root <node root>`; reads `etc/xivo-ctid/config.yml` merged with
`etc/xivo-ctid/conf.d/*.yml` (lexical order), the UUID from `etc/profile.d/xivo_uuid.sh`, the NICs
from `etc/xivo-lab/interfaces.json` and, for a consul host of `localhost`, the node's consul
`client_addr`. Serves `GET /0.1/infos` and `GET /0.1/api/api.yml` over plain HTTP, no auth.
Registers in Consul as xivo-lib-python's consul_helpers does. Not emulated: the CTI port 5003
(the self-check only asks /0.1/infos) and the bus events on (de)registration.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import uuid
from typing import Any
from urllib.parse import urlsplit

import requests
import yaml

from xivo_doctor.lab.standins.base import Node, QuietHandler, deep_merge, main_args, serve, wait_for_stop

SERVICE = "xivo-ctid"
# ctid's defaults when a key is absent (etc/xivo-ctid/config.yml and cti_config.py, XIVO-FACTS §3).
DEFAULTS: dict[str, Any] = {
    "rest_api": {"http": {"listen": "127.0.0.1", "port": 9495}},
    "service_discovery": {"enabled": True, "advertise_address": "localhost", "advertise_address_interface": "eth0",
                          "advertise_port": 9495, "ttl_interval": 30, "refresh_interval": 27, "retry_interval": 2,
                          "extra_tags": []},
    "consul": {"scheme": "https", "host": "localhost", "port": 8500, "verify": "/usr/share/xivo-certs/server.crt"},
}
VALID_IFACE_PREFIXES = ("eth", "en")  # consul_helpers.VALID_SERVICE_DISCO_IFACE_PREFIX
API_YML = """swagger: '2.0'
info: {title: xivo-ctid, version: '0.1'}
basePath: /0.1
paths:
  /infos:
    get: {summary: Information about this xivo-ctid, responses: {'200': {description: uuid and cti_protocol_version}}}
"""


def load_config(node: Node) -> dict[str, Any]:
    config = deep_merge(DEFAULTS, node.read_yaml("/etc/xivo-ctid/config.yml"))
    for extra in sorted(node.path("/etc/xivo-ctid/conf.d").glob("*.yml")):
        config = deep_merge(config, yaml.safe_load(extra.read_text()) or {})
    return config


def local_address(node: Node, configured: str) -> str:
    """A listen/connect address as the lab means it: 0.0.0.0 is the node, localhost is 127.0.0.1 (docs/lab.md)."""
    return "127.0.0.1" if configured == "localhost" else node.listen_address(configured)


def advertise_address(node: Node, discovery: dict[str, Any], log: logging.Logger) -> str:
    """consul_helpers.address_from_config, with interfaces.json standing in for netifaces."""
    if discovery["advertise_address"] != "auto":
        return str(discovery["advertise_address"])  # the literal value, `localhost` included
    try:
        interfaces = node.interfaces()
    except (OSError, ValueError):
        interfaces = {}  # a node without NICs: only lo remains
    main_iface = discovery["advertise_address_interface"]
    candidates = [main_iface, *(i for i in interfaces if i.startswith(VALID_IFACE_PREFIXES)), "lo"]
    for iface in candidates:
        if iface == "lo" and "lo" not in interfaces:
            return "127.0.0.1"
        if iface not in interfaces:
            log.info("The configured interface does not exists: %s", iface)
        elif interfaces[iface]:
            return interfaces[iface]
    return "127.0.0.1"


def consul_client_addr(node: Node) -> str:
    """`client_addr` of the node's consul (etc/consul/xivo/*.json merged): where `localhost:8500` lands."""
    merged: dict[str, Any] = {}
    for path in sorted(node.path("/etc/consul/xivo").glob("*.json")):
        try:
            merged = deep_merge(merged, json.loads(path.read_text()))
        except ValueError:
            continue  # consul would refuse to start; nothing listens then
    return node.listen_address(str(merged.get("client_addr", "127.0.0.1")))


class Registerer:
    """consul_helpers.Registerer + ServiceCatalogRegistration over Consul's HTTP API."""

    def __init__(self, node: Node, config: dict[str, Any], xivo_uuid: str, self_check_url: str,
                 log: logging.Logger) -> None:
        discovery, consul = config["service_discovery"], config["consul"]
        self.log = log
        self.service_id = str(uuid.uuid4())  # random per start
        self.address = advertise_address(node, discovery, log)
        self.port = int(discovery["advertise_port"])
        self.tags = [xivo_uuid, SERVICE, *(discovery.get("extra_tags") or [])]
        self.ttl = f"{discovery['ttl_interval']}s"
        self.refresh, self.retry = float(discovery["refresh_interval"]), float(discovery["retry_interval"])
        host = consul_client_addr(node) if consul.get("host") == "localhost" else str(consul.get("host"))
        self.base = f"{consul.get('scheme', 'https')}://{host}:{consul.get('port', 8500)}"
        verify = consul.get("verify", True)
        if isinstance(verify, str):  # a XiVO path; accepted already under the root too (docs/lab.md layout)
            verify = verify if verify.startswith(f"{node.root}/") else str(node.path(verify))
        self.verify = verify if isinstance(verify, str) else bool(verify)
        self.params = {"token": consul["token"]} if consul.get("token") else {}
        self.self_check_url = self_check_url
        self.done = threading.Event()
        self.registered = False
        self.thread = threading.Thread(target=self.loop, name="ServiceDiscoveryThread", daemon=True)

    def put(self, path: str, body: Any = None) -> bool:
        response = requests.put(self.base + path, params=self.params, json=body, verify=self.verify, timeout=5)
        return response.status_code == 200

    def self_check(self) -> bool:
        try:
            return requests.get(self.self_check_url, timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def register(self) -> None:
        self.log.info("Registering %s on Consul as %s with %s:%s", SERVICE, self.service_id, self.address, self.port)
        body = {"ID": self.service_id, "Name": SERVICE, "Address": self.address, "Port": self.port,
                "Tags": self.tags, "Check": {"TTL": self.ttl}}
        try:
            self.registered = self.put("/v1/agent/service/register", body)
            problem = "" if self.registered else f"{SERVICE} registration on Consul failed"
        except requests.RequestException as e:
            problem = str(e)
        if not self.registered:
            self.log.debug("failed to register service: %s", problem)
            self.log.info("registration failed, retrying in %s seconds", _n(self.retry))

    def send_ttl(self) -> bool:
        try:
            passed = self.put(f"/v1/agent/check/pass/service:{self.service_id}")
        except requests.RequestException as e:
            self.log.info("%s", e)
            passed = False
        if not passed:
            self.log.info("ttl pass failed")
            self.registered = False  # the lab's choice (see the report): register again on the next round
        return passed

    def loop(self) -> None:
        while not self.done.is_set():
            if not self.registered and self.self_check():
                self.register()
            self.done.wait(self.refresh if self.registered and self.send_ttl() else self.retry)

    def deregister(self) -> None:
        self.log.info("Deregistering %s from Consul services: %s", SERVICE, self.service_id)
        try:
            self.put(f"/v1/agent/check/deregister/service:{self.service_id}")
            self.put(f"/v1/agent/service/deregister/{self.service_id}")
        except requests.RequestException as e:
            self.log.info("failed to deregister %s", e)


def _n(seconds: float) -> str:
    return str(int(seconds)) if seconds == int(seconds) else str(seconds)


def make_handler(xivo_uuid: str) -> type[QuietHandler]:
    class Handler(QuietHandler):
        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == "/0.1/infos":
                self.send_json(200, {"uuid": xivo_uuid, "cti_protocol_version": "2.2"})
            elif path == "/0.1/api/api.yml":
                self.send_text(200, API_YML, {"Content-Type": "application/x-yaml"})
            else:
                self.send_json(404, {"reason": ["The requested URL was not found on the server."],
                                     "timestamp": [], "status_code": 404})

    return Handler


def main() -> int:
    args = main_args(__doc__.splitlines()[0])
    node = Node(args.root)
    log = node.log(SERVICE)
    discovery_log = logging.getLogger("service_discovery")  # consul_helpers' logger name
    discovery_log.handlers, discovery_log.propagate = list(log.handlers), False
    discovery_log.setLevel(logging.INFO)
    try:
        xivo_uuid = node.xivo_uuid()
    except (OSError, RuntimeError):
        log.error("undefined environment variable XIVO_UUID")  # xivo.config_helper (XIVO-FACTS §2)
        return 1
    config = load_config(node)
    http = config["rest_api"]["http"]
    listen, port = local_address(node, str(http["listen"])), int(http["port"])
    try:
        server = serve(listen, port, make_handler(xivo_uuid))
    except OSError as e:
        log.error("cannot listen on %s:%s: %s", listen, port, e)
        return 1
    log.info("HTTP server listening on %s:%s", listen, port)
    registerer = None
    if config["service_discovery"].get("enabled", True):
        registerer = Registerer(node, config, xivo_uuid, f"http://{listen}:{port}/0.1/infos", discovery_log)
        registerer.thread.start()
    wait_for_stop()
    if registerer is not None:
        registerer.done.set()
        registerer.thread.join(10)
        registerer.deregister()
    server.shutdown()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())

