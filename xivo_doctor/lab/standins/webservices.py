"""Lab stand-in for nginx + xivo-web-interface's json.php phonebook; behaviour from XIVO-FACTS §6.3.

Place in the pipeline: none — the lab is the system being inspected (docs/lab.md). Started as
`python -m xivo_doctor.lab.standins.webservices --root <node root>`; reads `etc/xivo-web-interface/lab.yml`
(`db_uri`, `listen`, `http_port`, `https_port`), the node's cert, `usr/share/xivo/XIVO-VERSION`
and the `accesswebservice` and `phonebook*` tables. Port 80 redirects as nginx's `location /`
does; HTTPS serves `json.php/{private,restricted}/pbx_services/phonebook` (acts search, list,
view; not add, delete, nor `sum=`). Access lines go to `var/log/nginx/xivo.access.log`.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
import socket
import sys
import threading
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg

from xivo_doctor.lab.standins.base import Node, QuietHandler, main_args, serve, tls_context, wait_for_stop

PHONEBOOK = re.compile(r"^/service/ipbx/json\.php/(private|restricted)/pbx_services/phonebook/?$")
WS_HEADERS = {"X-XIVO-WS-VERSION": "1.0"}
ENTRY_COLUMNS = ("id", "title", "firstname", "lastname", "displayname", "society", "email", "url", "image",
                 "description")
ADDRESS_COLUMNS = ("address1", "address2", "city", "state", "zipcode", "country")


def host_matches(client: str, host: str | None) -> bool:
    """dwho_network::ipv4_in_lhost: an IPv4 address, a CIDR block or a resolved hostname; IPv4 only."""
    host = (host or "").strip()
    try:
        address = ipaddress.IPv4Address(client)
    except ValueError:
        return False
    if not host:
        return False
    try:
        if "/" in host:
            return address in ipaddress.IPv4Network(host, strict=False)
        return address == ipaddress.IPv4Address(host)
    except ValueError:
        pass
    try:
        return client in socket.gethostbyname_ex(host)[2]  # gethostbynamel
    except OSError:
        return False


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.strip().split(".")[:2] if p.isdigit())


class WebServices:
    def __init__(self, node: Node, db_uri: str) -> None:
        self.node, self.db_uri = node, db_uri
        self.log = node.log("nginx/xivo.error")
        self.access_log = node.path("/var/log/nginx/xivo.access.log")
        self.lock = threading.Lock()

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.db_uri, connect_timeout=3) as conn:
            return conn.execute(sql, params).fetchall()

    def restricted_access(self, client: str, credentials: tuple[str, str] | None) -> bool:
        """xivo_accesswebservice::chk_http_access (XIVO-FACTS §6.3), on enabled rows."""
        rows = self.query("SELECT login, passwd, host FROM accesswebservice WHERE disable = 0")
        if credentials is not None:
            login, passwd = credentials
            return any(row[0] == login and (row[1] or "") == passwd and (not row[2] or host_matches(client, row[2]))
                       for row in rows if row[0])
        # chk_host_access: authorised by host only if the row has neither login nor password.
        return any(not row[0] and not row[1] and host_matches(client, row[2]) for row in rows)

    def phonebook(self, act: str, term: str, entry_id: str) -> list[dict[str, Any]]:
        entries = self.query(f"SELECT {', '.join(ENTRY_COLUMNS)} FROM phonebook ORDER BY displayname, id")
        numbers: dict[int, dict[str, Any]] = {}
        for owner, kind, number in self.query("SELECT phonebookid, type, number FROM phonebooknumber ORDER BY id"):
            numbers.setdefault(owner, {})[kind] = {"number": number}
        addresses: dict[int, dict[str, Any]] = {}
        for owner, kind, *fields in self.query(f"SELECT phonebookid, type, {', '.join(ADDRESS_COLUMNS)}"
                                               " FROM phonebookaddress ORDER BY id"):
            addresses.setdefault(owner, {})[kind] = dict(zip(ADDRESS_COLUMNS, fields, strict=True))
        result = []
        for row in entries:
            entry = dict(zip(ENTRY_COLUMNS, (str(v) if v is not None else "" for v in row), strict=True))
            if act == "view" and entry["id"] != entry_id:
                continue
            if act == "search":
                haystack = [entry[k] for k in ("displayname", "firstname", "lastname", "society")]
                haystack += [n["number"] for n in numbers.get(row[0], {}).values()]
                if not any(term.lower() in value.lower() for value in haystack):
                    continue
            # The JSON shape of generic.php: `false` when an entry has no numbers or addresses.
            result.append({"phonebook": entry, "phonebookaddress": addresses.get(row[0]) or False,
                           "phonebooknumber": numbers.get(row[0]) or False})
        return result


class Handler(QuietHandler):
    ws: WebServices
    secure: bool

    def do_GET(self) -> None:
        self.sent = 0
        try:
            status = self.respond()
        except psycopg.Error as e:
            self.ws.log.error("database error: %s", str(e).strip())
            status = self.reply(500, "500 Internal Server Error")
        self.access(status)

    def reply(self, status: int, text: str | None = None, headers: dict[str, str] | None = None,
              body: Any = None) -> int:
        if body is not None:
            self.send_json(status, body, headers)
            self.sent = len(json.dumps(body).encode())  # what send_json wrote
        elif status == 204:  # no body, no Content-Length (RFC 9110 §15.3.5)
            self.send_response(204)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.sent = 0
        else:
            text = text or ""
            self.send_text(status, text, headers)
            self.sent = len(text.encode())
        return status

    def host(self) -> str:
        # nginx's $host: the Host header, lower-cased, without its port; else the server's name.
        raw = (self.headers.get("Host") or self.server.server_address[0]).strip().lower()
        return raw[: raw.index("]") + 1] if raw.startswith("[") else raw.rsplit(":", 1)[0]

    def respond(self) -> int:
        url = urlsplit(self.path)
        if not self.secure and not re.search(r"(127\.0\.0\.1|localhost)", self.host(), re.IGNORECASE):
            # http location /: `rewrite ^(.*) https://$host$1 last;` (XIVO-FACTS §6.3): a 302, args kept.
            location = f"https://{self.host()}{url.path}" + (f"?{url.query}" if url.query else "")
            return self.reply(302, "302 Found\n", {"Location": location})
        match = PHONEBOOK.match(url.path)
        if not match or version_tuple(self.ws.node.version()) >= (16, 14):
            return self.reply(404, "404 Not Found\n")  # phonebook.php is gone in 16.14 (XIVO-FACTS §0)
        client = self.client_address[0]
        if match.group(1) == "private":
            if client not in ("127.0.0.1", "::1"):
                return self.reply(403, "", WS_HEADERS)
        elif not self.ws.restricted_access(client, self.basic()):
            return self.reply(401, "", {**WS_HEADERS, "WWW-Authenticate": 'Basic realm="Access Restricted"'})
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        act = query.get("act") or "list"
        if act in ("add", "delete"):
            return self.reply(400, "", WS_HEADERS)
        act = act if act in ("search", "view") else "list"
        entries = self.ws.phonebook(act, query.get("search", ""), query.get("id", ""))
        if act == "view":
            return self.reply(200, body=entries[0], headers=WS_HEADERS) if entries else self.reply(404, "", WS_HEADERS)
        return self.reply(200, body=entries, headers=WS_HEADERS) if entries else self.reply(204, None, WS_HEADERS)

    def basic(self) -> tuple[str, str] | None:
        header = self.headers.get("Authorization") or ""
        if header[:6].lower() != "basic ":
            return None
        try:
            login, _, passwd = base64.b64decode(header[6:].strip()).decode("utf-8", "replace").partition(":")
        except (binascii.Error, ValueError):
            return None
        return login, passwd

    def access(self, status: int) -> None:
        credentials = self.basic()
        user = credentials[0] if credentials and credentials[0] else "-"
        line = (f'{self.client_address[0]} - {user} [{time.strftime("%d/%b/%Y:%H:%M:%S %z")}] "{self.requestline}" '
                f'{status} {self.sent} "{self.headers.get("Referer", "-")}" "{self.headers.get("User-Agent", "-")}"\n')
        with self.ws.lock:
            self.ws.access_log.parent.mkdir(parents=True, exist_ok=True)
            with open(self.ws.access_log, "a") as log:
                log.write(line)


def main() -> int:
    args = main_args(__doc__.splitlines()[0])
    node = Node(args.root)
    config = node.read_yaml("/etc/xivo-web-interface/lab.yml")
    ws = WebServices(node, config.get("db_uri", ""))
    address = node.listen_address(str(config.get("listen", "0.0.0.0")))
    servers = []
    try:
        for secure, port in ((False, int(config.get("http_port", 80))), (True, int(config.get("https_port", 443)))):
            handler = type("NginxHandler", (Handler,), {"ws": ws, "secure": secure})
            tls = tls_context(node, "/usr/share/xivo-certs/server.crt", "/usr/share/xivo-certs/server.key")
            servers.append(serve(address, port, handler, tls=tls if secure else None))
            ws.log.info("listening on %s:%s (%s)", address, port, "https" if secure else "http")
    except OSError as e:
        ws.log.error("cannot listen on %s: %s", address, e)
        for server in servers:
            server.shutdown()
        return 1
    wait_for_stop()
    for server in servers:
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
