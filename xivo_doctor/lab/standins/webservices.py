"""Lab stand-in for nginx + xivo-web-interface (login page, json.php phonebook), as each release's.

Place in the pipeline: none — the lab is the system being inspected (docs/lab.md). Started as
`python -m xivo_doctor.lab.standins.webservices --root <node root>`; reads `etc/xivo-web-interface/lab.yml`
(`db_uri`, `listen`, `http_port`, `https_port`), the node's cert, `usr/share/xivo/XIVO-VERSION`
(at start: the release whose web interface it is, `lab.releases`; at every page: the footer's
version, as define.inc reads it) and the `accesswebservice` and `phonebook*` tables. Port 80
redirects as nginx's `location /` does (R2 §5); HTTPS serves the login page `/` (its footer
`XIVO - Version: <version file> "Five"`, R3 §4) and, up to 16.13,
`json.php/{private,restricted}/pbx_services/phonebook` (acts search, list, view; not add, delete,
nor `sum=`), whose `restricted` also checks the user's ACL at 15.19-15.20 (R2 §5). Access lines
go to `var/log/nginx/xivo.access.log`.

This module is the process and its routing; the rest is in `standins.nginx` (the shared state, replies,
`$host`, the access log), `standins.login_page`, `standins.jsonphp` (the phonebook web service) and
`standins.webservice_access` (who may call the `restricted` web services).
"""

from __future__ import annotations

import re
import sys
from urllib.parse import urlsplit

import psycopg

from xivo_doctor.lab import releases
from xivo_doctor.lab.standins import jsonphp, login_page
from xivo_doctor.lab.standins.base import Node, main_args, serve, tls_context, wait_for_stop
from xivo_doctor.lab.standins.nginx import NginxRequestHandler, WebServices


class Handler(NginxRequestHandler):
    def do_GET(self) -> None:
        self.sent = 0
        try:
            status = self.respond()
        except psycopg.Error as e:
            self.ws.log.error("database error: %s", str(e).strip())
            status = self.reply(500, "500 Internal Server Error")
        self.access(status)

    def respond(self) -> int:
        url = urlsplit(self.path)
        if not self.secure and not re.search(r"(127\.0\.0\.1|localhost)", self.host(), re.IGNORECASE):
            # http location /: `rewrite ^(.*) https://$host$1 last;` (XIVO-FACTS §6.3): a 302, args kept.
            location = f"https://{self.host()}{url.path}" + (f"?{url.query}" if url.query else "")
            return self.reply(302, "302 Found\n", {"Location": location})
        if url.path in ("/", "/index.php"):
            return self.reply_html(200, login_page.render(self.ws.node, self.ws.release))
        match = jsonphp.PHONEBOOK.match(url.path)
        if not match or not releases.jsonphp_phonebook(self.ws.release):
            return self.reply(404, "404 Not Found\n")  # phonebook.php is gone in 16.14 (R2 §5)
        return jsonphp.serve(self, match.group(1), url.query)


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
