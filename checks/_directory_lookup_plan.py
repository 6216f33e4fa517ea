"""directory-lookup's plan: whom to look up, with which term, in which profiles, with which token.

Place in the pipeline: the checks; a private part of checks/directory_lookup.py (a `_*.py` file is not a
check). From the tables where the doctor has them, as xivo-confgend makes dird's profiles of them
(xivo/dird_sources.py): the profiles (CTI contexts with a display) listing a definition of the peer's
`xivo` directory, the definition's Direct match columns (dird keeps a user only when the term is in
one of them: xivo_user_plugin.py `search`), the source names (`<name>_<profile>` under context
separation, research §1.3). Without this XiVO's database: the profile `default`, which dird always
has (its shipped config.yml, research §1.1). The user: the peer's database, else its xivo-confd.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from xivo_doctor.check import not_applicable
from xivo_doctor.foundation.errors import ProbeError
from xivo_doctor.xivo import dird_sources as ds
from xivo_doctor.xivo.directories import by_peer, served_uuid
from xivo_doctor.xivo.releases import Release

NAME_COLUMNS = ("lastname", "firstname")


@dataclass
class Plan:
    backend: str  # xivo-auth backend of the release at hand
    user: dict[str, Any]
    user_source: str
    peer_uuid: str
    uuid_source: str
    profiles: list[str]
    term: str
    source_names: set[str] = field(default_factory=set)
    timeout_s: float | None = 2.9
    notes: list[str] = field(default_factory=list)
    phonebook: dict[str, Any] | None = None

    @property
    def user_words(self) -> str:
        name = " ".join(str(self.user.get(k) or "") for k in ("firstname", "lastname")).strip()
        return f"{name or 'a user'} (id {self.user['id']})"

    def evidence(self) -> dict[str, Any]:
        out = {"user": f"{self.user_words}, read from {self.user_source}",
               "peer_uuid": f"{self.peer_uuid} ({self.uuid_source})", "profiles": self.profiles, "term": self.term}
        if self.notes:
            out["notes"] = self.notes
        return out


def plan_for(probes, topology, xivo, peer, rel: Release | None) -> Plan:
    user, user_source = _someone(probes, peer)
    uuid, uuid_source = served_uuid(probes.onbox.uuid_readings(peer))
    if uuid is None:
        raise ProbeError(f"the UUID of {peer.name}", "not read from its database, xivo-ctid or Consul")
    plan = Plan(backend=rel.auth_backend if rel else "xivo_service", user=user, user_source=user_source,
                peer_uuid=uuid, uuid_source=uuid_source, profiles=["default"], term="",
                timeout_s=rel.lookup_timeout_s if rel else 2.9)
    if rel is None:
        plan.notes.append(f"{xivo.name}'s version is not known: asked xivo-auth with the xivo_service backend "
                          "(16.01 and later)")
    columns: list[str] = []
    if probes.onbox.has_database(xivo):
        contexts = probes.onbox.cticontexts(xivo)
        displays = [d["name"] for d in probes.onbox.ctidisplays(xivo)]
        profiles: dict[str, None] = {}
        for d in _peer_definitions(probes, topology, xivo, peer, "xivo"):
            listed, _ = ds.listing_contexts(d["name"], contexts, displays)
            for p in listed:
                profiles.setdefault(p, None)
                plan.source_names |= {d["name"], f"{d['name']}_{p}"}
            with contextlib.suppress(ds.SourcesFileError):  # directory-source says it
                columns += ds.searched_columns(ds.parse_columns(d.get("match_direct")))
        if not profiles:
            not_applicable(f"no profile of {xivo.name} searches {peer.name}'s xivo directory (directory-source "
                           "says why): there is nothing to ask xivo-dird")
        plan.profiles = list(profiles)
        plan.phonebook = _phonebook_plan(probes, topology, xivo, peer, rel, contexts, displays)
    else:
        plan.notes.append(f"{xivo.name}'s profiles were not read (no database access): asked the profile "
                          "`default`, which xivo-dird always has")
    plan.term = _term(user, columns)
    return plan


def _peer_definitions(probes, topology, xivo, peer, dirtype: str) -> list[dict]:
    rows = probes.onbox.directories(xivo)
    definitions = probes.onbox.ctidirectories(xivo)
    remote, _ = by_peer(rows, dirtype, xivo, topology, probes.addresses)
    return [d for row, p in remote if p.name == peer.name for d in ds.definitions_of(row, definitions)]


def _term(user: dict[str, Any], columns: list[str]) -> str:
    """A name of the user that dird's filter keeps: in a searched column (a mapped `name` holds both)."""
    searched = [c for c in NAME_COLUMNS if c in columns]  # the last name first: fewer namesakes
    for column in searched + [c for c in NAME_COLUMNS if c not in searched]:
        if str(user.get(column) or "").strip():
            return str(user[column]).strip()
    return ""


def _someone(probes, peer) -> tuple[dict[str, Any], str]:
    """A user of the peer with a name: its database where the doctor reads it, else its xivo-confd."""
    if probes.onbox.has_database(peer):
        users, source = probes.onbox.users(peer), probes.onbox.database_source(peer)
    else:
        users, source = probes.web.confd_users(peer), f"{peer.name}'s xivo-confd /1.1/users"
    named = [u for u in users if any(str(u.get(c) or "").strip() for c in NAME_COLUMNS)]
    if not named:
        not_applicable(f"{peer.name} has no user with a name ({source}): there is nobody to look up; the check "
                       f"runs once {peer.name} has a user")
    return named[0], source


def _phonebook_plan(probes, topology, xivo, peer, rel, contexts, displays) -> dict[str, Any] | None:
    """The peer's phonebook entry to find through this XiVO's phonebook source, where dird has the
    `phonebook` backend (≤ 16.13), Phonebook Sharing is declared and the entry can be read; else None."""
    if rel is None or not rel.dird_phonebook_backend or not xivo.webservices.phonebook_sharing:
        return None
    if not probes.onbox.has_database(peer):
        return None
    defs = _peer_definitions(probes, topology, xivo, peer, "phonebook")
    if not defs:
        return None
    try:
        entries = probes.onbox.phonebook_entries(peer)
    except ProbeError:
        return None  # no phonebook table (≥ 16.14 peer): phonebook-restricted says what applies
    entry = next((e for e in entries if str(e.get("lastname") or "").strip()), None)
    if entry is None:
        return None
    profiles: dict[str, None] = {}
    for d in defs:
        for p in ds.listing_contexts(d["name"], contexts, displays)[0]:
            profiles.setdefault(p, None)
    if not profiles:
        return None
    # a phonebook result carries no xivo_id (its relations are null, research §4): found by name
    words = f"{entry.get('firstname') or ''} {entry['lastname']}".strip()
    return {"words": words, "term": str(entry["lastname"]).strip(), "sources": sorted(d["name"] for d in defs),
            "profiles": list(profiles)}
