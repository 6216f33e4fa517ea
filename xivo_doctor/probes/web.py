"""HTTP services a XiVO's peers call: xivo-confd's `/1.1/infos` and the json.php phonebook; and the
web interface's login page, which prints the XiVO's version to anyone.

Place in the pipeline: acquisition. Both answers depend on who asks — web services users authorise
by the client's address (XIVO-FACTS §6.3, §6.4) — so each request can be sent FROM a XiVO
(`from_xivo.on_box.source_address`, or through the XiVO's SSH connection). Every request goes
through `probes.http.fetch` (the run's deadline, bounded body, redirects capped) and is cached per
run. The answers are returned as data (status, UUID, count); judging them is the checks' job.
Credentials go to the request only: never into a returned value, a cache key in clear, or a message.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests  # noqa: F401  (before its submodule: tests/test_import_order.py says why)
from requests.auth import HTTPDigestAuth

from xivo_doctor.foundation.errors import ProbeError
from xivo_doctor.foundation.netaddr import url_host
from xivo_doctor.probes.transport.http import fetch
from xivo_doctor.topology.model import Secret, Xivo


class WebProbe:
    def __init__(self, probes: Any) -> None:
        self.probes = probes

    def confd_infos(self, xivo: Xivo, *, url: str | None = None, from_xivo: Xivo | None = None,
                    username: str | None = None, password: Secret | str | None = None,
                    verify: bool | str = False) -> dict[str, Any]:
        """GET `url`, by default https://<xivo>:<confd port>/1.1/infos; a directory check gives the
        URL xivo-dird builds from the directory's URI (xivo/dird_sources.py), which may be another.
        With HTTP Digest when credentials are given (confd's legacy auth, XIVO-FACTS §6.4) or none
        (then only an authorised source address passes), sent from `from_xivo`'s source address
        when given; `verify` as requests takes it (False, True: requests' CA bundle, or a CA file).

        Returns {"status", "uuid" (None unless a 200 carried one), "elapsed_ms", "url" (without
        user info), "from_address", "auth": "digest" | "none"}.
        """
        secret = password if isinstance(password, Secret) or password is None else Secret(password)
        with_auth = bool(username and secret)
        source_address = _source_address(from_xivo)
        proxy = self._proxy(from_xivo, source_address)
        url = url or f"https://{url_host(xivo.address)}:{xivo.confd.port}/1.1/infos"
        shown = _without_userinfo(url)
        key = ("confd-infos", xivo.name, shown, Secret(url) if shown != url else None, source_address,
               from_xivo.name if proxy else None, username if with_auth else None, secret if with_auth else None,
               str(verify))

        def ask() -> dict[str, Any]:
            where = f" from {from_xivo.name} ({_vantage(source_address, proxy)})" if from_xivo and (
                source_address or proxy) else ""
            source = f"xivo-confd of {xivo.name} ({shown}){where}"
            auth = HTTPDigestAuth(username, secret.reveal()) if with_auth and secret is not None else None
            answer = fetch(url, source=source, deadline=self.probes.deadline, timeout=self.probes.timeout,
                           auth=auth, verify=verify, source_address=source_address,
                           headers={"Accept": "application/json"}, proxy=proxy)
            uuid = None
            if answer.status == 200:
                body = answer.json(source)
                uuid = body.get("uuid") if isinstance(body, dict) else None
                if not isinstance(uuid, str) or not uuid:
                    raise ProbeError(source, f"answered 200 without a uuid: {answer.text[:80]!r}")
            return {"status": answer.status, "uuid": uuid, "elapsed_ms": answer.elapsed_ms, "url": shown,
                    "from_address": source_address or (f"{from_xivo.name} over SSH" if proxy else None),
                    "auth": "digest" if with_auth else "none"}

        return self.probes.cached(key, ask)

    def confd_users(self, xivo: Xivo) -> list[dict[str, Any]]:
        """The first users of `xivo`'s xivo-confd (`GET /1.1/users?view=directory&limit=50`), with HTTP
        Digest as the topology's `confd` user, else its `auth` user (any enabled web services login is
        accepted by confd's Digest, XIVO-FACTS §6.4): [{"id", "uuid", "firstname", "lastname"}].
        ProbeError when refused or unreadable."""
        access = xivo.confd if xivo.confd.username and xivo.confd.password else xivo.auth
        url = f"https://{url_host(xivo.address)}:{xivo.confd.port}/1.1/users"
        source = f"xivo-confd of {xivo.name} ({url})"

        def ask() -> list[dict[str, Any]]:
            auth = HTTPDigestAuth(access.username, access.password.reveal()) \
                if access.username and access.password else None
            answer = fetch(url, source=source, deadline=self.probes.deadline, timeout=self.probes.timeout,
                           params={"view": "directory", "limit": "50"}, auth=auth, verify=xivo.confd.verify,
                           headers={"Accept": "application/json"})
            if answer.status != 200:
                who = f"as {access.username!r}" if auth else "without credentials (no confd or auth user)"
                raise ProbeError(source, f"answered HTTP {answer.status} {who}")
            body = answer.json(source)
            items = body.get("items") if isinstance(body, dict) else None
            if not isinstance(items, list):
                raise ProbeError(source, f"answered 200 without an `items` list: {answer.text[:80]!r}")
            keys = ("id", "uuid", "firstname", "lastname")
            return [{k: i.get(k) for k in keys} for i in items if isinstance(i, dict) and "id" in i]

        return self.probes.cached(("confd-users", xivo.name, url), ask)

    def phonebook(self, url: str, *, from_xivo: Xivo, term: str, verify: bool | str = False) -> dict[str, Any]:
        """GET <url>?act=search&search=<term> from `from_xivo`'s source address, following nginx's
        HTTP→HTTPS redirect (XIVO-FACTS §6.3), as xivo-dird's phonebook backend does (§6.2).

        Returns {"status", "final_url", "redirects" (status codes), "count" (entries of a 200
        JSON list, else None), "json" (a 200 answer was a JSON list), "www_authenticate",
        "elapsed_ms", "from_address"}. Raises ProbeError without a source address to send from.
        """
        source_address = _source_address(from_xivo)
        shown = _without_userinfo(url)
        source = f"phonebook web service {shown} from {from_xivo.name}"
        if not source_address and from_xivo.ssh is None:
            raise ProbeError(source, f"no on_box.source_address nor ssh for {from_xivo.name} to send from")
        proxy = self._proxy(from_xivo, source_address)

        def ask() -> dict[str, Any]:
            answer = fetch(url, source=f"{source} ({_vantage(source_address, proxy)})", deadline=self.probes.deadline,
                           timeout=self.probes.timeout, params={"act": "search", "search": term},
                           verify=verify, source_address=source_address, proxy=proxy)
            count, is_list = None, False
            if answer.status == 200:
                try:
                    body = answer.json(source)
                except ProbeError:
                    body = None  # a 200 that is not the phonebook's JSON: the check says so
                is_list = isinstance(body, list)
                count = len(body) if is_list else None
            return {"status": answer.status, "final_url": _without_userinfo(answer.url).split("?", 1)[0],
                    "redirects": list(answer.history), "count": count, "json": is_list,
                    "www_authenticate": _header(answer.headers, "WWW-Authenticate"),
                    "elapsed_ms": answer.elapsed_ms,
                    "from_address": source_address or f"{from_xivo.name} over SSH"}

        return self.probes.cached(("phonebook", url, source_address, from_xivo.name, term, str(verify)), ask)

    def _proxy(self, from_xivo: Xivo | None, source_address: str | None) -> tuple[str, int] | None:
        """Requests from a XiVO with no source address to send from here go through its SSH connection
        (transport/ssh.py), even when the XiVO's files are read on the box (`on_box` without
        `source_address`): what confd and json.php allow depends on the address they come from."""
        if from_xivo is None or source_address or from_xivo.ssh is None:
            return None
        return self.probes.ssh.socks(from_xivo)

    def login_page_version(self, xivo: Xivo) -> str | None:
        """The version the web interface's login page prints in its footer, read from the XiVO's own
        /usr/share/xivo/XIVO-VERSION (xivo-web-interface src/object/objectconf/define.inc and
        src/tpl/www/bloc/foot.php, every release 15.19-16.15: `XiVO - Version 16.13 "Five"`, no
        login needed; docs/xivo-behaviour.md "xivo-version"). None when the page says `Unknown`."""
        url = f"https://{url_host(xivo.address)}:{xivo.webservices.https_port}/"
        source = f"the web interface's login page of {xivo.name} ({url})"

        def ask() -> str | None:
            answer = fetch(url, source=source, deadline=self.probes.deadline, timeout=self.probes.timeout,
                           verify=xivo.webservices.verify)
            if answer.status != 200:
                raise ProbeError(source, f"answered HTTP {answer.status}")
            found = _FOOTER_VERSION.search(answer.text)
            if found is None:
                if "Unknown" in answer.text:
                    return None
                raise ProbeError(source, "shows no XiVO version in its footer: is this XiVO's web interface?")
            return found["version"]

        return self.probes.cached(("login-page-version", xivo.name, url), ask)


# The footer: XIVO_SOFT_LABEL - <Version> <XIVO-VERSION> "<codename>", the quotes maybe as &quot;.
_QUOTE = r'(?:"|&quot;|&#34;)'
_FOOTER_VERSION = re.compile(rf"\b(?P<version>1\d\.\d{{2}}(?:\.\d{{1,2}})?)\s*{_QUOTE}[A-Za-z]+{_QUOTE}")


def _vantage(source_address: str | None, proxy: tuple[str, int] | None) -> str:
    return source_address or ("over SSH" if proxy else "from here")


def _source_address(xivo: Xivo | None) -> str | None:
    return xivo.on_box.source_address if xivo is not None and xivo.on_box is not None else None



def _header(headers: dict[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
