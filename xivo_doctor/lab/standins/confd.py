"""Lab stand-in for xivo-confd's HTTPS API (9486); behaviour from XIVO-FACTS §2 and §6.4.

Place in the pipeline: none — the lab is the system being inspected (docs/lab.md). Started as
`python -m xivo_doctor.lab.standins.confd --root <node root>`; reads `etc/xivo-confd/config.yml`
(`db_uri`, `rest_api.https.{listen,port,certificate,private_key}`) and the node's tables.

Serves `GET /1.1/infos` and `GET /1.1/users[?view=directory][&search=][&context=]` (the calls of
dird's `xivo` backend, XIVO-FACTS §6.2). Authorisation as confd_auth.py: the client address equal
to an enabled `accesswebservice.host`, or HTTP Digest with an enabled row's login/passwd.
The plain-HTTP listener of `rest_api.http` (shipped: enabled, 127.0.0.1:9487, config.yml at every
tag 15.19-16.15), where 127.0.0.1 needs no credentials (on any port up to 16.04).
Not emulated: xivo-auth tokens (an `X-Auth-Token` header counts as no credentials).
"""

from __future__ import annotations

import sys
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg

from xivo_doctor.lab import releases, releases_lookup
from xivo_doctor.lab.standins.base import Node, QuietHandler, main_args, serve, tls_context, wait_for_stop
from xivo_doctor.lab.standins.digest import Digest, parse

SERVICE = "xivo-confd"
REALM = "XIVO-CONFD"
DEFAULT_HTTPS = {"listen": "0.0.0.0", "port": 9486, "certificate": "/usr/share/xivo-certs/server.crt",
                 "private_key": "/usr/share/xivo-certs/server.key"}
DEFAULT_HTTP = {"enabled": True, "listen": "127.0.0.1", "port": 9487}
USER_FIELDS = ("id", "uuid", "firstname", "lastname", "exten", "email", "mobile_phone_number", "userfield",
               "description", "line_id", "agent_id", "voicemail_number", "context")
USERS_SQL = """
SELECT id, uuid, firstname, lastname, exten, email, mobilephonenumber, userfield, description,
       NULL, NULL, NULL, context
FROM userfeatures
WHERE (%(search)s::text IS NULL OR position(lower(%(search)s) IN lower(firstname)) > 0
       OR position(lower(%(search)s) IN lower(lastname)) > 0
       OR position(lower(%(search)s) IN lower(coalesce(exten, ''))) > 0)
  AND (%(context)s::text IS NULL OR context = %(context)s)
ORDER BY id
"""


class DatabaseError(Exception):
    pass


