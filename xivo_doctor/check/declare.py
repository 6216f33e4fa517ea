"""`@check(...)`: how a check declares itself, and what the engine knows of it (`CheckSpec`).

Place in the pipeline: the checks' API. A check module under `checks/` decorates one `test_*`
function; the engine reads the declaration to name, order, warm up, block and classify its items,
to fill the fix of a failed one and to describe every outcome in the generic shapes the renderers
read (metrics, the link it judges, facts about a XiVO). Nothing here knows pytest.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from xivo_doctor.check.fix import FixContext, FixSource
from xivo_doctor.foundation.errors import CheckDefinitionError
from xivo_doctor.foundation.measures import LinkKind, LinkView, Metric, Reach
from xivo_doctor.foundation.results import FixOut, Result, Status

if TYPE_CHECKING:
    from xivo_doctor.check.warmup import WarmUp

ID_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
SEVERITIES = ("fail", "warn")


@dataclass(frozen=True)
class Outcome:
    """An item once it ran, as its metrics, link views and facts are computed from it: names only,
    so that a report read back from JSON can be described again."""

    xivo: str | None  # the item's XiVO; of a pair, the first (`a` of `a->b`)
    peer: str | None  # of a pair, the second
    status: Status
    evidence: Mapping[str, Any]
    xivos: tuple[str, ...]  # every declared XiVO, in the topology's order

    @classmethod
    def of(cls, result: Result, xivos: Sequence[str]) -> Outcome:
        first, arrow, second = result.target.partition("->")
        xivo = None if result.target == "*" else first
        return cls(xivo, second if arrow else None, result.status, result.evidence, tuple(xivos))


def peers_named_by_problems(o: Outcome) -> dict[str, LinkView]:
    """The view of each peer of a failed item whose `problems` evidence names peers (`{"peer": ...}`):
    those fail, the others pass; otherwise no view (the item's own status holds for every peer)."""
    if o.status not in (Status.FAIL, Status.WARN):
        return {}
    named = {str(p["peer"]) for p in o.evidence.get("problems", ()) if isinstance(p, Mapping) and "peer" in p}
    if not named:
        return {}
    return {x: LinkView(False) if x in named else LinkView(True, "") for x in o.xivos if x != o.xivo}


Metrics = Callable[[Outcome], Iterable[Metric]]
Links = Callable[[Outcome], Mapping[str, LinkView]]
Facts = Callable[[Outcome], Mapping[str, Mapping[str, str]]]
Reaches = Callable[[Outcome], Iterable[Reach]]
WarmUpFunction = Callable[["WarmUp"], None]


@dataclass(frozen=True)
class CheckSpec:
    """Everything the engine knows about a check, declared beside its code."""

    id: str
    title: str
    why: str
    fix: FixSource
    doc: str  # manual page + section anchor, e.g. contact_and_presence_sharing.rst#prerequisite
    severity: str = "fail"
    # ids of checks that must pass first; `check-id:facet` narrows to one facet of that check
    depends_on: tuple[str, ...] = ()
    # "self": an item is about its XiVO (or pair) only; "peers": a per-XiVO item also judges what
    # the XiVO sees of its peers (its WAN pool, say), so a failed upstream on a peer blocks it too
    involves: str = "self"
    # Started as the run starts, before pytest (engine/prefetch.py): the slow reads the check will
    # make, through the same probe calls, so that it finds them done.
    warm_up: WarmUpFunction | None = field(default=None, compare=False)
    # Warm-ups start in this order (then the run's): the one whose reads take longest goes first, so
    # that the critical path starts before the other warm-ups' threads compete with it.
    warm_up_order: int = 50
    metrics: Metrics | None = field(default=None, compare=False)
    link: LinkKind | None = None
    links: Links | None = field(default=None, compare=False)  # per-XiVO items: the view of each peer
    facts: Facts | None = field(default=None, compare=False)
    reach: Reaches | None = field(default=None, compare=False)  # per-XiVO items: its ports as tried from where
    function_name: str = field(default="", compare=False)
    module: str = field(default="", compare=False)

    def dependencies(self) -> tuple[tuple[str, str | None], ...]:
        """`depends_on` split into (check id, facet or None)."""
        out = []
        for dep in self.depends_on:
            check_id, _, facet = dep.partition(":")
            out.append((check_id, facet or None))
        return tuple(out)

    def fill_fix(self, ctx: FixContext) -> FixOut:
        try:
            out = self.fix(ctx)
        except Exception as exc:  # a bug in the check's fix must not hide the failure it explains
            return FixOut(
                summary=f"(the fix text of {self.id} could not be filled: {type(exc).__name__}: {exc}; "
                f"follow the manual section)",
                doc=self.doc,
            )
        return FixOut(summary=out.summary, commands=tuple(out.commands), doc=out.doc or self.doc)

    def describe(self, result: Result, xivos: Sequence[str]) -> Result:
        """`result` with what this check declares of every outcome: its metrics, the link it judges
        and its view of each peer, the facts it observed about XiVOs, its ports as tried from where."""
        outcome = Outcome.of(result, xivos)
        try:
            metrics = tuple(self.metrics(outcome)) if self.metrics else ()
            links = dict(self.links(outcome)) if self.links else {}
            facts = {x: dict(f) for x, f in self.facts(outcome).items()} if self.facts else {}
            reach = tuple(self.reach(outcome)) if self.reach else ()
        except Exception as exc:  # a bug here must not cost the item its verdict
            note = f"(the metrics, links or facts of {self.id} could not be computed: {type(exc).__name__}: {exc})"
            return replace(result, evidence={**result.evidence, "internal error": note}, link=self.link)
        return replace(result, metrics=metrics, link=self.link, link_views=links, facts=facts, reach=reach)


SPEC_ATTRIBUTE = "__xivo_doctor_check__"


def check(
    *,
    id: str,
    title: str,
    why: str,
    fix: FixSource,
    doc: str,
    severity: str = "fail",
    depends_on: Sequence[str] = (),
    involves: str = "self",
    warm_up: WarmUpFunction | None = None,
    warm_up_order: int = 50,
    metrics: Metrics | None = None,
    link: LinkKind | None = None,
    links: Links | None = None,
    facts: Facts | None = None,
    reach: Reaches | None = None,
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Declare a check. The decorated function must be named `test_*` (it is a pytest test)."""
    if not ID_PATTERN.match(id):
        raise CheckDefinitionError(f"check id {id!r} must be lower-case words joined by '-'")
    if severity not in SEVERITIES:
        raise CheckDefinitionError(f"check {id}: severity must be one of {', '.join(SEVERITIES)}")
    if involves not in ("self", "peers"):
        raise CheckDefinitionError(f"check {id}: involves must be 'self' or 'peers'")
    if "#" not in doc:
        raise CheckDefinitionError(f"check {id}: doc must be 'page.rst#section', got {doc!r}")
    if links is not None and link is None:
        raise CheckDefinitionError(f"check {id}: `links` (the view of each peer) needs `link` (the kind of link)")

    def decorate(function: Callable[..., None]) -> Callable[..., None]:
        if not function.__name__.startswith("test_"):
            raise CheckDefinitionError(f"check {id}: function {function.__name__} must start with test_")
        spec = CheckSpec(id=id, title=title, why=why, fix=fix, doc=doc, severity=severity,
                         depends_on=tuple(depends_on), involves=involves, warm_up=warm_up,
                         warm_up_order=warm_up_order, metrics=metrics,
                         link=link, links=links, facts=facts, reach=reach, function_name=function.__name__,
                         module=function.__module__)
        setattr(function, SPEC_ATTRIBUTE, spec)
        return function

    return decorate


def spec_of(function: object) -> CheckSpec | None:
    return getattr(function, SPEC_ATTRIBUTE, None)
