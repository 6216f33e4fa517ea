"""directory-lookup: this XiVO's xivo-dird finds a user of the peer, with the peer's UUID.

Item `xivo-1->xivo-2`: xivo-1's xivo-dird searches xivo-2's users. The manual's own last test ("you
should be able to search for users on other XiVO from the People Xlet",
contact_and_presence_sharing.rst "Check that the Configuration is Working"), made as the Xlet's
xivo-ctid makes it: the profile is the CTI context (xivo-ctid cti_adapter.py, docs/research-
directory-lookup.md §2.2). It takes one user of the peer (its database, else its xivo-confd's
`/1.1/users`), gets a token of this XiVO's xivo-auth for the topology's `auth` user (backend
`xivo_ws` up to 15.20, `xivo_service` after), asks dird `/0.1/directories/lookup/<profile>` in
each profile listing the peer's `xivo` definition, and wants that user back with
`relations.xivo_id` = the peer's UUID. Where Phonebook Sharing applies (dird's `phonebook` backend,
≤ 16.13) one entry of the peer's phonebook must come back through this XiVO's phonebook source too
(its results carry no relations: found by name). Table-level faults are `directory-source`'s and
`phonebook-restricted`'s (dependencies): what fails here with them passing is dird itself — not
restarted since the tables changed, stopped, its xivo-auth unreachable, a source failing at run time.
Per release, with the upstream source of each line: docs/xivo-behaviour.md "directory-lookup".
"""

from __future__ import annotations

import math

from xivo_doctor.check import Metric, Outcome, WarmUp, check, not_applicable, version_at_hand
from xivo_doctor.checks._directory_lookup_fix import lookup_fix
from xivo_doctor.checks._directory_lookup_plan import Plan, plan_for
from xivo_doctor.foundation.errors import ProbeError
from xivo_doctor.xivo.directories import SEARCHES
from xivo_doctor.xivo.releases import release

LOG = "/var/log/xivo-dird.log"
# the lines wazo-dird logs when a source fails or a profile is missing (research §2.6, §3.5)
LOG_MARKERS = ("Cannot fetch", "An error occured in search", "does not exist", "Cannot find lookup sources",
               "Failed to load", "request error", "unexpected HTTP status", "Authentication server unreachable")


def latency(o: Outcome) -> list[Metric]:
    """The lookup's latency (dird's answer, its sources' included); `U` when none was answered."""
    ms = o.evidence.get("latency_ms")
    known = isinstance(ms, int | float) and not isinstance(ms, bool) and math.isfinite(ms)
    return [Metric(f"dird_{o.xivo}_finds_{o.peer}", float(ms) if known else None, "ms", minimum=0,
                   words=f"directory lookup {o.xivo}→{o.peer}")]


