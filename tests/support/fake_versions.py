"""A stand-in for `probes.version` in the checks' unit tests: the versions the XiVOs say they run."""

from __future__ import annotations

from xivo_doctor.probes.version import ObservedVersion


class FakeVersions:
    def __init__(self, versions: dict[str, str] | None = None) -> None:
        self.versions = versions or {}  # xivo name -> the version it says it runs

    def of(self, xivo) -> ObservedVersion:
        version = self.versions.get(xivo.name)
        return ObservedVersion(version, f"/usr/share/xivo/XIVO-VERSION on {xivo.name}" if version else "not read")

    def at_hand(self, xivo) -> ObservedVersion:
        seen = self.of(xivo)
        if seen.version is None and xivo.version:
            return ObservedVersion(xivo.version, "declared in the topology, not read from the XiVO")
        return seen
