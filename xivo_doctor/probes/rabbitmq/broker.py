"""RabbitMQ federation of each XiVO: rabbitmqctl on-box, the management API, and a probe message.

Place in the pipeline: acquisition. `RabbitProbe` reads a downstream XiVO's federation state
(links, upstreams, policies) and never judges it. Sources, best first:
- on-box: `xivo.on_box.rabbitmqctl` (argv prefix). One `rabbitmqctl eval` per XiVO reads it all
  (each call costs 0.3–0.5 s of Erlang start-up, LAB-NOTES §A.3): the manual's
  `rabbit_federation_status:status()`, the functions behind `list_parameters` and `list_policies`,
  and the enabled plugins, each under `catch`; a part whose function is missing on an older
  RabbitMQ falls back to its CLI command (`--formatter json`, then plain text; `rabbitmq-plugins`).
- remote: the management API (`xivo.rabbitmq.management`), which XiVO does not enable
  (XIVO-FACTS §5); `/api/federation-links` answers 404 without rabbitmq_federation_management.
`probe_delivery` is the doctor's only write: a temporary queue on the downstream, bound to `xivo`,
and small expiring messages published on the upstream until one crosses (LAB-NOTES §A.6).
Passwords: upstream URIs leave `federation_status` masked; the topology's are sent, never shown.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import PurePath
from typing import Any
from urllib.parse import quote

from xivo_doctor.foundation.errors import ProbeError, ProbeTimeout
from xivo_doctor.foundation.netaddr import url_host
from xivo_doctor.probes.rabbitmq import federation_status as fs
from xivo_doctor.probes.transport.commands import run_bounded
from xivo_doctor.topology.model import Xivo

CTL_TIMEOUT = 15.0  # s: a local command, dominated by the Erlang VM start-up, not a network wait
MAX_OUTPUT = 1_000_000  # bytes read from a command
logging.getLogger("pika").setLevel(logging.CRITICAL)  # its failures reach the admin as ProbeError


class RabbitProbe:
    def __init__(self, probes: Any) -> None:
        self.probes = probes
        self._asked: set[str] = set()  # XiVOs whose state `prefetch` already asked for
        self._asked_lock = threading.Lock()

    # -- which source --------------------------------------------------------------------------
    @staticmethod
    def on_box(xivo: Xivo) -> bool:
        """rabbitmqctl can be run: on the XiVO (on_box.rabbitmqctl), or on it over SSH."""
        return bool(xivo.on_box and xivo.on_box.rabbitmqctl) or xivo.ssh is not None

    @staticmethod
    def _over_ssh(xivo: Xivo) -> bool:
        return not (xivo.on_box and xivo.on_box.rabbitmqctl) and xivo.ssh is not None

    def _prefix(self, xivo: Xivo) -> list[str]:
        """The argv that runs rabbitmqctl for `xivo`: the topology's, or the XiVO's own over SSH."""
        return ["rabbitmqctl"] if self._over_ssh(xivo) else list(xivo.on_box.rabbitmqctl)

    def source(self, xivo: Xivo) -> str | None:
        """Where the federation state of `xivo` is read from; None: out of reach from here."""
        if self.on_box(xivo):
            return f"rabbitmqctl on {xivo.name}" + (" (over SSH)" if self._over_ssh(xivo) else "")
        if xivo.rabbitmq.management is not None:
            return f"RabbitMQ management API of {xivo.name} ({self._api_base(xivo)})"
        return None

    def prefetch(self, xivos: list[Xivo]) -> None:
        """Read every given XiVO's state at once (the downstreams' rabbitmqctl run concurrently).
        Each item of the check calls this: only the XiVOs no call asked for yet cost a thread (then
        a read, or a wait for the read under way, through the cache)."""
        with self._asked_lock:
            wanted = [x for x in xivos if self.source(x) and x.name not in self._asked]
            self._asked.update(x.name for x in wanted)
        if not wanted:
            return
        with ThreadPoolExecutor(max_workers=max(1, min(8, len(wanted))), thread_name_prefix="rabbitmq") as pool:
            for future in [pool.submit(self._state_or_error, x) for x in wanted]:
                future.result()

    # -- federation state (cached per run, failures too) ---------------------------------------
    def federation_links(self, xivo: Xivo) -> list[dict[str, Any]] | None:
        """Links as `rabbit_federation_status:status()` shows them; None: the federation plugin
        does not run (the status call answers noproc/undef)."""
        return self._state(xivo)["links"]

    def upstreams(self, xivo: Xivo) -> dict[str, dict[str, Any]]:
        """federation-upstream parameters: name -> {uri (masked), uris (parsed), max-hops, ...}."""
        return self._state(xivo)["upstreams"]

    def policies(self, xivo: Xivo) -> list[dict[str, Any]]:
        return self._state(xivo)["policies"]

    def node_time(self, xivo: Xivo) -> str | None:
        """The node's local time when read (link timestamps are in it); None from the API."""
        return self._state(xivo)["now"]

    def _state(self, xivo: Xivo) -> dict[str, Any]:
        return self.probes.cached(("rabbitmq-federation", xivo.name), lambda: self._read(xivo))

    def _state_or_error(self, xivo: Xivo) -> dict[str, Any] | ProbeError:
        return self.probes.outcome(("rabbitmq-federation", xivo.name), lambda: self._read(xivo))

    def _read(self, xivo: Xivo) -> dict[str, Any]:
        return self._read_ctl(xivo) if self.on_box(xivo) else self._read_api(xivo)

    def _read_ctl(self, xivo: Xivo) -> dict[str, Any]:
        vhost, source = _erlang_binary(xivo.rabbitmq.vhost), f"rabbitmqctl on {xivo.name}"
        parts = ["calendar:local_time()", "(catch rabbit_federation_status:status())",
                 f"(catch rabbit_runtime_parameters:list({vhost}, <<\"federation-upstream\">>))",
                 f"(catch rabbit_policy:list({vhost}))",
                 "(catch rabbit_plugins:read_enabled(element(2, application:get_env(rabbit, enabled_plugins_file))))"]
        out = self._ctl(xivo, ["eval", "{xivo_doctor, " + ", ".join(parts) + "}."], source)
        with _parsing(source, "rabbitmqctl eval"):
            term = fs.parse_term(out)
            if not (isinstance(term, tuple) and len(term) == 6 and term[0] == "xivo_doctor"):
                raise fs.ParseError("the answer is not the tuple asked for")
            _, now, status, params, policies, enabled = term
            if _failed(params):
                params = fs.parse_parameters(self._ctl_fallback(xivo, "list_parameters", source))
            else:
                params = [{k: fs.to_json(v) for k, v in fs.proplist(p, "a parameter").items()} for p in params]
            if _failed(policies):
                policies = fs.parse_policies(self._ctl_fallback(xivo, "list_policies", source))
            else:
                policies = [fs.policy({k: fs.to_json(v) for k, v in fs.proplist(p, "a policy").items()})
                            for p in policies]
            return {"now": fs.datetime_text(now), "links": fs.links_from_term(status), "policies": policies,
                    "upstreams": {p["name"]: fs.upstream(p["value"]) for p in params
                                  if p.get("component") == "federation-upstream"},
                    "enabled": None if not isinstance(enabled, list) else {str(e) for e in enabled}}

    def _ctl_fallback(self, xivo: Xivo, command: str, source: str) -> str:
        vhost = ["-p", xivo.rabbitmq.vhost]
        rc, out, _ = self._run([*self._prefix(xivo), "-q", command, *vhost, "--formatter", "json"], source, xivo)
        return out if rc == 0 else self._ctl(xivo, ["-q", command, *vhost], source)

    def plugins(self, xivo: Xivo) -> set[str]:
        """Enabled plugins (`rabbitmq-plugins list -e -m`, beside the XiVO's rabbitmqctl)."""
        source = f"rabbitmq-plugins on {xivo.name}"
        if not self.on_box(xivo):
            raise ProbeError(source, "no on_box.rabbitmqctl in the topology")
        argv = self._prefix(xivo)
        tools = [i for i, a in enumerate(argv) if PurePath(a).name == "rabbitmqctl"]
        if not tools:
            raise ProbeError(source, "cannot tell rabbitmq-plugins from on_box.rabbitmqctl (no rabbitmqctl in it)")
        argv[tools[-1]] = str(PurePath(argv[tools[-1]]).with_name("rabbitmq-plugins"))

        def read() -> set[str]:
            rc, out, err = self._run([*argv, "list", "-e", "-m"], source, xivo)
            if rc != 0:
                raise ProbeError(source, f"exit {rc}: {fs.first_line(err or out)}")
            with _parsing(source, "rabbitmq-plugins list"):
                return fs.parse_plugins(out)
        return self.probes.cached(("rabbitmq-plugins", xivo.name), read)

    def federation_plugin(self, xivo: Xivo) -> str:
        """`running`, or why not: `enabled, not running` / `not enabled` (rabbitmq-plugins asked)."""
        if self.federation_links(xivo) is not None:
            return "running"
        if not self.on_box(xivo):
            return "not running"
        enabled = self._state(xivo).get("enabled")
        try:
            enabled = "rabbitmq_federation" in (enabled if enabled is not None else self.plugins(xivo))
        except ProbeError as exc:
            return f"not running (whether it is enabled is unknown: {exc})"
        return "enabled, not running" if enabled else "not enabled"

    def federation_running(self, xivo: Xivo) -> bool | None:
        """Whether the federation plugin runs on `xivo`, as far as this run already knows; None when
        its state is out of reach or unreadable (never raises: a hint for another XiVO's item)."""
        if not self.source(xivo):
            return None
        state = self._state_or_error(xivo)
        return None if isinstance(state, ProbeError) else state["links"] is not None

    def _ctl(self, xivo: Xivo, args: list[str], source: str) -> str:
        rc, out, err = self._run([*self._prefix(xivo), *args], source, xivo)
        if rc != 0 and not fs.plugin_not_running(err + out):
            raise ProbeError(source, f"exit {rc}: {fs.first_line(err or out)}")
        return out if rc == 0 else err + out

    def _run(self, argv: list[str], source: str, xivo: Xivo) -> tuple[int, str, str]:
        wanted = max(self.probes.timeout, CTL_TIMEOUT)
        budget = self.probes.deadline.budget(wanted, source)
        if self._over_ssh(xivo):
            # rank 0: an Erlang VM boots, the longest command of a run; started first among those waiting
            ran = self.probes.ssh.run(xivo, argv, what=argv[0], max_bytes=MAX_OUTPUT, timeout=wanted, rank=0)
        else:
            ran = run_bounded(argv, budget, max_bytes=MAX_OUTPUT, merge_stderr=False)
        if ran.output is None:
            raise ProbeError(source, f"cannot run {argv[0]}: {ran.reason}")
        if ran.timed_out:
            raise ProbeTimeout(source, f"timed out after {budget:g} s" if budget == wanted
                               else self.probes.deadline.describe_timeout())
        if ran.truncated:
            raise ProbeError(source, f"printed more than {MAX_OUTPUT} bytes; stopped reading")
        assert ran.exit_code is not None
        return ran.exit_code, ran.output, ran.errors

    # -- management API ------------------------------------------------------------------------
    @staticmethod
    def _api_base(xivo: Xivo) -> str:
        m = xivo.rabbitmq.management
        return f"{m.scheme}://{url_host(xivo.address)}:{m.port}/api"

    def _read_api(self, xivo: Xivo) -> dict[str, Any]:
        vhost = quote(xivo.rabbitmq.vhost, safe="")
        links = self._api(xivo, f"/federation-links/{vhost}")
        params = self._api(xivo, f"/parameters/federation-upstream/{vhost}")
        policies = self._api(xivo, f"/policies/{vhost}")
        with _parsing(self.source(xivo) or "", "the management API's answer"):
            return {
                "now": None,
                "links": [_api_link(link) for link in links],
                "upstreams": {p["name"]: fs.upstream(p["value"]) for p in params},
                "policies": [fs.policy(p) for p in policies],
            }

    def _api(self, xivo: Xivo, path: str) -> Any:
        m, source = xivo.rabbitmq.management, self.source(xivo) or ""
        password = m.password or xivo.rabbitmq.password
        from xivo_doctor.probes.transport.http import fetch  # requests: not needed where rabbitmqctl is the source

        answer = fetch(self._api_base(xivo) + path, source=source, deadline=self.probes.deadline,
                       timeout=self.probes.timeout, verify=False,
                       auth=(m.user or xivo.rabbitmq.user, password.reveal() if password else ""))
        if answer.status == 404 and path.startswith("/federation-links"):
            raise ProbeError(source, "GET /api/federation-links answered 404: rabbitmq_federation_management "
                                     "is not enabled (LAB-NOTES §A.4)")
        if answer.status != 200:
            raise ProbeError(source, f"GET /api{path} answered HTTP {answer.status}")
        rows = answer.json(source)
        if not isinstance(rows, list):
            raise ProbeError(source, f"GET /api{path} did not answer a list")
        return rows

    # -- names ----------------------------------------------------------------------------------
    def resolve(self, host: str) -> list[str]:
        """Addresses `host` resolves to from here ([] if it does not), within the probe timeout."""
        return list(self.probes.addresses(host))

    # -- the end-to-end probe (the doctor's only write) ------------------------------------------
    def probe_delivery(self, downstream: Xivo, upstream: Xivo) -> dict[str, Any]:
        """See `amqp_probe.probe_delivery`; cached per run and pair."""
        from xivo_doctor.probes.rabbitmq import amqp_probe  # pika: 0.1 s to import, needed only to send a probe

        return self.probes.cached(("rabbitmq-probe", downstream.name, upstream.name),
                                  lambda: amqp_probe.probe_delivery(self.probes, downstream, upstream))


