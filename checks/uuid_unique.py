"""uuid-unique: each XiVO has one UUID, the same in all its sources, and no two XiVOs share one.

Per XiVO, these must agree (XIVO-FACTS §2, §3): `infos.uuid` in the `asterisk` database (what
xivo-confd serves to the peers' directories), XIVO_UUID in the three files xivo-configure-uuid
writes (what the daemons run with), xivo-ctid's `/0.1/infos` (its running value) and the UUID tag
of the xivo-ctid service in the XiVO's Consul (how the peers' xivo-ctid find it). Across XiVOs the
UUIDs must be distinct: a cloned VM or copied database makes remote contacts look local (§2).
When several XiVOs share a UUID, only the later-declared ones fail: the first keeps its UUID.

Per release (docs/xivo-behaviour.md "uuid-unique"): xivo-configure-uuid, which writes the XIVO_UUID
files, exists from 16.02 (xivo-manage-db@xivo-16.02); up to 16.01 xivo-ctid reads `infos.uuid` from
the database and nothing reads those files, so they are neither expected nor compared there. Every
peer's xivo-dird caches this XiVO's UUID for its lifetime (wazo-dird XivoUserPlugin._get_uuid, every
tag 15.19-16.15): after a change, the peers' xivo-dird must be restarted too.
"""

from __future__ import annotations

from xivo_doctor.check import FixContext, check, version_at_hand
from xivo_doctor.foundation.results import FixOut
from xivo_doctor.probes.onbox import XIVO_UUID_FILES
from xivo_doctor.xivo.manual import consul_reset
from xivo_doctor.xivo.releases import release

KINDS = {"database": "asterisk database", "file": "XIVO_UUID files", "ctid": "xivo-ctid /0.1/infos",
         "consul": "Consul agent services"}


def uuid_fix(ctx: FixContext) -> FixOut:
    xivo, ev = ctx.xivo, ctx.evidence
    assert xivo is not None
    peers = [x for x in ctx.topology.xivos if x.name != xivo.name]
    duplicate = ev.get("same_uuid_as") or {}
    rel = release(ctx.version)
    with_files = rel is None or rel.uuid_files  # the files exist from 16.02 (xivo-configure-uuid)
    files = ev.get("xivo_uuid_files") or {}
    commands: list[str] = []
    if with_files and not duplicate and files and not any(files.values()) and "consul" not in ev.get(
            "disagreeing_kinds", ()):
        # Not one file holds XIVO_UUID: xivo-configure-uuid was skipped (its postinst runs it only while
        # PostgreSQL is up). It writes all three and systemd's environment from infos.uuid whenever they
        # are not all there (wazo-platform/xivo-manage-db:bin/xivo-configure-uuid@xivo-16.02..16.15);
        # xivo-ctid then starts again (it exits without XIVO_UUID, xivo_cti/main.py@xivo-16.02).
        return FixOut(
            summary=f"XIVO_UUID is configured nowhere on {xivo.name} (xivo-configure-uuid did not run, e.g. "
            "PostgreSQL was down at the upgrade), so the daemons that need it, xivo-ctid first, do not start: "
            "run xivo-configure-uuid, which copies infos.uuid into the XIVO_UUID files and systemd's "
            "environment, then restart the services",
            commands=("xivo-configure-uuid", "xivo-service restart all"))
    if duplicate:
        twin = next(iter(duplicate))
        summary = (f"{xivo.name} has the UUID of {twin} (the manual's warning on cloned machines): regenerate it in "
                   "the infos table with the uuid-ossp function XiVO's database setup uses, "
                   + ("write it into the XIVO_UUID files by hand (xivo-configure-uuid does nothing once configured) "
                      "and systemd's environment, " if with_files else "")
                   + "wipe the Consul data holding the old UUID (consul stopped first), restart every service and "
                   "join the Consul WAN pool again; then restart xivo-dird on every other XiVO: each caches the "
                   f"UUID {xivo.name}'s xivo-confd served it until it restarts")
        commands.append('sudo -u postgres psql asterisk -c "UPDATE infos SET uuid = uuid_generate_v4()"')
    elif with_files:
        summary = (f"the sources of {xivo.name} disagree on its UUID; infos.uuid in the asterisk database is the "
                   "reference (xivo-configure-uuid copies it): write it into the XIVO_UUID files and systemd's "
                   "environment, then restart the services so they run with it")
    else:
        summary = (f"the sources of {xivo.name} disagree on its UUID; infos.uuid in the asterisk database is the "
                   "reference (xivo-ctid reads it there before 16.02): restart the services so they run with it")
    summary += ". Run the commands in one shell session: $NEW carries the UUID from one to the next"
    commands.append('NEW=$(sudo -u postgres psql -tA asterisk -c "SELECT uuid FROM infos")')
    if with_files:
        files = files or {p: "?" for p in XIVO_UUID_FILES}
        holding = [p for p, v in files.items() if v]
        if holding:
            commands.append(f'sed -i "s/XIVO_UUID=[0-9a-fA-F-]*/XIVO_UUID=$NEW/" {" ".join(holding)}')
        for path in (p for p, v in files.items() if not v):
            line = {"/etc/systemd/system.conf": 'DefaultEnvironment=\\"XIVO_UUID=$NEW\\"'}.get(
                path, "export XIVO_UUID=$NEW")  # xivo-configure-uuid's lines (docs/xivo-behaviour.md)
            commands.append(f'echo "{line}" >> {path}')
        commands.append("systemctl set-environment XIVO_UUID=$NEW")
    # a stale tag stays in Consul's services/ until the data is wiped
    wipe = bool(duplicate) or "consul" in ev.get("disagreeing_kinds", ())
    if wipe:  # the manual's Configure Consul of that release: the services stop, consul's data goes
        commands += consul_reset(ctx.version, join=peers[0].address if peers else None)
    else:
        commands.append("xivo-service restart all")
    if duplicate:
        commands += [f"service xivo-dird restart  # on {peer.name}" for peer in peers]
    return FixOut(summary=summary, commands=tuple(commands))


