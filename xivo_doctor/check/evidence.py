"""What a check records while it evaluates, and how it ends an item as `skip`.

Place in the pipeline: the checks' API. A check function evaluates: it asks the `probes` fixture
for data (acquisition), records what it saw in `evidence`, and asserts. It has no try/except and
no plumbing; a probe that cannot reach its source raises `ProbeError` and the item becomes
`error`; `not_applicable` and `cannot_check_from_here` end it as `skip` with the reason.
"""

from __future__ import annotations

from typing import Any

from xivo_doctor.foundation.errors import CannotCheckFromHere, NotApplicable


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
