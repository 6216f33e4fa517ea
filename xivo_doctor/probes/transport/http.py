"""HTTP(S) reads for the probes: bounded in time and size, optionally sent from a given address.

Place in the pipeline: acquisition. Every HTTP data source (Consul's API, xivo-ctid, xivo-confd,
json.php) goes through `fetch`, so each request as a whole is bounded by the probe timeout cut to
the run's deadline, reads a capped body and follows capped redirects (the transport is in
`bounded.py`), and its errors become `ProbeError` naming the source. `source_address` makes a
request "from" a XiVO: web services users authorise by the client's address (XIVO-FACTS §6.3,
§6.4), so the answer depends on where the request comes from.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import requests
import urllib3

from xivo_doctor.foundation.deadline import Deadline
from xivo_doctor.foundation.errors import ProbeError
from xivo_doctor.probes.transport.bounded import MAX_BODY, MAX_REDIRECTS, guard, mount, via

__all__ = ["MAX_BODY", "MAX_REDIRECTS", "Answer", "fetch"]

# XiVO's certificates are self-signed by default (XIVO-FACTS §11); `verify` follows the topology.
urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)


@dataclass(frozen=True)
class Answer:
    url: str
    status: int
    headers: dict[str, str]
    body: bytes
    elapsed_ms: float
    history: tuple[int, ...] = ()  # status codes of the redirects followed

    def json(self, source: str) -> Any:
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the decoder goes
            snippet = self.body[:80].decode("utf-8", "replace").replace("\n", " ")
            raise ProbeError(
                source, f"answered HTTP {self.status} with something that is not JSON: {snippet!r}"
            ) from None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def fetch(
    url: str,
    *,
    source: str,
    deadline: Deadline,
    timeout: float,
    method: str = "GET",
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    data: str | bytes | None = None,
    auth: Any = None,
    verify: bool | str = False,
    source_address: str | None = None,
    allow_redirects: bool = True,
    max_body: int = MAX_BODY,
    proxy: tuple[str, int] | None = None,
) -> Answer:
    """One HTTP request, bounded as a whole (connect, TLS, headers, body, redirects) by `timeout` cut
    to the run's deadline. Raises ProbeTimeout when out of time, ProbeError when unreachable, when
    the answer is longer than `max_body` or redirects more than MAX_REDIRECTS times. `proxy`: a SOCKS5
    address every connection goes through (a XiVO's SSH connection: the request then comes from it)."""
    started = time.monotonic()
    with requests.Session() as session:
        mount(session, max_body=max_body, source_address=source_address)
        with guard(source, deadline, timeout) as budget, via(proxy):
            response = session.request(method, url, params=params, headers=headers, data=data, auth=auth, verify=verify,
                                       timeout=(budget, budget), allow_redirects=allow_redirects)
    return Answer(url=response.url, status=response.status_code, headers=dict(response.headers),
                  body=response.content, elapsed_ms=round((time.monotonic() - started) * 1000, 1),
                  history=tuple(r.status_code for r in response.history))
