"""phonebook-restricted: each phonebook directory of a XiVO reads its peer's phonebook.

Phonebook sharing goes through xivo-web-interface's json.php and xivo-dird's `phonebook` backend,
which exist 15.19-16.13 (XIVO-FACTS §0): on 16.14 and later the check is not applicable (the
manual page was not updated and is stale there). For each `phonebook` directory pointing at a
declared peer, the URL must use `/json.php/restricted/`: `private` answers 403 to anyone but the
XiVO itself (§6.3). Sent from this XiVO's address as xivo-dird does — `requests.get(url,
params={'act': 'search', 'search': term}, timeout=4, verify=False)`, redirects followed
(wazo-platform/wazo-dird xivo_dird/plugins/phonebook_plugin.py@xivo-15.19..xivo-16.13) — the search
must answer 200 or 204 (after nginx's HTTP→HTTPS redirect): a 401 means the peer has no web
services user whose Host matches this XiVO with an empty login and password (§6.3); on a peer
15.19-15.20 a 403 means that user's access rights lack the phonebook (releases.py
`webservice_acl`). A missing directory is only a finding where the manual asks for one: both
XiVOs on a release with the Phonebook Sharing page (16.03-16.13, `phonebook_sharing_page`); an
existing one is judged on every release that has the mechanism. Rows on localhost are the
XiVO's own phonebook.
Per release, with the upstream source of each line: docs/xivo-behaviour.md "phonebook-restricted".
"""

from __future__ import annotations

from xivo_doctor.check import (
    FixContext,
    FixSteps,
    WarmUp,
    cannot_check_from_here,
    check,
    not_applicable,
    peers_named_by_problems,
)
from xivo_doctor.foundation.results import FixOut
from xivo_doctor.xivo.directories import SEARCHES, by_peer, sends_from_its_address
from xivo_doctor.xivo.releases import release
from xivo_doctor.xivo.versions import phonebook_sharing_applies

PHONEBOOK_PATH = "/service/ipbx/json.php/restricted/pbx_services/phonebook"
SEARCH_TERM = "xivo-doctor"  # shows as such in the peer's nginx access log


def _version(probes, xivo) -> tuple[str | None, str]:
    """The version to judge by: what the XiVO says (its version file, its login page), else the topology's."""
    at_hand = probes.version.at_hand(xivo)
    return at_hand.version, at_hand.source


def phonebook_url(peer) -> str:
    port = "" if peer.webservices.http_port == 80 else f":{peer.webservices.http_port}"
    return f"http://{peer.address}{port}{PHONEBOOK_PATH}"


def phonebook_fix(ctx: FixContext) -> FixOut:
    xivo = ctx.xivo
    assert xivo is not None
    steps, kinds = FixSteps(), set()
    for p in ctx.evidence.get("problems", []):
        peer, kind = ctx.topology.xivo(p["peer"]), p["kind"]
        kinds.add(kind)
        if kind in ("private", "not-restricted", "missing"):
            what = "add a phonebook directory" if kind == "missing" else f"set the URL of {p['directory']!r}"
            steps.add(f"on {xivo.name}, in Configuration → Management → Directories, {what} for "
                             f"{peer.name} with the URL {phonebook_url(peer)} (restricted, not private: private "
                             f"answers only the XiVO itself)")
        elif kind == "acl":
            # labels: xivo-web-interface src/i18n/en_US/conf/acl.i18n and tpl/tpl.i18n `opt_acl`@xivo-15.19
            steps.add(f"on {peer.name}, in Configuration → Management → Web Services Access, open the Access "
                      f"rights of the user whose Host matches {xivo.address} ({xivo.name}) and tick IPBX → IPBX "
                      "services → Phonebook (service/ipbx/pbx_services/phonebook): up to XiVO 15.20 json.php "
                      "answers 403 without it")
        elif kind == "unauthorised":
            steps.add(f"on {peer.name}, in Configuration → Management → Web Services Access, add a user "
                             f"with Host {xivo.address} ({xivo.name}) and login and password left empty: the "
                             "phonebook authorises by host only, never by login/password")
        elif kind == "gone":
            steps.add(f"{peer.name} no longer serves the json.php phonebook (gone in XiVO 16.14, where "
                             f"phonebooks moved into xivo-dird; the manual page is stale there): remove "
                             f"{p['directory']!r} from {xivo.name}'s directories")
        else:
            steps.add(f"{p['directory']!r} answered {p.get('status')}: read the peer's "
                             "/var/log/nginx/xivo.access.log and its xivo-dird.log")
    if kinds & {"private", "not-restricted", "missing", "gone"}:
        steps.commands(f"service xivo-dird restart  # on {xivo.name}: dird reads its sources at start")
    steps.commands(f"tail -n 20 /var/log/xivo-dird.log  # on {xivo.name}: look for Phonebook \"...\" lines")
    doc = "phonebook_sharing.rst#open-phonebook-access" if kinds == {"unauthorised"} else ""
    return steps.out(doc)


