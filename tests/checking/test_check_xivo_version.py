"""xivo-version evaluated on hand-made versions: declared, read on-box, the odd one out."""

from __future__ import annotations

from pathlib import Path

import pytest

from xivo_doctor.check import Evidence, FixContext, spec_of
from xivo_doctor.checks import xivo_version
from xivo_doctor.foundation.errors import CannotCheckFromHere, ProbeError
from xivo_doctor.probes.version import VersionProbe
from xivo_doctor.topology.model import OnBoxAccess, Topology, Xivo

check = xivo_version.test_xivo_version
SPEC = spec_of(check)


class OnBox:
    def __init__(self, files: dict[str, str | None]) -> None:
        self.files = files  # xivo name -> content of its version file (None: absent)

    def has_root(self, xivo) -> bool:
        return xivo.on_box is not None

    def version_file(self, xivo):
        value = self.files[xivo.name]
        if value == "unreadable":
            raise ProbeError(f"/usr/share/xivo/XIVO-VERSION of {xivo.name}", "cannot read: Permission denied")
        return value


class Web:
    def __init__(self, pages: dict[str, str]) -> None:
        self.pages = pages  # xivo name -> the version its web interface's login page shows

    def login_page_version(self, xivo):
        if xivo.name not in self.pages:
            raise ProbeError(f"the web interface's login page of {xivo.name}", "cannot connect: connection refused")
        return self.pages[xivo.name]


class Probes:
    def __init__(self, files, pages=None):
        self.onbox = OnBox(files)
        self.web = Web(pages or {})
        self.version = VersionProbe(self)

    def cached(self, key, compute):
        return compute()


def xivo(n: int, version: str | None = None, on_box: bool = True) -> Xivo:
    return Xivo(name=f"xivo-{n}", address=f"127.10.3.{n}", version=version,
                on_box=OnBoxAccess(root=Path(f"/lab/{n}")) if on_box else None)


def topo(*xivos: Xivo) -> Topology:
    return Topology(name="t", source=Path("t.yml"), xivos=tuple(xivos), pairs=())


def run(x: Xivo, t: Topology, files, pages=None) -> Evidence:
    evidence = Evidence()
    check(xivo=x, topology=t, probes=Probes(files, pages), evidence=evidence)
    return evidence


def fails(x: Xivo, t: Topology, files) -> tuple[str, Evidence]:
    evidence = Evidence()
    with pytest.raises(AssertionError) as caught:
        check(xivo=x, topology=t, probes=Probes(files), evidence=evidence)
    return str(caught.value), evidence


def fix(x: Xivo, t: Topology, evidence: Evidence):
    return SPEC.fill_fix(FixContext(t, x, None, dict(evidence)))


def test_the_declared_version_read_on_the_box_passes():
    x1, x2 = xivo(1, "16.13"), xivo(2, "16.13")
    evidence = run(x1, topo(x1, x2), {"xivo-1": "16.13", "xivo-2": "16.13"})
    assert evidence.summary == "16.13 (/usr/share/xivo/XIVO-VERSION on xivo-1)"
    assert evidence["expected_from"] == "declared in the topology"


def test_version_mismatch_fails_only_the_odd_one_with_the_upgrade():
    x1, x2 = xivo(1, "16.13"), xivo(2, "16.13")
    t, files = topo(x1, x2), {"xivo-1": "16.13", "xivo-2": "16.12"}
    run(x1, t, files)
    message, evidence = fails(x2, t, files)
    assert message == ("xivo-2 runs 16.12 (/usr/share/xivo/XIVO-VERSION on xivo-2) but 16.13 is expected "
                       "(declared in the topology)")
    out = fix(x2, t, evidence)
    assert out.summary.startswith("upgrade xivo-2 from 16.12 to 16.13, the version the other XiVOs must share")
    # xivo-upgrade alone goes to the latest release: the target release comes from its archive
    # (source/upgrade/archives.rst@xivo-16.15, "Current version after 14.18")
    assert out.commands == ("xivo-dist xivo-16.13  # on xivo-2", "apt-get update",
                            "apt-get install xivo-upgrade/xivo-16.13", "xivo-upgrade")
    assert out.doc == "contact_and_presence_sharing.rst#prerequisite"


