"""directory-source: each remote `xivo` directory of a XiVO gets its peer's users, as xivo-dird does.

xivo-confgend turns the asterisk tables into xivo-dird's sources and profiles; dird's `xivo` backend
then asks the peer's xivo-confd `GET /1.1/infos` and `/1.1/users`. The check judges as they do
(xivo/dird_sources.py cites the code): the confd client built from the URI (`scheme://host:port`
split at the first ':' — a path or an IPv6 literal after a port fails the whole sources file, then
confgend serves its cached copy and every directory stays frozen), the definitions joined by URI
(≤ 16.12) or `directory_id` (≥ 16.13), the profiles (a context listing the definition by its exact
name, whose display filter exists), the direct-match columns, dird ≥ 16.02 needing confd ≥ 16.02.
Then it sends the request dird sends — the URL built from the row, the row's certificate check and
credentials (HTTP Digest, or none: then the peer needs a web services user whose Host is this
XiVO's exact address, §6.4) — from this XiVO's address, and wants 200 with the peer's UUID. Rows on
localhost are the internal directory: ignored.
Per release, with the upstream source of each line: docs/xivo-behaviour.md "directory-source".
"""

from __future__ import annotations

from xivo_doctor.check import FixContext, FixSteps, WarmUp, cannot_check_from_here, check, peers_named_by_problems
from xivo_doctor.foundation.errors import ProbeError
from xivo_doctor.foundation.results import FixOut
from xivo_doctor.xivo import dird_sources as ds
from xivo_doctor.xivo import dird_tables as tables
from xivo_doctor.xivo.directories import SEARCHES, by_peer, sends_from_its_address, served_uuid

DIRS, DEFS = "Configuration → Management → Directories", "Services → CTI Server → Directories → Definitions"
CONTEXTS, DISPLAYS = "Services → CTI Server → Directories → Direct directories", \
    "Services → CTI Server → Directories → Display filters"
RESTART = "service xivo-dird restart  # on {}: dird reads its sources at start"


def directory_fix(ctx: FixContext) -> FixOut:
    xivo = ctx.xivo
    assert xivo is not None
    steps, kinds = FixSteps(), set()
    for p in ctx.evidence.get("problems", []):
        peer = ctx.topology.xivo(p["peer"]) if "peer" in p else None
        uri = f"https://{peer.address}:{peer.confd.port}" if peer else "https://<address>:9486"
        kind, d = p["kind"], p.get("directory")
        kinds.add(kind)
        if kind == "missing":
            steps.add(f"on {xivo.name}, in {DIRS}, add a directory of type xivo with URI {uri} for {peer.name} "
                      "(Verify certificate No until it works, as the manual advises); give it a definition in "
                      f"{DEFS} and add that definition to the contexts' Direct directories")
        elif kind in ("uri", "frozen") and d:
            steps.add(f"on {xivo.name}, in {DIRS}, set the URI of {d!r} to {uri} (no path, no trailing '/')")
        elif kind == "frozen" or kind == "columns":
            steps.add(f"on {xivo.name}, in {DEFS}, edit {p['definition']!r}: write Direct match (and Match reverse "
                      "directories) as field names separated by commas, e.g. firstname,lastname")
        elif kind == "unauthorised":
            steps.add(
                f"on {peer.name}, in Configuration → Management → Web Services Access, add a user whose Host is "
                f"{xivo.name}'s exact address {p['from'] or xivo.address} (xivo-confd compares the address as "
                "written: a CIDR or a hostname does not match), or give the directory the username and "
                f"password of a web services user of {peer.name}")
        elif kind == "uuid":
            steps.add(f"{d!r} reaches a XiVO that is not {peer.name}: point its URI at {uri}")
        elif kind == "definition":
            steps.add(f"on {xivo.name}, in {DEFS}, add a definition for the directory {d!r}, fields "
                      "matching the display filters")
        elif kind == "context":
            steps.add(f"on {xivo.name}, in {CONTEXTS}, add {p['definition']!r} to each context whose users must "
                      f"find {peer.name}'s users")
        elif kind == "display":
            steps.add(f"on {xivo.name}, in {CONTEXTS}, give the context {p['context']!r} an existing display "
                      f"filter, or create the display filter {p['display']!r} in {DISPLAYS}")
        elif kind in ("ca", "tls"):
            steps.add(f"on {xivo.name}, in {DIRS}, set Verify certificate of {d!r} to No, or to Custom with a "
                      f"Custom CA certificate file present on {xivo.name} that signed {peer.name}'s certificate"
                      + (f" (put it at {p['path']})" if kind == "ca" else ""))
        elif kind == "versions":
            steps.add(f"upgrade {peer.name} to {p['version']}, {xivo.name}'s version (the manual wants all "
                      "interconnected XiVOs on the same version)")
        else:
            steps.add(f"{peer.name}'s xivo-confd answered HTTP {p['status']}: read its log",
                      [f"tail -n 50 /var/log/xivo-confd.log  # on {peer.name}"])
    if kinds - {"unauthorised", "uuid", "status", "versions"}:
        steps.commands(RESTART.format(xivo.name))
    doc = "contact_and_presence_sharing.rst#add-a-web-service-user" if kinds == {"unauthorised"} else ""
    return steps.out(doc)


