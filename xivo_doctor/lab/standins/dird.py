"""Lab stand-in for xivo-dird's lookup API (HTTPS 9489), as each release's does.

Place in the pipeline: none — the lab is the system being inspected (docs/lab.md). Started as
`python -m xivo_doctor.lab.standins.dird --root <node root>`. At start, once (dird reads its
configuration at start only: a change needs `service xivo-dird restart`), it reads the node's
release (`usr/share/xivo/XIVO-VERSION`), runs what xivo-confgend generates for dird from the node's
tables (`standins.dird_config`, through `etc/xivo-dao/config.yml`'s `db_uri`, the DAO's own
configuration that confgend uses; else `etc/xivo-confd/config.yml`'s), and merges as dird does:
`etc/xivo-dird/conf.d/*.yml` in name order (the three generated `050-xivo-*.yml` among them), the
first file winning, over `etc/xivo-dird/config.yml` (when the node has none, the release's shipped
file: `rest_api.https` 0.0.0.0:9489 with `/usr/share/xivo-certs/server.{crt,key}`, `auth: {host:
localhost, port: 9497}`, the `default` profile). Tokens are checked by the node's own xivo-auth at
`auth.host:auth.port` over HTTPS (nodes sharing this host: where the node's `etc/xivo-auth/config.yml`
listens). Logs to `var/log/xivo-dird.log` with upstream's lines; confgend's to `var/log/xivo-confgend.log`.

Serves `GET /0.1/directories/lookup/<profile>?term=<t>` in the order of docs/research-directory-lookup.md
§2.1: token (no scope up to 16.02, the lookup ACL from 16.03), then `term` (400), then the profile
(404), then `GET /token`, then every source of the profile in parallel (`standins.dird_backends`),
keeping those done within the profile's timeout (2.9 s from 15.20; 15.19 waits). Upstream:
wazo-platform/wazo-dird `xivo_dird/plugins/default_json_view.py` (views/default_json/ at 16.15),
`plugins/lookup.py`, `core/auth.py` (15.19-15.20), xivo-lib-python `auth_verifier.py` (16.01+).
Not emulated: favourites and personal contacts (a service token has none), reverse lookups, the
other routes, the bus and Consul registration.
"""

from __future__ import annotations

import logging
import sys
import time
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import requests

from xivo_doctor.lab import releases_lookup
from xivo_doctor.lab.standins import dird_config, dird_settings
from xivo_doctor.lab.standins.base import Node, QuietHandler, main_args, serve, tls_context, wait_for_stop
from xivo_doctor.lab.standins.dird_backends import Result, format_results, load_source, raise_stopper, session, verify

SERVICE = "xivo-dird"
DAO_DEFAULT_URI = "postgresql://asterisk:proformatique@localhost/asterisk"  # xivo-dao's default db_uri
PREFIX = "/0.1/directories/lookup/"
# 15.19-15.20: flask-restful 0.3.4's abort(401) answers {"message": werkzeug's Unauthorized.description}
# (flask-restful/flask-restful:flask_restful/__init__.py@0.3.4 `handle_error`; werkzeug's text [NOT CONFIRMED])
UNAUTHORIZED = ("The server could not verify that you are authorized to access the URL requested.  You either "
                "supplied the wrong credentials (e.g. a bad password), or your browser doesn't understand how to "
                "supply the credentials required.")
# the Flask app's logger (`Flask('xivo_dird')`, wazo-platform/wazo-dird:xivo_dird/core/rest_api.py@xivo-15.19):
# one line per request, wazo-platform/xivo-lib-python:xivo/http_helpers.py@xivo-15.19 `log_request`
log = logging.getLogger("xivo_dird")
lookup_log = logging.getLogger("xivo_dird.plugins.lookup")


