"""xivo-version: every XiVO runs the same version, 15.19 or later.

The manual's prerequisites (contact_and_presence_sharing.rst, "Prerequisite"): all interconnected
XiVOs on the same version, and interconnection exists from XiVO 15.19 (XIVO-FACTS §0). The
observed version is what the XiVO says: its /usr/share/xivo/XIVO-VERSION on-box, else the web
interface's login page, which prints that file to anyone (probes/version.py,
docs/xivo-behaviour.md "xivo-version"). A version the topology merely declares proves nothing
about the XiVO: without an observed one the item is `skip`, never `pass`. The expected version is
the topology's declared one or, with none declared, the one most XiVOs are seen to run (ties: the
first declared XiVO's), so only the odd one out fails.
"""

from __future__ import annotations

from collections import Counter

from xivo_doctor.check import FixContext, cannot_check_from_here, check
from xivo_doctor.foundation.results import FixOut
from xivo_doctor.xivo.versions import FIRST_INTERCONNECTION, parse, same_version

MINIMUM = ".".join(map(str, FIRST_INTERCONNECTION))


def observed_version(probes, xivo) -> tuple[str | None, str]:
    """(version, where it was read), or (None, why it could not be)."""
    seen = probes.version.of(xivo)
    return seen.version, seen.source


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
    if not (expected and parse(expected) >= FIRST_INTERCONNECTION):
        return FixOut(
            summary=f"upgrade {xivo.name} from {observed} to {MINIMUM} or later, after reading the upgrade notes "
            "in between: xivo-upgrade brings it to the latest release",
            commands=(f"xivo-upgrade  # on {xivo.name}",),
        )
    # xivo-upgrade alone installs the latest release; a given one comes from its archive distribution
    # (the manual's "Upgrade involving archive version of XiVO", source/upgrade/archives.rst@xivo-16.15,
    # "Current version after 14.18"); downgrades are not supported there.
    return FixOut(
        summary=f"upgrade {xivo.name} from {observed} to {expected}, the version the other XiVOs must share "
        f"({ev.get('expected_from')}): read the upgrade notes between the two versions, switch {xivo.name} to "
        f"the xivo-{expected} archive and run xivo-upgrade (the manual's archive upgrade); if the topology's "
        "`version` is outdated instead, correct it",
        commands=(f"xivo-dist xivo-{expected}  # on {xivo.name}", "apt-get update",
                  f"apt-get install xivo-upgrade/xivo-{expected}", "xivo-upgrade"),
    )


@check(
    id="xivo-version",
    title="Every XiVO runs the same version, 15.19 or later",
    why="the interconnection only exists from XiVO 15.19 and the manual requires one version everywhere; "
    "mixed versions exchange messages and directory data the other side may not understand",
    fix=version_fix,
    doc="contact_and_presence_sharing.rst#prerequisite",
    facts=lambda o: _versions_seen(o.xivo, o.evidence),
    # every XiVO's version is compared: read them all at once (a TLS handshake each from afar)
    warm_up=lambda w: [w.chain([lambda x=x: w.probes.version.of(x)]) for x in w.topology.xivos],
)
def test_xivo_version(xivo, topology, probes, evidence):
    version, where = observed_version(probes, xivo)
    if version is None:
        cannot_check_from_here(
            f"the version of {xivo.name} could not be read ({where}); a declared version proves nothing: give "
            f"on_box for {xivo.name}, run xivo-doctor on {xivo.name}, or let it reach the web interface's login "
            f"page (https://{xivo.address}:{xivo.webservices.https_port}/)"
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
    if not same_version(version, expected):
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
