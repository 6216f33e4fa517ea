"""One run of the checks as it goes: its deadline, probes and warm-up, the results so far, the report.

Place in the pipeline: between the ways in (the CLI's commands and the pytest plugin, which prepare
the frozen `RunOptions`, engine/setup.py) and the pytest plugin that drives it item by item.
Nothing here knows pytest: the plugin asks this object what to parametrise, what blocks an item,
and hands back what each item raised. What the run was asked is `options` and never changes; what
it learns as it goes (results, what they block, the redaction's pseudonyms) is its state.
"""

from __future__ import annotations

import datetime as dt
import socket
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from xivo_doctor import __version__
from xivo_doctor.check import CheckSpec, Evidence, FixContext
from xivo_doctor.engine.blocking import Blocking, Target
from xivo_doctor.engine.classify import classify
from xivo_doctor.engine.options import RunOptions
from xivo_doctor.foundation.deadline import Deadline
from xivo_doctor.foundation.redact import Redactor
from xivo_doctor.foundation.results import Report, Result
from xivo_doctor.probes import Probes
from xivo_doctor.topology.model import Pair, Topology, Xivo
from xivo_doctor.topology.redaction import redactor_for

if TYPE_CHECKING:  # imported when the warm-up starts
    from xivo_doctor.engine.prefetch import Prefetch


class Listener:
    """Progress callbacks for the CLI's live display; the default does nothing."""

    def start(self, total: int) -> None: ...
    def item_started(self, item_id: str) -> None: ...
    def item_done(self, result: Result) -> None: ...


class Run:
    def __init__(self, options: RunOptions, *, listener: Listener | None = None,
                 deadline: Deadline | None = None) -> None:
        self.options = options
        self.listener = listener or Listener()
        # The caller's, when its start-up counts (`run -t` bounds the whole command); else from now.
        self.deadline = deadline or Deadline(options.timeout)
        self.results: list[Result] = []
        self.blocking = Blocking()
        self.started = time.monotonic()
        self.started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self._probes: Probes | None = None
        self._warming = False
        self._prefetch: Prefetch | None = None
        self._secrets: Redactor | None = None
        self._outputs: Redactor | None = None
        self._vantages: dict[str, str] = {}

    @property
    def topology(self) -> Topology:
        return self.options.topology

    def probes(self) -> Probes:
        if self._probes is None:
            self._probes = Probes(self.topology, self.deadline, passive=self.options.passive)
        return self._probes

    def close(self) -> None:
        """The run's checks are done: end its warm-up's idle threads and what its probes keep open (SSH
        connections)."""
        if self._prefetch is not None:
            self._prefetch.close()
        if self._probes is not None:
            self._probes.close()

    def start_warm_up(self) -> None:
        """Start the selected checks' warm-ups (engine/prefetch.py), so that their slow reads overlap
        with pytest's start-up and the other checks. Once per run: the CLI starts it before pytest
        loads, and `run_checks` asks again for callers that did not."""
        if self._warming:
            return
        self._warming = True
        self.probes().open()  # SSH logins go on while the checks and their libraries load
        from xivo_doctor.engine import prefetch, registry

        wanted = set(self.options.checks)
        specs = [s for s in registry.discover(self.options.checks_folder) if not wanted or s.id in wanted]
        self._prefetch = prefetch.start(self.probes(), specs, self.selected_xivos(), self.selected_pairs())

    def selected_xivos(self) -> tuple[Xivo, ...]:
        """The XiVOs this run is about (the options were validated: engine/setup.py)."""
        nodes = self.options.nodes
        return tuple(x for x in self.topology.xivos if not nodes or x.name in nodes)

    def selected_pairs(self) -> tuple[Pair, ...]:
        names = {x.name for x in self.selected_xivos()}
        return tuple(p for p in self.topology.pairs if p.xivo.name in names or p.peer.name in names)

    def target_for(self, params: Mapping[str, Any], spec: CheckSpec | None = None) -> Target:
        """The target of an item from its parameters: `xivo`, `pair`, or neither (`*`). The names
        it involves decide what blocks it: a check that judges its peers involves them all."""
        everyone = frozenset(x.name for x in self.topology.xivos)
        if isinstance(params.get("xivo"), Xivo):
            x = params["xivo"]
            names = everyone if spec is not None and spec.involves == "peers" else frozenset({x.name})
            return Target(x.name, names, "xivo", xivo=x)
        if isinstance(params.get("pair"), Pair):
            p = params["pair"]
            return Target(p.id, frozenset({p.xivo.name, p.peer.name}), "pair", xivo=p.xivo, peer=p.peer)
        return Target("*", everyone, "topology")

    def finish(
        self,
        spec: CheckSpec,
        target: Target,
        *,
        exc: BaseException | None,
        evidence: Evidence | None,
        blocked_by: Sequence[str],
        duration_s: float,
    ) -> Result:
        """Classify one item, remember it (it may block later items) and tell the listener."""
        if evidence is not None and target.xivo is not None and "vantage" not in evidence:
            evidence["vantage"] = self.vantage_of(target.xivo)
        # Redacted here, before anything keeps or shows it: no renderer ever holds a secret.
        result = self.secret_redactor().redact_result(classify(
            spec,
            target.id,
            exc=exc,
            evidence=evidence,
            fix_context=FixContext(self.topology, target.xivo, target.peer, {}),
            blocked_by=blocked_by,
            duration_s=duration_s,
        ))
        self.results.append(result)
        self.blocking.record(result, target)
        self.listener.item_done(result)
        return result

    def vantage_of(self, xivo: Xivo) -> str:
        """Where what the item says of `xivo` was seen from, in words (issue 15: every item says it)."""
        if xivo.name not in self._vantages:
            from xivo_doctor.probes.session import is_local

            host = socket.gethostname()
            if xivo.on_box is not None:
                self._vantages[xivo.name] = f"on {xivo.name}" if is_local(xivo.address) else \
                    f"from {host}, with on-box access to {xivo.name}'s files and database"
            elif xivo.ssh is not None:
                self._vantages[xivo.name] = f"from {host}; {xivo.name}'s files, database and commands over SSH"
            else:
                self._vantages[xivo.name] = f"from {host}, by the network only"
        return self._vantages[xivo.name]

    def secret_redactor(self) -> Redactor:
        """Masks secrets only: addresses get their pseudonyms once, over the whole report."""
        if self._secrets is None:
            self._secrets = redactor_for(self.topology)
        self._learn(self._secrets)
        return self._secrets

    def _learn(self, redactor: Redactor) -> None:
        """What the probes read on the XiVOs and is secret (a master token over SSH) is masked too."""
        if self._probes is not None:
            redactor.learn(self._probes.learned_secrets())

    def output_redactor(self) -> Redactor:
        """The redactor of every output of this run: what is collected after the report (a bundle's
        logs) gets the same pseudonyms as the report."""
        if self._outputs is None:
            self._outputs = redactor_for(self.topology, addresses=self.options.redact_addresses)
        self._learn(self._outputs)
        return self._outputs

    def report(self) -> Report:
        report = Report(
            results=tuple(self.results),
            started_at=self.started_at,
            duration_s=round(time.monotonic() - self.started, 3),
            vantage=socket.gethostname(),
            topology=self.topology.describe(),
            timeout_s=self.deadline.seconds,
            doctor_version=__version__,
        )
        return self.output_redactor().report(report)
