"""Lab stand-in for xivo-auth's HTTPS API (9497); behaviour from docs/research-directory-lookup.md §5.

Place in the pipeline: none — the lab is the system being inspected (docs/lab.md). Started as
`python -m xivo_doctor.lab.standins.auth --root <node root>`; reads `etc/xivo-auth/config.yml` and
`etc/xivo-auth/conf.d/*.yml` when the node has them (`rest_api.https`, `default_token_lifetime`,
`enabled_plugins`, `services`, `db_uri`), else what the release ships; the database of
`etc/xivo-dao/config.yml` when no `db_uri` is set (the lab's one place for it).

Serves, under `/0.1`: `POST /token` (Basic credentials, JSON `backend` and `expiration`) for a web
services user — `xivo_ws` up to 15.20, `xivo_service` over `accesswebservice` from 16.01 (`releases`);
`HEAD|GET|DELETE /token/<token>[?scope=<acl>]`. Tokens are uuid4, kept in memory with their expiry.
Upstream keeps its tokens in Consul (KV `xivo/xivo-auth/tokens/<id>` on every release; up to 16.06 the
token is a Consul ACL token too): this one keeps them in memory, but asks the node's Consul agent
(`consul: {host: localhost, port: 8500}` of the shipped config.yml) for a connection first and, as
upstream's `Storage` does when Consul does not answer, logs `Connection to consul failed: <error>` and
answers 500 `Connection to consul failed` (wazo-platform/wazo-auth xivo_auth/token.py@xivo-15.19,
@xivo-16.15 `_ConsulConnectionException`). Not emulated: the other backends (`xivo_user`,
`xivo_admin`, `ldap_user` answer as a failed login); the celery task that deletes a token when it
expires (an expired token is refused on read, as `Manager.get` does, which is what a client sees).
The tokens, users and ACL matching are `standins.auth_tokens`; this module is the HTTP side.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import sys
import time
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

from xivo_doctor.lab import releases_lookup
from xivo_doctor.lab.standins.auth_tokens import SERVICE, Auth, ConsulDown, DatabaseError, InternalError
from xivo_doctor.lab.standins.base import Node, QuietHandler, deep_merge, main_args, serve, tls_context, wait_for_stop

PREFIX = "/0.1"
# xivo_auth/config.py `_DEFAULT_CONFIG` (@xivo-15.19 .. @xivo-16.15) and the shipped config.yml's
# `default_token_lifetime: 7200`, `enabled_plugins` (per release, `releases_lookup.auth_backends`).
DEFAULTS: dict[str, Any] = {
    "config_file": "/etc/xivo-auth/config.yml",
    "extra_config_files": "/etc/xivo-auth/conf.d",
    "default_token_lifetime": 7200,
    "rest_api": {"https": {"listen": "0.0.0.0", "port": 9497, "certificate": "/usr/share/xivo-certs/server.crt",
                           "private_key": "/usr/share/xivo-certs/server.key"}},
    "consul": {"host": "localhost", "port": 8500},
}
# werkzeug's and flask-restful's bodies for a route or method the API does not have
NOT_FOUND = {"message": "The requested URL was not found on the server.  If you entered the URL manually please "
                        "check your spelling and try again."}
NOT_ALLOWED = {"message": "The method is not allowed for the requested URL."}
TOKEN_ROUTE = re.compile(rf"^{re.escape(PREFIX)}/token/([^/]+)$")


def _error(status: int, message: str) -> tuple[int, dict[str, Any]]:
    # `_error` of xivo_auth/http.py (every tag): the reason in a list, the timestamp too
    return status, {"reason": [message], "timestamp": [time.time()], "status_code": status}


class Handler(QuietHandler):
    auth: Auth

    def handle_request(self) -> None:
        try:
            status, body, headers = self.respond()
        except ConsulDown:
            status, body = _error(500, "Connection to consul failed")
            headers = {}
        except DatabaseError as e:
            self.auth.log.error("database error: %s", e)
            status, body, headers = 500, "Internal Server Error", {}
        except InternalError as e:
            self.auth.log.error("unexpected error: %s", e)
            status, body, headers = 500, "Internal Server Error", {}
        self.reply(status, body, headers)
        # http_helpers.log_request (xivo-lib-python, every tag): `(<client>) <METHOD> <url> <status>`;
        # the token is cut to its first 8 characters here (upstream writes the whole URL)
        url = unquote(f"https://{self.headers.get('Host', '')}{self.path}")
        url = re.sub(r"(/token/)([^/?]{8})[^/?]*", r"\1\2…", url)
        self.auth.log.info("(%s) %s %s %s", self.client_address[0], self.command, url, status)

    do_GET = do_POST = do_HEAD = do_DELETE = do_PUT = handle_request

    def reply(self, status: int, body: Any, headers: dict[str, str]) -> None:
        if isinstance(body, str):  # Flask's plain responses (Flask-HTTPAuth's 401, the 500 page)
            data, kind = body.encode(), "text/html; charset=utf-8"
        else:
            data, kind = (b"" if body is None else json.dumps(body).encode()), "application/json"
        self.send_response(status)
        if status != 204:
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD" and status != 204:
            self.wfile.write(data)

    def respond(self) -> tuple[int, Any, dict[str, str]]:
        body = self.read_body() if self.command in ("POST", "PUT", "DELETE") else b""
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        split = releases_lookup.auth_token_resources_split(self.auth.version)
        if url.path == f"{PREFIX}/token":
            if self.command == "POST":
                return self.new_token(body)
            # 16.02+: `Tokens` has only post (405); before, the one resource's get/head/delete lack
            # their `token` argument (TypeError, 500)
            return (405, NOT_ALLOWED, {}) if split else (500, "Internal Server Error", {})
        match = TOKEN_ROUTE.match(url.path)
        if match is None:
            return 404, NOT_FOUND, {}
        token_id = unquote(match.group(1))
        if self.command in ("GET", "HEAD"):
            return self.check(token_id, query.get("scope"))
        if self.command == "DELETE":
            try:
                self.auth.remove(token_id)
            except LookupError:
                return (*_error(404, "No such token"), {})
            return 200, {"data": {"message": "success"}}, {}
        if self.command == "POST" and not split:  # post() given a `token` argument it does not take
            return 500, "Internal Server Error", {}
        return 405, NOT_ALLOWED, {}

    def check(self, token_id: str, scope: str | None) -> tuple[int, Any, dict[str, str]]:
        # `Token.head` / `Token.get` (http.py, every tag): 204 empty / 200 {"data": ...}; a refusal
        # carries `_error`'s body (not sent for HEAD)
        try:
            token = self.auth.get(token_id, scope)
        except LookupError:
            return (*_error(404, "No such token"), {})
        except PermissionError as e:
            return (*_error(403, str(e)), {})
        if self.command == "HEAD":
            return 204, None, {}
        return 200, {"data": token.to_dict()}, {}

    def new_token(self, raw: bytes) -> tuple[int, Any, dict[str, str]]:
        version = self.auth.version
        credentials = self._basic()
        if not releases_lookup.auth_json_401(version) and credentials is None:
            # Flask-HTTPAuth 2.2.1 `login_required` (pinned in requirements.txt@xivo-15.19 .. @xivo-16.02):
            # no Authorization header, refused before the body is read
            return self._refused()
        # Flask 0.10's request.get_json(): None unless the body is declared JSON; a declared body that
        # does not parse is a 400. Everything after reads `data['backend']`: no dict, no key → 500.
        data: Any = None
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() == "application/json":
            try:
                data = json.loads(raw or b"null")
            except ValueError:
                return 400, {"message": "The browser (or proxy) sent a request that this server could not "
                                        "understand."}, {}
        if not isinstance(data, dict) or "backend" not in data:
            raise InternalError("request without a JSON object naming the backend")
        backend = str(data["backend"])
        login, password = credentials or ("", "")  # 16.03+: no header is the login '' (http.py@xivo-16.03)
        if not self.auth.verify_password(backend, login, password):
            return self._refused()
        expiration = data.get("expiration")
        if releases_lookup.auth_integer_expiration(version):
            # 16.02+ `_is_positive_integer` (a bool is an int, as in Python 2); null is no expiration
            if expiration is not None and not (isinstance(expiration, int) and expiration > 0):
                return (*_error(400, "Invalid expiration"), {})
        elif "expiration" in data:
            # up to 16.01 `not data['expiration'] > 0`: Python 2 sees null below 0 and any text above it,
            # which timedelta then refuses (500)
            if expiration is None or (isinstance(expiration, (int, float)) and not expiration > 0):
                return (*_error(400, "Invalid expiration"), {})
            if not isinstance(expiration, (int, float)):
                raise InternalError(f"expiration {expiration!r} is not a number")
        token = self.auth.new_token(backend, login, expiration)
        return 200, {"data": token.to_dict()}, {}

    def _basic(self) -> tuple[str, str] | None:
        header = self.headers.get("Authorization") or ""
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            login, sep, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return (login, password) if sep else None

    def _refused(self) -> tuple[int, Any, dict[str, str]]:
        if releases_lookup.auth_json_401(self.auth.version):
            return (*_error(401, "Authentication Failed"), {})
        # Flask-HTTPAuth 2.2.1 `default_auth_error` and `authenticate_header`
        return 401, "Unauthorized Access", {"WWW-Authenticate": 'Basic realm="Authentication Required"'}


def settings(node: Node) -> dict[str, Any]:
    """The code defaults, the release's shipped `enabled_plugins`, then config.yml and conf.d/*.yml in
    order (xivo_auth/config.py `get_config`: read_config_file_hierarchy over `_DEFAULT_CONFIG`)."""
    config = deep_merge(DEFAULTS, {"enabled_plugins": list(releases_lookup.auth_backends(node.release()))})
    config = deep_merge(config, node.read_yaml(str(config["config_file"])))
    extra = node.path(str(config.get("extra_config_files") or DEFAULTS["extra_config_files"]))
    for path in sorted(extra.glob("*.yml")) if extra.is_dir() else []:
        config = deep_merge(config, yaml.safe_load(path.read_text()) or {})
    if not config.get("db_uri"):  # the lab keeps the node's database in xivo-dao's config only
        config["db_uri"] = node.read_yaml("/etc/xivo-dao/config.yml").get("db_uri", "")
    return config


def service_keys(node: Node, config: dict[str, Any]) -> dict[str, str]:
    """15.19-15.20 `_load_key_files`: each `services.<login>.key_file`'s `service_key`, read at start."""
    if releases_lookup.auth_ws_backend(node.release()) != "xivo_ws":
        return {}
    return {login: str(node.read_yaml(str(entry["key_file"]))["service_key"])
            for login, entry in (config.get("services") or {}).items()}


def main() -> int:
    args = main_args(__doc__.splitlines()[0])
    node = Node(args.root)
    log = node.log(SERVICE)
    config = settings(node)
    try:
        keys = service_keys(node, config)
    except (OSError, KeyError, TypeError) as e:  # upstream dies reading the key files, before serving
        log.error("cannot read a service key file: %s", e)
        return 1
    auth = Auth(node, config, keys)
    https = config["rest_api"]["https"]
    handler = type("AuthHandler", (Handler,), {"auth": auth})
    address = node.listen_address(str(https["listen"]))
    try:
        server = serve(address, int(https["port"]), handler,
                       tls=tls_context(node, https["certificate"], https["private_key"]))
    except OSError as e:
        log.error("cannot serve HTTPS on %s:%s: %s", address, https["port"], e)
        return 1
    log.info("HTTPS server listening on %s:%s (XiVO %s, backends %s)", address, https["port"], auth.version,
             ", ".join(sorted(auth.backends)))
    wait_for_stop()
    server.shutdown()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