@check(
    id="phonebook-restricted",
    title="Each phonebook directory uses the restricted URL and the peer answers this XiVO",
    why="users search the other XiVOs' phonebooks through these directories; a private URL or a peer "
    "that does not authorise this XiVO's address leaves the search silently empty",
    fix=phonebook_fix,
    doc="phonebook_sharing.rst#configuring-the-directories",
    depends_on=["port-reachable:http", "port-reachable:https"],
    involves="peers",
    warm_up=lambda w: [w.chain([lambda x=x: _warm_searches(w, x)]) for x in w.xivos],
    link=SEARCHES,
    links=peers_named_by_problems,
)
def test_phonebook_restricted(xivo, topology, probes, evidence):
    if not xivo.webservices.phonebook_sharing:
        not_applicable("the topology says this interconnection does not share phonebooks "
                       "(webservices.phonebook_sharing: false)")
    version, where = _version(probes, xivo)
    if not phonebook_sharing_applies(version):
        not_applicable(f"{xivo.name} runs {version} ({where}): the json.php phonebook and the phonebook directory "
                       "type are gone from 16.14 on (phonebooks moved into xivo-dird); the Phonebook Sharing "
                       "manual page was not updated and is stale for these versions")
    if not probes.onbox.has_database(xivo):
        cannot_check_from_here(f"the directories are in {xivo.name}'s asterisk database: give `ssh` access "
                               f"to {xivo.name} (or on_box.database), or run xivo-doctor on {xivo.name}")
    peers = [x for x in topology.xivos if x.name != xivo.name]
    evidence["source"] = f"{probes.onbox.database_source(xivo)}; json.php search sent from {xivo.name}"
    seen: dict[str, list[dict]] = {}
    problems, unknown = [], []
    remote, elsewhere = by_peer(probes.onbox.directories(xivo), "phonebook", xivo, topology, probes.addresses)
    for row, peer in remote:
        entry = {"directory": row["name"], "url": row["uri"]}
        seen.setdefault(peer.name, []).append(entry)
        problems += _judge(row, peer, xivo, probes, entry, unknown)
    unjudged = []
    for peer in (p for p in peers if p.name not in seen and p.webservices.phonebook_sharing):
        missing, why = _expected(probes, xivo, peer)
        if why:
            unjudged.append(why)
        if missing:
            problems.append({"peer": peer.name, "kind": "missing",
                             "text": f"no phonebook directory for {peer.name} on {xivo.name} (set "
                                     "webservices.phonebook_sharing: false in the topology if phonebooks are "
                                     "not shared)"})
    evidence["phonebooks"] = seen
    if elsewhere:
        evidence["not_declared_xivos"] = elsewhere
    if problems:
        evidence["problems"] = [{k: v for k, v in p.items() if k != "text"} for p in problems]
    if unjudged:
        evidence["not_judged"] = unjudged
    evidence.summary = "; ".join([f"{sum(map(len, seen.values()))} peer phonebooks answer {xivo.name} on their "
                                  "restricted URL", *unjudged])
    assert not problems, "; ".join(p["text"] for p in problems)
    if unknown:
        cannot_check_from_here(f"the peers authorise {xivo.name} by its address, so the search must come from "
                               f"{xivo.name}: set on_box.source_address for {xivo.name} or run xivo-doctor there")


