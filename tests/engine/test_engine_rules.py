"""The engine's rules, tested directly: verdict and exit codes, classification, blocking, ordering."""

from __future__ import annotations

import dataclasses

import pytest

from xivo_doctor.check import Evidence, Fix, FixContext, check, spec_of
from xivo_doctor.engine.blocking import Blocking, Target, covers
from xivo_doctor.engine.classify import classify
from xivo_doctor.engine.registry import order, validate
from xivo_doctor.foundation.deadline import Deadline
from xivo_doctor.foundation.errors import (
    CannotCheckFromHere,
    CheckDefinitionError,
    NotApplicable,
    ProbeError,
    ProbeTimeout,
)
from xivo_doctor.foundation.results import Result, Status, Verdict, verdict_of
from xivo_doctor.topology.model import Topology, Xivo

S = Status


@pytest.mark.parametrize(
    ("statuses", "verdict", "code"),
    [
        ([], Verdict.OK, 0),
        ([S.PASS, S.SKIP], Verdict.OK, 0),
        ([S.PASS, S.WARN], Verdict.WARNING, 1),
        ([S.WARN, S.ERROR], Verdict.UNKNOWN, 3),
        ([S.ERROR, S.FAIL, S.WARN], Verdict.CRITICAL, 2),
        ([S.FAIL, S.PASS], Verdict.CRITICAL, 2),
        ([S.SKIP], Verdict.OK, 0),
    ],
)
def test_verdict_and_exit_code(statuses, verdict, code):
    assert verdict_of(statuses) is verdict
    assert verdict.exit_code == code


def test_results_are_immutable_deep_down():
    result = Result(check="c", target="x", status=S.FAIL, title="t", evidence={"ports": {"5672": ["a"]}})
    with pytest.raises(AttributeError):
        result.status = S.PASS  # type: ignore[misc]
    with pytest.raises(TypeError):
        result.evidence["ports"]["5672"] = "changed"  # type: ignore[index]
    assert result.evidence["ports"]["5672"] == ("a",)
    assert result.item_id == "c[x]"
    assert Result(check="c", target="*", status=S.PASS, title="t").item_id == "c"


XIVO1 = Xivo("xivo-1", "127.10.204.1")
XIVO2 = Xivo("xivo-2", "127.10.204.2")
TOPOLOGY = Topology(name="t", source=None, xivos=(XIVO1, XIVO2), pairs=())  # type: ignore[arg-type]


def make_spec(**overrides):
    kw = dict(id="demo", title="Demo", why="w", doc="contact_and_presence_sharing.rst#prerequisite",
              fix=Fix("restart on {xivo.name} ({port})", ["service x restart # {xivo.address}:{port}"]))
    kw.update(overrides)

    @check(**kw)
    def test_demo(xivo):
        pass

    return spec_of(test_demo)


def classify_exc(exc, *, spec=None, evidence=None, blocked=()):
    return classify(spec or make_spec(), "xivo-1", exc=exc, evidence=evidence, blocked_by=blocked,
                    fix_context=FixContext(TOPOLOGY, XIVO1, None, {}))


def test_classification_of_every_outcome():
    evidence = Evidence()
    evidence["port"] = 5672
    evidence.failed_facet("amqp")
    failed = classify_exc(AssertionError("5672 refused\nassert False"), evidence=evidence)
    assert failed.status is S.FAIL and failed.message == "5672 refused"
    assert failed.fix.summary == "restart on xivo-1 (5672)"
    assert failed.fix.commands == ("service x restart # 127.10.204.1:5672",)
    assert failed.fix.doc == "contact_and_presence_sharing.rst#prerequisite" and failed.facets == ("amqp",)
    assert classify_exc(AssertionError("x"), spec=make_spec(severity="warn")).status is S.WARN
    error = classify_exc(ProbeError("consul xivo-1", "HTTP 500"))
    assert error.status is S.ERROR and error.fix is None
    assert error.message == "could not check: consul xivo-1: HTTP 500"
    assert classify_exc(ProbeTimeout("amqp", "timed out after 3 s")).status is S.ERROR
    assert classify_exc(NotApplicable("16.15")).message == "not applicable: 16.15"
    assert classify_exc(CannotCheckFromHere("give the DSN")).message == "cannot check from here: give the DSN"
    blocked = classify_exc(None, blocked=["port-reachable[xivo-1]"])
    assert blocked.status is S.SKIP and blocked.blocked_by == ("port-reachable[xivo-1]",)
    bug = classify_exc(ZeroDivisionError("division by zero"))
    assert bug.status is S.ERROR
    assert bug.message == "internal error in check demo: ZeroDivisionError: division by zero (please report this)"
    passed = classify_exc(None)
    assert passed.status is S.PASS and passed.fix is None