@check(
    id="uuid-unique",
    title="Each XiVO has one UUID, agreed by all its sources and distinct from the others'",
    why="peers tell XiVOs apart by UUID: a shared or inconsistent UUID makes remote contacts look local "
    "and sends presence lookups to the wrong server",
    fix=uuid_fix,
    doc="contact_and_presence_sharing.rst#prerequisite",
    involves="peers",
    # Each XiVO's sources are compared with the earlier-declared ones': read every database at once.
    warm_up=lambda w: [w.chain([lambda x=x: w.probes.onbox.uuid_readings(x)])
                       for x in w.topology.xivos if w.probes.onbox.has_database(x)],
    facts=lambda o: {o.xivo: {"uuid": str(o.evidence["uuid"])}} if o.evidence.get("uuid") else {},
)
def test_uuid_unique(xivo, topology, probes, evidence):
    readings = probes.onbox.uuid_readings(xivo)
    version = version_at_hand(probes, xivo, evidence)
    rel = release(version)
    if rel is not None and not rel.uuid_files:
        unused = [r for r in readings if r.kind == "file"]
        readings = [r for r in readings if r.kind != "file"]
        if unused:
            evidence["XIVO_UUID files"] = (f"not compared: {xivo.name} runs {evidence['version']}; "
                                           "xivo-configure-uuid writes them from 16.02, before that xivo-ctid "
                                           "reads infos.uuid from the database")
    evidence["source"] = ", ".join(dict.fromkeys(KINDS[r.kind] for r in readings if r.unavailable is None))
    evidence["uuids"] = {r.source: r.shown() for r in readings}
    files = {r.source: r.uuid for r in readings if r.kind == "file" and r.unavailable is None}
    if files:
        evidence["xivo_uuid_files"] = files
    compared = [r for r in readings if r.unavailable is None]
    values = list(dict.fromkeys(r.uuid for r in compared if r.uuid))
    # infos.uuid is the reference: xivo-configure-uuid copies it into the files (XIVO-FACTS §2)
    reference = next((r.uuid for r in compared if r.kind == "database" and r.uuid), values[0] if values else None)
    evidence["uuid"] = reference
    problems = []
    if not values:
        problems.append(f"no source of {xivo.name} holds a UUID: " + ", ".join(r.source for r in compared))
    elif any(r.uuid != reference for r in compared):
        by_value: dict[str, list[str]] = {}
        for r in compared:
            by_value.setdefault(r.uuid or "no UUID", []).append(r.source)
        evidence["disagreeing"] = [r.source for r in compared if r.uuid != reference]
        evidence["disagreeing_kinds"] = sorted({r.kind for r in compared if r.uuid != reference})
        problems.append(f"the sources of {xivo.name} disagree on its UUID: "
                        + "; ".join(f"{value} in {', '.join(sources)}" for value, sources in by_value.items()))
    # Attribution: compare with the XiVOs declared BEFORE this one only (the first keeps its UUID).
    earlier = topology.xivos[: [x.name for x in topology.xivos].index(xivo.name)]
    shared = {}
    for other in earlier:
        theirs = {r.uuid for r in probes.onbox.uuid_readings(other) if r.uuid}
        common = [v for v in values if v in theirs]
        if common:
            shared[other.name] = common[0]
    if shared:
        evidence["same_uuid_as"] = shared
        twins = ", ".join(f"{name} ({uuid})" for name, uuid in shared.items())
        problems.append(f"{xivo.name} has the same UUID as {twins}: a cloned VM or copied database")
    checked = [x.name for x in earlier]
    evidence.summary = (f"{reference} in {len(compared)} sources"
                        + (f", distinct from {', '.join(checked)}" if checked else ""))
    assert not problems, "; ".join(problems)