def _judge(row, peer, xivo, probes, entry, unknown) -> list[dict]:
    name, url = row["name"], row["uri"] or ""
    base = {"peer": peer.name, "directory": name}
    if "/json.php/private/" in url:
        return [{**base, "kind": "private", "text": f"{name!r} uses the private URL {url}: private answers 403 to "
                 f"anyone but {peer.name} itself; write restricted"}]
    if "/json.php/restricted/" not in url:
        return [{**base, "kind": "not-restricted", "text": f"{name!r} has the URL {url}, not the restricted "
                 f"phonebook URL {phonebook_url(peer)}"}]
    if not sends_from_its_address(xivo):
        unknown.append(name)
        return []
    answer = _search(probes, url, xivo)
    entry.update(status=answer["status"], count=answer["count"], redirects=answer["redirects"],
                 final_url=answer["final_url"], sent_from=answer["from_address"])
    status, sent = answer["status"], f"from {answer['from_address']}"
    if status == 204 or (status == 200 and answer["json"]):
        return []
    if status == 401:
        return [{**base, "kind": "unauthorised", "status": status,
                 "text": f"{peer.name} refused {name!r} {sent} (HTTP 401): it has no web services user with Host "
                         f"matching {xivo.address} and an empty login and password"}]
    if status == 403:
        return [_forbidden(base, name, sent, peer, probes)]
    if status == 404:
        return [{**base, "kind": "gone", "status": status,
                 "text": f"{peer.name} has no json.php phonebook (HTTP 404 to {name!r}): XiVO 16.14 and later "
                         "removed it"}]
    what = "an answer that is not the phonebook's JSON" if status == 200 else f"HTTP {status}"
    return [{**base, "kind": "status", "status": status, "text": f"{peer.name} answered {what} to {name!r} {sent}"}]


# -- the search dird's `phonebook` backend sends, and its warm-up ---------------------------------------

def _expected(probes, xivo, peer) -> tuple[bool, str]:
    """(a phonebook directory toward `peer` is expected, why it is not judged): the manual asks for
    one where both XiVOs run a release with the Phonebook Sharing page (16.03-16.13)."""
    (mine, _), (theirs, _) = _version(probes, xivo), _version(probes, peer)
    if mine is None or theirs is None:
        return False, (f"not judged: whether {xivo.name} needs a phonebook directory for {peer.name} (the manual's "
                       "Phonebook Sharing is XiVO 16.03-16.13): the versions are not both known")
    return release(mine).phonebook_sharing_page and release(theirs).phonebook_sharing_page, ""


def _forbidden(base, name, sent, peer, probes) -> dict:
    """A 403 to a restricted URL: up to 15.20 json.php checks the matched user's access rights
    (xivo-web-interface src/object/accesswebservice.inc@xivo-15.19 `_chk_acl`, _restricted.php: 403);
    from 16.01 it no longer does (d2321b4a), so another layer answered."""
    version, where = _version(probes, peer)
    rel = release(version)
    if rel is None or rel.webservice_acl:
        known = f"{peer.name} runs {version} ({where})" if rel else f"{peer.name}'s version is not known"
        return {**base, "kind": "acl", "status": 403,
                "text": f"{peer.name} answered 403 to {name!r} {sent}: up to XiVO 15.20 ({known}) json.php matched a "
                        "web services user but its access rights (ACL) do not grant service/ipbx/pbx_services/"
                        "phonebook"}
    return {**base, "kind": "status", "status": 403,
            "text": f"{peer.name} answered 403 to {name!r} {sent}, which json.php's restricted mode does not "
                    f"answer on {version} (401 to an unknown host, no access rights checked since 16.01): read "
                    f"{peer.name}'s nginx log"}


def _search(probes, url, xivo):
    # dird's phonebook backend never checks the peer's certificate (verify=False, phonebook_plugin.py).
    return probes.web.phonebook(url, from_xivo=xivo, term=SEARCH_TERM, verify=False)


def _warm_searches(w: WarmUp, xivo) -> None:
    """The json.php search of each restricted phonebook directory, where the check sends it (≤ 16.13)."""
    onbox = w.probes.onbox
    if not (xivo.webservices.phonebook_sharing and onbox.has_database(xivo) and sends_from_its_address(xivo)):
        return
    if not phonebook_sharing_applies(_version(w.probes, xivo)[0]):
        return
    for row, _peer in by_peer(onbox.directories(xivo), "phonebook", xivo, w.topology, w.probes.addresses)[0]:
        url = row["uri"] or ""
        if "/json.php/restricted/" in url and "/json.php/private/" not in url:
            w.submit(lambda url=url: _search(w.probes, url, xivo))
