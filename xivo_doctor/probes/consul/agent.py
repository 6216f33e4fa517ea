"""Consul's HTTP API of each XiVO, read with python-consul2: leader, datacenters, WAN pool, services.

Place in the pipeline: acquisition. `ConsulProbe` asks a XiVO's Consul (HTTPS on 8500 with the
master token, XIVO-FACTS §1/§4) and returns Consul's own JSON shapes (LAB-NOTES §C.2); it never
judges. Every failure becomes a `ProbeError` naming "consul API of <xivo> (<url>)": a closed port,
a TLS failure, a timeout cut to the run's deadline, 403 (token refused), 5xx (e.g. `No path to
datacenter`), an answer that is not Consul's (no JSON, no `X-Consul-Index`). The token never
appears in a message. Each answer, failures included, is cached per run and per arguments.

python-consul2 quirks handled here (LAB-NOTES §C.3): `CONSUL_HTTP_ADDR/SSL/SSL_VERIFY/TOKEN` in the
environment silently override the constructor's arguments, so they are hidden while a client is
built; every construction warns twice (DeprecationWarning), silenced; a closed port raises
`requests.ConnectionError`, not a ConsulException.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable
from typing import Any

import consul
import consul.base

from xivo_doctor.foundation.errors import ProbeError
from xivo_doctor.foundation.netaddr import url_host
from xivo_doctor.probes.consul import shapes
from xivo_doctor.probes.consul.views import DcQuery, WanView
from xivo_doctor.probes.onbox import MASTER_TOKEN_FILE
from xivo_doctor.probes.transport.bounded import guard, mount
from xivo_doctor.topology.model import Xivo

CONSUL_ENV = ("CONSUL_HTTP_ADDR", "CONSUL_HTTP_SSL", "CONSUL_HTTP_SSL_VERIFY", "CONSUL_HTTP_TOKEN")
_ENV_LOCK = threading.Lock()


class ConsulStatusError(ProbeError):
    """Consul answered with an HTTP error status (kept so a caller may read it as an answer)."""

    def __init__(self, source: str, message: str, status: int) -> None:
        super().__init__(source, message)
        self.status = status


class ConsulProbe:
    """The `probes.consul` slot: one XiVO's Consul API per call, answers in Consul's shapes."""

    def __init__(self, probes: Any) -> None:  # the run's probes/session.py `Probes`
        self.probes = probes

    # -- what checks call ------------------------------------------------------------------------
    @staticmethod
    def source(xivo: Xivo) -> str:
        return f"consul API of {xivo.name} ({_base_url(xivo)})"

    def leader(self, xivo: Xivo) -> str:
        """`/v1/status/leader`: "addr:8300", or "" when the datacenter has no leader."""
        return self._read(xivo, ("leader",), "GET /v1/status/leader", lambda c: c.status.leader(), shapes.leader)

    def datacenters(self, xivo: Xivo) -> list[str]:
        """`/v1/catalog/datacenters`: the datacenters this XiVO's Consul knows (its own included)."""
        return self._read(xivo, ("datacenters",), "GET /v1/catalog/datacenters",
                          lambda c: c.catalog.datacenters(), shapes.datacenters)

    def agent_self(self, xivo: Xivo) -> dict[str, Any]:
        """`/v1/agent/self`; `Config` holds Datacenter, NodeName, AdvertiseAddr, Version. Consul enforces
        no ACL on /v1/agent/* before 0.8 (XiVO ships 0.5.2-0.7.0): the token is sent when known."""
        return self._read(xivo, ("agent-self",), "GET /v1/agent/self", lambda c: c.agent.self(), shapes.agent_self)

    def wan_members(self, xivo: Xivo) -> list[dict[str, Any]]:
        """`/v1/agent/members?wan=1`: [{Name "<node>.<dc>", Addr, Port, Tags {dc,...}, Status 1..4}]."""
        return self._read(xivo, ("wan-members",), "GET /v1/agent/members?wan=1",
                          lambda c: c.agent.members(wan=True), shapes.wan_members)  # null on a client agent

    def agent_services(self, xivo: Xivo) -> dict[str, dict[str, Any]]:
        """`/v1/agent/services`: {service id: {ID, Service, Tags, Address, Port}}."""
        return self._read(xivo, ("agent-services",), "GET /v1/agent/services",
                          lambda c: c.agent.services(), shapes.agent_services)

    def agent_checks(self, xivo: Xivo) -> dict[str, dict[str, Any]]:
        """`/v1/agent/checks`: {check id: {CheckID, Status, Output, ServiceID}}."""
        return self._read(xivo, ("agent-checks",), "GET /v1/agent/checks", lambda c: c.agent.checks(),
                          shapes.agent_checks)

    def health_service(self, xivo: Xivo, name: str, dc: str | None = None, passing: bool = False,
                       token: bool = True) -> list[dict[str, Any]]:
        """`/v1/health/service/<name>[?dc=][&passing=1]`: [{Node, Service, Checks}].

        token=False asks anonymously, as xivo-ctid's ServiceFinder does (XIVO-FACTS §3).
        """
        query = "&".join(q for q in (f"dc={dc}" if dc else "", "passing=1" if passing else "") if q)
        what = f"GET /v1/health/service/{name}" + (f"?{query}" if query else "")
        return self._read(
            xivo, ("health-service", name, dc, passing, token), what + ("" if token else " (anonymous)"),
            lambda c: c.health.service(name, dc=dc, passing=passing)[1], shapes.health_service, anonymous=not token,
        )

    def catalog_service(self, xivo: Xivo, name: str, dc: str | None = None, token: bool = True) -> list[dict[str, Any]]:
        """`/v1/catalog/service/<name>[?dc=]`: [{ServiceID, ServiceAddress, ServicePort, ServiceTags, ...}],
        every registration whatever its health. token=False asks anonymously, as xivo-ctid 15.19-16.14
        does (python-consul 0.4.7 sends no token on catalog calls, docs/xivo-behaviour.md)."""
        what = f"GET /v1/catalog/service/{name}" + (f"?dc={dc}" if dc else "")
        return self._read(
            xivo, ("catalog-service", name, dc, token), what + ("" if token else " (anonymous)"),
            lambda c: c.catalog.service(name, dc=dc)[1], shapes.catalog_service, anonymous=not token,
        )

    # -- answers as data, for judging who is to blame --------------------------------------------
    def wan_view(self, xivo: Xivo) -> WanView:
        """This XiVO's own view of the pool; `problem` says why not when its API cannot be read."""
        try:
            config = self.agent_self(xivo)["Config"]
            members = self.wan_members(xivo)
        except ProbeError as exc:
            return WanView(problem=str(exc))
        dc = str(config.get("Datacenter", ""))
        return WanView(name=f"{config.get('NodeName', '')}.{dc}", datacenter=dc, members=tuple(members))

    def dc_query(self, xivo: Xivo, dc: str) -> DcQuery:
        """ServiceFinder's own query (anonymous, passing xivo-ctid, `?dc=`) through this XiVO's Consul.

        A 5xx (`No path to datacenter`: the WAN or server RPC path is broken) is an answer about the
        interconnection, returned as data; the API itself unreachable still raises.
        """
        try:
            entries = self.health_service(xivo, "xivo-ctid", dc=dc, passing=True, token=False)
        except ConsulStatusError as exc:
            if exc.status < 500:
                raise
            return DcQuery(dc, False, exc.detail.split(": ", 1)[-1])
        return DcQuery(dc, True, f"{len(entries)} passing xivo-ctid", tuple(entries))

    # -- plumbing --------------------------------------------------------------------------------
    def _read(self, xivo: Xivo, key: tuple, what: str, call: Callable[[consul.Consul], Any],
              validate: Callable[[Any], Any], *, anonymous: bool = False) -> Any:
        def compute() -> Any:
            found = self._call(xivo, what, call, anonymous=anonymous)
            try:
                # checks read these answers without try/except: the shapes they read are checked here
                return validate(found)
            except shapes.ShapeError as exc:
                raise ProbeError(self.source(xivo), f"{what}: answered JSON not of Consul's shape ({exc}): "
                                                    "is this Consul's API?") from None

        return self.probes.cached(("consul", xivo.name, *key), compute)

    def _call(self, xivo: Xivo, what: str, call: Callable[[consul.Consul], Any], *, anonymous: bool) -> Any:
        source = self.source(xivo)
        token, whose = (None, "") if anonymous else self._token(xivo)
        client = None
        try:
            # the whole request (TLS handshake included) bounded, its answer capped: probes/bounded.py
            with guard(source, self.probes.deadline, self.probes.timeout, what) as budget:
                client = _client(xivo, token, budget)
                # python-consul2 reads a 404 as null (CB.json allow_404): an absent endpoint is no answer
                client.http.session.hooks["response"].append(_refuse_404)
                return call(client)
        except consul.base.ACLPermissionDenied as exc:
            who = "an anonymous request" if token is None else whose
            raise ConsulStatusError(source, f"{what}: HTTP 403 {_text(exc, token)}: {who} was refused", 403) \
                from None
        except consul.base.ACLDisabled as exc:
            raise ConsulStatusError(source, f"{what}: HTTP 401 {_text(exc, token)}", 401) from None
        except consul.base.ConsulException as exc:
            # python-consul2 words other statuses "<code> <body>" (CB._status)
            text = _text(exc, token)
            code = text.split(" ", 1)[0]
            status = int(code) if code.isdigit() else 0
            raise ConsulStatusError(source, f"{what}: HTTP {text}" if status else f"{what}: {text}", status) \
                from None
        except KeyError:
            # index=True calls read X-Consul-Index directly (LAB-NOTES §C.3): not Consul's API
            raise ProbeError(source, f"{what}: answered without the X-Consul-Index header: is this Consul's API?") \
                from None
        except (ValueError, RecursionError):  # RecursionError: JSON nested deeper than the decoder goes
            raise ProbeError(source, f"{what}: answered something that is not JSON: is this Consul's API?") \
                from None
        finally:
            if client is not None:
                client.http.session.close()

    def _token(self, xivo: Xivo) -> tuple[str | None, str]:
        """The token to send, and whose it is in words. The topology's when it gives one; else, over
        SSH, the master token the XiVO itself holds (MASTER_TOKEN_FILE, written by XiVO's consul
        package, XIVO-FACTS §4), learned by the run's redactors; else none (anonymous)."""
        if xivo.consul.token is not None:
            return xivo.consul.token.reveal() or None, "the topology's consul token (consul.token_file)"
        if not xivo.over_ssh:
            return None, ""

        def read() -> str | None:
            try:
                text = self.probes.onbox.read_file(xivo, MASTER_TOKEN_FILE)
            except ProbeError:
                return None  # SSH itself is reported by the on-box items; Consul is asked anonymously
            value = (text or "").strip() or None
            if value:
                self.probes.learn_secret(value)
            return value

        token = self.probes.cached(("consul-master-token", xivo.name), read)
        return token, f"the master token read over SSH ({MASTER_TOKEN_FILE} of {xivo.name})"


def _refuse_404(response: Any, *args: Any, **kwargs: Any) -> None:
    if response.status_code == 404:
        raise consul.base.NotFound(f"404 {response.text}")



def _base_url(xivo: Xivo) -> str:
    return f"{xivo.consul.scheme}://{url_host(xivo.address)}:{xivo.consul.port}"


def _text(exc: Exception, token: str | None) -> str:
    """The error's words, one line, never the token (an echoing proxy could put it there)."""
    text = " ".join(str(exc).split())[:200]
    return text.replace(token, "********") if token else text


def _client(xivo: Xivo, token: str | None, timeout: float) -> consul.Consul:
    """A python-consul2 client that obeys the topology, not the environment (LAB-NOTES §C.3)."""
    access = xivo.consul
    with _ENV_LOCK:
        hidden = {name: os.environ.pop(name) for name in CONSUL_ENV if name in os.environ}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # legacy ACL / discovery chain notices
                client = consul.Consul(host=url_host(xivo.address), port=access.port, scheme=access.scheme,
                                       verify=access.verify, token=token, timeout=timeout)
        finally:
            os.environ.update(hidden)
    mount(client.http.session)  # watched sockets, capped body and redirects, no proxy from the environment
    return client
