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

This module is the process: its config, its UUID, its REST API; the Consul registration (consul_helpers)
is `standins.ctid_registration`.
"""

from __future__ import annotations

import logging
import sys
from typing import Any
from urllib.parse import urlsplit

import psycopg
import yaml

from xivo_doctor.lab import releases
from xivo_doctor.lab.standins.base import Node, QuietHandler, deep_merge, main_args, serve, wait_for_stop
from xivo_doctor.lab.standins.ctid_registration import SERVICE, Registerer, RegistererError

DAO_DEFAULT_URI = "postgresql://asterisk:proformatique@localhost/asterisk"  # xivo-dao's default db_uri
API_YML = """swagger: '2.0'
info: {title: xivo-ctid, version: '0.1'}
basePath: /0.1
paths:
  /infos:
    get: {summary: Information about this xivo-ctid, responses: {'200': {description: uuid}}}
"""


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
