"""directory-source: each remote `xivo` directory of a XiVO reaches its peer's xivo-confd.

For every declared peer, the XiVO must have a `xivo` directory (the manual wants one per remote
XiVO) whose URI is https://<peer address>:<peer confd port>: xivo-dird builds its confd client
from that URI (XIVO-FACTS §6.2). From this XiVO's address, with the directory's credentials (HTTP
Digest) or none — then the peer needs a web services user whose Host is this XiVO's exact
address, since confd compares strings, no CIDR (§6.4) — `GET /1.1/infos` must answer 200 with the
peer's UUID, the call dird's `xivo` backend makes (§6.2). The directory needs a CTI definition
(`ctidirectories`) listed in a context's direct directories (`cticontexts.directories`),
otherwise no profile searches it. Rows on localhost are the internal directory: ignored.
"""

from __future__ import annotations

from xivo_doctor.check import FixContext, FixSteps, WarmUp, cannot_check_from_here, check, peers_named_by_problems
from xivo_doctor.foundation.results import FixOut
from xivo_doctor.xivo.directories import SEARCHES, by_peer, parse_uri, sends_from_its_address

CONFD_CLIENT_PORT = 9486  # xivo_confd_client's default when the URI has no port
LOOKUP_TIMEOUT_MS = 2900  # dird's lookup timeout; its confd timeout is 4 s (XIVO-FACTS §6.2)


def directory_fix(ctx: FixContext) -> FixOut:
    xivo = ctx.xivo
    assert xivo is not None
    steps = FixSteps()
    kinds = set()
    for p in ctx.evidence.get("problems", []):
        peer = ctx.topology.xivo(p["peer"])
        uri, kind = f"https://{peer.address}:{peer.confd.port}", p["kind"]
        kinds.add(kind)
        if kind == "missing":
            steps.add(
                f"on {xivo.name}, in Configuration → Management → Directories, add a directory of type xivo with "
                f"URI {uri} for {peer.name} (certificate verification off until it works, as the manual advises); "
                "give it a definition in Services → CTI Server → Directories → Definitions and add that "
                "definition to the contexts' Direct directories")
        elif kind == "uri":
            steps.add(f"on {xivo.name}, in Configuration → Management → Directories, set the URI of "
                             f"{p['directory']!r} to {uri}")
        elif kind == "unauthorised":
            steps.add(
                f"on {peer.name}, in Configuration → Management → Web Services Access, add a user whose Host is "
                f"{xivo.name}'s exact address {p['from'] or xivo.address} (xivo-confd compares the address as "
                "written: a CIDR or a hostname does not match), or give the directory the username and "
                f"password of a web services user of {peer.name}")
        elif kind == "uuid":
            steps.add(f"{p['directory']!r} reaches a XiVO that is not {peer.name}: point its URI at {uri}")
        elif kind == "definition":
            steps.add(f"on {xivo.name}, in Services → CTI Server → Directories → Definitions, add a "
                             f"definition for the directory {p['directory']!r}, fields matching the display filters")
        elif kind == "context":
            steps.add(f"on {xivo.name}, in Services → CTI Server → Directories → Direct directories, add "
                             f"{p['definition']!r} to each context whose users must find {peer.name}'s users")
        else:
            steps.add(f"{peer.name}'s xivo-confd answered HTTP {p['status']}: read its log",
                      [f"tail -n 50 /var/log/xivo-confd.log  # on {peer.name}"])
    if kinds & {"missing", "uri", "definition", "context"}:
        steps.commands(f"service xivo-dird restart  # on {xivo.name}: dird reads its sources at start")
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
    if not probes.onbox.has_database(xivo):
        cannot_check_from_here(f"the directories are in {xivo.name}'s asterisk database: give on_box.database "
                               f"for {xivo.name} or run xivo-doctor on {xivo.name}")
    peers = [x for x in topology.xivos if x.name != xivo.name]
    definitions = probes.onbox.ctidirectories(xivo)
    listed = {n for c in probes.onbox.cticontexts(xivo) for n in c["directory_names"]}
    evidence["source"] = f"{probes.onbox.database_source(xivo)}; GET /1.1/infos sent from {xivo.name}"
    seen: dict[str, list[dict]] = {}
    problems, notes, unknown = [], [], []
    remote, elsewhere = by_peer(probes.onbox.directories(xivo), "xivo", xivo, topology, probes.addresses)
    for row, peer in remote:
        entry = {"directory": row["name"], "uri": row["uri"]}
        seen.setdefault(peer.name, []).append(entry)
        problems += _definition_problems(row, peer, definitions, listed)
        problems += _request_problems(row, peer, xivo, probes, entry, notes, unknown)
    problems += [{"peer": p.name, "kind": "missing",
                  "text": f"no directory for {p.name} on {xivo.name} (the manual wants one per remote XiVO)"}
                 for p in peers if p.name not in seen]
    evidence["directories"] = seen
    if elsewhere:
        evidence["not_declared_xivos"] = elsewhere  # shown, not judged: not part of this topology
    if notes:
        evidence["slow"] = notes
    if problems:
        evidence["problems"] = [{k: v for k, v in p.items() if k != "text"} for p in problems]
    evidence.summary = "; ".join([f"{sum(map(len, seen.values()))} remote directories answer with their "
                                  "peer's UUID and are searched", *notes])
    assert not problems, "; ".join(p["text"] for p in problems)
    if unknown:
        cannot_check_from_here(
            f"{', '.join(unknown)} on {xivo.name} authorise by address, so the request must come from "
            f"{xivo.name}: set on_box.source_address for {xivo.name} or run xivo-doctor on {xivo.name}")