def target(kind, *names):
    ident = {"xivo": names[0] if names else "", "pair": "->".join(names), "topology": "*"}[kind]
    return Target(ident, frozenset(names), kind)


@pytest.mark.parametrize(
    ("upstream", "dependent", "blocked"),
    [
        (target("xivo", "a"), target("xivo", "a"), True),
        (target("xivo", "a"), target("xivo", "b"), False),
        (target("xivo", "a"), target("pair", "b", "a"), True),
        (target("xivo", "a"), target("pair", "b", "c"), False),
        (target("pair", "a", "b"), target("pair", "b", "a"), True),
        (target("pair", "a", "b"), target("pair", "a", "c"), False),
        (target("pair", "a", "b"), target("xivo", "a"), False),
        (target("topology", "a", "b"), target("xivo", "a"), True),
        (target("xivo", "a"), target("topology", "a", "b"), True),
    ],
)
def test_which_failures_block_which_items(upstream, dependent, blocked):
    assert covers(upstream, dependent) is blocked


def test_only_failures_block_and_facets_narrow():
    blocking = Blocking()
    upstream = make_spec(id="up")
    for status, name, facets in ((S.FAIL, "a", ("amqp",)), (S.ERROR, "b", ()), (S.WARN, "c", ())):
        blocking.record(Result(check="up", target=name, status=status, title="t", facets=facets),
                        target("xivo", name))
    dependent = make_spec(id="down", depends_on=["up"])
    assert blocking.blockers(dependent, target("pair", "a", "b")) == ["up[a]"]
    assert blocking.blockers(dependent, target("xivo", "b")) == []  # an error blocks nothing
    assert blocking.blockers(dependent, target("xivo", "c")) == []  # nor a warning
    assert blocking.blockers(make_spec(id="d2", depends_on=["up:ctid"]), target("xivo", "a")) == []
    assert blocking.blockers(make_spec(id="d3", depends_on=["up:amqp"]), target("xivo", "a")) == ["up[a]"]
    assert upstream.id == "up"


def test_a_facet_failed_from_one_peer_blocks_only_what_involves_that_peer():
    """port-reachable[a] fails `amqp` as seen from b only (a firewall drops b): the pair b-a is
    blocked, c-a is not, and neither is a as a whole."""
    blocking = Blocking()
    blocking.record(Result(check="up", target="a", status=S.FAIL, title="t", facets=("amqp@b",)), target("xivo", "a"))
    dependent = make_spec(id="down", depends_on=["up:amqp"])
    assert blocking.blockers(dependent, target("pair", "b", "a")) == ["up[a]"]
    assert blocking.blockers(dependent, target("pair", "c", "a")) == []
    assert blocking.blockers(dependent, target("xivo", "a")) == []
    assert blocking.blockers(make_spec(id="d2", depends_on=["up:ctid"]), target("pair", "b", "a")) == []


def test_registry_orders_upstream_first_and_refuses_cycles_duplicates_unknowns():
    a, b, c = make_spec(id="a", depends_on=["b"]), make_spec(id="b", depends_on=["c:amqp"]), make_spec(id="c")
    assert [s.id for s in order([a, b, c])] == ["c", "b", "a"]
    with pytest.raises(CheckDefinitionError, match=r"check dependency cycle: a -> b -> a"):
        order([a, make_spec(id="b", depends_on=["a"])])
    with pytest.raises(CheckDefinitionError, match=r"check id 'c' is declared twice"):
        validate([c, make_spec(id="c")])
    with pytest.raises(CheckDefinitionError, match=r"check a depends on unknown check 'b'"):
        validate([a])


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"id": "Port_Reachable"}, "must be lower-case words joined by '-'"),
        ({"severity": "fatal"}, "severity must be one of fail, warn"),
        ({"doc": "somewhere"}, "doc must be 'page.rst#section'"),
    ],
)
def test_bad_declarations_are_refused(kw, message):
    with pytest.raises(CheckDefinitionError, match=message):
        make_spec(**kw)