@check(
    id="directory-lookup",
    title="This XiVO's xivo-dird finds the peer's users, with the peer's UUID",
    why="the People Xlet searches the other XiVOs' users through xivo-dird; when dird finds nothing, "
    "remote colleagues cannot be found, called or seen, even with every table right",
    fix=lookup_fix,
    doc="contact_and_presence_sharing.rst#check-that-the-configuration-is-working",
    # xivo-auth keeps its tokens in Consul (wazo-auth xivo_auth/token.py `Storage`, 15.19-16.15): a
    # Consul that is down (its RPC port refused) is the root cause of a token refused with a 500
    depends_on=["directory-source", "phonebook-restricted", "port-reachable:consul-rpc"],
    warm_up=lambda w: _warm_up(w),
    warm_up_order=40,
    metrics=latency,
    link=SEARCHES,
)
def test_directory_lookup(pair, topology, probes, evidence):
    xivo, peer = pair.xivo, pair.peer
    if probes.passive:
        not_applicable("off with --passive: the lookup needs a token, which xivo-auth stores (it is revoked at "
                       "the end of the run)")
    if not xivo.auth.username or not xivo.auth.password:
        not_applicable(f"the topology gives no auth.username and auth.password for {xivo.name}: create a web "
                       f"services user on {xivo.name} with the ACL dird.directories.lookup.*.read (README: "
                       "directory-lookup) and give its login and password under auth")
    version = version_at_hand(probes, xivo, evidence)
    plan = plan_for(probes, topology, xivo, peer, release(version))
    evidence.update(plan.evidence())
    token = probes.dird.token(xivo, plan.backend)
    # not under a key named "token": the redactor masks what such a key holds
    evidence["xivo_auth"] = f"a token of the {plan.backend} backend, ACLs {token['acls']}" \
        if token["status"] == 200 else f"refused: HTTP {token['status']} {token['reason']}"
    if token["status"] >= 500:  # xivo-auth itself is broken: nobody on this XiVO gets a token
        consul = "consul" in token["reason"].lower()
        problems = [{"peer": peer.name, "kind": "auth-consul" if consul else "auth-token",
                     "text": f"xivo-auth of {xivo.name} answered HTTP {token['status']} ({token['reason']}) to a token "
                             f"request: no user of {xivo.name} gets a token, so none can search"
                             + (" (xivo-auth keeps its tokens in Consul, which does not answer it)" if consul else "")}]
        evidence["problems"] = [{k: v for k, v in p.items() if k != "text"} for p in problems]
        assert not problems, problems[0]["text"]
    if token["status"] != 200:
        raise ProbeError(f"xivo-auth of {xivo.name}", f"refused a token to auth.username {xivo.auth.username!r} "
                         f"(HTTP {token['status']}: {token['reason'] or 'no reason'}), backend {plan.backend}: "
                         f"check its login and password in Web Services Access on {xivo.name}")
    problems: list[dict] = []
    lookups = {}
    for profile in plan.profiles:
        seen = _ask(probes, xivo, profile, plan.term, plan, lambda r: _is(r, plan))
        lookups[profile] = seen
        problems += _judge(seen, xivo, peer, profile, plan)
    evidence["lookups"] = lookups
    # a first answer that came at the timeout counts: the latency says how slow dird was
    answered = [s["elapsed_ms"] for s in lookups.values() if "elapsed_ms" in s] + \
        [s["first_answer"]["elapsed_ms"] for s in lookups.values() if "first_answer" in s]
    evidence["latency_ms"] = max(answered) if answered else None
    if plan.phonebook:
        entry = plan.phonebook
        for profile in entry["profiles"]:
            seen = _ask(probes, xivo, profile, entry["term"], plan, lambda r: _in_phonebook(r, entry))
            entry.setdefault("lookups", {})[profile] = seen
            problems += _judge_phonebook(seen, xivo, peer, profile, entry)
        evidence["phonebook"] = entry
    if problems:
        evidence["problems"] = [{k: v for k, v in p.items() if k != "text"} for p in problems]
        log = _log_lines(probes, xivo)
        if log:
            evidence["dird_log"] = log
    found = sum(bool(s.get("found")) for s in lookups.values())
    again = any("first_answer" in s for s in [*lookups.values(), *(plan.phonebook or {}).get("lookups", {}).values()])
    evidence.summary = (f"{xivo.name}'s xivo-dird finds {plan.user_words} of {peer.name} (xivo_id {plan.peer_uuid}) "
                        f"in {found} profile(s) in {evidence['latency_ms']} ms"
                        + ("; and its phonebook entry" if plan.phonebook else "")
                        + (f"; asked a second time after a first answer at dird's {plan.timeout_s:g} s timeout"
                           if again else ""))
    assert not problems, "; ".join(p["text"] for p in problems)


def _ask(probes, xivo, profile: str, term: str, plan: Plan, wanted) -> dict:
    """dird's answer, judged on a second one when the first came at dird's source timeout without what
    is wanted. That answer is true (dird drops a source still running at its timeout, wazo-dird
    xivo_dird/plugins/lookup.py, 2.9 s from 15.20), but it says how busy the XiVO was at that moment,
    not how it is configured: the first search after dird starts also fetches each peer's UUID
    (xivo_user_plugin `_get_uuid`), and the doctor's own run sends all its lookups at once. A second
    answer at the timeout is judged as slow; the first is kept in the evidence and in the latency."""
    seen = _lookup(probes, xivo, profile, term)
    if not _at_timeout(seen, plan) or any(wanted(r) for r in seen["_results"]):
        return seen
    again = _lookup(probes, xivo, profile, term, attempt=2)
    again["first_answer"] = {"elapsed_ms": seen["elapsed_ms"], "results": seen["results"], "sources": seen["sources"]}
    return again


