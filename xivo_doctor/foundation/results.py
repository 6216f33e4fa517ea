"""The one immutable result model (DESIGN §5): evaluation produces it, every renderer reads it.

Place in the pipeline: acquisition (probes) -> evaluation (checks, classified by the pytest
plugin into `Result`s) -> **this model** -> presentation (terminal, JSON, JUnit, ...).

Nothing here knows pytest, the network or a renderer. Results are frozen dataclasses whose
evidence is deep-frozen, so a renderer cannot alter what another renderer will show.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from xivo_doctor.foundation.measures import LinkKind, LinkView, Metric, Reach

SCHEMA = "xivo-doctor/1"


class Status(enum.StrEnum):
    """What became of one item (`check-id[target]`)."""

    PASS = "pass"
    WARN = "warn"  # an assertion failed on a check whose severity is `warn`
    FAIL = "fail"  # an assertion failed: the interconnection is broken
    ERROR = "error"  # could not check: a data source unreachable, unparsable, or the deadline
    SKIP = "skip"  # not applicable (reason in `message`), or blocked (`blocked_by` names the cause)


class Verdict(enum.StrEnum):
    """The run's overall state, spelled and numbered as Nagios does (DESIGN §3)."""

    OK = "OK"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"
    UNKNOWN = "UNKNOWN"

    @property
    def exit_code(self) -> int:
        return _EXIT_CODES[self]


_EXIT_CODES = {Verdict.OK: 0, Verdict.WARNING: 1, Verdict.CRITICAL: 2, Verdict.UNKNOWN: 3}


def verdict_of(statuses: Iterable[Status]) -> Verdict:
    """CRITICAL if any fail, else UNKNOWN if any error, else WARNING if any warn, else OK.

    A failure outranks an error because a proven fault is more actionable than a gap in what
    could be checked; the error still shows in the counts.
    """
    seen = set(statuses)
    if Status.FAIL in seen:
        return Verdict.CRITICAL
    if Status.ERROR in seen:
        return Verdict.UNKNOWN
    if Status.WARN in seen:
        return Verdict.WARNING
    return Verdict.OK


def freeze(value: Any) -> Any:
    """Deep-freeze JSON-like data: mappings become read-only, sequences become tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({str(k): freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return tuple(freeze(v) for v in items)
    return value


def thaw(value: Any) -> Any:
    """The inverse of `freeze`, for serialisers: plain dicts and lists."""
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class FixOut:
    """A fix as shown to the admin: templates already filled with this topology's values."""

    summary: str
    commands: tuple[str, ...] = ()
    doc: str = ""


@dataclass(frozen=True)
class Result:
    """One item: a check applied to one XiVO (`xivo-1`), one pair (`xivo-1->xivo-2`) or the whole
    topology (target `*`)."""

    check: str
    target: str
    status: Status
    title: str
    message: str = ""
    evidence: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    fix: FixOut | None = None
    doc: str = ""
    why: str = ""
    severity: str = "fail"
    blocked_by: tuple[str, ...] = ()
    # Which parts of the check failed (e.g. the `amqp` port of port-reachable); a dependent that
    # names `check-id:facet` is blocked only by a failure in that facet.
    facets: tuple[str, ...] = ()
    duration_s: float = 0.0
    # What the check declares of every outcome (foundation/measures.py), for the renderers that must
    # not know the check: its measurements (Nagios perfdata), the kind of link it judges and its view
    # of each peer (the HTML picture), facts about XiVOs (the table of XiVOs), the ports it tried
    # from each origin (the HTML grid of ports). Not in the JSON.
    metrics: tuple[Metric, ...] = ()
    link: LinkKind | None = None
    link_views: Mapping[str, LinkView] = field(default_factory=lambda: MappingProxyType({}))
    facts: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: MappingProxyType({}))
    reach: tuple[Reach, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "evidence", freeze(self.evidence))
        object.__setattr__(self, "blocked_by", tuple(self.blocked_by))
        object.__setattr__(self, "facets", tuple(self.facets))
        object.__setattr__(self, "metrics", tuple(self.metrics))
        object.__setattr__(self, "link_views", MappingProxyType(dict(self.link_views)))
        object.__setattr__(self, "facts", freeze(self.facts))
        object.__setattr__(self, "reach", tuple(self.reach))

    @property
    def item_id(self) -> str:
        """`check-id[target]`, the name Nagios services and JSON consumers see."""
        return f"{self.check}[{self.target}]" if self.target != "*" else self.check


@dataclass(frozen=True)
class Report:
    """A whole run: what was checked, from where, when, and every result in run order."""

    results: tuple[Result, ...]
    started_at: str
    duration_s: float
    vantage: str
    topology: Mapping[str, Any]
    timeout_s: float
    doctor_version: str
    schema: str = SCHEMA
    # What changed since the previous run kept by `--history DIR` (`history.compare`): None without
    # history; else {"previous": started_at or None, "runs": n, "new_failures": [...],
    # "resolved": [...], "flapping": [...]} of item ids.
    changes: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "results", tuple(self.results))
        object.__setattr__(self, "topology", freeze(self.topology))
        if self.changes is not None:
            object.__setattr__(self, "changes", freeze(self.changes))

    @property
    def verdict(self) -> Verdict:
        return verdict_of(r.status for r in self.results)

    @property
    def exit_code(self) -> int:
        return self.verdict.exit_code

    def counts(self) -> dict[str, int]:
        counts = {s.value: 0 for s in Status}
        for r in self.results:
            counts[r.status.value] += 1
        return counts

    def with_status(self, *statuses: Status) -> tuple[Result, ...]:
        return tuple(r for r in self.results if r.status in statuses)

    def root_causes(self) -> tuple[Result, ...]:
        """Failures and warnings, in run order (upstream checks run first): what to fix first."""
        return self.with_status(Status.FAIL, Status.WARN)
