"""xivo-ctid's REST API: `GET http://<address>:9495/0.1/infos` → {"uuid", "cti_protocol_version"}.

Place in the pipeline: acquisition. Plain HTTP, no authentication (XIVO-FACTS §3); the UUID it
answers is the XIVO_UUID the daemon runs with (XIVO-FACTS §2), the one it tags its Consul
registration with. The request goes through `http.fetch` (the run's deadline, size cap); an answer
that is not a JSON object with a string `uuid` (an HTML page, another service) is a `ProbeError`.
Cached per run and per (XiVO, address, port), failures included.
"""

from __future__ import annotations

from typing import Any

from xivo_doctor.foundation.errors import ProbeError
from xivo_doctor.foundation.netaddr import url_host
from xivo_doctor.probes.transport import http
from xivo_doctor.topology.model import Xivo


def infos_url(address: str, port: int) -> str:
    return f"http://{url_host(address)}:{port}/0.1/infos"


class CtidProbe:
    """The `probes.ctid` slot: xivo-ctid's `/0.1/infos`."""

    def __init__(self, probes: Any) -> None:  # the run's probes/session.py `Probes`
        self.probes = probes

    def infos(self, xivo: Xivo, address: str | None = None, port: int | None = None) -> dict[str, Any]:
        """ctid's `/0.1/infos` at `address:port` (default: the XiVO's declared address, ctid port)."""
        address = address or xivo.address
        port = port or xivo.ctid.port
        return self.probes.cached(("ctid-infos", xivo.name, address, port),
                               lambda: self._fetch(xivo, address, port))

    def _fetch(self, xivo: Xivo, address: str, port: int) -> dict[str, Any]:
        url = infos_url(address, port)
        source = f"xivo-ctid REST API of {xivo.name} ({url})"
        answer = http.fetch(url, source=source, deadline=self.probes.deadline, timeout=self.probes.timeout,
                            allow_redirects=False)
        if answer.status != 200:
            raise ProbeError(source, f"answered HTTP {answer.status}: {answer.text[:80]!r}")
        found = answer.json(source)
        if not isinstance(found, dict) or not isinstance(found.get("uuid"), str) or not found["uuid"]:
            raise ProbeError(source, f"answered JSON without a `uuid` string: {str(found)[:120]!r}")
        return found
