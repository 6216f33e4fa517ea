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
from html import escape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg

from xivo_doctor.lab import releases
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


# The section json.php's restricted phonebook asks the web-service ACL for (15.19-15.20, R2 §5).
PHONEBOOK_SECTION = ("service", "ipbx", "pbx_services", "phonebook")
# objectconf/acl/webservice.inc@xivo-15.19: the tree of sections, here the branch that matters.
ACL_TREE: dict[str, Any] = {"service": {"ipbx": {"pbx_services": {"phonebook": True, "extenfeatures": True}}}}


def php_unserialize(text: str) -> Any:
    """PHP's unserialize() for what `accesswebservice.obj` holds (arrays, strings, ints, bools, null);
    False when the text is not a serialized value, as dwho_unserialize answers."""
    data = text.encode()
    position = 0

    def value() -> Any:
        nonlocal position
        kind = data[position:position + 1]
        if kind == b"N":
            position += 2
            return None
        end = data.index(b";" if kind in b"bid" else b":", position + 2)
        head = data[position + 2:end].decode()
        if kind == b"b":
            position = end + 1
            return head == "1"
        if kind == b"i":
            position = end + 1
            return int(head)
        if kind == b"d":
            position = end + 1
            return float(head)
        if kind == b"s":
            length = int(head)
            start = end + 2  # past `:"`
            position = start + length + 2  # past `";`
            return data[start:start + length].decode("utf-8", "replace")
        if kind == b"a":
            count = int(head)
            position = end + 2  # past `:{`
            out = {}
            for _ in range(count):
                k = value()
                out[k] = value()
            position += 1  # `}`
            return out
        raise ValueError(f"unsupported type {kind!r}")

    try:
        return value() if data else False
    except (ValueError, IndexError):
        return False


def acl_grants(obj: Any, section: tuple[str, ...] = PHONEBOOK_SECTION) -> bool:
    """xivo_acl_abstract::_chk_section(section, id) on the user's `obj['acl']` (15.19-15.20)."""
    info = obj.get("acl", {}) if isinstance(obj, dict) else {}  # get(): obj['acl'] if set, else array()
    if info is True:
        granted = True
    elif isinstance(info, dict):
        granted = False
    else:
        return False
    tree: Any = ACL_TREE
    key, group = None, None
    for key in section:
        group = info
        if not isinstance(tree, dict) or key not in tree:
            return False
        if isinstance(info, dict):
            info = info.get(key, False)  # dwho_ak($key, $info, true)
            if isinstance(info, bool):
                return info
        tree = tree[key] if isinstance(tree[key], dict) else tree
    if not granted and key is not None and isinstance(group, dict):
        granted = group.get(key, False) is not False
    return granted


# xivo-web-interface's login page, trimmed to its structure (src/tpl/www/bloc/head.php,
# struct/page/center.php, bloc/home/login.php with the en_US texts, bloc/foot.php).
LOGIN_PAGE = """<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN" "http://www.w3.org/TR/html4/loose.dtd">
<html lang="en">
	<head id="t-head">
		<title>{title}</title>
	</head>
	<body>
<div id="bpc-center">
<div id="bc-body">
<div id="bc-main">
	<div id="bc-content">
		<div id="b-content">
<div class="b-infos b-form">
	<h3 class="sb-top xspan"><span class="span-center">Authentication</span></h3>
	<div class="sb-content">
		<form action="#" method="post" accept-charset="utf-8">
			<div class="b-field">
<input type="text" name="login" id="it-login" size="20" value="Login" />
<input type="password" name="password" id="it-password" size="20" value="Password" />
<label for="it-language">Language:</label>
<select name="language" id="it-language"><option value="en_US">English</option></select>
<input type="submit" name="submit" id="it-submit" value="Connection" />
			</div>
		</form>
	</div>
</div>
		</div>
	</div>
</div>
</div>
</div>
		<h6 id="version-copyright">
{foot}		</h6>
		<span id="page_loaded"></span>
	</body>
</html>
"""


