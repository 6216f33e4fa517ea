"""A XiVO's version as the XiVO itself says it, never as the topology declares it.

Place in the pipeline: acquisition. Two sources, the same file read two ways: on the XiVO, its
/usr/share/xivo/XIVO-VERSION; from afar, the web interface's login page, which prints that
file's content to anyone (docs/xivo-behaviour.md "xivo-version"). xivo-confd's /1.1/infos has no
version before Wazo 17.01, and xivo-ctid's `cti_protocol_version` only brackets one. What could
not be read is said, with why, so that a check judging the version can skip instead of passing on
a declaration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from xivo_doctor.foundation.errors import ProbeError
from xivo_doctor.probes.onbox import VERSION_FILE
from xivo_doctor.topology.model import Xivo


@dataclass(frozen=True)
class ObservedVersion:
    version: str | None  # None: not read (then `source` says why)
    source: str


class VersionProbe:
    def __init__(self, probes: Any) -> None:  # the run's probes/session.py `Probes`
        self.probes = probes

    def of(self, xivo: Xivo) -> ObservedVersion:
        """What the XiVO says its version is (`version` None when it could not be read)."""
        return self.probes.cached(("observed-version", xivo.name), lambda: self._read(xivo))

    def at_hand(self, xivo: Xivo) -> ObservedVersion:
        """The version to judge `xivo`'s daemons by: the observed one, else the topology's declaration
        (said as such: a check must not pass on it what only the observed version can prove)."""
        seen = self.of(xivo)
        if seen.version is not None or not xivo.version:
            return seen
        return ObservedVersion(xivo.version, "declared in the topology, not read from the XiVO")

    def _read(self, xivo: Xivo) -> ObservedVersion:
        reasons = []
        onbox = self.probes.onbox
        if onbox.has_root(xivo):
            found = onbox.version_file(xivo)  # a file there that cannot be read is an error, not a guess
            if found is not None:
                return ObservedVersion(found, f"{VERSION_FILE} on {xivo.name}")
            reasons.append(f"{VERSION_FILE} is absent on {xivo.name}")
        try:
            shown = self.probes.web.login_page_version(xivo)
        except ProbeError as exc:
            reasons.append(str(exc))
        else:
            if shown is not None:
                return ObservedVersion(shown, f"the web interface's login page of {xivo.name}")
            reasons.append(f"the web interface's login page of {xivo.name} shows the version as Unknown")
        return ObservedVersion(None, "; ".join(reasons))
