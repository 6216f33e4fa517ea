"""What the Consul probe hands the checks beyond Consul's own JSON: one XiVO's view of the WAN
pool, and the answer to a query forwarded to another datacenter.

Place in the pipeline: acquisition's vocabulary, shared with evaluation. Apart from
`probes/consul.py` so that a check module can name these types without importing python-consul2
and `requests` (~70 ms): `xivo-doctor` loads every check module to validate `--check` before
anything is probed, and that load is on the path of every run's start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class WanView:
    """One XiVO's own view of the WAN pool, or why it could not be read (`problem`)."""

    name: str = ""  # this server's WAN member name, `<node>.<dc>`
    datacenter: str = ""
    members: tuple[dict[str, Any], ...] = ()
    problem: str = ""


@dataclass(frozen=True)
class DcQuery:
    """How a XiVO's Consul answered a query forwarded to datacenter `dc`."""

    dc: str
    answered: bool
    detail: str  # "3 passing xivo-ctid" or "HTTP 500 No path to datacenter"
    entries: tuple[dict[str, Any], ...] = ()
