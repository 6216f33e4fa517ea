"""Which items a failed upstream item makes pointless: one root cause shows once.

Place in the pipeline: evaluation. The plugin records every failed result here and asks,
before each item runs, which recorded failures block it (DESIGN §4: `blocked_by`). Pure logic,
no pytest, so the rules are tested directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from xivo_doctor.check import CheckSpec
from xivo_doctor.foundation.results import Result, Status
from xivo_doctor.topology.model import Xivo


@dataclass(frozen=True)
class Target:
    """What an item is about: one XiVO, one ordered pair, or the whole topology (`*`)."""

    id: str
    names: frozenset[str]
    kind: str  # "xivo" | "pair" | "topology"
    xivo: Xivo | None = None
    peer: Xivo | None = None


def covers(upstream: Target, dependent: Target) -> bool:
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


def _facet_failed(facets: Sequence[str], facet: str, upstream: Target, dependent: Target) -> bool:
    """`facet` failed for `dependent`: everywhere (`amqp`), or as seen from one XiVO only
    (`amqp@xivo-2`, a port filtered for that peer alone), which then blocks only the items that
    involve that XiVO beside the failed one."""
    if facet in facets:
        return True
    seen_from = {f.partition("@")[2] for f in facets if f.partition("@")[0] == facet and "@" in f}
    return bool(seen_from & (dependent.names - upstream.names))


class Blocking:
    """The failures seen so far in a run, and the rule that turns them into `blocked_by`."""

    def __init__(self) -> None:
        self._failed: dict[str, list[tuple[Result, Target]]] = {}

    def record(self, result: Result, target: Target) -> None:
        # Only a proven fault blocks: after an error (could not check) the dependents still run
        # and say what they can see; a warning does not make them pointless either. An item that
        # was itself blocked passes its root causes on, so a chain still names the one root cause.
        if result.status is Status.FAIL or (result.status is Status.SKIP and result.blocked_by):
            self._failed.setdefault(result.check, []).append((result, target))

    def blockers(self, spec: CheckSpec, target: Target) -> list[str]:
        """Item ids of recorded failures that block `spec` on `target`. A dependency written
        `check-id:facet` is blocked only by a failure in that facet (e.g. port-reachable:amqp)."""
        found = []
        for check_id, facet in spec.dependencies():
            for result, upstream in self._failed.get(check_id, []):
                if result.status is Status.SKIP:
                    if covers(upstream, target):
                        found.extend(result.blocked_by)
                    continue
                if facet is not None and not _facet_failed(result.facets, facet, upstream, target):
                    continue
                if covers(upstream, target):
                    found.append(result.item_id)
        return list(dict.fromkeys(found))
