"""xivo-auth's token and xivo-dird's lookup: the search a XiVO Client's People Xlet makes.

Place in the pipeline: acquisition, for `directory-lookup`. `POST https://<xivo>:9497/0.1/token` (HTTP
Basic with the topology's `auth` user, body `{"backend", "expiration"}`), then
`GET https://<xivo>:9489/0.1/directories/lookup/<profile>?term=<t>` with `X-Auth-Token`
(XIVO-FACTS §7; docs/research-directory-lookup.md §2.1, §5.2). Requests to a XiVO reached over SSH
go through its SSH connection (the doctor's host may be firewalled from 9489/9497, the XiVO is
not from itself). The token is a secret (the run's redactors learn it) and the doctor's only trace
on the XiVO: it lives 60 s and is revoked (`DELETE /0.1/token/<t>`, present at 15.19 and 16.15:
wazo-platform/wazo-auth xivo_auth/http.py) when the run ends. Answers are data; judging is the
check's job.
"""

from __future__ import annotations

import contextlib
import json
import threading
from typing import Any
from urllib.parse import quote

import requests  # noqa: F401  (before its submodule: tests/test_import_order.py says why)
from requests.auth import HTTPBasicAuth

from xivo_doctor.foundation.errors import ProbeError
from xivo_doctor.foundation.netaddr import url_host
from xivo_doctor.probes.transport.http import fetch
from xivo_doctor.topology.model import Xivo

TOKEN_LIFETIME_S = 60  # xivo-auth ≥ 16.02 takes a positive integer only (http.py `_is_positive_integer`)
# dird waits up to 2.9 s for its sources (4 s per source at 15.19): the lookup gets that, and more
LOOKUP_TIMEOUT_S = 6.0



class DirdProbe:
    """The `probes.dird` slot."""

    def __init__(self, probes: Any) -> None:
        self.probes = probes
        self._issued: dict[str, tuple[Xivo, str]] = {}  # xivo name -> (xivo, token), to revoke at the end
        self._lock = threading.Lock()

    def _proxy(self, xivo: Xivo) -> tuple[str, int] | None:
        # xivo-auth and xivo-dird are asked from the XiVO itself when the doctor reaches it over SSH
        return self.probes.ssh.socks(xivo) if xivo.over_ssh else None

    def token(self, xivo: Xivo, backend: str) -> dict[str, Any]:
        """A token of `backend` for the topology's `auth` user: {"status", "acls", "backend", "url",
        "elapsed_ms", "reason"}; the token itself stays here. A refusal is data (status ≠ 200)."""
        url = f"https://{url_host(xivo.address)}:{xivo.auth.port}/0.1/token"
        source = f"xivo-auth of {xivo.name} ({url})"

        def ask() -> dict[str, Any]:
            username, password = xivo.auth.username, xivo.auth.password
            if not username or password is None:
                raise ProbeError(source, "no auth.username and auth.password in the topology")
            answer = fetch(url, source=source, deadline=self.probes.deadline, timeout=self.probes.timeout,
                           method="POST", auth=HTTPBasicAuth(username, password.reveal()),
                           headers={"Content-Type": "application/json", "Accept": "application/json"},
                           data=f'{{"backend": "{backend}", "expiration": {TOKEN_LIFETIME_S}}}',
                           verify=xivo.auth.verify, allow_redirects=False, proxy=self._proxy(xivo))
            out = {"status": answer.status, "backend": backend, "url": url, "elapsed_ms": answer.elapsed_ms,
                   "acls": None, "reason": _reason(answer)}
            if answer.status == 200:
                data = answer.json(source)
                data = data.get("data") if isinstance(data, dict) else None
                token = data.get("token") if isinstance(data, dict) else None
                if not isinstance(token, str) or not token:
                    raise ProbeError(source, f"answered 200 without a token: {answer.text[:80]!r}")
                self.probes.learn_secret(token)
                with self._lock:
                    self._issued[xivo.name] = (xivo, token)
                acls = data.get("acls")
                out["acls"] = [str(a) for a in acls] if isinstance(acls, list) else None
            return out

        return self.probes.cached(("auth-token", xivo.name, backend), ask)

    def lookup(self, xivo: Xivo, profile: str, term: str, attempt: int = 1) -> dict[str, Any]:
        """xivo-dird's lookup in `profile` with this run's token of `xivo` (get it with `token` first):
        {"status", "results" (a list, [] unless a 200 carried one), "reason", "url", "elapsed_ms"}.
        Once per run and `attempt`: a check asking again gives a higher attempt."""
        with self._lock:
            issued = self._issued.get(xivo.name)
        if issued is None:
            raise ProbeError(f"xivo-dird of {xivo.name}", "no xivo-auth token to look up with")
        url = (f"https://{url_host(xivo.address)}:{xivo.dird.port}/0.1/directories/lookup/"
               f"{quote(profile, safe='')}")
        source = f"xivo-dird of {xivo.name} ({url})"

        def ask() -> dict[str, Any]:
            answer = fetch(url, source=source, deadline=self.probes.deadline,
                           timeout=max(self.probes.timeout, LOOKUP_TIMEOUT_S), params={"term": term},
                           headers={"X-Auth-Token": issued[1], "Accept": "application/json"},
                           verify=xivo.dird.verify, allow_redirects=False, proxy=self._proxy(xivo))
            results: list = []
            if answer.status == 200:
                body = answer.json(source)
                found = body.get("results") if isinstance(body, dict) else None
                if not isinstance(found, list):
                    raise ProbeError(source, f"answered 200 without a `results` list: {answer.text[:80]!r}")
                results = [r for r in found if isinstance(r, dict)]
            return {"status": answer.status, "results": results, "reason": _reason(answer), "url": url,
                    "elapsed_ms": answer.elapsed_ms}

        return self.probes.cached(("dird-lookup", xivo.name, profile, term, attempt), ask)

    def revoke(self) -> None:
        """Delete this run's tokens (best effort: each expires in TOKEN_LIFETIME_S anyway)."""
        with self._lock:
            issued, self._issued = list(self._issued.values()), {}

        def delete(xivo: Xivo, token: str) -> None:
            url = f"https://{url_host(xivo.address)}:{xivo.auth.port}/0.1/token/{token}"
            with contextlib.suppress(ProbeError):  # out of time or unreachable: the token expires by itself
                fetch(url, source=f"xivo-auth of {xivo.name}", deadline=self.probes.deadline,
                      timeout=self.probes.timeout, method="DELETE", verify=xivo.auth.verify,
                      allow_redirects=False, proxy=self._proxy(xivo))

        # all at once: the run waits for the slowest, not for their sum
        threads = [threading.Thread(target=delete, args=item, name=f"revoke-{item[0].name}") for item in issued]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def _reason(answer) -> str:
    """What an error answer says: xivo's `{"reason": [...]}` or flask-restful's `{"message"}`, else
    the start of the body."""
    if answer.status in (200, 204):
        return ""
    try:
        body = json.loads(answer.body)
    except ValueError:
        return answer.text.strip()[:160]
    if isinstance(body, dict):
        reason = body.get("reason", body.get("message"))
        if isinstance(reason, list):
            return "; ".join(str(r) for r in reason)[:160]
        if reason is not None:
            return str(reason)[:160]
    return answer.text.strip()[:160]
