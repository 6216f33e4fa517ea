"""The nginx side of the web-services stand-in: what the vhost does around xivo-web-interface's pages.

Place in the lab: part of the nginx + xivo-web-interface stand-in (`standins.webservices`, whose
`Handler` is a `NginxRequestHandler`). `WebServices` is what every request of the process shares
(node, database, release, logs); `NginxRequestHandler` answers as nginx does: it counts the bytes
it sent (for the access log), reads `$host` and the request's Basic credentials, and writes one
line in nginx's combined format per request to `var/log/nginx/xivo.access.log`.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from typing import Any

import psycopg

from xivo_doctor.lab.standins.base import Node, QuietHandler


class WebServices:
    """What every request of the process shares: the node, its database, the release, the logs."""

    def __init__(self, node: Node, db_uri: str) -> None:
        self.node, self.db_uri = node, db_uri
        self.release = node.release()  # the web interface's release, as installed (read at start)
        self.log = node.log("nginx/xivo.error")
        self.access_log = node.path("/var/log/nginx/xivo.access.log")
        self.lock = threading.Lock()

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.db_uri, connect_timeout=3) as conn:
            return conn.execute(sql, params).fetchall()


class NginxRequestHandler(QuietHandler):
    ws: WebServices
    secure: bool
    sent: int

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

    def reply_html(self, status: int, page: str) -> int:
        data = page.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.sent = len(data)
        return status

    def host(self) -> str:
        # nginx's $host: the Host header, lower-cased, without its port; else the server's name.
        raw = (self.headers.get("Host") or self.server.server_address[0]).strip().lower()
        return raw[: raw.index("]") + 1] if raw.startswith("[") else raw.rsplit(":", 1)[0]

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
