"""The pytest plugin: the only module that knows pytest.

Place in the pipeline: it drives the evaluation. It gives checks their fixtures (`topology`,
`xivos`, `probes`, `evidence`, and `xivo` / `pair` parametrised over the XiVOs and the expected
pairs with readable ids), runs upstream checks first, skips dependents of a failed upstream with
`blocked_by`, and hands each item's outcome to the `Run`, which classifies it into a `Result`.

Two ways in, same results:
- `pytest checks/ --topology FILE` (the repository's `conftest.py` loads this plugin);
- `xivo-doctor run`, which calls `run_checks()` below with a `Run` built from its arguments.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from xivo_doctor.check import CheckSpec, Evidence, spec_of
from xivo_doctor.engine import registry
from xivo_doctor.engine.options import SELECTION
from xivo_doctor.engine.run import Run
from xivo_doctor.engine.setup import validate_selection
from xivo_doctor.foundation.errors import CheckDefinitionError, DoctorError, ProbeTimeout, UsageError
from xivo_doctor.foundation.results import Report, Result, Status
from xivo_doctor.probes import Probes
from xivo_doctor.topology import Topology
from xivo_doctor.topology.model import Xivo

SPEC = pytest.StashKey[CheckSpec]()
TARGET = pytest.StashKey[Any]()
EVIDENCE = pytest.StashKey[Evidence]()
STATE = pytest.StashKey[dict]()


class DoctorSession:
    """A stateful plugin object (as pytest-html's): drives a `Run`, keeps the report.

    `xivo-doctor` hands it a run ready to start; under plain `pytest checks/` it prepares one from
    the plugin's options when collection first needs it (engine/setup.py), so that a bad topology
    or `--node` is a usage error of that collection."""

    def __init__(self, run: Run | None = None, *, request: dict[str, Any] | None = None) -> None:
        self._run = run
        self._request = request or {}
        self.report: Report | None = None
        self.collection_errors: list[str] = []
        self.usage_errors: list[str] = []

    @property
    def run(self) -> Run:
        if self._run is None:
            from xivo_doctor.engine.setup import prepare

            self._run = Run(prepare(**self._request, checks_known=False).options)
        return self._run

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
                xivos = self.run.selected_xivos()
                metafunc.parametrize("xivo", xivos, ids=[x.name for x in xivos])
            elif "pair" in wants:
                pairs = self.run.selected_pairs()
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
            if spec is not None:
                item.stash[SPEC] = spec
                params = getattr(getattr(item, "callspec", None), "params", {})
                item.stash[TARGET] = self.run.target_for(params, spec)
                known.setdefault(spec.id, spec)
        if not known and not self._request.get("checks") and self._run is None:
            return  # no check collected nor asked for (the project's own tests): the plugin is inert
        try:
            selected = self.run.options.checks
            validate_selection(selected, (), self.run.topology, sorted(known))
            rank = {s.id: i for i, s in enumerate(registry.order(known.values()))}
        except DoctorError as exc:
            raise pytest.UsageError(str(exc)) from None
        keep = [it for it in items if SPEC not in it.stash or not selected or it.stash[SPEC].id in selected]
        dropped = [it for it in items if it not in keep]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        position = {id(item): i for i, item in enumerate(keep)}
        keep.sort(key=lambda it: (rank[it.stash[SPEC].id] if SPEC in it.stash else -1, position[id(it)]))
        items[:] = keep
        self.run.listener.start(sum(1 for it in keep if SPEC in it.stash))

    def pytest_collect_file(self, file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
        """Collect the check modules (`checks/*.py`, or the run's own checks folder), which are not
        named `test_*.py`."""
        folder = (self._run.options.checks_folder if self._run is not None else None) or registry.checks_dir()
        if (file_path.suffix == ".py" and not file_path.name.startswith(("_", "test_"))
                and file_path.name != "conftest.py" and file_path.parent.resolve() == folder.resolve()):
            return pytest.Module.from_parent(parent, path=file_path)
        return None

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collection_errors.append(f"{report.nodeid}: {str(report.longrepr).strip().splitlines()[-1]}")

    # -- running --------------------------------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        if SPEC not in item.stash:
            return
        spec, target = item.stash[SPEC], item.stash[TARGET]
        item.stash[STATE] = {"exc": None, "duration": 0.0, "blocked": []}
        self.run.listener.item_started(f"{spec.id}[{target.id}]" if target.id != "*" else spec.id)
        blocked = self.run.blocking.blockers(spec, target)
        if blocked:
            item.stash[STATE]["blocked"] = blocked
            pytest.skip(f"blocked by {', '.join(blocked)}")
        deadline = self.run.deadline
        if deadline.expired:
            raise ProbeTimeout("run", deadline.describe_timeout())

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        report = yield
        state = item.stash.get(STATE, None)
        if state is None or "result" in state:
            return report
        state["duration"] += call.duration
        exc = call.excinfo.value if call.excinfo is not None else None
        if exc is not None and not isinstance(exc, pytest.skip.Exception):
            state["exc"] = exc
        # An item ends at its call, or at its setup when that raised or skipped (call never runs).
        if call.when == "call" or (call.when == "setup" and exc is not None):
            state["result"] = self.run.finish(
                item.stash[SPEC],
                item.stash[TARGET],
                exc=state["exc"],
                evidence=item.stash.get(EVIDENCE, None),
                blocked_by=state["blocked"],
                duration_s=state["duration"],
            )
            _describe_for_pytest(report, state["result"])
        return report

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self._run is None:  # no check was collected (the project's own tests): nothing to report
            return
        self.report = self.run.report()
        self.run.close()
        json_path = session.config.getoption("doctor_json", None)
        if json_path:
            from xivo_doctor.render.json_report import write_json

            write_json(self.report, json_path)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.report is not None and self.report.results:
            from xivo_doctor.render.terminal import verdict_line

            terminalreporter.write_sep("=", "xivo-doctor")
            terminalreporter.write_line(verdict_line(self.report))


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
    for option in SELECTION:  # the same options as `xivo-doctor run`'s (engine/options.py)
        group.addoption(option.plugin_flag, **{**option.kwargs(), "dest": option.plugin_dest})
    group.addoption("--doctor-json", dest="doctor_json", default=None, help="write the result JSON here")


def pytest_configure(config: pytest.Config) -> None:
    if _session(config) is None:
        request = {"topology": config.getoption("doctor_topology"), "timeout": config.getoption("doctor_timeout"),
                   "checks": tuple(config.getoption("doctor_checks")), "nodes": tuple(config.getoption("doctor_nodes")),
                   "passive": config.getoption("doctor_passive")}
        config.pluginmanager.register(DoctorSession(request=request), "xivo-doctor-session")
    else:
        # `xivo-doctor run`: pytest formats a traceback for every item that raised, which the run then
        # replaces by its own classification (`_describe_for_pytest`); its default style parses the
        # source of every frame (1.2 s an item for an SSH error: 15 s of a 2-XiVO run with no SSH
        # key), "native" does not (the terminal plugin, off here, would otherwise own `--tb`)
        config.option.tbstyle = "native"


def _session(config: pytest.Config) -> DoctorSession | None:
    for plugin in config.pluginmanager.get_plugins():
        if isinstance(plugin, DoctorSession):
            return plugin
    return None


def _run(request: pytest.FixtureRequest) -> Run:
    session = _session(request.config)
    assert session is not None, "the xivo-doctor plugin is not configured"
    return session.run


@pytest.fixture(scope="session")
def topology(request: pytest.FixtureRequest) -> Topology:
    """The whole topology as loaded."""
    return _run(request).topology


@pytest.fixture(scope="session")
def xivos(request: pytest.FixtureRequest) -> tuple[Xivo, ...]:
    """The XiVOs this run is about (all, or those named with --node)."""
    return _run(request).selected_xivos()


@pytest.fixture(scope="session")
def probes(request: pytest.FixtureRequest) -> Probes:
    """The run's data sources: one deadline, one cache, concurrent batches."""
    return _run(request).probes()


@pytest.fixture
def evidence(request: pytest.FixtureRequest) -> Evidence:
    """Record what the check observed; it is shown with the result."""
    found = Evidence()
    request.node.stash[EVIDENCE] = found
    return found


# -- the CLI's way in -----------------------------------------------------------------------------

# Off: what a run does not use. unraisableexception and threadexception turn exceptions nobody caught
# into warnings, which `no:warnings` drops anyway, and the first collects the garbage five times as the
# session ends (0.3 s a run in a large process, such as a test session running the doctor in-process).
RUN_ARGS = (
    "-p", "xivo_doctor.engine.plugin",
    "-p", "no:cacheprovider", "-p", "no:terminal", "-p", "no:warnings", "-p", "no:stepwise",
    "-p", "no:unraisableexception", "-p", "no:threadexception",
    "--import-mode=importlib",
)


def run_checks(run: Run) -> Report:
    """Run the checks in-process and return the report. Raises only DoctorError subclasses."""
    folder = run.options.checks_folder or registry.checks_dir()
    # Our own ini, rootdir and confcutdir: no pytest.ini, tox.ini, pyproject.toml or conftest.py
    # around the checks or in the current directory changes how they run.
    ini = Path(__file__).with_name("pytest-run.ini")
    args = [str(folder), *RUN_ARGS, "-c", str(ini), "--rootdir", str(folder), "--confcutdir", str(folder)]
    session = DoctorSession(run)
    internal: list[str] = []
    run.start_warm_up()  # the slow reads overlap with pytest's start-up, collection and the fast checks
    with _no_plugin_autoload():
        code = pytest.main(args, plugins=[session, _InternalErrorCatcher(internal)])
    if session.collection_errors:
        raise CheckDefinitionError(f"a check module failed to load: {session.collection_errors[0]}")
    if internal:
        raise UsageError(internal[0])
    if session.report is None or code in (pytest.ExitCode.INTERNAL_ERROR, pytest.ExitCode.USAGE_ERROR):
        raise DoctorError(f"the check run did not complete (pytest exit code {int(code)})")
    return session.report


AUTOLOAD = "PYTEST_DISABLE_PLUGIN_AUTOLOAD"


@contextmanager
def _no_plugin_autoload() -> Iterator[None]:
    """Only our plugin in the run: pytest plugins installed on the machine (pytest-benchmark,
    hypothesis, a CI's own) would otherwise load with the checks — pytest-benchmark alone ran
    git, hg and `file` at start-up (0.2 s) — and could change how a check is collected or judged."""
    before = os.environ.get(AUTOLOAD)
    os.environ[AUTOLOAD] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(AUTOLOAD, None)
        else:
            os.environ[AUTOLOAD] = before


class _InternalErrorCatcher:
    """Keep pytest's internal/usage errors for the CLI instead of letting pytest print them."""

    def __init__(self, sink: list[str]) -> None:
        self.sink = sink

    def pytest_internalerror(self, excrepr, excinfo) -> bool:
        self.sink.append(str(excinfo.value))
        return True


__all__ = ["DoctorSession", "run_checks"]
