"""The lab's HTTPS clients share one TLS context per verification setting.

Place in the lab: under xivo-dird's sources (a node's confd, a peer's json.php), its xivo-auth calls,
xivo-ctid's Consul registration and the orchestrator's Consul calls. Their upstream clients open a new
session, and a new connection, per call (xivo-lib-rest-client `BaseClient.session`, `Connection:
close`); with urllib3 2.x each new connection also builds an `ssl.SSLContext` and loads the system CA
store into it, about 45 ms of CPU on this machine, even when verification is off. A lookup of a
3-node lab opens about eight such connections, so twelve lookups at once (one doctor run) kept two
vCPUs busy for three seconds and dird dropped its sources at its 2.9 s timeout: the lab, not the
configuration, failed the lookup. Here a context is made once per setting and handed to urllib3
through the pool key; connections, sessions and what is verified stay as upstream makes them.
(The doctor does the same for its own requests, in its own module: the lab imports nothing of it.)
"""

from __future__ import annotations

import os
import ssl
import threading
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from requests.utils import DEFAULT_CA_BUNDLE_PATH
from urllib3.util.ssl_ import create_urllib3_context

_LOCK = threading.Lock()
_CONTEXTS: dict[bool | str, ssl.SSLContext] = {}


def client_context(verify: bool | str) -> ssl.SSLContext:
    """The shared context for a `verify` value as `requests` takes it (False, True, a CA file or dir)."""
    key: bool | str = verify if isinstance(verify, str) else bool(verify)
    with _LOCK:
        if key not in _CONTEXTS:
            _CONTEXTS[key] = _make(key)
        return _CONTEXTS[key]


def _make(verify: bool | str) -> ssl.SSLContext:
    if verify is False:
        context = create_urllib3_context(cert_reqs=ssl.CERT_NONE)
        context.check_hostname = False
        return context
    context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
    # urllib3 matches the host name itself after the handshake when the context does not; a shared
    # context must not be switched per connection
    context.check_hostname = False
    where = DEFAULT_CA_BUNDLE_PATH if verify is True else verify
    if os.path.isdir(where):
        context.load_verify_locations(capath=where)
    else:
        context.load_verify_locations(cafile=where)
    return context


class SharedContextAdapter(HTTPAdapter):
    """requests' adapter with the shared context, leaving from `source` when given (a node sharing
    this host's network sends from its own address)."""

    def __init__(self, source: str | None = None) -> None:
        self.source = source
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        if self.source:
            kwargs["source_address"] = (self.source, 0)
        super().init_poolmanager(*args, **kwargs)

    def build_connection_pool_key_attributes(self, request: requests.PreparedRequest, verify: Any,
                                             cert: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        if host_params["scheme"] == "https" and cert is None:
            pool_kwargs = {"ssl_context": client_context(verify), "cert_reqs": pool_kwargs["cert_reqs"]}
        return host_params, pool_kwargs

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        super().cert_verify(conn, url, verify, cert)
        if cert is None:  # the shared context holds the CA certificates already
            conn.ca_certs = conn.ca_cert_dir = None


def session(source: str | None = None) -> requests.Session:
    """A new session (as upstream makes one per call) whose HTTP and HTTPS go through the adapter."""
    s = requests.Session()
    adapter = SharedContextAdapter(source)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s