@check(
    id="directory-source",
    title="Each remote xivo directory reaches its peer's xivo-confd and gets the peer's UUID",
    why="users search their colleagues on the other XiVOs through these directories; a wrong URI, "
    "a missing web services user or a missing definition leaves the search silently empty",
    fix=directory_fix,
    doc="contact_and_presence_sharing.rst#configuring-the-directories",
    depends_on=["port-reachable:confd", "uuid-unique"],
    involves="peers",
    warm_up=lambda w: _warm_up(w),  # defined below, with the request it sends
    link=SEARCHES,
    links=peers_named_by_problems,
)
def test_directory_source(xivo, topology, probes, evidence):
    onbox = probes.onbox
    if not onbox.has_database(xivo):
        cannot_check_from_here(f"the directories are in {xivo.name}'s asterisk database: give `ssh` access "
                               f"to {xivo.name} (or on_box.database), or run xivo-doctor on {xivo.name}")
    peers = [x for x in topology.xivos if x.name != xivo.name]
    rows, definitions = onbox.directories(xivo), onbox.ctidirectories(xivo)
    contexts, displays = onbox.cticontexts(xivo), [d["name"] for d in onbox.ctidisplays(xivo)]
    evidence["source"] = f"{onbox.database_source(xivo)}; GET /1.1/infos sent from {xivo.name}"
    evidence["definitions_joined_by"] = ds.join_column(definitions)
    seen: dict[str, list[dict]] = {}
    problems, notes, unjudged, unknown = [], [], [], []
    remote, elsewhere = by_peer(rows, "xivo", xivo, topology, probes.addresses)
    frozen = tables.frozen_problems(rows, definitions, remote, xivo)
    versions: dict[str, str | None] = {}
    for row, peer in remote:
        entry = {"directory": row["name"], "uri": ds.masked(row["uri"])}
        if peer.name not in seen:
            problems += _version_problems(xivo, peer, probes, versions, unjudged)
        seen.setdefault(peer.name, []).append(entry)
        problems += tables.definition_problems(row, peer, xivo, definitions, contexts, displays)
        if not any(p.get("directory") == row["name"] for p in frozen):
            problems += _request_problems(row, peer, xivo, probes, entry, notes, unknown)
    problems = frozen + problems + [
        {"peer": p.name, "kind": "missing",
         "text": f"no directory for {p.name} on {xivo.name} (the manual wants one per remote XiVO)"}
        for p in peers if p.name not in seen]
    evidence["directories"] = seen
    evidence["versions"] = {k: v or "not observed" for k, v in versions.items()}
    # not_declared_xivos: shown, not judged (not part of this topology)
    shown = {"not_declared_xivos": elsewhere, "slow": notes, "not_judged": unjudged,
             "problems": [{k: v for k, v in p.items() if k != "text"} for p in problems]}
    evidence.update({k: v for k, v in shown.items() if v})
    evidence.summary = "; ".join([f"{sum(map(len, seen.values()))} remote directories answer with their "
                                  "peer's UUID and are searched", *notes, *unjudged])
    assert not problems, "; ".join(p["text"] for p in problems)
    if unknown:
        cannot_check_from_here("; ".join(unknown))


