"""The XiVOs a report is about, as every renderer names them: the topology's, in its order, then
any other an item names.

Place in the pipeline: presentation helpers: read the Report (a report read back from a file may
hold anything, so nothing is trusted to be of its type), never probe.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from xivo_doctor.foundation.results import Report


def listed(topology: Mapping[str, Any], key: str) -> tuple[Any, ...]:
    """`topology[key]` when it is a list (a report read back from a file may hold anything)."""
    value = topology.get(key)
    return value if isinstance(value, tuple) else ()


def declared_xivos(report: Report) -> list[Mapping[str, Any]]:
    """The topology's XiVO entries (name, address, ...), as loaded."""
    return [x for x in listed(report.topology, "xivos") if isinstance(x, Mapping)]


def xivo_names(report: Report) -> list[str]:
    """The XiVOs in the topology's order, then any other a result names."""
    names = [str(x.get("name", "")) for x in declared_xivos(report)]
    seen = dict.fromkeys(n for n in names if n)
    for r in report.results:  # an item about a XiVO the topology does not list still gets a node
        for part in r.target.split("->"):
            if r.target != "*" and part not in seen:
                seen[part] = None
    return list(seen)
