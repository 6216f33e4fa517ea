"""How a check declares itself: id, title, why, fix, doc reference, severity, dependencies.

Place in the pipeline: check modules under `checks/` decorate one function with `@check(...)`;
the pytest plugin reads the declaration to name, order, block and classify items, and fills the
fix with this topology's values after the item ran. Nothing here knows pytest.

A check function evaluates: it asks the `probes` fixture for data (acquisition), records what it
saw in `evidence`, and asserts. It has no try/except and no plumbing; a probe that cannot reach
its source raises `ProbeError` and the item becomes `error`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from xivo_doctor.foundation.errors import CannotCheckFromHere, CheckDefinitionError, NotApplicable
from xivo_doctor.foundation.results import FixOut
from xivo_doctor.topology.model import Topology, Xivo

ID_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
SEVERITIES = ("fail", "warn")


@dataclass(frozen=True)
class FixContext:
    """What a fix template is filled with: the item's XiVO (and peer), the topology, the evidence."""

    topology: Topology
    xivo: Xivo | None
    peer: Xivo | None
    evidence: Mapping[str, Any]

    def values(self) -> dict[str, Any]:
        return _Values({"xivo": self.xivo, "peer": self.peer, "topology": self.topology, **self.evidence})


class _Values(dict[str, Any]):
    """Template values; a name the evidence does not hold shows as `<name>` rather than failing."""

    def __missing__(self, key: str) -> str:
        return f"<{key}>"


@dataclass(frozen=True)
class Fix:
    """A fix written as templates (`str.format` fields: `{xivo.address}`, `{peer.name}`, evidence
    keys). Use a function `(FixContext) -> FixOut` instead when the fix depends on what was seen."""

    summary: str
    commands: Sequence[str] = ()

    def __call__(self, ctx: FixContext) -> FixOut:
        values = ctx.values()
        return FixOut(
            summary=self.summary.format_map(values),
            commands=tuple(c.format_map(values) for c in self.commands),
        )


FixSource = Fix | Callable[[FixContext], FixOut]


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

    def decorate(function: Callable[..., None]) -> Callable[..., None]:
        if not function.__name__.startswith("test_"):
            raise CheckDefinitionError(f"check {id}: function {function.__name__} must start with test_")
        spec = CheckSpec(
            id=id,
            title=title,
            why=why,
            fix=fix,
            doc=doc,
            severity=severity,
            depends_on=tuple(depends_on),
            involves=involves,
            function_name=function.__name__,
            module=function.__module__,
        )
        setattr(function, SPEC_ATTRIBUTE, spec)
        return function

    return decorate


def spec_of(function: object) -> CheckSpec | None:
    return getattr(function, SPEC_ATTRIBUTE, None)


def not_applicable(reason: str) -> None:
    """End the item as `skip`: this check does not apply here (say why)."""
    raise NotApplicable(reason)


def cannot_check_from_here(reason: str) -> None:
    """End the item as `skip`: what the check needs is out of reach; say which access would do."""
    raise CannotCheckFromHere(reason)


class Evidence(dict[str, Any]):
    """What a check observed, shown to the admin. `facets` names the failed parts of the check
    (e.g. the `amqp` port) so that only the dependents of that part are blocked."""

    def __init__(self) -> None:
        super().__init__()
        self.facets: list[str] = []
        self.summary = ""  # one line shown when the item passes, e.g. "7 ports open"

    def failed_facet(self, *names: str) -> None:
        for name in names:
            if name not in self.facets:
                self.facets.append(name)
