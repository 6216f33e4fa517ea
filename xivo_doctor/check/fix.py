"""How a check writes its fix: templates filled with this topology's values, or a function of what
was seen, built step by step.

Place in the pipeline: the checks' API. The engine fills a failed item's fix after it ran
(`CheckSpec.fill_fix`), with the item's XiVO (and peer), the topology and the evidence.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from xivo_doctor.foundation.results import FixOut
from xivo_doctor.topology.model import Topology, Xivo


@dataclass(frozen=True)
class FixContext:
    """What a fix template is filled with: the item's XiVO (and peer), the topology, the evidence."""

    topology: Topology
    xivo: Xivo | None
    peer: Xivo | None
    evidence: Mapping[str, Any]

    def values(self) -> dict[str, Any]:
        return _Values({"xivo": self.xivo, "peer": self.peer, "topology": self.topology, **self.evidence})

    @property
    def version(self) -> str | None:
        """The XiVO version the item judged by, as `version_at_hand` recorded it ("16.13 (source)"),
        so that the fix gives that release's commands; None when unknown."""
        value = str(self.evidence.get("version") or "").split(" ")[0]
        return None if value in ("", "unknown") else value


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


class FixSteps:
    """A fix made of steps, one per problem seen: each says what to do and gives its commands.

    A summary or a command that two problems share is given once, in the order first given (two
    closed Consul ports share one fix; two directories of one peer, one log to read)."""

    def __init__(self) -> None:
        self._summaries: dict[str, None] = {}
        self._commands: dict[str, None] = {}

    def add(self, summary: str, commands: Iterable[str] = ()) -> None:
        self._summaries.setdefault(summary, None)
        for command in commands:
            self._commands.setdefault(command, None)

    def commands(self, *commands: str) -> None:
        """Commands that follow every step (restart what reads the changed configuration)."""
        for command in commands:
            self._commands.setdefault(command, None)

    def out(self, doc: str = "") -> FixOut:
        return FixOut(summary="; ".join(self._summaries), commands=tuple(self._commands), doc=doc)