# -- helpers ------------------------------------------------------------------------------------------

def _erlang_binary(text: str) -> str:
    """`<<47>>` for "/": bytes, so no quoting of the vhost name can break the expression."""
    data = text.encode()
    return "<<" + ",".join(str(b) for b in data) + ">>"


def _failed(term: Any) -> bool:
    return isinstance(term, tuple) and term[:1] == ("EXIT",)


@contextmanager
def _parsing(source: str, what: str) -> Iterator[None]:
    """ParseError -> ProbeError naming the source (the text itself is never quoted: secrets)."""
    try:
        yield
    except fs.ParseError as exc:
        raise ProbeError(source, f"cannot read the output of {what}: {exc}") from None


def _api_link(obj: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(obj, dict) or "upstream" not in obj or "status" not in obj:
        raise fs.ParseError("a federation link without an upstream name or a status")
    return {"exchange": obj.get("exchange"), "upstream_exchange": obj.get("upstream_exchange"),
            "type": obj.get("type", ""), "vhost": obj.get("vhost"), "upstream": obj["upstream"],
            "status": obj["status"], "error": obj.get("error") or None,
            "uri": fs.mask_uri(obj["uri"]) if isinstance(obj.get("uri"), str) else None,
            "timestamp": obj.get("timestamp")}


