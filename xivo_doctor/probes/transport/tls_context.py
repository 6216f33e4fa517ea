"""One TLS context per certificate-verification setting, shared by every HTTPS request of the process.

Place in the pipeline: acquisition, under the bounded HTTP transport (`bounded.BoundedAdapter`).
Left to themselves, `requests` 2.34 and urllib3 2.x build a new `ssl.SSLContext` for every new
connection and load a CA store into it — the system store even when verification is off. That
costs about 20 ms of CPU per connection; a 10-XiVO run opens a few hundred HTTPS connections
(Consul, xivo-confd, phonebooks), so on two vCPUs it was about 40 % of the run (issue 7's
benchmark). A context is made once per setting here and handed to urllib3 through the pool key.

The settings are the topology's `verify` values: False (XiVO's self-signed certificates, XIVO-FACTS
§11), True (the CA bundle `requests` would use), or a path to a CA file or directory. Hostnames are
matched by urllib3 after the handshake (check_hostname stays off in the shared context: urllib3
turns it off per connection for IP addresses anyway, and a shared context must not flip).
"""

from __future__ import annotations

import os
import ssl
import threading

# Each package before its submodules (tests/test_import_order.py says why).
import requests  # noqa: F401
import urllib3  # noqa: F401
from requests.utils import DEFAULT_CA_BUNDLE_PATH
from urllib3.util.ssl_ import create_urllib3_context

_LOCK = threading.Lock()
_CONTEXTS: dict[bool | str, ssl.SSLContext] = {}


def for_verify(verify: bool | str) -> ssl.SSLContext:
    """The shared context for a `verify` value as `requests` takes it. Raises OSError (as `requests`
    does) when a CA path cannot be read."""
    key: bool | str = verify if isinstance(verify, str) else bool(verify)
    with _LOCK:
        context = _CONTEXTS.get(key)
        if context is None:
            context = _CONTEXTS[key] = _make(key)
        return context


def _make(verify: bool | str) -> ssl.SSLContext:
    if verify is False:
        context = create_urllib3_context(cert_reqs=ssl.CERT_NONE)
        context.check_hostname = False
        return context
    context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
    context.check_hostname = False  # urllib3 matches the hostname itself (see the module docstring)
    where = DEFAULT_CA_BUNDLE_PATH if verify is True else verify
    if os.path.isdir(where):
        context.load_verify_locations(capath=where)
    else:
        context.load_verify_locations(cafile=where)
    return context