def _at_timeout(seen: dict, plan: Plan) -> bool:
    """dird answered when its timeout ran out: a source still searching was dropped without a word."""
    return bool(plan.timeout_s) and seen.get("status") == 200 and seen["elapsed_ms"] >= plan.timeout_s * 1000 - 100


def _lookup(probes, xivo, profile: str, term: str, attempt: int = 1) -> dict:
    """dird's answer as evidence: status, what came back, or why nothing answered."""
    try:
        answer = probes.dird.lookup(xivo, profile, term, attempt)
    except ProbeError as exc:
        if "refused" not in exc.detail:  # a timeout: a firewall, or a hung dird, is not told apart
            raise
        return {"term": term, "refused": exc.detail.removeprefix("cannot connect: ")}
    results = answer["results"]
    return {"term": term, "status": answer["status"], "reason": answer["reason"], "elapsed_ms": answer["elapsed_ms"],
            "results": len(results), "sources": sorted({str(r.get("source")) for r in results}),
            "xivo_ids": sorted({str((r.get("relations") or {}).get("xivo_id")) for r in results}),
            "_results": results}


def _judge(seen: dict, xivo, peer, profile: str, plan: Plan) -> list[dict]:
    results = seen.pop("_results", [])
    base = {"peer": peer.name, "profile": profile}
    where = f"{xivo.name}'s xivo-dird (profile {profile!r}, term {seen['term']!r})"
    if "refused" in seen:
        return [{**base, "kind": "refused", "text": f"nothing answers xivo-dird's port {xivo.dird.port} on "
                 f"{xivo.name} ({seen['refused']}): xivo-dird is stopped, or listens elsewhere"}]
    status = seen["status"]
    if status in (401, 403):
        acl = f"dird.directories.lookup.{profile.replace('.', '_')}.read"
        raise ProbeError(f"xivo-dird of {xivo.name}", f"refused the doctor's token (HTTP {status}: {seen['reason']}): "
                         f"give the web services user {xivo.auth.username!r} the ACL {acl} (or "
                         "dird.directories.lookup.*.read)")
    if status == 404:
        return [{**base, "kind": "profile", "text": f"{where} answered 404 ({seen['reason']}): dird has no such "
                 "profile, though the tables make one: it has not been restarted since"}]
    if status == 503:
        return [{**base, "kind": "auth", "text": f"{where} answered 503 ({seen['reason']}): dird cannot reach "
                 f"its xivo-auth (localhost:9497 on {xivo.name}), so every search of its users fails"}]
    if status != 200:
        return [{**base, "kind": "status", "status": status, "text": f"{where} answered HTTP {status} "
                 f"({seen['reason'] or 'no reason'})"}]
    mine = [r for r in results if _is(r, plan)]
    seen["found"] = bool(mine)
    if mine:
        _compact(seen, f"{mine[0].get('source')}, user_id {(mine[0].get('relations') or {}).get('user_id')}")
        return []
    stale = sorted({str((r.get("relations") or {}).get("xivo_id")) for r in results
                    if _names_user(r, plan) and (r.get("relations") or {}).get("xivo_id") != plan.peer_uuid})
    why = (f"; a result names that user with xivo_id {', '.join(stale)}: dird keeps the UUID it first read "
           f"from {peer.name} until it restarts" if stale else "")
    if _at_timeout(seen, plan):
        first = seen.get("first_answer")
        twice = f" (and {first['elapsed_ms']:.0f} ms when first asked)" if first else ""
        why += f"; dird answered after {seen['elapsed_ms']:.0f} ms{twice}: a source slower than " \
               f"{plan.timeout_s:g} s is dropped without a word"
    return [{**base, "kind": "stale" if stale else "not-found",
             "text": f"{where} " + (f"answered {len(results)} result(s), none is" if results else
                                     "answered no result, so not") + f" {plan.user_words} of {peer.name} with "
                     f"xivo_id {plan.peer_uuid}{why}; the tables are right (directory-source passes), so "
                     f"dird runs with another configuration than theirs, or its {peer.name} source fails at "
                     f"run time: its log says which"}]