def _definition_problems(row, peer, definitions, listed) -> list[dict]:
    names = [d["name"] for d in definitions if d["directory_id"] == row["id"]]
    if not names:
        return [{"peer": peer.name, "kind": "definition", "directory": row["name"],
                 "text": f"directory {row['name']!r} has no CTI definition, so xivo-dird never loads it"}]
    if not any(n in listed for n in names):
        return [{"peer": peer.name, "kind": "context", "directory": row["name"], "definition": names[0],
                 "text": f"definition {names[0]!r} is in no context's direct directories, so no profile "
                         "searches it"}]
    return []


def _request_problems(row, peer, xivo, probes, entry, notes, unknown) -> list[dict]:
    name = row["name"]
    if not _aims_at_confd(row, peer):
        return [{"peer": peer.name, "kind": "uri", "directory": name,
                 "text": f"directory {name!r} has URI {row['uri']}, but {peer.name}'s xivo-confd answers on "
                         f"https://{peer.address}:{peer.confd.port} (9487 is plain HTTP for 127.0.0.1 only)"}]
    credentials = _has_credentials(row)
    if not credentials and not sends_from_its_address(xivo):
        unknown.append(repr(name))
        return []
    answer = _ask_confd(probes, row, peer, xivo)
    entry.update({k: answer[k] for k in ("status", "uuid", "elapsed_ms", "auth", "from_address")})
    if answer["elapsed_ms"] > LOOKUP_TIMEOUT_MS:
        notes.append(f"{peer.name} took {answer['elapsed_ms']:.0f} ms to answer /1.1/infos: past dird's 2.9 s "
                     "lookup timeout its results are dropped silently")
    how = "with the directory's username and password" if credentials else f"from {answer['from_address']}"
    if answer["status"] == 401:
        hosts = _peer_hosts(probes, peer)
        known = f" (its enabled users' hosts: {', '.join(hosts) or 'none'})" if hosts is not None else ""
        return [{"peer": peer.name, "kind": "unauthorised", "directory": name, "from": answer["from_address"],
                 "text": f"{peer.name}'s xivo-confd refused {name!r} {how} (HTTP 401): no enabled web services "
                         f"user of {peer.name} has Host exactly {answer['from_address'] or xivo.address}{known}"
                         + (", and the directory's credentials are refused" if credentials else
                            ", and the directory has no username and password")}]
    if answer["status"] != 200:
        return [{"peer": peer.name, "kind": "status", "directory": name, "status": answer["status"],
                 "text": f"{peer.name}'s xivo-confd answered HTTP {answer['status']} to {name!r} {how}"}]
    expected, source = _peer_uuid(probes.onbox.uuid_readings(peer))
    if answer["uuid"] != expected:
        return [{"peer": peer.name, "kind": "uuid", "directory": name,
                 "text": f"{row['uri']} answered UUID {answer['uuid']}, but {peer.name}'s UUID is {expected} "
                         f"({source})"}]
    return []


def _peer_uuid(readings) -> tuple[str | None, str]:
    """The peer's UUID as its confd serves it: infos.uuid, else what its xivo-ctid or Consul say."""
    for kind in ("database", "ctid", "consul"):
        for r in readings:
            if r.kind == kind and r.uuid:
                return r.uuid, r.source
    return None, "no source"


def _peer_hosts(probes, peer) -> list[str] | None:
    """Hosts of the peer's enabled web services users, when its database is at hand (evidence)."""
    if not probes.onbox.has_database(peer):
        return None
    return [u["host"] for u in probes.onbox.webservice_users(peer) if u["host"] and not u["disable"]]


# -- the request dird's `xivo` backend makes, and its warm-up -------------------------------------------

def _aims_at_confd(row, peer) -> bool:
    """dird builds its confd client from the URI (XIVO-FACTS §6.2): HTTPS on the peer's confd port."""
    scheme, _host, port = parse_uri(row["uri"])
    return scheme == "https" and (port or CONFD_CLIENT_PORT) == peer.confd.port


def _has_credentials(row) -> bool:
    return bool(row["xivo_username"] and row["xivo_password"])


def _ask_confd(probes, row, peer, xivo):
    credentials = _has_credentials(row)
    return probes.web.confd_infos(peer, from_xivo=xivo, verify=peer.confd.verify,
                                  username=row["xivo_username"] if credentials else None,
                                  password=row["xivo_password"] if credentials else None)


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
    for row, peer in by_peer(w.probes.onbox.directories(xivo), "xivo", xivo, w.topology, w.probes.addresses)[0]:
        if _aims_at_confd(row, peer) and (_has_credentials(row) or sends_from_its_address(xivo)):
            w.submit(lambda row=row, peer=peer: _ask_confd(w.probes, row, peer, xivo))
