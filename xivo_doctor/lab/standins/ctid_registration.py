"""xivo-ctid's Consul registration, as xivo-lib-python's consul_helpers of each release does it.

Place in the lab: part of the xivo-ctid stand-in (`standins.ctid` builds a `Registerer` at start,
runs its thread, deregisters on stop). As that release's consul_helpers (R1 §2, §3):
15.19-15.20 `NotifyingRegisterer`, an HTTP check from `check_url*`, the advertise address used
literally, retried every 20 s; 16.01+ `ServiceCatalogRegistration`, a TTL check kept passing after
ctid's self-check (`GET /0.1/infos`), `auto` resolved (16.01-16.05: the configured interface only,
fatal at start when it is missing; 16.06+: with the eth*/lo fallback). The NICs come from
`etc/xivo-lab/interfaces.json` (standing in for netifaces) and, for a consul host of `localhost`,
the node's consul `client_addr`. Consul calls as python-consul 0.4.7 makes them: the master token
(`?token=`) on the registration only. Not emulated: the bus events on (de)registration.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from typing import Any

import requests

from xivo_doctor.lab import releases, tls
from xivo_doctor.lab.standins.base import Node, deep_merge

SERVICE = "xivo-ctid"
VALID_IFACE_PREFIX = "eth"  # consul_helpers._find_address: `iface.startswith('eth')` (16.06-16.15)


class RegistererError(Exception):
    """consul_helpers.RegistererError (its subclass MissingConfigurationError for a missing key)."""


def _interfaces(node: Node) -> dict[str, str]:
    try:
        return node.interfaces()
    except (OSError, ValueError):
        return {}  # a node without NICs: only lo remains


def advertise_address(node: Node, discovery: dict[str, Any], release: str, log: logging.Logger) -> str:
    """consul_helpers' `_find_address` of that release, with interfaces.json standing in for netifaces."""
    mode = releases.ctid_advertise_auto(release)
    if mode == "literal" or discovery["advertise_address"] != "auto":
        return str(discovery["advertise_address"])  # the literal value, `localhost` (and 15.x's `auto`) included
    interfaces = _interfaces(node)
    main_iface = discovery["advertise_address_interface"]
    if mode == "interface":
        # netifaces.ifaddresses(iface)[AF_INET][0]['addr'], at start: ValueError -> RegistererError
        if main_iface not in interfaces and not (main_iface == "lo" and "lo" not in interfaces):
            raise RegistererError(f"You must specify a valid interface name.: {main_iface}")
        address = "127.0.0.1" if main_iface == "lo" and "lo" not in interfaces else interfaces[main_iface]
        if not address:
            raise KeyError(2)  # no AF_INET address: MissingConfigurationError('2')
        return address
    candidates = [main_iface, *(i for i in interfaces if i.startswith(VALID_IFACE_PREFIX)), "lo"]
    for iface in candidates:
        if iface == "lo" and "lo" not in interfaces:
            return "127.0.0.1"
        if iface not in interfaces:
            log.info("The configured interface does not exists: %s", iface)
        elif interfaces[iface]:
            return interfaces[iface]
    return "127.0.0.1"


def consul_client_addr(node: Node) -> str:
    """Where `localhost:8500` lands: on a node with its own network, localhost itself (the kernel then
    says whether the node's consul listens there); nodes sharing the host: `client_addr` of the node's
    consul (etc/consul/xivo/*.json merged)."""
    if node.own_network:
        return "localhost"
    merged: dict[str, Any] = {}
    for path in sorted(node.path("/etc/consul/xivo").glob("*.json")):
        try:
            merged = deep_merge(merged, json.loads(path.read_text()))
        except ValueError:
            continue  # consul would refuse to start; nothing listens then
    return node.listen_address(str(merged.get("client_addr", "127.0.0.1")))


