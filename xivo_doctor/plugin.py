"""The pytest plugin: the only module that knows pytest.

Place in the pipeline: it runs the evaluation. It gives checks their fixtures (`topology`,
`xivos`, `probes`, `evidence`, and `xivo` / `pair` parametrised over the XiVOs and the expected
pairs with readable ids), runs upstream checks first, skips dependents of a failed upstream with
`blocked_by`, classifies each item into a `Result` (`classify`), and assembles the `Report`.

Two ways in, same results:
- `pytest checks/ --topology FILE` (the repository's `conftest.py` loads this plugin);
- `xivo-doctor run`, which calls `run_checks()` below with a prepared `DoctorSession`.
"""

from __future__ import annotations

import datetime as dt
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from xivo_doctor import __version__, registry
from xivo_doctor.check import CheckSpec, Evidence, FixContext, spec_of
from xivo_doctor.classify import classify
from xivo_doctor.deadline import Deadline
from xivo_doctor.errors import CheckDefinitionError, DoctorError, ProbeTimeout, UsageError
from xivo_doctor.probes import Probes
from xivo_doctor.results import Report, Result, Status
from xivo_doctor.topology import Topology, find_topology, load_topology
from xivo_doctor.topology.model import Pair, Xivo

DEFAULT_TIMEOUT = 30.0

SPEC = pytest.StashKey[CheckSpec]()
TARGET = pytest.StashKey["Target"]()
EVIDENCE = pytest.StashKey[Evidence]()
PHASES = pytest.StashKey[dict]()


@dataclass(frozen=True)
class Target:
    """What an item is about: one XiVO, one ordered pair, or the whole topology (`*`)."""

    id: str
    names: frozenset[str]
    kind: str  # "xivo" | "pair" | "topology"
    xivo: Xivo | None = None
    peer: Xivo | None = None


class Listener:
    """Progress callbacks for the CLI's live display; the default does nothing."""

    def start(self, total: int) -> None: ...
    def item_started(self, item_id: str) -> None: ...
    def item_done(self, result: Result) -> None: ...


