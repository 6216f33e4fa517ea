"""xivo-dird's source backends as the lab's xivo-dird stand-in runs them: `xivo` and `phonebook`.

Place in the lab: part of the xivo-dird stand-in (`standins.dird` builds one backend per source of
its merged configuration with `load_source`, and its lookup runs their `search` in parallel). The
`xivo` backend asks a XiVO's xivo-confd (`/1.1/infos` once, then `/1.1/users?view=directory`);
`phonebook` (up to 16.13) asks a web interface's json.php; `personal` is there and finds nothing
(a service token has no personal contacts); `format_results` is the lookup view's JSON of them.
Upstream: wazo-platform/wazo-dird `xivo_dird/plugins/{xivo_user_plugin,phonebook_plugin,source_result}.py`,
`helpers.py`; the confd client of wazo-confd-client and xivo-lib-rest-client (research §3, §4).

Nodes sharing this host (no network of their own): every connection leaves from the node's own
address (the source address is bound), so that a peer's confd or nginx sees this XiVO's address.
A CA path in `verify_certificate` is a XiVO path, read under the node root.
"""

from __future__ import annotations

import logging
import re
import string
from dataclasses import dataclass, field
from typing import Any

import requests
import urllib3

from xivo_doctor.lab import releases_lookup, tls
from xivo_doctor.lab.standins.base import Node

xivo_log = logging.getLogger("xivo_dird.plugins.xivo_user_plugin")
phonebook_log = logging.getLogger("xivo_dird.plugins.phonebook_plugin")
manager_log = logging.getLogger("xivo_dird.core.source_manager")
stopper_log = logging.getLogger()  # RaiseStopper logs on the root logger (wazo-dird:xivo_dird/helpers.py@xivo-15.19)


def session(node: Node) -> requests.Session:
    """A new session (one per call, wazo-platform/xivo-lib-rest-client:xivo_lib_rest_client/command.py@xivo-15.19
    `HTTPCommand.session`), leaving from the node's address when the node shares this host's network; its
    TLS context is the process's shared one (lab/tls.py says why)."""
    return tls.session(None if node.own_network else node.address)


def verify(node: Node, value: Any) -> bool | str:
    """requests' `verify` for a config value: False, True, or a XiVO path under the node root."""
    if isinstance(value, str):
        return value if value.startswith(f"{node.root}/") else str(node.path(value))
    return bool(value)


def raise_stopper(function: Any, *args: Any) -> list[Result]:
    """RaiseStopper(return_on_raise=[]): an exception in a search is logged, the source gives nothing
    (wazo-platform/wazo-dird:xivo_dird/helpers.py@xivo-15.19, used by plugins/lookup.py `_async_search`)."""
    try:
        return function(*args)
    except Exception:
        stopper_log.exception("An error occured in %s", function.__name__)
        return []


class _NoKeyErrorFormatter(string.Formatter):
    """A missing or None field formats as '', the result stripped
    (wazo-platform/wazo-dird:xivo_dird/plugins/source_result.py@xivo-15.19 `_NoKeyErrorFormatter`)."""

    def format(self, format_string: str, /, *args: Any, **kwargs: Any) -> str:
        return super().format(format_string, *args, **kwargs).strip()

    def get_value(self, key: int | str, args: Any, kwargs: Any) -> Any:
        if isinstance(key, str):
            value = kwargs.get(key)
            return "" if value is None else value
        return super().get_value(key, args, kwargs)


@dataclass
class Result:
    """A `_SourceResult`: fields (with the formatted format_columns, '' as None), relations, its source's
    name (wazo-platform/wazo-dird:xivo_dird/plugins/source_result.py@xivo-15.19, @xivo-16.02 `user_uuid`)."""

    source: str
    fields: dict[str, Any]
    relations: dict[str, Any]
    is_personal: bool = False
    format_columns: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        formatter = _NoKeyErrorFormatter()
        for column, format_string in self.format_columns.items():  # `_add_formatted_columns`: '' → None
            self.fields[column] = formatter.format(format_string, **self.fields) or None