def _version(probes, x, how="of") -> str | None:
    """The version `x` says it runs (`how` "of"), or the one at hand ("at_hand": else the declared one)."""
    try:
        return getattr(probes.version, how)(x).version
    except ProbeError:
        return None


def _version_problems(xivo, peer, probes, versions, unjudged) -> list[dict]:
    """dird ≥ 16.02 reads `entry['uuid']` of each user; confd serves it from 16.02 (releases.py)."""
    for x in (xivo, peer):
        if x.name not in versions:
            versions[x.name] = _version(probes, x)
    mine, theirs = versions[xivo.name], versions[peer.name]
    if mine is None or theirs is None:
        unjudged.append(f"not judged: whether {xivo.name}'s xivo-dird ≥ 16.02 reads {peer.name}'s users (it needs "
                     "their uuid, which xivo-confd serves from 16.02): the versions were not both observed")
        return []
    if ds.misses_user_uuid(mine, theirs):
        return [{"peer": peer.name, "kind": "versions", "version": mine, "peer_version": theirs,
                 "text": f"{xivo.name} runs {mine} and {peer.name} {theirs}: xivo-dird ≥ 16.02 reads each user's "
                         f"uuid, which {peer.name}'s xivo-confd < 16.02 does not send, so every search of "
                         f"{peer.name}'s directory fails (KeyError 'uuid') and returns nothing"}]
    return []


def _request_problems(row, peer, xivo, probes, entry, notes, unknown) -> list[dict]:
    name, base = row["name"], {"peer": peer.name, "directory": row["name"]}
    plan = _dird_request(probes, row, peer, xivo)
    if "problem" in plan:
        return [{**base, **plan["problem"]}]
    if "unknown" in plan:
        unknown.append(plan["unknown"])
        return []
    entry.update(url=ds.masked(plan["url"]), verify=plan["shown_verify"])
    try:
        answer = probes.web.confd_infos(peer, **plan["request"])
    except ProbeError as exc:
        if plan["request"]["verify"] is False or not exc.detail.startswith("TLS failed"):
            raise
        return [{**base, "kind": "tls", "text": f"{peer.name}'s certificate does not verify at {entry['url']} "
                 f"({exc.detail}) with {plan['shown_verify']}: xivo-dird's request fails so, and {name!r} returns "
                 "nothing"}]
    entry.update({k: answer[k] for k in ("status", "uuid", "elapsed_ms", "auth", "from_address")})
    notes += _slow(peer, xivo, answer["elapsed_ms"], probes)
    how = "with the directory's username and password" if plan["request"]["username"] else \
        f"from {answer['from_address']}"
    if answer["status"] == 401:
        hosts = _peer_hosts(probes, peer)
        known = f" (its enabled users' hosts: {', '.join(hosts) or 'none'})" if hosts is not None else ""
        return [{**base, "kind": "unauthorised", "from": answer["from_address"],
                 "text": f"{peer.name}'s xivo-confd refused {name!r} {how} (HTTP 401): no enabled web services "
                         f"user of {peer.name} has Host exactly {answer['from_address'] or xivo.address}{known}"
                         + (", and the directory's credentials are refused" if plan["request"]["username"] else
                            ", and the directory has no username and password")}]
    if answer["status"] != 200:
        odd = plan["request"]["url"] != f"https://{peer.address}:{peer.confd.port}/1.1/infos"
        return [{**base, "kind": "uri" if odd else "status", "status": answer["status"],
                 "text": f"{peer.name}'s xivo-confd answered HTTP {answer['status']} to {name!r} {how}"
                         + (f" at {entry['url']}, the URL xivo-confgend builds from the URI {entry['uri']} "
                            "(scheme://host:port split at the first ':')" if odd else "")}]
    expected, source = served_uuid(probes.onbox.uuid_readings(peer))
    if answer["uuid"] != expected:
        return [{**base, "kind": "uuid", "text": f"{entry['uri']} answered UUID {answer['uuid']}, but {peer.name}'s "
                 f"UUID is {expected} ({source})"}]
    return []


def _slow(peer, xivo, ms, probes) -> list[str]:
    why = ds.too_slow(ms, _version(probes, xivo, "at_hand"), xivo.name)
    return [f"{peer.name} took {ms:.0f} ms to answer /1.1/infos: {why}"] if why else []