def test_deadline_cuts_operations_and_refuses_when_spent():
    now = [0.0]
    deadline = Deadline(5, clock=lambda: now[0])
    assert deadline.budget(3, "x") == 3
    now[0] = 4.0
    assert deadline.budget(3, "x") == 1.0
    now[0] = 5.5
    with pytest.raises(ProbeTimeout, match=r"x: timed out after 5 s \(the run's deadline, -t\)"):
        deadline.budget(3, "x")


def test_a_fix_that_cannot_be_filled_never_hides_the_failure():
    spec = make_spec()  # its templates name {port}, which this evidence lacks
    result = classify_exc(AssertionError("broken"), spec=spec)
    assert result.status is S.FAIL and result.fix.summary == "restart on xivo-1 (<port>)"

    def raising(ctx):
        raise RuntimeError("oops")

    result = classify_exc(AssertionError("broken"), spec=make_spec(fix=raising))
    assert result.status is S.FAIL and result.message == "broken"
    assert result.fix.summary.startswith("(the fix text of demo could not be filled: RuntimeError: oops")


def test_a_blocked_item_passes_its_root_cause_on():
    blocking = Blocking()
    blocking.record(Result(check="ports", target="a", status=S.FAIL, title="t"), target("xivo", "a"))
    middle = make_spec(id="middle", depends_on=["ports"])
    assert blocking.blockers(middle, target("xivo", "a")) == ["ports[a]"]
    blocking.record(Result(check="middle", target="a", status=S.SKIP, title="t", blocked_by=("ports[a]",)),
                    target("xivo", "a"))
    last = make_spec(id="last", depends_on=["middle"])
    assert blocking.blockers(last, target("xivo", "a")) == ["ports[a]"]
    assert blocking.blockers(last, target("xivo", "b")) == []


def test_a_check_that_judges_its_peers_is_blocked_by_a_peer_failure():
    from xivo_doctor.engine.options import RunOptions
    from xivo_doctor.engine.run import Run

    run = Run(RunOptions(topology=TOPOLOGY))
    own = run.target_for({"xivo": XIVO1}, make_spec(id="own"))
    peers = run.target_for({"xivo": XIVO1}, make_spec(id="wide", involves="peers"))
    assert own.names == frozenset({"xivo-1"}) and peers.names == frozenset({"xivo-1", "xivo-2"})
    assert covers(target("xivo", "xivo-2"), peers) and not covers(target("xivo", "xivo-2"), own)


def _broken_invariant():
    assert 1 + 1 == 3  # a probe's or a library's own assert, not a check's verdict


def test_an_assertion_raised_outside_the_check_is_an_internal_error_not_a_fail():
    """A failed `assert` in a probe once came out as `fail` with the check's fix (the verdict of a
    XiVO), where it was a bug of the doctor's: only the check's own module speaks a verdict."""
    spec = make_spec()
    try:
        _broken_invariant()
    except AssertionError as exc:
        elsewhere = exc
    bug = classify(dataclasses.replace(spec, module="some_check_module"), "xivo-1", exc=elsewhere, evidence=None,
                   fix_context=FixContext(TOPOLOGY, XIVO1, None, {}))
    assert bug.status is S.ERROR and bug.fix is None
    assert bug.message.startswith("internal error in check demo: AssertionError at ") and "test_engine_rules.py:" \
        in bug.message and bug.message.endswith("(please report this)")
    # raised in the check's own module: its verdict
    own = classify(dataclasses.replace(spec, module=__name__), "xivo-1", exc=elsewhere, evidence=None,
                   fix_context=FixContext(TOPOLOGY, XIVO1, None, {}))
    assert own.status is S.FAIL