class Dird:
    """What every request shares: the configuration read at start, the loaded sources, the auth client."""

    def __init__(self, node: Node, release: str, config: dict[str, Any]) -> None:
        self.node, self.release, self.config = node, release, config
        auth = config.get("auth") or {}
        self.auth_host, self.auth_port = auth.get("host", "localhost"), auth.get("port", 9497)
        # the auth client verifies by default from 16.08, not before
        # (wazo-platform/wazo-auth-client:xivo_auth_client/client.py@xivo-15.19, @xivo-16.08)
        value = auth.get("verify_certificate", releases_lookup.dird_verifies_auth_certificate(release))
        self.auth_verify = verify(node, value) if value else False
        host = self.auth_host
        # nodes sharing this host: `localhost` is where the node's xivo-auth listens (docs/lab.md)
        if not node.own_network and host in ("localhost", "127.0.0.1"):
            listen = ((node.read_yaml("/etc/xivo-auth/config.yml").get("rest_api") or {}).get("https") or {})
            host = node.listen_address(str(listen.get("listen", "0.0.0.0")))
        self.auth_base = f"https://{host}:{self.auth_port}/0.1/token"
        enabled = (config.get("enabled_plugins") or {}).get("backends") or []
        self.sources: dict[str, Any] = {}
        for source in (config.get("sources") or {}).values():
            if isinstance(source, dict) and source.get("type") in [*enabled, "personal"]:
                loaded = load_source(node, source, release)
                if loaded is not None:
                    self.sources[loaded.name] = loaded
        views = config.get("views") or {}
        self.displays = {profile: self.display(views, name)
                         for profile, name in (views.get("profile_to_display") or {}).items()}
        # wazo-platform/wazo-dird:xivo_dird/plugins/lookup.py@xivo-15.19 `_LookupService`: 10 workers
        self.executor = ThreadPoolExecutor(max_workers=10)

    @staticmethod
    def display(views: dict[str, Any], name: str) -> list[dict[str, Any]]:
        """`make_displays`: a display that does not exist is empty, with a warning
        (wazo-platform/wazo-dird:xivo_dird/plugins/default_json_view.py@xivo-15.19)."""
        if name not in (views.get("displays") or {}):
            logging.getLogger("xivo_dird.plugins.default_json_view").warning("Display `%s` is not defined.", name)
        return [column for column in (views.get("displays") or {}).get(name) or [] if isinstance(column, dict)]

    def auth(self, method: str, token: str, **params: str) -> requests.Response:
        s = session(self.node)
        s.headers = {"Connection": "close"}
        return s.request(method, f"{self.auth_base}/{token}", params=params or None, timeout=10,
                         verify=self.auth_verify,
                         headers={"Accept": "application/json", "Content-Type": "application/json"})

    def lookup(self, term: str, profile: str) -> list[Result]:
        """_LookupService.lookup: the profile's loaded sources in parallel (a source named but not loaded is
        skipped), keeping those done within the profile's timeout; no profile: a warning and nothing
        (wazo-platform/wazo-dird:xivo_dird/plugins/lookup.py@xivo-15.19, @xivo-16.15)."""
        config = ((self.config.get("services") or {}).get("lookup") or {}).get(profile) or {}
        if "sources" not in config:
            lookup_log.warning("Cannot find lookup sources for profile %s", profile)
            return []
        sources = [self.sources[name] for name in config["sources"] if name in self.sources]
        futures = [self.executor.submit(raise_stopper, source.search, term) for source in sources]
        done, _ = wait(futures, timeout=config.get("timeout"))  # no timeout (15.19): every source
        return [result for future in futures if future in done for result in future.result()]