@dataclass(eq=False)
class DoctorSession:
    """A stateful plugin object (as pytest-html's): settings in, results collected, report out."""

    topology: Topology | None = None
    topology_path: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    checks: Sequence[str] = ()
    nodes: Sequence[str] = ()
    passive: bool = False
    listener: Listener = field(default_factory=Listener)
    deadline: Deadline | None = None
    results: list[Result] = field(default_factory=list)
    report: Report | None = None
    collection_errors: list[str] = field(default_factory=list)
    usage_errors: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    started_at: str = field(default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    _probes: Probes | None = None

    # -- settings -------------------------------------------------------------------------------
    def loaded_topology(self) -> Topology:
        if self.topology is None:
            self.topology = load_topology(find_topology(self.topology_path))
        return self.topology

    def selected_xivos(self) -> tuple[Xivo, ...]:
        topology = self.loaded_topology()
        unknown = [n for n in self.nodes if n not in {x.name for x in topology.xivos}]
        if unknown:
            names = ", ".join(x.name for x in topology.xivos)
            raise UsageError(f"--node {unknown[0]}: no such XiVO in {topology.source}; known: {names}")
        if not self.nodes:
            return topology.xivos
        return tuple(x for x in topology.xivos if x.name in self.nodes)

    def selected_pairs(self) -> tuple[Pair, ...]:
        names = {x.name for x in self.selected_xivos()}
        return tuple(p for p in self.loaded_topology().pairs if p.xivo.name in names or p.peer.name in names)

    def probes(self) -> Probes:
        if self._probes is None:
            self._probes = Probes(self.loaded_topology(), self.the_deadline(), passive=self.passive)
        return self._probes

    def the_deadline(self) -> Deadline:
        if self.deadline is None:
            self.deadline = Deadline(self.timeout)
        return self.deadline

    # -- collection -----------------------------------------------------------------------------
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        spec = spec_of(metafunc.function)
        if spec is None:
            return
        wants = [n for n in ("xivo", "pair") if n in metafunc.fixturenames]
        if len(wants) > 1:
            raise CheckDefinitionError(f"check {spec.id}: take either `xivo` or `pair`, not both")
        try:
            if "xivo" in wants:
                xivos = self.selected_xivos()
                metafunc.parametrize("xivo", xivos, ids=[x.name for x in xivos])
            elif "pair" in wants:
                pairs = self.selected_pairs()
                metafunc.parametrize("pair", pairs, ids=[p.id for p in pairs])
        except DoctorError as exc:
            # Raised from here pytest would call it a collection error of the check module;
            # remember it and stop the run as a usage error once collection is over.
            self.usage_errors.append(str(exc))
            metafunc.parametrize(wants[0], [])

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        if self.usage_errors:
            raise pytest.UsageError(self.usage_errors[0])
        known: dict[str, CheckSpec] = {}
        for item in items:
            spec = spec_of(getattr(item, "function", None))
            if spec is None:
                continue
            item.stash[SPEC] = spec
            item.stash[TARGET] = self._target_of(item)
            known.setdefault(spec.id, spec)
        try:
            unknown = [c for c in self.checks if c not in known]
            if unknown:
                raise UsageError(f"--check {unknown[0]}: no such check; known: {', '.join(sorted(known))}")
            rank = {s.id: i for i, s in enumerate(registry.order(known.values()))}
        except DoctorError as exc:
            raise pytest.UsageError(str(exc)) from None
        keep, drop = [], []
        for item in items:
            spec = item.stash.get(SPEC, None)
            (drop if spec is not None and self.checks and spec.id not in self.checks else keep).append(item)
        if drop:
            config.hook.pytest_deselected(items=drop)
        position = {id(item): i for i, item in enumerate(keep)}
        keep.sort(key=lambda it: (rank.get(it.stash[SPEC].id, -1) if SPEC in it.stash else -1, position[id(it)]))
        items[:] = keep
        self.listener.start(sum(1 for it in keep if SPEC in it.stash))

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collection_errors.append(f"{report.nodeid}: {str(report.longrepr).strip().splitlines()[-1]}")

    def _target_of(self, item: pytest.Item) -> Target:
        params: dict[str, Any] = getattr(getattr(item, "callspec", None), "params", {})
        if isinstance(params.get("xivo"), Xivo):
            x = params["xivo"]
            return Target(x.name, frozenset({x.name}), "xivo", xivo=x)
        if isinstance(params.get("pair"), Pair):
            p = params["pair"]
            return Target(p.id, frozenset({p.xivo.name, p.peer.name}), "pair", xivo=p.xivo, peer=p.peer)
        names = frozenset(x.name for x in self.loaded_topology().xivos)
        return Target("*", names, "topology")

    # -- running --------------------------------------------------------------------------------
    def blockers(self, spec: CheckSpec, target: Target) -> list[str]:
        """Failed upstream items that make this item pointless: one root cause shows once."""
        found = []
        for dep, facet in spec.dependencies():
            for result, upstream in self._failed.get(dep, []):
                if facet is not None and facet not in result.facets:
                    continue
                if _covers(upstream, target):
                    found.append(result.item_id)
        return list(dict.fromkeys(found))

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        if SPEC not in item.stash:
            return
        spec, target = item.stash[SPEC], item.stash[TARGET]
        item.stash[PHASES] = {"exc": None, "duration": 0.0, "blocked": []}
        self.listener.item_started(f"{spec.id}[{target.id}]")
        blocked = self.blockers(spec, target)
        if blocked:
            item.stash[PHASES]["blocked"] = blocked
            pytest.skip(f"blocked by {', '.join(blocked)}")
        if self.the_deadline().expired:
            raise ProbeTimeout("run", self.the_deadline().describe_timeout())

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        report = yield
        state = item.stash.get(PHASES, None)
        if state is None or "result" in state:
            return report
        state["duration"] += call.duration
        exc = call.excinfo.value if call.excinfo is not None else None
        if exc is not None and not isinstance(exc, pytest.skip.Exception):
            state["exc"] = exc
        # An item ends at its call, or at its setup when that raised or skipped (call never runs).
        if call.when == "call" or (call.when == "setup" and exc is not None):
            _describe_for_pytest(report, self._finish(item, state))
        return report

    def _finish(self, item: pytest.Item, state: dict) -> Result:
        spec, target = item.stash[SPEC], item.stash[TARGET]
        ctx = FixContext(self.loaded_topology(), target.xivo, target.peer, {})
        result = classify(
            spec,
            target.id,
            exc=state["exc"],
            evidence=item.stash.get(EVIDENCE, None),
            fix_context=ctx,
            blocked_by=state["blocked"],
            duration_s=state["duration"],
        )
        state["result"] = result
        self.results.append(result)
        if result.status is Status.FAIL:
            self._failed.setdefault(spec.id, []).append((result, target))
        self.listener.item_done(result)
        return result

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        topology = self.topology
        self.report = Report(
            results=tuple(self.results),
            started_at=self.started_at,
            duration_s=round(time.monotonic() - self.started, 3),
            vantage=socket.gethostname(),
            topology=topology.describe() if topology is not None else {},
            timeout_s=self.the_deadline().seconds,
            doctor_version=__version__,
        )
        json_path = session.config.getoption("doctor_json", None)
        if json_path:
            from xivo_doctor.render.json_report import write_json

            write_json(self.report, json_path)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.report is None or not self.results:
            return
        from xivo_doctor.render.terminal import verdict_line

        terminalreporter.write_sep("=", "xivo-doctor")
        terminalreporter.write_line(verdict_line(self.report))

    @property
    def _failed(self) -> dict[str, list[tuple[Result, Target]]]:
        if not hasattr(self, "_failed_items"):
            self._failed_items: dict[str, list[tuple[Result, Target]]] = {}
        return self._failed_items


def _covers(upstream: Target, dependent: Target) -> bool:
    """Does a failure of `upstream` make `dependent` pointless?

    A failed XiVO blocks the items on that XiVO and on pairs that contain it; a failed pair
    blocks the items on the same two XiVOs (either direction) but not each XiVO as a whole; a
    failed topology-wide item blocks everything that depends on it.
    """
    if upstream.kind == "topology":
        return True
    if upstream.kind == "xivo":
        return bool(upstream.names & dependent.names)
    return dependent.kind != "xivo" and upstream.names <= dependent.names


def _describe_for_pytest(report: pytest.TestReport, result: Result) -> None:
    """Under plain `pytest checks/`, show our classification instead of a traceback."""
    if result.status is Status.SKIP and report.outcome != "skipped":
        report.outcome = "skipped"
        report.longrepr = (str(report.fspath), 0, result.message)
    elif result.status in (Status.FAIL, Status.WARN, Status.ERROR):
        lines = [f"{result.status.value.upper()}: {result.message}"]
        if result.fix is not None:
            lines += [f"fix: {result.fix.summary}", *(f"    {c}" for c in result.fix.commands)]
        lines.append(f"manual: {result.doc}")
        report.longrepr = "\n".join(lines)


# -- pytest entry points (module level: found when this module is loaded as a plugin) -----------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("xivo-doctor")
    group.addoption("--topology", dest="doctor_topology", default=None, help="topology file (YAML)")
    group.addoption("--check", dest="doctor_checks", action="append", default=[], help="run only this check id")
    group.addoption("--node", dest="doctor_nodes", action="append", default=[], help="only this XiVO")
    group.addoption("--doctor-timeout", dest="doctor_timeout", type=float, default=DEFAULT_TIMEOUT)
    group.addoption("--passive", dest="doctor_passive", action="store_true", help="no federation probe")
    group.addoption("--doctor-json", dest="doctor_json", default=None, help="write the result JSON here")


def pytest_configure(config: pytest.Config) -> None:
    if _session(config) is None:
        config.pluginmanager.register(
            DoctorSession(
                topology_path=config.getoption("doctor_topology"),
                timeout=config.getoption("doctor_timeout"),
                checks=tuple(config.getoption("doctor_checks")),
                nodes=tuple(config.getoption("doctor_nodes")),
                passive=config.getoption("doctor_passive"),
            ),
            "xivo-doctor-session",
        )


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    """Collect the check modules (`checks/*.py`), which are not named `test_*.py`."""
    if (
        file_path.suffix == ".py"
        and not file_path.name.startswith(("_", "test_"))
        and file_path.name != "conftest.py"
        and file_path.parent.resolve() == registry.checks_dir().resolve()
    ):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def _session(config: pytest.Config) -> DoctorSession | None:
    for plugin in config.pluginmanager.get_plugins():
        if isinstance(plugin, DoctorSession):
            return plugin
    return None


def _doctor(request: pytest.FixtureRequest) -> DoctorSession:
    session = _session(request.config)
    assert session is not None, "the xivo-doctor plugin is not configured"
    return session


@pytest.fixture(scope="session")
def topology(request: pytest.FixtureRequest) -> Topology:
    """The whole topology as loaded."""
    return _doctor(request).loaded_topology()


@pytest.fixture(scope="session")
def xivos(request: pytest.FixtureRequest) -> tuple[Xivo, ...]:
    """The XiVOs this run is about (all, or those named with --node)."""
    return _doctor(request).selected_xivos()


@pytest.fixture(scope="session")
def probes(request: pytest.FixtureRequest) -> Probes:
    """The run's data sources: one deadline, one cache, concurrent batches."""
    return _doctor(request).probes()


@pytest.fixture
def evidence(request: pytest.FixtureRequest) -> Evidence:
    """Record what the check observed; it is shown with the result."""
    found = Evidence()
    request.node.stash[EVIDENCE] = found
    return found


# -- the CLI's way in -----------------------------------------------------------------------------


def run_checks(session: DoctorSession, *, checks_folder: Path | None = None) -> Report:
    """Run the checks in-process with pytest and return the report. Raises DoctorError subclasses
    only: UsageError / TopologyError / CheckDefinitionError for what prevents a run."""
    folder = checks_folder or registry.checks_dir()
    args = [
        str(folder),
        "-p",
        "xivo_doctor.plugin",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:terminal",
        "-p",
        "no:warnings",
        "-p",
        "no:stepwise",
        "-c",
        str(Path(__file__).with_name("pytest-run.ini")),
        "--rootdir",
        str(folder),
        "--confcutdir",
        str(folder),
        "--import-mode=importlib",
    ]
    errors: list[str] = []
    capture = _UsageErrorCatcher(errors)
    code = pytest.main(args, plugins=[session, capture])
    if session.collection_errors:
        raise CheckDefinitionError(f"a check module failed to load: {session.collection_errors[0]}")
    if errors:
        raise UsageError(errors[0])
    if session.report is None or code in (pytest.ExitCode.INTERNAL_ERROR, pytest.ExitCode.USAGE_ERROR):
        raise DoctorError(f"the check run did not complete (pytest exit code {int(code)})")
    return session.report


class _UsageErrorCatcher:
    """pytest prints UsageErrors to stderr itself; keep the message for the CLI instead."""

    def __init__(self, sink: list[str]) -> None:
        self.sink = sink

    def pytest_internalerror(self, excrepr, excinfo) -> bool:
        self.sink.append(str(excinfo.value))
        return True


__all__ = ["DoctorSession", "Listener", "run_checks"]