@pytest.mark.parametrize(("declared", "seen", "same"), [
    ("16.03.1", "16.03", True),   # up to 16.03 the version file drops the point release
    ("16.01.1", "16.01", True),
    ("16.08.2", "16.08", False),  # from 16.04 it is written in full
    ("16.08.2", "16.08.2", True),
])
def test_point_releases_compare_as_the_version_file_shows_them(declared, seen, same):
    x1, x2 = xivo(1, declared), xivo(2, declared)
    t, files = topo(x1, x2), {"xivo-1": seen, "xivo-2": seen}
    if same:
        run(x2, t, files)
    else:
        message, _ = fails(x2, t, files)
        assert message.startswith(f"xivo-2 runs {seen} ")


def test_without_declared_versions_the_majority_is_expected():
    x1, x2, x3 = xivo(1), xivo(2), xivo(3)
    t, files = topo(x1, x2, x3), {"xivo-1": "16.12", "xivo-2": "16.13", "xivo-3": "16.13"}
    message, evidence = fails(x1, t, files)
    assert message.endswith("but 16.13 is expected (the version most XiVOs run)")
    assert evidence["versions"] == {"xivo-1": "16.12", "xivo-2": "16.13", "xivo-3": "16.13"}
    run(x2, t, files)
    run(x3, t, files)


def test_a_tie_goes_to_the_first_declared_xivo():
    x1, x2 = xivo(1), xivo(2)
    t, files = topo(x1, x2), {"xivo-1": "16.13", "xivo-2": "16.12"}
    run(x1, t, files)
    message, _ = fails(x2, t, files)
    assert message.endswith("but 16.13 is expected (the version most XiVOs run)")


def test_different_declared_versions_expect_the_most_declared_one():
    x1, x2 = xivo(1, "16.13"), xivo(2, "16.12")
    t, files = topo(x1, x2), {"xivo-1": "16.13", "xivo-2": "16.12"}
    run(x1, t, files)
    message, _ = fails(x2, t, files)
    assert message.endswith("but 16.13 is expected (declared in the topology)")


def test_a_newer_odd_one_says_to_upgrade_the_others():
    x1, x2, x3 = xivo(1), xivo(2), xivo(3)
    t, files = topo(x1, x2, x3), {"xivo-1": "16.13", "xivo-2": "16.15", "xivo-3": "16.13"}
    _, evidence = fails(x2, t, files)
    out = fix(x2, t, evidence)
    assert "cannot be downgraded: upgrade xivo-1, xivo-3 to 16.15" in out.summary
    assert out.commands == ("xivo-upgrade  # on xivo-1", "xivo-upgrade  # on xivo-3")


def test_older_than_15_19_fails_even_when_everyone_agrees():
    x1, x2 = xivo(1, "15.18"), xivo(2, "15.18")
    message, evidence = fails(x1, topo(x1, x2), {"xivo-1": "15.18", "xivo-2": "15.18"})
    assert message == "15.18 is older than 15.19, the first version with contact and presence sharing"
    assert "to 15.19 or later" in fix(x1, topo(x1, x2), evidence).summary


def test_a_declared_version_is_never_a_pass_the_login_page_is_read_from_afar():
    """issue 13: without on-box access the item passed on the version declared in the topology."""
    x1, x2 = xivo(1, "16.13", on_box=False), xivo(2, "16.13", on_box=False)
    with pytest.raises(CannotCheckFromHere, match="a declared version proves nothing"):
        run(x1, topo(x1, x2), {})
    evidence = run(x1, topo(x1, x2), {}, pages={"xivo-1": "16.13"})
    assert evidence["source"] == "the web interface's login page of xivo-1"
    # on-box access without the file: the login page, or nothing
    x3 = xivo(3, "16.13")
    assert run(x3, topo(x1, x3), {"xivo-3": None}, pages={"xivo-3": "16.13"})["version"] == "16.13"
    with pytest.raises(CannotCheckFromHere, match="/usr/share/xivo/XIVO-VERSION is absent on xivo-3"):
        run(x3, topo(x1, x3), {"xivo-3": None})


def test_neither_readable_nor_declared_cannot_be_checked_from_here():
    x1, x2 = xivo(1, on_box=False), xivo(2)
    with pytest.raises(CannotCheckFromHere, match="give on_box for xivo-1"):
        run(x1, topo(x1, x2), {"xivo-2": "16.13"})


def test_an_unreadable_version_file_is_an_error_not_a_guess():
    x1, x2 = xivo(1, "16.13"), xivo(2, "16.13")
    with pytest.raises(ProbeError):
        run(x2, topo(x1, x2), {"xivo-1": "16.13", "xivo-2": "unreadable"})
