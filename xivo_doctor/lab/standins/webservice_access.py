"""Who may call the web interface's `restricted` web services: `accesswebservice`, as each release checks it.

Place in the lab: part of the nginx + xivo-web-interface stand-in (`standins.webservices`);
`standins.jsonphp` asks `restricted_access` before it answers `json.php/restricted/...`. Models
xivo-web-interface's `xivo_accesswebservice::chk_http_access` (XIVO-FACTS §6.3, R2 §5) on the
enabled rows: a row matches by login and password (and its host, if set) when the request has
Basic credentials, else by host only when the row has neither login nor password; the host is
matched as `dwho_network::ipv4_in_lhost` does. At 15.19-15.20 the matched row's ACL (`obj`, a PHP
serialized array) must also grant service/ipbx/pbx_services/phonebook (`xivo_acl_abstract`,
objectconf/acl/webservice.inc@xivo-15.19); from 16.01 there is no such check (R2 §5).
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

from xivo_doctor.lab import releases
from xivo_doctor.lab.standins.nginx import WebServices


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


def restricted_access(ws: WebServices, client: str, credentials: tuple[str, str] | None) -> int:
    """xivo_accesswebservice::chk_http_access (XIVO-FACTS §6.3, R2 §5), on enabled rows: 200 when
    allowed, 401 when no row matches, 403 when (15.19-15.20) the matched row's ACL does not grant
    service/ipbx/pbx_services/phonebook."""
    rows = ws.query("SELECT to_jsonb(a) FROM accesswebservice a WHERE disable = 0 ORDER BY id")
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
    if releases.webservice_acl_checked(ws.release):
        # 15.19-15.20 `_chk_acl`: `obj` unserialized (no such column from 16.01: no ACL then)
        return 200 if acl_grants(php_unserialize(str(matched.get("obj") or ""))) else 403
    return 200  # 16.01+: "web services: remove check of acl" (R2 §5)
