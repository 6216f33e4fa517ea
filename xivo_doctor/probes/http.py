"""HTTP(S) reads for the probes: bounded in time and size, optionally sent from a given address.

Place in the pipeline: acquisition. Every HTTP data source (Consul's API, xivo-ctid, xivo-confd,
json.php) goes through `fetch`, so each gets connect and read timeouts cut to the run's deadline,
a cap on the body it reads, a cap on redirects, and errors turned into `ProbeError` naming the
source. `source_address` makes a request "from" a XiVO: web services users authorise by the
client's address (XIVO-FACTS §6.3, §6.4), so the answer depends on where the request comes from.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter

from xivo_doctor.deadline import Deadline
from xivo_doctor.errors import ProbeError, ProbeTimeout

# XiVO's certificates are self-signed by default (XIVO-FACTS §11); `verify` follows the topology.
urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

MAX_BODY = 2_000_000  # bytes: more than any answer the checks read, far less than a hostile one
MAX_REDIRECTS = 5


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
        except ValueError:
            snippet = self.body[:80].decode("utf-8", "replace").replace("\n", " ")
            raise ProbeError(
                source, f"answered HTTP {self.status} with something that is not JSON: {snippet!r}"
            ) from None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


class _SourceAddressAdapter(HTTPAdapter):
    def __init__(self, source_address: str) -> None:
        self._source = (source_address, 0)
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = self._source
        super().init_poolmanager(*args, **kwargs)


def _session(source_address: str | None) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment between the doctor and a XiVO
    session.max_redirects = MAX_REDIRECTS
    adapter = _SourceAddressAdapter(source_address) if source_address else HTTPAdapter(max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def fetch(
    url: str,
    *,
    source: str,
    deadline: Deadline,
    timeout: float,
    method: str = "GET",
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    auth: Any = None,
    verify: bool | str = False,
    source_address: str | None = None,
    allow_redirects: bool = True,
    max_body: int = MAX_BODY,
) -> Answer:
    """One HTTP request. Raises ProbeTimeout when out of time, ProbeError when unreachable."""
    budget = deadline.budget(timeout, source)
    started = time.monotonic()
    session = _session(source_address)
    try:
        with request_errors(source, budget), session.request(
            method, url, params=params, headers=headers, auth=auth, verify=verify, timeout=(budget, budget),
            stream=True, allow_redirects=allow_redirects,
        ) as response:
            body = bytearray()
            for chunk in response.iter_content(65536):
                body += chunk
                if len(body) > max_body:
                    raise ProbeError(source, f"answered more than {max_body} bytes; stopped reading")
                if time.monotonic() - started > budget:
                    raise ProbeTimeout(source, f"timed out after {budget:g} s while reading the answer")
            return Answer(url=response.url, status=response.status_code, headers=dict(response.headers),
                          body=bytes(body), elapsed_ms=round((time.monotonic() - started) * 1000, 1),
                          history=tuple(r.status_code for r in response.history))
    finally:
        session.close()


@contextmanager
def request_errors(source: str, budget: float, what: str = "") -> Iterator[None]:
    """`requests`' exceptions -> ProbeTimeout/ProbeError naming the source (used by `fetch` and by
    probes that call `requests` through a client library, such as python-consul2)."""
    doing = f"{what}: " if what else ""
    try:
        yield
    except (requests.Timeout, TimeoutError):
        raise ProbeTimeout(source, f"{doing}timed out after {budget:g} s") from None
    except requests.TooManyRedirects:
        raise ProbeError(source, f"{doing}more than {MAX_REDIRECTS} redirects") from None
    except requests.exceptions.SSLError as exc:
        raise ProbeError(source, f"{doing}TLS failed: {_reason(exc)}") from None
    except requests.ConnectionError as exc:
        raise ProbeError(source, f"{doing}cannot connect: {_reason(exc)}") from None
    except requests.RequestException as exc:
        raise ProbeError(source, f"{doing}request failed: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    """The innermost reason, without urllib3's object reprs (and never a credential)."""
    text = str(exc)
    for marker in ("Connection refused", "No route to host", "Name or service not known", "timed out",
                   "certificate verify failed", "Connection reset by peer", "Remote end closed connection"):
        if marker in text:
            return marker.lower() if marker != "Connection refused" else "connection refused"
    return type(exc).__name__
