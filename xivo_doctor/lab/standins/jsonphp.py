"""xivo-web-interface's `json.php` phonebook web service, as each release serves it.

Place in the lab: part of the nginx + xivo-web-interface stand-in (`standins.webservices` routes
`/service/ipbx/json.php/{private,restricted}/pbx_services/phonebook` here, up to 16.13:
phonebook.php is gone in 16.14, R2 §5). `private` answers the node itself only; `restricted` asks
`standins.webservice_access` (the `accesswebservice` rows, and the user's ACL at 15.19-15.20). The
acts are search, list and view over the `phonebook*` tables; not add, delete, nor `sum=`. Answers
carry `X-XIVO-WS-VERSION: 1.0` and have the JSON shape of generic.php.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs

from xivo_doctor.lab.standins.nginx import NginxRequestHandler, WebServices
from xivo_doctor.lab.standins.webservice_access import restricted_access

PHONEBOOK = re.compile(r"^/service/ipbx/json\.php/(private|restricted)/pbx_services/phonebook/?$")
WS_HEADERS = {"X-XIVO-WS-VERSION": "1.0"}
ENTRY_COLUMNS = ("id", "title", "firstname", "lastname", "displayname", "society", "email", "url", "image",
                 "description")
ADDRESS_COLUMNS = ("address1", "address2", "city", "state", "zipcode", "country")


def phonebook(ws: WebServices, act: str, term: str, entry_id: str) -> list[dict[str, Any]]:
    entries = ws.query(f"SELECT {', '.join(ENTRY_COLUMNS)} FROM phonebook ORDER BY displayname, id")
    numbers: dict[int, dict[str, Any]] = {}
    for owner, kind, number in ws.query("SELECT phonebookid, type, number FROM phonebooknumber ORDER BY id"):
        numbers.setdefault(owner, {})[kind] = {"number": number}
    addresses: dict[int, dict[str, Any]] = {}
    for owner, kind, *fields in ws.query(f"SELECT phonebookid, type, {', '.join(ADDRESS_COLUMNS)}"
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


def serve(handler: NginxRequestHandler, access: str, query_string: str) -> int:
    """A `json.php/<access>/pbx_services/phonebook` request (`access`: private or restricted): its status."""
    client = handler.client_address[0]
    if access == "private":
        if client not in ("127.0.0.1", "::1"):
            return handler.reply(403, "", WS_HEADERS)
    else:
        allowed = restricted_access(handler.ws, client, handler.basic())
        if allowed == 401:
            return handler.reply(401, "", {**WS_HEADERS, "WWW-Authenticate": 'Basic realm="Access Restricted"'})
        if allowed == 403:
            return handler.reply(403, "", WS_HEADERS)
    query = {k: v[-1] for k, v in parse_qs(query_string, keep_blank_values=True).items()}
    act = query.get("act") or "list"
    if act in ("add", "delete"):
        return handler.reply(400, "", WS_HEADERS)
    act = act if act in ("search", "view") else "list"
    entries = phonebook(handler.ws, act, query.get("search", ""), query.get("id", ""))
    if act == "view":
        if entries:
            return handler.reply(200, body=entries[0], headers=WS_HEADERS)
        return handler.reply(404, "", WS_HEADERS)
    return handler.reply(200, body=entries, headers=WS_HEADERS) if entries else handler.reply(204, None, WS_HEADERS)
