"""xivo-version: every XiVO runs the same version, 15.19 or later.

The manual's prerequisites (contact_and_presence_sharing.rst, "Prerequisite"): all interconnected
XiVOs on the same version, and interconnection exists from XiVO 15.19 (XIVO-FACTS §0). The
observed version is the XiVO's /usr/share/xivo/XIVO-VERSION when the doctor has on-box access,
else the version the topology declares. The expected one is the topology's declared version or,
with none declared, the version most XiVOs run (ties: the first declared XiVO's), so only the
odd one out fails.
"""

from __future__ import annotations

from collections import Counter

from xivo_doctor.check import FixContext, cannot_check_from_here, check
from xivo_doctor.foundation.results import FixOut
from xivo_doctor.probes.onbox import VERSION_FILE
from xivo_doctor.xivo.versions import FIRST_INTERCONNECTION, parse

MINIMUM = ".".join(map(str, FIRST_INTERCONNECTION))


def observed_version(probes, xivo) -> tuple[str | None, str]:
    """(version, where it comes from): the on-box version file first, then the topology."""
    if probes.onbox.has_root(xivo):
        found = probes.onbox.version_file(xivo)
        if found is not None:
            return found, f"{VERSION_FILE} on {xivo.name}"
    if xivo.version:
        return xivo.version, "declared in the topology, not read from the XiVO"
    return None, "unknown"


def most_common(versions: list[str]) -> str:
    """The version most entries have; on a tie, the one that comes first (first declared XiVO)."""
    counts = Counter(parse(v) for v in versions)
    top = max(counts.values())
    return next(v for v in versions if counts[parse(v)] == top)


def version_fix(ctx: FixContext) -> FixOut:
    xivo, ev = ctx.xivo, ctx.evidence
    assert xivo is not None
    observed, expected = ev.get("version"), ev.get("expected")
    others = [x.name for x in ctx.topology.xivos if x.name != xivo.name]
    if observed and expected and parse(observed) > parse(expected):
        return FixOut(
            summary=f"{xivo.name} runs {observed}, newer than {expected} ({ev.get('expected_from')}); a XiVO "
            f"cannot be downgraded: upgrade {', '.join(others)} to {observed} with xivo-upgrade (after reading "
            "the upgrade notes in between), then set `version` in the topology file to that version",
            commands=tuple(f"xivo-upgrade  # on {name}" for name in others),
        )
    target = expected if expected and parse(expected) >= FIRST_INTERCONNECTION else f"{MINIMUM} or later"
    return FixOut(
        summary=f"upgrade {xivo.name} from {observed} to {target}, the version the other XiVOs must share: "
        "read the upgrade notes between the two versions, then run xivo-upgrade on it. xivo-upgrade installs "
        "the latest release: if that is not the others' version, bring every XiVO to the same release "
        "(the manual's upgrade page covers archive versions); if the topology's `version` is outdated "
        "instead, correct it",
        commands=(f"xivo-upgrade  # on {xivo.name}",),
    )


@check(
    id="xivo-version",
    title="Every XiVO runs the same version, 15.19 or later",
    why="the interconnection only exists from XiVO 15.19 and the manual requires one version everywhere; "
    "mixed versions exchange messages and directory data the other side may not understand",
    fix=version_fix,
    doc="contact_and_presence_sharing.rst#prerequisite",
    facts=lambda o: _versions_seen(o.xivo, o.evidence),
)
def test_xivo_version(xivo, topology, probes, evidence):
    version, where = observed_version(probes, xivo)
    if version is None:
        cannot_check_from_here(
            f"the version of {xivo.name} is neither readable ({VERSION_FILE}) nor declared: give on_box for "
            f"{xivo.name}, run xivo-doctor on {xivo.name}, or declare its `version` in the topology"
        )
    declared = [x.version for x in topology.xivos if x.version]
    if declared:
        expected, expected_from = most_common(declared), "declared in the topology"
    else:
        seen = {x.name: observed_version(probes, x)[0] for x in topology.xivos}
        evidence["versions"] = {name: v or "unknown" for name, v in seen.items()}
        expected = most_common([v for v in seen.values() if v])
        expected_from = "the version most XiVOs run"
    evidence["source"] = where
    evidence["version"] = version
    evidence["expected"] = expected
    evidence["expected_from"] = expected_from
    evidence.summary = f"{version} ({where})"
    problems = []
    if parse(version) != parse(expected):
        problems.append(f"{xivo.name} runs {version} ({where}) but {expected} is expected ({expected_from})")
    if parse(version)[:2] < FIRST_INTERCONNECTION:
        problems.append(f"{version} is older than {MINIMUM}, the first version with contact and presence sharing")
    assert not problems, "; ".join(problems)


def _versions_seen(xivo: str | None, evidence) -> dict[str, dict[str, str]]:
    """The version this item read on its XiVO; the others' too when it compared with what they run."""
    seen = {name: {"version": str(v)} for name, v in (evidence.get("versions") or {}).items() if v != "unknown"}
    if evidence.get("version") and xivo:
        seen[xivo] = {"version": str(evidence["version"])}
    return seen
