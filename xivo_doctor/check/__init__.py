"""The checks' API: everything a module under `checks/` imports to declare and write a check.

Place in the pipeline: below the checks, above the probes. A check module decorates one
`test_*` function with `@check(...)` (declare.py): its id, title, why, fix (fix.py), manual
section, dependencies, and, beside its code, its warm-up (warmup.py), its metrics, the kind of link
it judges and its view of each peer, the facts it observes about a XiVO, the ports it tried from
where (foundation/measures.py).
While it runs it fills `Evidence` and may end as `skip` (evidence.py). The engine reads the
declarations; nothing in the engine or the renderers names a check.
"""

from xivo_doctor.check.addresses import declared_addresses, is_address_of
from xivo_doctor.check.declare import CheckSpec, Outcome, check, peers_named_by_problems, spec_of
from xivo_doctor.check.evidence import Evidence, cannot_check_from_here, not_applicable
from xivo_doctor.check.fix import Fix, FixContext, FixSource, FixSteps
from xivo_doctor.check.release import version_at_hand
from xivo_doctor.check.warmup import WarmUp
from xivo_doctor.foundation.measures import LinkKind, LinkView, Metric, Reach
from xivo_doctor.foundation.results import FixOut

__all__ = [
           "CheckSpec",
           "Evidence",
           "Fix",
           "FixContext",
           "FixOut",
           "FixSource",
           "FixSteps",
           "LinkKind",
           "LinkView",
           "Metric",
           "Outcome",
           "Reach",
           "WarmUp",
           "cannot_check_from_here",
           "check",
           "declared_addresses",
           "is_address_of",
           "not_applicable",
           "peers_named_by_problems",
           "spec_of",
           "version_at_hand",
]
