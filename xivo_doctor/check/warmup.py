"""What a check's warm-up is given: the run's probes, what is selected, and two ways to start reads.

Place in the pipeline: the checks' API. A check that makes slow reads (an Erlang VM per
`rabbitmqctl`, a TLS handshake per request) declares `@check(warm_up=...)`: a function of a
`WarmUp` that starts, through the very probe calls the check makes, what the check will ask, so
the answers (or the reads under way) are in the run's cache when the check asks. The engine
calls it as the run starts, before pytest loads (`engine/prefetch.py` schedules, nothing more).

A warm-up only reads what the check would read, under the same conditions: it must never send a
request the check would not send (a run writes nothing more than the check would). What it
reads is cached with its failure (ProbeError) or dropped (anything else: the check asks again).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xivo_doctor.probes import Probes
    from xivo_doctor.topology.model import Pair, Topology, Xivo

Task = Callable[[], object]


@dataclass(frozen=True)
class WarmUp:
    probes: Probes
    xivos: tuple[Xivo, ...]  # the XiVOs this run is about (--node)
    pairs: tuple[Pair, ...]  # the expected pairs that contain one of them
    # Run tasks one after another in a thread of their own: the reads of one XiVO and source.
    chain: Callable[[Sequence[Task]], None]
    # Run one small task in the run's bounded pool: a request per pair or per peer.
    submit: Callable[[Task], None]

    @property
    def topology(self) -> Topology:
        return self.probes.topology
