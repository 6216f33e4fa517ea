"""XiVO version facts the checks share (XIVO-FACTS §0).

Place in the pipeline: a helper for evaluation; no I/O.
"""

from __future__ import annotations

# Contact and Presence Sharing exists from XiVO 15.19 (manual page added in 15.19).
FIRST_INTERCONNECTION = (15, 19)
# The json.php phonebook web service and the `phonebook` directory type exist up to 16.13;
# 16.14 moved the phonebook into xivo-dird (XIVO-FACTS §0, upgrade notes 16.14).
LAST_JSONPHP_PHONEBOOK = (16, 13)


def parse(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def phonebook_sharing_applies(version: str | None) -> bool:
    """True when the version is unknown (assume it applies) or at most 16.13."""
    return version is None or parse(version)[:2] <= LAST_JSONPHP_PHONEBOOK