class Handler(QuietHandler):
    dird: Dird

    def do_GET(self) -> None:
        status = self.respond()
        url = unquote(f"https://{self.headers.get('Host', '')}{self.path}")
        log.info("(%s) %s %s %s", self.client_address[0], self.command, url, status)

    def reply(self, status: int, body: Any) -> int:
        self.send_json(status, body)
        return status

    def respond(self) -> int:
        url = urlsplit(self.path)
        if not url.path.startswith(PREFIX) or "/" in url.path[len(PREFIX):] or url.path == PREFIX:
            return self.reply(404, {"message": "The requested URL was not found on the server.  If you entered the"
                                               " URL manually please check your spelling and try again."})
        profile = unquote(url.path[len(PREFIX):])
        query = parse_qs(url.query, keep_blank_values=True)
        denied = self.check_token(self.headers.get("X-Auth-Token", ""), profile)
        if denied is not None:
            return denied
        # `parser.add_argument('term', required=True, help='term is missing')`: 400 (default_json_view.py)
        if "term" not in query:
            return self.reply(400, {"message": {"term": releases_lookup.dird_missing_term(self.dird.release)}})
        term = query["term"][0]
        logging.getLogger(releases_lookup.dird_view_logger(self.dird.release)).info(
            "Lookup for %s with profile %s", term, profile)
        if profile not in self.dird.displays:
            return self.not_found(profile)
        try:
            return self.lookup(term, profile)
        except Exception:  # flask-restful 0.3.x `handle_error`: any other error is a 500, logged by the app
            log.exception("Internal Error")
            return self.reply(500, {"message": "Internal Server Error"})

    def check_token(self, token: str, profile: str) -> int | None:
        """`verify_token` (wazo-platform/wazo-dird:xivo_dird/core/auth.py@xivo-15.19) / `AuthVerifier`
        (wazo-platform/xivo-lib-python:xivo/auth_verifier.py@xivo-16.02, `handle_api_exception` in
        xivo_dird/core/rest_api.py@xivo-16.15): `HEAD /0.1/token/<t>[?scope=<acl>]`, valid only on 204
        (wazo-platform/wazo-auth-client:xivo_auth_client/commands/token.py@xivo-15.19 `is_valid`); the ACL
        `dird.directories.lookup.{profile}.read` from 16.03 (default_json_view.py@xivo-16.03 `required_acl`)."""
        dird, release = self.dird, self.dird.release
        scope = {"scope": f"dird.directories.lookup.{profile.replace('.', '_')}.read"} \
            if releases_lookup.dird_lookup_acl(release) else {}
        try:
            valid = dird.auth("HEAD", token, **scope).status_code == 204
        except requests.RequestException as e:
            if releases_lookup.dird_auth_verifier(release):
                logging.getLogger("xivo_dird.core.rest_api").error("%s: %s", "Authentication server unreachable", {
                    "auth_server_host": dird.auth_host, "auth_server_port": dird.auth_port, "original_error": str(e)})
                return self.reply(503, {"reason": ["Authentication server unreachable"], "timestamp": time.time(),
                                        "status_code": 503})
            message = f"Could not connect to authentication server on {dird.auth_host}:{dird.auth_port}: {e}"
            logging.getLogger("xivo_dird.core.auth").exception(message)
            return self.reply(503, {"reason": [message], "timestamp": [time.time()], "status_code": 503})
        if valid:
            return None
        if releases_lookup.dird_auth_verifier(release):
            logging.getLogger("xivo_dird.core.rest_api").error("%s: %s", "Unauthorized", {"invalid_token": token})
            return self.reply(401, {"reason": ["Unauthorized"], "timestamp": time.time(), "status_code": 401})
        return self.reply(401, {"message": UNAUTHORIZED})  # flask_restful.abort(401)

    def not_found(self, profile: str) -> int:
        """`_error(404, ...)`: logged at error level, timestamp a list
        (wazo-platform/wazo-dird:xivo_dird/plugins/default_json_view.py@xivo-15.19 `Lookup.get`)."""
        message = f"The profile `{profile}` does not exist"
        logging.getLogger(releases_lookup.dird_view_logger(self.dird.release)).error(message)
        return self.reply(404, {"reason": [message], "timestamp": [time.time()], "status_code": 404})

    def lookup(self, term: str, profile: str) -> int:
        dird = self.dird
        token = dird.auth("GET", self.headers["X-Auth-Token"])
        # `auth.client().token.get(token)`: any status but 200 raises, uncaught: a 500 (token.py@xivo-15.19)
        if token.status_code != 200:
            raise requests.HTTPError(f"{token.status_code} from xivo-auth", response=token)
        _infos = token.json()["data"]  # only feeds the personal source and the favourites: none here
        results = dird.lookup(term, profile)
        favorites = ((dird.config.get("services") or {}).get("favorites") or {})
        if releases_lookup.dird_favorites_strict(dird.release) and profile not in favorites:
            # favorites_service.py@xivo-16.07 `favorite_ids`: NoSuchProfileException, uncaught (wazo-dird 2aa098e8)
            raise LookupError(f"No such profile in favorite service configuration: {profile}")
        return self.reply(200, {"term": term, **format_results(dird.displays[profile], results)})

    def do_POST(self) -> None:
        self.read_body()
        self.send_json(405, {"message": "The method is not allowed for the requested URL."})

    do_PUT = do_DELETE = do_POST


def setup_logging(node: Node) -> None:
    """As xivo-lib-python's xivo_logging sets the root logger up (xivo/xivo_logging.py@xivo-15.19): every
    logger to var/log/xivo-dird.log; confgend's lines to var/log/xivo-confgend.log."""
    dird_log = node.log(SERVICE)
    dird_log.propagate = False
    root = logging.getLogger()
    for handler in dird_log.handlers:
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    confgend = node.log("xivo-confgend")
    for name in ("xivo_confgen", "xivo_dao"):
        logging.getLogger(name).handlers = list(confgend.handlers)
        logging.getLogger(name).propagate = False


def main() -> int:
    args = main_args(__doc__.splitlines()[0])
    node = Node(args.root)
    setup_logging(node)
    release = node.release()
    db_uri = str(node.read_yaml("/etc/xivo-dao/config.yml").get("db_uri")
                 or node.read_yaml("/etc/xivo-confd/config.yml").get("db_uri") or DAO_DEFAULT_URI)
    database = dird_config.Database(db_uri)
    try:
        generated = dird_config.confgend(node.root, database, release)
    finally:
        database.close()
    config = dird_settings.load_config(node, release, generated)
    dird = Dird(node, release, config)
    dird_settings.record(node, config)
    https = (dird.config.get("rest_api") or {}).get("https") or {}
    address, port = node.listen_address(str(https.get("listen", "0.0.0.0"))), int(https.get("port", 9489))
    handler = type("DirdHandler", (Handler,), {"dird": dird})
    try:
        server = serve(address, port, handler, tls=tls_context(node, https.get("certificate", ""),
                                                                   https.get("private_key", "")))
    except OSError as e:
        log.error("cannot serve HTTPS on %s:%s: %s", address, port, e)
        return 1
    log.info("HTTPS server listening on %s:%s", address, port)
    wait_for_stop()
    server.shutdown()
    dird.executor.shutdown(wait=False, cancel_futures=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
