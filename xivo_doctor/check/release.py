"""The XiVO release a check judges by, recorded for its fix.

Place in the pipeline: the checks' API. The daemons behave differently per release
(docs/xivo-behaviour.md) and the manual's commands change with it (xivo/manual.py): a check asks
the version at hand (what the XiVO says, else what the topology declares, said as such) and keeps
it in its evidence, where the fix (`FixContext.version`) and the reader find it.
"""

from __future__ import annotations

from typing import Any

from xivo_doctor.foundation.errors import ProbeError
from xivo_doctor.topology.model import Xivo


def version_at_hand(probes: Any, xivo: Xivo, evidence: Any) -> str | None:
    """`xivo`'s version to judge by, recorded as evidence["version"] = "<version> (<where from>)".
    A version that cannot be read is not this check's failure: "unknown (<why>)" and None."""
    try:
        at_hand = probes.version.at_hand(xivo)
    except ProbeError as exc:
        evidence["version"] = f"unknown ({exc})"
        return None
    evidence["version"] = f"{at_hand.version or 'unknown'} ({at_hand.source})"
    return at_hand.version
