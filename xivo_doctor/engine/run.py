"""One run of the checks: what is selected, its deadline and probes, the results, the report.

Place in the pipeline: between the CLI (which builds a `Run` from its arguments) and the pytest
plugin (which drives it item by item). Nothing here knows pytest: the plugin asks this object
what to parametrise, what blocks an item, and hands back what each item raised.
"""

from __future__ import annotations

import datetime as dt
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from xivo_doctor import __version__
from xivo_doctor.check import CheckSpec, Evidence, FixContext
from xivo_doctor.engine.blocking import Blocking, Target
from xivo_doctor.engine.classify import classify
from xivo_doctor.foundation.deadline import Deadline
from xivo_doctor.foundation.errors import DoctorError, UsageError
from xivo_doctor.foundation.redact import Redactor
from xivo_doctor.foundation.results import Report, Result
from xivo_doctor.probes import Probes
from xivo_doctor.topology import Topology, find_topology, load_topology
from xivo_doctor.topology.model import Pair, Xivo

DEFAULT_TIMEOUT = 30.0


class Listener:
    """Progress callbacks for the CLI's live display; the default does nothing."""

    def start(self, total: int) -> None: ...
    def item_started(self, item_id: str) -> None: ...
    def item_done(self, result: Result) -> None: ...


@dataclass(eq=False)
class Run:
    topology: Topology | None = None
    topology_path: str | None = None  # used when `topology` is not given (plain `pytest checks/`)
    timeout: float = DEFAULT_TIMEOUT
    checks: Sequence[str] = ()
    nodes: Sequence[str] = ()
    passive: bool = False
    redact_addresses: bool = False  # pseudonyms for IP addresses and host names in every output
    listener: Listener = field(default_factory=Listener)
    deadline: Deadline | None = None
    results: list[Result] = field(default_factory=list)
    blocking: Blocking = field(default_factory=Blocking)
    started: float = field(default_factory=time.monotonic)
    started_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    _probes: Probes | None = None
    _prefetching: bool = False
    _secrets: Redactor | None = None
    output_redactor: Redactor | None = None  # the one that redacted the report (set by `report`)

    def loaded_topology(self) -> Topology:
        if self.topology is None:
            self.topology = load_topology(find_topology(self.topology_path))
        return self.topology

    def the_deadline(self) -> Deadline:
        if self.deadline is None:
            self.deadline = Deadline(self.timeout)
        return self.deadline

    def probes(self) -> Probes:
        if self._probes is None:
            self._probes = Probes(self.loaded_topology(), self.the_deadline(), passive=self.passive)
        return self._probes

    def start_prefetch(self) -> None:
        """Start the selected checks' slow reads in the background (probes/prefetch.py), so they
        overlap with pytest's start-up and the other checks; a bad topology or --node is left for
        the run itself to report. Once per run: the CLI starts it before importing pytest, and
        `run_checks` asks again for callers that did not."""
        if self._prefetching:
            return
        self._prefetching = True
        from xivo_doctor.engine import prefetch

        try:
            xivos = self.selected_xivos()
        except DoctorError:
            return
        prefetch.start(self.probes(), self.checks, xivos)

    def selected_xivos(self) -> tuple[Xivo, ...]:
        topology = self.loaded_topology()
        known = [x.name for x in topology.xivos]
        unknown = [n for n in self.nodes if n not in known]
        if unknown:
            raise UsageError(f"--node {unknown[0]}: no such XiVO in {topology.source}; known: {', '.join(known)}")
        return tuple(x for x in topology.xivos if not self.nodes or x.name in self.nodes)

    def selected_pairs(self) -> tuple[Pair, ...]:
        names = {x.name for x in self.selected_xivos()}
        return tuple(p for p in self.loaded_topology().pairs if p.xivo.name in names or p.peer.name in names)

    def target_for(self, params: Mapping[str, Any], spec: CheckSpec | None = None) -> Target:
        """The target of an item from its parameters: `xivo`, `pair`, or neither (`*`). The names
        it involves decide what blocks it: a check that judges its peers involves them all."""
        everyone = frozenset(x.name for x in self.loaded_topology().xivos)
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
        # Redacted here, before anything keeps or shows it: no renderer ever holds a secret.
        result = self.secret_redactor().redact_result(classify(
            spec,
            target.id,
            exc=exc,
            evidence=evidence,
            fix_context=FixContext(self.loaded_topology(), target.xivo, target.peer, {}),
            blocked_by=blocked_by,
            duration_s=duration_s,
        ))
        self.results.append(result)
        self.blocking.record(result, target)
        self.listener.item_done(result)
        return result

    def secret_redactor(self) -> Redactor:
        """Masks secrets only: addresses get their pseudonyms once, over the whole report."""
        if self._secrets is None:
            self._secrets = Redactor.for_topology(self.loaded_topology())
        return self._secrets

    def report(self) -> Report:
        report = Report(
            results=tuple(self.results),
            started_at=self.started_at,
            duration_s=round(time.monotonic() - self.started, 3),
            vantage=socket.gethostname(),
            topology=self.topology.describe() if self.topology is not None else {},
            timeout_s=self.the_deadline().seconds,
            doctor_version=__version__,
        )
        # Kept: what is collected after the run (a bundle's logs) must get the same pseudonyms.
        self.output_redactor = Redactor.for_topology(self.topology, addresses=self.redact_addresses)
        return self.output_redactor.report(report)