class Registerer:
    """consul_helpers of the node's release over Consul's HTTP API: `NotifyingRegisterer` with an
    HTTP check (15.19-15.20) or `ServiceCatalogRegistration` with a TTL check (16.01+).

    Built at start, as ctid builds it: a missing configuration key or (16.01-16.05) a missing
    interface raises here, and ctid does not start."""

    def __init__(self, node: Node, config: dict[str, Any], release: str, xivo_uuid: str, self_check_url: str,
                 log: logging.Logger) -> None:
        discovery, consul = config["service_discovery"], config["consul"]
        self.log, self.release = log, release
        self.http_check = releases.ctid_http_check(release)
        self.service_id = str(uuid.uuid4())  # random per start
        self.address = advertise_address(node, discovery, release, log)
        self.port = discovery["advertise_port"]
        self.tags = releases.ctid_tags(release, xivo_uuid, discovery.get("extra_tags"))
        if self.http_check:
            # Check.http(check_url, check_url_interval, timeout=check_url_timeout), read with [] (R1 §3)
            self.check = {"HTTP": discovery["check_url"], "Interval": discovery["check_url_interval"],
                          "Timeout": discovery["check_url_timeout"]}
            self.refresh = self.retry = float(releases.HTTP_CHECK_RETRY)
        else:
            self.check = {"TTL": f"{discovery['ttl_interval']}s"}
            self.refresh, self.retry = float(discovery["refresh_interval"]), float(discovery["retry_interval"])
        host = consul_client_addr(node) if consul.get("host") == "localhost" else str(consul.get("host"))
        self.base = f"{consul.get('scheme', 'https')}://{host}:{consul.get('port', 8500)}"
        verify = consul.get("verify", True)
        if isinstance(verify, str):  # a XiVO path; accepted already under the root too (docs/lab.md layout)
            verify = verify if verify.startswith(f"{node.root}/") else str(node.path(verify))
        self.verify = verify if isinstance(verify, str) else bool(verify)
        # python-consul 0.4.7 adds the client's token to agent.service.register only (R1 §3)
        self.token = {"token": consul["token"]} if consul.get("token") else {}
        self.self_check_url = self_check_url
        self.done = threading.Event()
        self.registered = False
        self.thread = threading.Thread(target=self.loop, name="ServiceDiscoveryThread", daemon=True)

    def put(self, path: str, body: Any = None, params: dict[str, str] | None = None) -> bool:
        with tls.session() as s:  # a call of its own, as python-consul's; the TLS context shared (lab/tls.py)
            response = s.put(self.base + path, params=params or None, json=body, verify=self.verify, timeout=5)
        return response.status_code == 200

    def self_check(self) -> bool:
        """service_discovery.self_check (16.01+): /0.1/infos answers 200. 15.x registers without one."""
        if self.http_check:
            return True
        try:
            return requests.get(self.self_check_url, timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def register(self) -> None:
        self.log.info("Registering %s on Consul as %s with %s:%s", SERVICE, self.service_id, self.address, self.port)
        body = {"ID": self.service_id, "Name": SERVICE, "Address": self.address, "Port": self.port,
                "Tags": self.tags, "Check": self.check}
        try:
            self.registered = self.put("/v1/agent/service/register", body, self.token)
            problem = "" if self.registered else f"{SERVICE} registration on Consul failed"
        except requests.RequestException as e:
            problem = str(e)
        if self.registered:
            return
        if self.http_check:  # ctiserver._service_discovery_register (15.19-15.20)
            self.log.error("Failed to register service: RegistererError: %s", problem)
            self.log.info("Service registration failed, retrying in %s seconds", releases.HTTP_CHECK_RETRY)
        else:
            self.log.debug("failed to register service: %s", problem)
            self.log.info("registration failed, retrying in %s seconds", _n(self.retry))

    def send_ttl(self) -> bool:
        """agent.check.ttl_pass: no token (R1 §3)."""
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
            if self.http_check:
                if self.registered:
                    return  # Consul runs the HTTP check from now on; ctid does nothing more
                self.done.wait(self.retry)
                continue
            self.done.wait(self.refresh if self.registered and self.send_ttl() else self.retry)

    def deregister(self) -> None:
        """On stop; no token. 16.01+ deregister the check first (consul_helpers, R1 §3)."""
        self.log.info("Deregistering %s from Consul services: %s", SERVICE, self.service_id)
        try:
            if releases.ctid_deregisters_check(self.release):
                self.put(f"/v1/agent/check/deregister/service:{self.service_id}")
            self.put(f"/v1/agent/service/deregister/{self.service_id}")
        except requests.RequestException as e:
            self.log.info("failed to deregister %s", e)


def _n(seconds: float) -> str:
    return str(int(seconds)) if seconds == int(seconds) else str(seconds)