def _compact(seen: dict, found: str) -> None:
    """A lookup that found what it looked for keeps what a reader needs (a report of ten XiVOs holds
    90 of them): its status, time, count and where the user was found; a failed one keeps it all."""
    for key in ("reason", "sources", "xivo_ids", "term"):
        seen.pop(key, None)
    seen["found"] = found


def _is(result: dict, plan: Plan) -> bool:
    relations = result.get("relations") or {}
    if relations.get("xivo_id") != plan.peer_uuid:
        return False
    return str(relations.get("user_id")) == str(plan.user["id"]) or (
        bool(plan.user.get("uuid")) and relations.get("user_uuid") == plan.user["uuid"])


def _names_user(result: dict, plan: Plan) -> bool:
    return str((result.get("relations") or {}).get("user_id")) == str(plan.user["id"]) and \
        result.get("source") in plan.source_names


def _in_phonebook(result: dict, entry: dict) -> bool:
    return result.get("source") in entry["sources"] and \
        any(entry["term"].lower() in str(v).lower() for v in result.get("column_values") or ())


def _judge_phonebook(seen: dict, xivo, peer, profile: str, entry: dict) -> list[dict]:
    results = seen.pop("_results", [])
    if "refused" in seen or seen.get("status") != 200:
        return []  # said by the user lookup of the same profile
    mine = [r for r in results if _in_phonebook(r, entry)]
    seen["found"] = bool(mine)
    if mine:
        _compact(seen, str(mine[0].get("source")))
        return []
    return [{"peer": peer.name, "profile": profile, "kind": "phonebook",
             "text": f"{xivo.name}'s xivo-dird (profile {profile!r}) does not find {entry['words']} of {peer.name}'s "
                     f"phonebook through {', '.join(entry['sources'])} ({len(results)} result(s)); json.php answers "
                     "it (phonebook-restricted passes), so dird's phonebook source fails at run time or dird has "
                     "not been restarted since the directory changed"}]


def _log_lines(probes, xivo) -> list[str]:
    """The last lines of xivo-dird's log saying why a source or a profile failed, where the log can be
    read (on-box or over SSH); [] otherwise."""
    if not probes.onbox.has_root(xivo):
        return []
    try:
        text = probes.onbox.read_file(xivo, LOG) or ""
    except ProbeError:
        return []
    lines = [line for line in text.splitlines()[-400:] if any(m in line for m in LOG_MARKERS)]
    return [line[:300] for line in lines[-5:]]


def _warm_up(w: WarmUp) -> None:
    """Each XiVO's token (one chain per XiVO), then every lookup its items will make (the users', the
    phonebook's), each in the run's pool: dird takes up to its 2.9 s timeout for one."""
    by_xivo: dict[str, list] = {}
    for pair in w.pairs:
        by_xivo.setdefault(pair.xivo.name, []).append(pair)
    for pairs in by_xivo.values():
        w.chain([lambda pairs=pairs: _warm(w, pairs)])


def _warm(w: WarmUp, pairs) -> None:
    probes = w.probes
    for pair in pairs:
        xivo = pair.xivo
        if probes.passive or not xivo.auth.username or not xivo.auth.password:
            return
        try:
            version = probes.version.at_hand(xivo).version
            plan = plan_for(probes, w.topology, xivo, pair.peer, release(version))
            if probes.dird.token(xivo, plan.backend)["status"] != 200:
                return
        except Exception:  # the check meets the same failure and reports it
            continue
        asked = [(p, plan.term) for p in plan.profiles]
        asked += [(p, plan.phonebook["term"]) for p in plan.phonebook["profiles"]] if plan.phonebook else []
        for profile, term in asked:
            w.submit(lambda xivo=xivo, profile=profile, term=term: probes.dird.lookup(xivo, profile, term))