class ConfdClient:
    """xivo_confd_client.Client(**confd_config): `{https?}://host:port/version`, Digest auth only with both
    credentials, `Connection: close`, the timeout on every call; any status but 200/201/204 raises
    (wazo-platform/wazo-confd-client:xivo_confd_client/client.py, session.py@xivo-15.19;
    wazo-platform/xivo-lib-rest-client:xivo_lib_rest_client/client.py@xivo-15.19 `BaseClient.session`, `url`)."""

    def __init__(self, node: Node, host: str, port: int = 9486, version: str = "1.1", username: str | None = None,
                 password: str | None = None, token: str | None = None, https: bool = True, timeout: float = 10,
                 verify_certificate: Any = True) -> None:
        self.node, self.timeout = node, timeout
        self.base = f"{'https' if https else 'http'}://{host}:{port}/{version}"
        self.auth = requests.auth.HTTPDigestAuth(username, password) if username and password else None
        self.verify = verify(node, verify_certificate) if https and verify_certificate else False

    def get(self, path: str, **params: Any) -> Any:
        s = session(self.node)
        s.headers = {"Connection": "close"}  # the session's headers, replaced (BaseClient.session)
        response = s.get(f"{self.base}/{path}", params=params or None, auth=self.auth, timeout=self.timeout,
                         verify=self.verify, headers={"Accept": "application/json"})
        if response.status_code not in (200, 201, 204):
            try:  # ConfdSession.check_response: the JSON error list as the reason, then HTTPError
                response.reason = ". ".join(response.json())
            finally:
                response.raise_for_status()
        return response.json()


class XivoSource:
    """XivoUserPlugin of the node's release (wazo-platform/wazo-dird:xivo_dird/plugins/xivo_user_plugin.py
    @xivo-15.19, @xivo-16.02 `email` and `user_uuid`, @xivo-16.14 the None match): `load` logs `XiVO <name>
    successfully loaded`; a search fetches the UUID (cached) then the users, and keeps an entry when the
    term is a substring of one of its searched columns, mapped fields included."""

    def __init__(self, node: Node, config: dict[str, Any], release: str) -> None:
        self.name = config["name"]
        self.searched = config.get("searched_columns", [])
        confd = config["confd_config"]
        xivo_log.debug("confd config %s", confd)
        self.client = ConfdClient(node, **confd)
        self.format_columns = config.get("format_columns") or {}
        self.params = {"view": "directory", **(config.get("extra_search_params") or {})}
        self.keys = releases_lookup.dird_xivo_valid_keys(release)
        self.user_uuid = releases_lookup.dird_user_uuid_relation(release)
        self.none_as_text = releases_lookup.dird_none_as_text(release)
        self.uuid: str | None = None  # `_get_uuid`: cached for the life of the process once fetched
        xivo_log.info("XiVO %s successfully loaded", self.name)

    def search(self, term: str) -> list[Result]:
        lowered = term.lower()
        entries = self._fetch_entries(term)

        def matches(entry: Result) -> bool:
            for column in self.searched:
                value = entry.fields.get(column, "")
                # <= 16.13 `unicode(value)`: None is 'None'; 16.14+ `value or ''` (af6b6b3b)
                text = str(value) if self.none_as_text else str(value or "")
                if lowered in text.lower():
                    return True
            return False

        return [entry for entry in entries if matches(entry)]

    def _fetch_entries(self, term: str | None) -> Any:
        try:
            if not self.uuid:
                self.uuid = self.client.get("infos")["uuid"]
        except Exception:
            xivo_log.exception("Cannot fetch UUID. No results will be returned")
            return []
        try:
            params = dict(self.params, **({"search": term} if term else {}))
            items = self.client.get("users", **params)["items"]
        except Exception:
            xivo_log.exception("Cannot fetch entries. No results will be returned")
            return []
        return (self._result(entry, self.uuid) for entry in items)  # built while searching: a KeyError
        # there leaves `search` and RaiseStopper logs it (the `uuid` of a confd <= 16.01, 7d09022b)

    def _result(self, entry: dict[str, Any], uuid: str) -> Result:
        fields = {key: entry.get(key) for key in self.keys}
        relations = {"xivo_id": uuid, "agent_id": entry["agent_id"], "user_id": entry["id"]}
        if self.user_uuid:
            relations["user_uuid"] = entry["uuid"]
        relations.update(endpoint_id=entry["line_id"], source_entry_id=str(fields["id"]))
        return Result(self.name, fields, relations, format_columns=self.format_columns)


IGNORED_MISSING = ("phonebooknumber/home/number", "phonebooknumber/mobile/number",
                   "phonebooknumber/office/number", "phonebooknumber/other/number")