def _peer_hosts(probes, peer) -> list[str] | None:
    """Hosts of the peer's enabled web services users, when its database is at hand (evidence)."""
    if not probes.onbox.has_database(peer):
        return None
    return [u["host"] for u in probes.onbox.webservice_users(peer) if u["host"] and not u["disable"]]


# -- the request dird's `xivo` backend makes, and its warm-up -------------------------------------------

def _dird_request(probes, row, peer, xivo) -> dict:
    """{"request": confd_infos' arguments, "url", "shown_verify"}, or {"problem"} or {"unknown"}: the
    request dird sends for `row` (xivo/dird_sources.py), from this XiVO's address."""
    name = row["name"]
    try:
        config = ds.confd_config(row)
    except ds.SourcesFileError as exc:  # not yet in a sources file (no definition): it breaks it once defined
        return {"problem": {"kind": "uri", "text": f"directory {name!r}: {exc}; with a definition it would stop "
                            "xivo-confgend generating any source"}}
    url, served = ds.masked(config.url("infos")), f"https://{peer.address}:{peer.confd.port}"
    if not config.https:
        return {"problem": {"kind": "uri", "text": f"directory {name!r} has URI {ds.masked(row['uri'])}: its scheme "
                            f"is not exactly 'https', so xivo-dird asks {url} in plain HTTP, but {peer.name}'s "
                            f"xivo-confd serves HTTPS only, on {served} (9487 is plain HTTP for 127.0.0.1 only)"}}
    if config.port != peer.confd.port:
        return {"problem": {"kind": "uri", "text": f"directory {name!r} has URI {ds.masked(row['uri'])}: xivo-dird "
                            f"asks {url}, but {peer.name}'s xivo-confd answers on {served} (9487 is plain HTTP for "
                            "127.0.0.1 only)"}}
    if not config.username and not sends_from_its_address(xivo):
        return {"unknown": f"{name!r} on {xivo.name} authorises by address, so the request must come from "
                           f"{xivo.name}: set on_box.source_address for {xivo.name} or run xivo-doctor on {xivo.name}"}
    verify, shown = config.verify, "no certificate check"
    if verify is True:
        shown = (f"requests' default CA bundle where xivo-doctor runs (xivo-dird uses {xivo.name}'s system CA "
                 "bundle, not read here)")
    elif verify:
        if not probes.onbox.has_root(xivo):
            return {"unknown": f"{name!r} checks {peer.name}'s certificate with the CA file {verify} of {xivo.name}: "
                               f"give on_box.root for {xivo.name} or run xivo-doctor on {xivo.name} to check it"}
        local = probes.onbox.file_at(xivo, verify)
        if local is None:
            return {"problem": {"kind": "ca", "path": verify, "text": f"directory {name!r} checks {peer.name}'s "
                                f"certificate with {verify}, which does not exist on {xivo.name}: xivo-dird's TLS "
                                f"handshake fails and {name!r} returns nothing"}}
        verify, shown = local, f"the CA file {config.verify} of {xivo.name}"
    return {"url": url, "shown_verify": shown,
            "request": {"url": config.url("infos"), "from_xivo": xivo, "verify": verify,
                        "username": config.username, "password": config.password}}


def _warm_up(w: WarmUp) -> None:
    """The peers' UUIDs (every database at once), then the `GET /1.1/infos` of each remote directory
    the check sends, under the check's own conditions."""
    for x in (x for x in w.topology.xivos if w.probes.onbox.has_database(x)):
        w.chain([lambda x=x: w.probes.onbox.uuid_readings(x)])
    for x in w.xivos:
        w.chain([lambda x=x: _warm_requests(w, x)])


def _warm_requests(w: WarmUp, xivo) -> None:
    if not w.probes.onbox.has_database(xivo):
        return
    rows, definitions = w.probes.onbox.directories(xivo), w.probes.onbox.ctidirectories(xivo)
    broken = {b.get("directory") for b in ds.sources_file_breakers(rows, definitions)}
    for row, peer in by_peer(rows, "xivo", xivo, w.topology, w.probes.addresses)[0]:
        plan = {} if row["name"] in broken else _dird_request(w.probes, row, peer, xivo)
        if "request" in plan:
            w.submit(lambda peer=peer, plan=plan: w.probes.web.confd_infos(peer, **plan["request"]))
