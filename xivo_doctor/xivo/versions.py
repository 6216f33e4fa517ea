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


# Up to 16.03 the version file is written from the changelog with `grep -oE "[0-9]{2}\.[0-9]+"`, so a
# point release shows as its minor one: 16.03.1 writes 16.03 (wazo-platform/wazo-platform:debian/rules
# @xivo-15.19..@xivo-16.03; from 16.04 xivo-base installs VERSION in full, 12210fb). [INFERRED]
LAST_TRUNCATED_VERSION_FILE = (16, 3)


def same_version(a: str, b: str) -> bool:
    """Whether two versions name the same release as the version file can show it: 16.03.1 and 16.03
    are the same (the file cannot tell them apart), 16.08.2 and 16.08 are not."""
    pa, pb = parse(a), parse(b)
    if pa[:2] == pb[:2] and pa[:2] <= LAST_TRUNCATED_VERSION_FILE:
        return True
    return pa == pb
