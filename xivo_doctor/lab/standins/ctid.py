"""Lab stand-in for xivo-ctid's REST API (9495) and its Consul registration, as each release's does.

Place in the pipeline: none — the lab is the system being inspected (docs/lab.md). Started as
`python -m xivo_doctor.lab.standins.ctid --root <node root>`. At start it reads the node's release
(`usr/share/xivo/XIVO-VERSION`, `lab.releases`) and behaves as that release's xivo-ctid (R1 §2, §3):
its code defaults deep-merged under `etc/xivo-ctid/config.yml` and `etc/xivo-ctid/conf.d/*.yml`
(lexical order); its UUID from the database up to 16.01 (`infos.uuid`, through
`etc/xivo-dao/config.yml`'s `db_uri`), from XIVO_UUID from 16.02 (the lab reads it from
`etc/profile.d/xivo_uuid.sh`; unset: `undefined environment variable XIVO_UUID` and exit 1); the NICs
from `etc/xivo-lab/interfaces.json` and, for a consul host of `localhost`, the node's consul
`client_addr`. Serves `GET /0.1/infos` (`cti_protocol_version` from 16.11) and `GET /0.1/api/api.yml`
over plain HTTP, no auth. Registers in Consul as xivo-lib-python's consul_helpers of that release:
15.19-15.20 an HTTP check from `check_url*`, the advertise address used literally, retried every
20 s; 16.01+ a TTL check kept passing after ctid's self-check, `auto` resolved (16.01-16.05: the
configured interface only, fatal at start when it is missing; 16.06+: with the eth*/lo fallback).
Consul calls as python-consul 0.4.7 makes them: the master token (`?token=`) on the registration
only. Not emulated: the CTI port 5003 (the self-check only asks /0.1/infos) and the bus events on
(de)registration.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import uuid
from typing import Any
from urllib.parse import urlsplit

import psycopg
import requests
import yaml

from xivo_doctor.lab import releases
from xivo_doctor.lab.standins.base import Node, QuietHandler, deep_merge, main_args, serve, wait_for_stop

SERVICE = "xivo-ctid"
VALID_IFACE_PREFIX = "eth"  # consul_helpers._find_address: `iface.startswith('eth')` (16.06-16.15)
DAO_DEFAULT_URI = "postgresql://asterisk:proformatique@localhost/asterisk"  # xivo-dao's default db_uri
API_YML = """swagger: '2.0'
info: {title: xivo-ctid, version: '0.1'}
basePath: /0.1
paths:
  /infos:
    get: {summary: Information about this xivo-ctid, responses: {'200': {description: uuid}}}
"""


class RegistererError(Exception):
    """consul_helpers.RegistererError (its subclass MissingConfigurationError for a missing key)."""


def load_config(node: Node, release: str) -> dict[str, Any]:
    """ctid's code defaults of `release`, under config.yml, under conf.d/*.yml (deep merge, R1 §3)."""
    config = deep_merge(releases.ctid_code_defaults(release), node.read_yaml("/etc/xivo-ctid/config.yml"))
    for extra in sorted(node.path("/etc/xivo-ctid/conf.d").glob("*.yml")):
        config = deep_merge(config, yaml.safe_load(extra.read_text()) or {})
    return config


def database_uuid(node: Node) -> str:
    """`info_dao.get().uuid` (ctid <= 16.01, R1 §2): xivo-dao's `db_uri`, `SELECT uuid FROM infos`."""
    db_uri = str(node.read_yaml("/etc/xivo-dao/config.yml").get("db_uri") or DAO_DEFAULT_URI)
    with psycopg.connect(db_uri, connect_timeout=3) as conn:
        row = conn.execute("SELECT uuid FROM infos LIMIT 1").fetchone()
    if row is None:
        raise LookupError("infos: no row")
    return str(row[0])


def local_address(node: Node, configured: str) -> str:
    """A listen/connect address as the lab means it: 0.0.0.0 is the node, localhost is 127.0.0.1 (docs/lab.md)."""
    return "127.0.0.1" if configured == "localhost" else node.listen_address(configured)


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
    """`client_addr` of the node's consul (etc/consul/xivo/*.json merged): where `localhost:8500` lands."""
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
        response = requests.put(self.base + path, params=params or None, json=body, verify=self.verify, timeout=5)
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


def infos_body(release: str, xivo_uuid: str) -> dict[str, str]:
    """`GET /0.1/infos` of that release (R3 §4)."""
    if releases.infos_shows_protocol(release):
        return {"uuid": xivo_uuid, "cti_protocol_version": releases.cti_protocol_version(release)}
    return {"uuid": xivo_uuid}


def make_handler(body: dict[str, str]) -> type[QuietHandler]:
    class Handler(QuietHandler):
        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == "/0.1/infos":
                self.send_json(200, body)
            elif path == "/0.1/api/api.yml":
                self.send_text(200, API_YML, {"Content-Type": "application/x-yaml"})
            else:
                self.send_json(404, {"reason": ["The requested URL was not found on the server."],
                                     "timestamp": [], "status_code": 404})

    return Handler


def read_uuid(node: Node, release: str, log: logging.Logger) -> str | None:
    """The UUID as that release's ctid gets it (R1 §2); None after logging why ctid stops."""
    if releases.ctid_uuid_from_database(release):
        try:
            return database_uuid(node)
        except (psycopg.Error, LookupError, OSError, ValueError) as e:
            log.error("cannot read the XiVO UUID from the database (infos): %s", str(e).strip())
            return None
    try:
        return node.xivo_uuid()
    except (OSError, RuntimeError):
        log.error("undefined environment variable XIVO_UUID")  # xivo_cti/main.py, xivo.config_helper
        return None


def main() -> int:
    args = main_args(__doc__.splitlines()[0])
    node = Node(args.root)
    log = node.log(SERVICE)
    release = node.release()
    discovery_log = log
    if releases.ctid_logger(release) != SERVICE:
        discovery_log = logging.getLogger(releases.ctid_logger(release))  # consul_helpers' logger name
        discovery_log.handlers, discovery_log.propagate = list(log.handlers), False
        discovery_log.setLevel(logging.INFO)
    log.info("xivo-ctid %s starting", release)
    xivo_uuid = read_uuid(node, release, log)
    if xivo_uuid is None:
        return 1
    config = load_config(node, release)
    http = config["rest_api"]["http"]
    listen, port = local_address(node, str(http["listen"])), int(http["port"])
    registerer = None
    # 15.19-15.20 read no `enabled` (NotifyingRegisterer always); 16.01+ `.get('enabled', True)`
    enabled = releases.ctid_http_check(release) or (config["service_discovery"] or {}).get("enabled", True)
    if enabled:
        try:
            registerer = Registerer(node, config, release, xivo_uuid, f"http://{listen}:{port}/0.1/infos",
                                    discovery_log)
        except KeyError as e:
            log.error("MissingConfigurationError: %s", e)
            return 1
        except RegistererError as e:
            log.error("RegistererError: %s", e)
            return 1
    try:
        server = serve(listen, port, make_handler(infos_body(release, xivo_uuid)))
    except OSError as e:
        log.error("cannot listen on %s:%s: %s", listen, port, e)
        return 1
    log.info("HTTP server listening on %s:%s", listen, port)
    if registerer is not None:
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