class Confd:
    """What the handler needs: the node, its database and the Digest state."""

    def __init__(self, node: Node, db_uri: str, http_port: int = 9487) -> None:
        self.node = node
        self.db_uri = db_uri
        self.http_port = http_port
        # 127.0.0.1 is the node itself only on its own network; nodes sharing the host share it with everyone
        self.localhost_exempt = node.own_network
        self.localhost_any_port = releases.confd_localhost_any_port(node.release())
        self.digest = Digest(REALM)
        self.log = node.log(SERVICE)

    def query(self, sql: str, params: dict[str, Any] | tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            with psycopg.connect(self.db_uri, connect_timeout=3) as conn:
                return conn.execute(sql, params).fetchall()
        except psycopg.Error as e:
            raise DatabaseError(str(e).strip()) from e

    def authorized(self, client: str, method: str, authorization: str | None, port: int = 0) -> bool:
        # confd_auth.py (XIVO-FACTS §6.4): 1. localhost, on the HTTP port (any port up to 16.04)
        if self.localhost_exempt and client == "127.0.0.1" and (port == self.http_port or self.localhost_any_port):
            return True
        # 2. remote_addr exactly equal (string compare) to an enabled host.
        hosts = self.query("SELECT DISTINCT host FROM accesswebservice WHERE host IS NOT NULL AND disable = 0")
        if client in {row[0] for row in hosts}:
            return True
        # 4. HTTP Digest against login/passwd of enabled rows.
        fields = parse(authorization)
        if not fields or not fields.get("username"):
            return False
        rows = self.query("SELECT passwd FROM accesswebservice WHERE login = %s AND disable = 0",
                          (fields["username"],))
        return any(self.digest.check(method, fields, row[0] or "") for row in rows)


class Handler(QuietHandler):
    confd: Confd

    def do_GET(self) -> None:
        started = time.monotonic()
        status = self.respond()
        self.confd.log.info("%s - - \"%s %s\" %s %.3fs", self.client_address[0], self.command, self.path, status,
                            time.monotonic() - started)

    def respond(self) -> int:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        routes = {"/1.1/infos": self.infos, "/1.1/users": self.users}
        route = routes.get(url.path.rstrip("/") or "/")
        if route is None:
            return self.reply(404, {"message": "The requested URL was not found on the server.", "status_code": 404})
        try:
            if not self.confd.authorized(self.client_address[0], self.command, self.headers.get("Authorization"),
                                         self.server.server_address[1]):
                return self.reply(401, ["Unauthorized"], {"WWW-Authenticate": self.confd.digest.challenge()})
            return route(query)
        except DatabaseError as e:
            self.confd.log.error("database error: %s", e)
            return self.reply(500, [f"Unexpected error: {e}"])

    def reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> int:
        self.send_json(status, body, headers)
        return status

    def infos(self, query: dict[str, str]) -> int:
        # XIVO-FACTS §2: confd's /1.1/infos reads the uuid from the DB, not from XIVO_UUID.
        rows = self.confd.query("SELECT uuid FROM infos")
        if not rows:
            return self.reply(404, ["Resource Not Found - Infos"])
        return self.reply(200, {"uuid": rows[0][0]})

    def users(self, query: dict[str, str]) -> int:
        # The directory view dird's xivo backend asks for (XIVO-FACTS §6.2); served for any view.
        params = {"search": query.get("search") or None, "context": query.get("context") or None}
        items = [dict(zip(USER_FIELDS, row, strict=True)) for row in self.confd.query(USERS_SQL, params)]
        with_uuid = releases_lookup.confd_directory_has_uuid(self.confd.node.release())
        for item in items:
            item["uuid"] = str(item["uuid"])
            if not with_uuid:  # the directory view of 15.19-16.01 has neither
                del item["uuid"], item["email"]
        return self.reply(200, {"total": len(items), "items": items})

    def do_POST(self) -> None:
        self.read_body()
        self.send_json(405, ["Method Not Allowed"])

    do_PUT = do_DELETE = do_POST


def main() -> int:
    args = main_args(__doc__.splitlines()[0])
    node = Node(args.root)
    config = node.read_yaml("/etc/xivo-confd/config.yml")
    https = {**DEFAULT_HTTPS, **((config.get("rest_api") or {}).get("https") or {})}
    http = {**DEFAULT_HTTP, **((config.get("rest_api") or {}).get("http") or {})}
    confd = Confd(node, config.get("db_uri", ""), int(http["port"]))
    handler = type("ConfdHandler", (Handler,), {"confd": confd})
    address = node.listen_address(str(https["listen"]))
    try:
        servers = [serve(address, int(https["port"]), handler,
                         tls=tls_context(node, https["certificate"], https["private_key"]))]
    except OSError as e:
        confd.log.error("cannot serve HTTPS on %s:%s: %s", address, https["port"], e)
        return 1
    confd.log.info("HTTPS server listening on %s:%s", address, https["port"])
    if http["enabled"] and node.own_network:  # 127.0.0.1 is the node's own only on its own network
        http_address = node.listen_address(str(http["listen"]))
        try:
            servers.append(serve(http_address, int(http["port"]), handler))
            confd.log.info("HTTP server listening on %s:%s", http_address, http["port"])
        except OSError as e:
            confd.log.error("cannot serve HTTP on %s:%s: %s", http_address, http["port"], e)
    wait_for_stop()
    for server in servers:
        server.shutdown()
    confd.log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
