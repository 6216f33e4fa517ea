"""uuid-unique evaluated on hand-made UUID readings: agreement per XiVO, distinct across XiVOs."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_versions import FakeVersions

from xivo_doctor.check import Evidence, FixContext, spec_of
from xivo_doctor.checks import uuid_unique
from xivo_doctor.foundation.errors import ProbeError
from xivo_doctor.probes.onbox import UuidReading
from xivo_doctor.topology.model import Topology, Xivo

check = uuid_unique.test_uuid_unique
SPEC = spec_of(check)
A = "aaaaaaaa-0000-4000-8000-000000000001"
B = "bbbbbbbb-0000-4000-8000-000000000002"
C = "cccccccc-0000-4000-8000-000000000003"
X1, X2, X3 = (Xivo(name=f"xivo-{n}", address=f"127.10.3.{n}") for n in (1, 2, 3))
T = Topology(name="t", source=Path("t.yml"), xivos=(X1, X2, X3), pairs=())
FILES = ("/etc/profile.d/xivo_uuid.sh", "/etc/default/xivo", "/etc/systemd/system.conf")


def readings(name: str, db=None, files=(None, None, None), ctid=None, consul=None, down=()) -> list[UuidReading]:
    def one(source, kind, value):
        return UuidReading(source, kind, unavailable="cannot connect: connection refused") if kind in down \
            else UuidReading(source, kind, value)
    return [one(f"infos.uuid (asterisk database of {name})", "database", db),
            *(one(path, "file", value) for path, value in zip(FILES, files, strict=True)),
            one("xivo-ctid /0.1/infos (http://...:9495)", "ctid", ctid),
            one(f"tag of the xivo-ctid service in {name}'s Consul", "consul", consul)]


def same(name: str, uuid: str) -> list[UuidReading]:
    return readings(name, uuid, (uuid, uuid, uuid), uuid, uuid)


class OnBox:
    def __init__(self, by_name):
        self.by_name = by_name

    def uuid_readings(self, xivo):
        found = self.by_name[xivo.name]
        if isinstance(found, Exception):
            raise found
        return found


class Probes:
    def __init__(self, versions=None, **by_name):
        self.onbox = OnBox({k.replace("_", "-"): v for k, v in by_name.items()})
        self.version = FakeVersions(versions)


def run(x, probes) -> Evidence:
    evidence = Evidence()
    check(xivo=x, topology=T, probes=probes, evidence=evidence)
    return evidence


def fails(x, probes) -> tuple[str, Evidence]:
    evidence = Evidence()
    with pytest.raises(AssertionError) as caught:
        check(xivo=x, topology=T, probes=probes, evidence=evidence)
    return str(caught.value), evidence


def fix(x, evidence):
    return SPEC.fill_fix(FixContext(T, x, None, dict(evidence)))


def test_distinct_and_agreeing_uuids_pass():
    probes = Probes(xivo_1=same("xivo-1", A), xivo_2=same("xivo-2", B), xivo_3=same("xivo-3", C))
    assert run(X1, probes).summary == f"{A} in 6 sources"
    evidence = run(X3, probes)
    assert evidence.summary == f"{C} in 6 sources, distinct from xivo-1, xivo-2"
    assert evidence["source"] == "asterisk database, XIVO_UUID files, xivo-ctid /0.1/infos, Consul agent services"
    assert evidence["uuids"]["infos.uuid (asterisk database of xivo-3)"] == C
    assert SPEC.involves == "peers" and SPEC.depends_on == ()


def test_a_cloned_xivo_fails_alone_the_first_keeps_its_uuid():
    probes = Probes(xivo_1=same("xivo-1", A), xivo_2=same("xivo-2", A), xivo_3=same("xivo-3", C))
    run(X1, probes)  # the first declared passes
    message, evidence = fails(X2, probes)
    assert message == f"xivo-2 has the same UUID as xivo-1 ({A}): a cloned VM or copied database"
    assert evidence["same_uuid_as"] == {"xivo-1": A}
    out = fix(X2, evidence)
    assert out.summary.startswith("xivo-2 has the UUID of xivo-1 (the manual's warning on cloned machines)")
    assert out.commands == (
        'sudo -u postgres psql asterisk -c "UPDATE infos SET uuid = uuid_generate_v4()"',
        'NEW=$(sudo -u postgres psql -tA asterisk -c "SELECT uuid FROM infos")',
        'sed -i "s/XIVO_UUID=[0-9a-fA-F-]*/XIVO_UUID=$NEW/" /etc/profile.d/xivo_uuid.sh /etc/default/xivo '
        "/etc/systemd/system.conf",
        "systemctl set-environment XIVO_UUID=$NEW",
        # the manual's Configure Consul (no version read here: the newest release's steps)
        "xivo-service stop",
        "service consul stop  # xivo-service stop leaves consul running",
        "rm -rf /var/lib/consul/raft/ /var/lib/consul/serf/ /var/lib/consul/services/ /var/lib/consul/tmp/ "
        "/var/lib/consul/checks/",
        "consul configtest --config-dir /etc/consul/xivo/",
        "service consul start",
        "xivo-service start",
        "consul join -wan 127.10.3.1",
        # each peer's xivo-dird caches the UUID it was served until it restarts (issue 13)
        "service xivo-dird restart  # on xivo-1",
        "service xivo-dird restart  # on xivo-3",
    )
    assert out.doc == "contact_and_presence_sharing.rst#prerequisite"


def test_a_third_sharing_with_both_names_both():
    probes = Probes(xivo_1=same("xivo-1", A), xivo_2=same("xivo-2", A), xivo_3=same("xivo-3", A))
    message, _ = fails(X3, probes)
    assert message == f"xivo-3 has the same UUID as xivo-1 ({A}), xivo-2 ({A}): a cloned VM or copied database"


def test_sources_that_disagree_are_named_with_their_values():
    probes = Probes(xivo_1=same("xivo-1", A), xivo_2=readings("xivo-2", B, (C, None, B), C, B))
    message, evidence = fails(X2, probes)
    assert message == (
        f"the sources of xivo-2 disagree on its UUID: {B} in infos.uuid (asterisk database of xivo-2), "
        f"/etc/systemd/system.conf, tag of the xivo-ctid service in xivo-2's Consul; {C} in "
        "/etc/profile.d/xivo_uuid.sh, xivo-ctid /0.1/infos (http://...:9495); no UUID in /etc/default/xivo")
    assert evidence["uuid"] == B  # infos.uuid is the reference
    out = fix(X2, evidence)
    assert "UPDATE infos" not in " ".join(out.commands)
    assert out.commands == (
        'NEW=$(sudo -u postgres psql -tA asterisk -c "SELECT uuid FROM infos")',
        'sed -i "s/XIVO_UUID=[0-9a-fA-F-]*/XIVO_UUID=$NEW/" /etc/profile.d/xivo_uuid.sh /etc/systemd/system.conf',
        'echo "export XIVO_UUID=$NEW" >> /etc/default/xivo',  # xivo-configure-uuid's own line (issue 13)
        "systemctl set-environment XIVO_UUID=$NEW",
        "xivo-service restart all",
    )


def test_a_stale_consul_tag_adds_the_consul_wipe():
    probes = Probes(xivo_1=same("xivo-1", A), xivo_2=readings("xivo-2", B, (B, B, B), B, C))
    message, evidence = fails(X2, probes)
    assert message.endswith(f"{C} in tag of the xivo-ctid service in xivo-2's Consul")
    commands = fix(X2, evidence).commands
    assert "service consul stop  # xivo-service stop leaves consul running" in commands
    assert commands[-1] == "consul join -wan 127.10.3.1"


def test_unreachable_sources_are_shown_not_judged():
    probes = Probes(xivo_1=same("xivo-1", A), xivo_2=readings("xivo-2", B, (B, B, B), None, B, down=("ctid",)))
    evidence = run(X2, probes)
    assert evidence.summary == f"{B} in 5 sources, distinct from xivo-1"
    assert evidence["uuids"]["xivo-ctid /0.1/infos (http://...:9495)"] == "not read: cannot connect: connection refused"


def test_remote_sources_only_are_compared():
    remote = readings("xivo-2", ctid=B, consul=C, down=("database", "file"))
    message, _ = fails(X2, Probes(xivo_1=same("xivo-1", A), xivo_2=remote))
    assert message == (f"the sources of xivo-2 disagree on its UUID: {B} in xivo-ctid /0.1/infos "
                       f"(http://...:9495); {C} in tag of the xivo-ctid service in xivo-2's Consul")


def test_no_uuid_anywhere_fails():
    message, _ = fails(X1, Probes(xivo_1=readings("xivo-1", down=("ctid", "consul"))))
    assert message.startswith("no source of xivo-1 holds a UUID: infos.uuid (asterisk database of xivo-1)")


def test_nothing_readable_or_an_unreadable_earlier_xivo_is_an_error():
    error = ProbeError("UUID of xivo-1", "no source could be read")
    with pytest.raises(ProbeError):
        run(X1, Probes(xivo_1=error))
    with pytest.raises(ProbeError):  # xivo-2 cannot be told distinct from xivo-1: no false pass
        run(X2, Probes(xivo_1=error, xivo_2=same("xivo-2", B)))


def test_before_16_02_the_xivo_uuid_files_are_not_expected():
    """xivo-configure-uuid appears in 16.02: a healthy 15.19 XiVO has no XIVO_UUID file, and its
    xivo-ctid reads infos.uuid. Before issue 13 the absent files failed the item."""
    no_files = readings("xivo-2", B, (None, None, None), B, B)
    probes = Probes(versions={"xivo-1": "15.19", "xivo-2": "15.19"}, xivo_1=same("xivo-1", A), xivo_2=no_files)
    evidence = run(X2, probes)
    assert evidence["XIVO_UUID files"].startswith("not compared: xivo-2 runs 15.19 (/usr/share/xivo/XIVO-VERSION on "
                                                  "xivo-2); xivo-configure-uuid writes them from 16.02")
    assert evidence.summary == f"{B} in 3 sources, distinct from xivo-1"
    # the same XiVO on 16.02: the files are where its daemons get the UUID
    probes = Probes(versions={"xivo-1": "16.02", "xivo-2": "16.02"}, xivo_1=same("xivo-1", A), xivo_2=no_files)
    message, _ = fails(X2, probes)
    assert message.startswith("the sources of xivo-2 disagree on its UUID")


def test_before_16_02_the_fix_writes_no_file():
    probes = Probes(versions={"xivo-1": "16.01", "xivo-2": "16.01"}, xivo_1=same("xivo-1", A),
                    xivo_2=readings("xivo-2", B, (None, None, None), C, B))
    _, evidence = fails(X2, probes)
    out = fix(X2, evidence)
    assert out.commands == ('NEW=$(sudo -u postgres psql -tA asterisk -c "SELECT uuid FROM infos")',
                            "xivo-service restart all")
    assert "xivo-ctid reads it there before 16.02" in out.summary


def test_a_cloned_15_19_is_fixed_with_its_own_manual():
    """15.19: no XIVO_UUID file, no systemd (wheezy), the KV store saved around the consul wipe
    (contact_and_presence_sharing.rst@xivo-15.19, Configure Consul)."""
    probes = Probes(versions={"xivo-1": "15.19", "xivo-2": "15.19"}, xivo_1=same("xivo-1", A),
                    xivo_2=readings("xivo-2", A, (None, None, None), A, A))
    _, evidence = fails(X2, probes)
    commands = [c.split("  #")[0] for c in fix(X2, evidence).commands]
    assert not [c for c in commands if "XIVO_UUID" in c or "systemctl" in c]
    assert commands[2:] == [
        "xivo-backup-consul-kv -o /tmp/backup-consul-kv.json", "xivo-service stop", "service consul stop",
        "rm -rf /var/lib/consul/raft/ /var/lib/consul/serf/ /var/lib/consul/services/ /var/lib/consul/tmp/",
        "consul configtest --config-dir /etc/consul/xivo/", "service consul start",
        "xivo-restore-consul-kv -i /tmp/backup-consul-kv.json", "xivo-service start", "consul join -wan 127.10.3.1",
        "service xivo-dird restart", "service xivo-dird restart"]