class PhonebookSource:
    """PhonebookPlugin (wazo-platform/wazo-dird:xivo_dird/plugins/phonebook_plugin.py@xivo-15.19, unchanged to
    @xivo-16.13, gone at 16.14): `GET phonebook_url
    ?act=search&search=<term>`, redirects followed, TLS not verified, Basic auth only with both
    credentials; no client-side filter; fields are the format_columns over dotted keys; relations null."""

    DEFAULT_URL = "http://localhost/service/ipbx/json.php/private/pbx_services/phonebook"

    def __init__(self, node: Node, config: dict[str, Any]) -> None:
        self.node, self.name = node, config["name"]
        self.format_columns = config["format_columns"]
        self.url = config.get("phonebook_url", self.DEFAULT_URL)
        self.timeout = config.get("phonebook_timeout", 1.0)
        username, password = config.get("phonebook_username"), config.get("phonebook_password")
        self.auth = requests.auth.HTTPBasicAuth(username, password) if username and password else None
        self.keys = sorted({key for fmt in self.format_columns.values() for key in re.findall(r"{([\w.]+)}", fmt)})

    def search(self, term: str) -> list[Result]:
        contacts: Any = []
        try:
            response = session(self.node).get(self.url, params={"act": "search", "search": term}, auth=self.auth,
                                              timeout=self.timeout, verify=False)
        except requests.exceptions.Timeout:
            phonebook_log.warning('Phonebook "%s": request error: timed out', self.name)
        except Exception as e:
            phonebook_log.error('Phonebook "%s": request error: %r', self.name, e)
        else:
            if response.status_code == 200:
                contacts = response.json()  # not JSON: raises, RaiseStopper logs it
            elif response.status_code != 204:
                phonebook_log.warning('Phonebook "%s": unexpected HTTP status code %s', self.name,
                                      response.status_code)
        return [self.convert(contact) for contact in contacts]

    def fetch(self, contact: Any, key: str) -> Any:
        value = contact
        try:
            for part in key.split("."):
                value = value[part]
        except KeyError:
            if key.replace(".", "/") not in IGNORED_MISSING:
                phonebook_log.warning('Phonebook "%s": could not map %r: no such key', self.name, key.replace(".", "/"))
            return ""
        except TypeError as e:
            if value is not False:
                phonebook_log.warning('Phonebook "%s": could not map %r: type error: %s', self.name,
                                      key.replace(".", "/"), e)
            return ""
        return value

    def convert(self, contact: Any) -> Result:
        mapping = {key.replace(".", "/"): self.fetch(contact, key) for key in self.keys}
        fields = {column: fmt.replace(".", "/").format(**mapping).strip() or None
                  for column, fmt in self.format_columns.items()}
        relations = dict.fromkeys(("xivo_id", "agent_id", "user_id", "endpoint_id", "source_entry_id"))
        return Result(self.name, fields, relations)


class PersonalSource:
    """The `personal` backend: a service token's user has no personal contacts."""

    def __init__(self, name: str) -> None:
        self.name = name

    def search(self, term: str) -> list[Result]:
        return []


def load_source(node: Node, config: dict[str, Any], release: str) -> Any:
    """SourceManager._load_sources_using_backend: one source per config of an enabled backend; a failing
    `load` is logged and leaves the source out (wazo-platform/wazo-dird:xivo_dird/core/source_manager.py
    @xivo-15.19); `phonebook` only while the release has that back-end (16.13). None: not loaded."""
    kind = config.get("type")
    try:
        if kind == "xivo":
            return XivoSource(node, config, release)
        if kind == "phonebook" and releases_lookup.dird_phonebook_backend(release):
            return PhonebookSource(node, config)
        if kind == "personal":
            return PersonalSource(config["name"])
    except Exception:
        manager_log.exception("Failed to load back-end `%s` with config `%s`", kind, config.get("name"))
        return None
    if kind in ("csv", "csv_ws", "ldap", "dird_phonebook"):
        manager_log.info("source %s: back-end `%s` not emulated by the lab", config.get("name"), kind)
    return None


def format_results(display: list[dict[str, Any]], results: list[Result]) -> dict[str, Any]:
    """_ResultFormatter.format_results (wazo-platform/wazo-dird:xivo_dird/plugins/default_json_view.py@xivo-15.19,
    views/default_json/default_json_view.py@xivo-16.15): the display's titles and
    types; each result's value per column (its field, else the column's default); a `favorite` column
    False (a service token has no favourites), every `personal` column the result's is_personal."""
    favorite = next((c.get("field") for c in display if c.get("type") == "favorite"), None)
    personal = [c.get("field") for c in display if c.get("type") == "personal"]
    formatted = []
    for result in results:
        if favorite is not None:
            result.fields[favorite] = False
        result.fields.update(dict.fromkeys(personal, result.is_personal))
        formatted.append({"column_values": [result.fields.get(c.get("field"), c.get("default")) for c in display],
                          "relations": result.relations, "source": result.source})
    return {"column_headers": [c.get("title") for c in display], "column_types": [c.get("type") for c in display],
            "results": formatted}


urllib3.disable_warnings()  # as xivo-lib-rest-client's BaseClient.session does when it does not verify