class WebServices:
    def __init__(self, node: Node, db_uri: str) -> None:
        self.node, self.db_uri = node, db_uri
        self.release = node.release()  # the web interface's release, as installed (read at start)
        self.log = node.log("nginx/xivo.error")
        self.access_log = node.path("/var/log/nginx/xivo.access.log")
        self.lock = threading.Lock()

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.db_uri, connect_timeout=3) as conn:
            return conn.execute(sql, params).fetchall()

    def restricted_access(self, client: str, credentials: tuple[str, str] | None) -> int:
        """xivo_accesswebservice::chk_http_access (XIVO-FACTS §6.3, R2 §5), on enabled rows: 200 when
        allowed, 401 when no row matches, 403 when (15.19-15.20) the matched row's ACL does not grant
        service/ipbx/pbx_services/phonebook."""
        rows = self.query("SELECT to_jsonb(a) FROM accesswebservice a WHERE disable = 0 ORDER BY id")
        users = [row[0] for row in rows]
        if credentials is not None:
            login, passwd = credentials
            matched = next((u for u in users if u.get("login") and u["login"] == login
                            and (u.get("passwd") or "") == passwd
                            and (not u.get("host") or host_matches(client, u["host"]))), None)
        else:
            # chk_host_access: authorised by host only if the row has neither login nor password.
            matched = next((u for u in users if not u.get("login") and not u.get("passwd")
                            and host_matches(client, u.get("host"))), None)
        if matched is None:
            return 401
        if releases.webservice_acl_checked(self.release):
            # 15.19-15.20 `_chk_acl`: `obj` unserialized (no such column from 16.01: no ACL then)
            return 200 if acl_grants(php_unserialize(str(matched.get("obj") or ""))) else 403
        return 200  # 16.01+: "web services: remove check of acl" (R2 §5)

    def footer_version(self) -> str:
        """define.inc: `trim(file_get_contents(XIVO-VERSION))` if the file exists, else 'Unknown'."""
        path = self.node.path("/usr/share/xivo/XIVO-VERSION")
        if not path.exists():
            return releases.UNKNOWN_VERSION
        try:
            return path.read_bytes().decode("utf-8", "replace").strip(" \t\n\r\0\x0b")
        except OSError:
            return ""  # file_get_contents() false: trim(false) is ''

    def login_page(self) -> str:
        """index.php not logged in: struct home/login in page `center`, whose last block is bloc/foot."""
        try:
            hostname = self.node.hostname()
        except OSError:
            hostname = "localhost"
        foot = (f'{releases.SOFT_LABEL} - {releases.INFO_VERSION} {self.footer_version()} '
                f'"{releases.SOFT_CODENAME}" | Visit <a href="http://xivo.io" title="{releases.SOFT_LABEL}" '
                f'target="_blank">xivo.io</a> for more information')
        if releases.footer_has_copyright(self.release):
            foot += (f' | &copy; 2006-{time.strftime("%Y")} <a href="http://avencall.com" title="Avencall" '
                     'target="_blank">Avencall</a>')
        return LOGIN_PAGE.format(title=escape(f"XiVO - [{hostname}]"), foot=foot)

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

    def respond(self) -> int:
        url = urlsplit(self.path)
        if not self.secure and not re.search(r"(127\.0\.0\.1|localhost)", self.host(), re.IGNORECASE):
            # http location /: `rewrite ^(.*) https://$host$1 last;` (XIVO-FACTS §6.3): a 302, args kept.
            location = f"https://{self.host()}{url.path}" + (f"?{url.query}" if url.query else "")
            return self.reply(302, "302 Found\n", {"Location": location})
        if url.path in ("/", "/index.php"):
            return self.reply_html(200, self.ws.login_page())
        match = PHONEBOOK.match(url.path)
        if not match or not releases.jsonphp_phonebook(self.ws.release):
            return self.reply(404, "404 Not Found\n")  # phonebook.php is gone in 16.14 (R2 §5)
        client = self.client_address[0]
        if match.group(1) == "private":
            if client not in ("127.0.0.1", "::1"):
                return self.reply(403, "", WS_HEADERS)
        else:
            allowed = self.ws.restricted_access(client, self.basic())
            if allowed == 401:
                return self.reply(401, "", {**WS_HEADERS, "WWW-Authenticate": 'Basic realm="Access Restricted"'})
            if allowed == 403:
                return self.reply(403, "", WS_HEADERS)
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
