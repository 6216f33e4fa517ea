"""How xivo-confgend turns a XiVO's directory tables into xivo-dird's sources and profiles, and the
request dird's `xivo` backend then sends to the peer's xivo-confd.

Place in the pipeline: XiVO facts for `directory-source` (no I/O). Each function does what the
daemon's code does, cited per fact; the checks judge from it, not from the manual's wording:

- confgend builds each `xivo` source's confd client from the directory's URI (`_format_confd_config`:
  wazo-platform/xivo-confgend xivo_confgen/dird.py@xivo-15.19..xivo-16.12, then
  xivo_confgen/plugins/dird_sources.py@xivo-16.13..xivo-16.15, same code at every tag);
- the client asks `{scheme}://{host}:{port}/1.1/infos` (wazo-platform/xivo-lib-rest-client
  xivo_lib_rest_client/client.py `BaseClient.url`, wazo-platform/wazo-confd-client
  xivo_confd_client/client.py `ConfdClient(port=9486)`, commands/infos.py);
- any exception while generating fails the whole `dird/sources.yml`: confgend then serves its last
  cached copy (xivo_confgen/confgen.py@xivo-16.13 `_get_cached_content`, "cache hit on ..."), so
  every directory of the XiVO stays as it was when the file last generated;
- definitions join directories on the URI string up to 16.12, on `directory_id` from 16.13
  (wazo-platform/xivo-dao xivo_dao/directory_dao.py@xivo-16.12 vs @xivo-16.13; xivo-manage-db
  migration 15b236bd8060 at 16.13 replaces `ctidirectories.uri` by `directory_id`);
- a profile is a `cticontexts` row whose `display` names a `ctidisplays` row (inner join), its
  sources `directories.split(',')`, not stripped (xivo-dao xivo_dao/cti_displays_dao.py
  `get_profile_configuration`@xivo-15.19, @xivo-16.15).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from xivo_doctor.xivo.releases import release

CONFD_DEFAULT_PORT = 9486  # wazo-confd-client xivo_confd_client/client.py@xivo-15.19..16.15: ConfdClient(port=9486)
CONFD_API_VERSION = "1.1"  # xivo-confgend `confd_api_version = '1.1'` (dird.py / plugins/dird_sources.py)
CONFD_TIMEOUT_S = 4  # xivo-confgend `confd_default_timeout = 4`
# Python 2's int() (confgend is Python 2 at every tag: `iteritems`, `izip`): optional blanks and sign
# around decimal digits, no `_`.
# ASCII digits only: whether the URI reaches int() as bytes or unicode (which also takes other
# scripts' digits) was not confirmed in the source.
_PY2_INT = re.compile(r"\s*[+-]?[0-9]+\s*")


class SourcesFileError(ValueError):
    """What makes xivo-confgend fail `dird/sources.yml` as a whole (it then serves its cached copy)."""


@dataclass(frozen=True)
class ConfdConfig:
    """The `confd_config` confgend writes for a `xivo` directory, as the confd client uses it."""

    https: bool
    host: str
    port: int
    verify: bool | str  # False, True (the XiVO's system CA bundle) or the path of a CA file on the XiVO
    username: str | None  # with `password`, only when both are set (else no credentials at all)
    password: Any  # a Secret (or the text) of the directory, never shown

    def url(self, *fragments: str) -> str:
        """BaseClient.url(): '{scheme}://{host}:{port}{prefix}/{version}' (no prefix for confd)."""
        base = f"{'https' if self.https else 'http'}://{self.host}:{self.port}/{CONFD_API_VERSION}"
        return "/".join((base, *fragments)) if fragments else base


def confd_config(row: Mapping[str, Any]) -> ConfdConfig:
    """`_format_confd_config` + `_format_confd_verify_certificate` of xivo-confgend, every tag 15.19-16.15:

        scheme, _, end = uri.partition('://'); host, _, port = end.partition(':')
        https = scheme == 'https'; if port: config['port'] = int(port)

    Raises SourcesFileError where confgend raises (a text after ':' that is not a number: a path
    `https://h:9486/`, an IPv6 literal `https://[::1]:9486`, credentials `https://u:p@h`)."""
    uri = row.get("uri")
    if uri is None:  # None.partition: AttributeError in confgend
        raise SourcesFileError("its URI is empty (NULL), which xivo-confgend cannot split")
    scheme, _, end = uri.partition("://")
    host, _, port_text = end.partition(":")
    port = CONFD_DEFAULT_PORT
    if port_text:
        if not _PY2_INT.fullmatch(port_text):
            shown = "the rest" if masked(uri) != uri else f"int({port_text!r})"
            raise SourcesFileError(f"xivo-confgend splits its URI {masked(uri)} at the first ':' after the scheme "
                                   f"and reads {shown} as the port number, which fails")
        port = int(port_text)
    if row.get("xivo_verify_certificate"):
        verify: bool | str = row.get("xivo_custom_ca_path") or True
    else:
        verify = False
    credentials = bool(row.get("xivo_username") and row.get("xivo_password"))
    return ConfdConfig(https=scheme == "https", host=host, port=port, verify=verify,
                       username=row.get("xivo_username") if credentials else None,
                       password=row.get("xivo_password") if credentials else None)


def masked(uri: str | None) -> str:
    """`uri` with the user info of its authority (a password, maybe) replaced by stars."""
    scheme, sep, rest = (uri or "").partition("://")
    authority, slash, path = rest.partition("/")
    if sep and "@" in authority:
        authority = "********@" + authority.rsplit("@", 1)[1]
    return f"{scheme}{sep}{authority}{slash}{path}"


# -- definitions (ctidirectories) and the directories they join ------------------------------------

def join_column(definitions: Iterable[Mapping[str, Any]]) -> str:
    """How confgend joins definitions to directories on this XiVO, told by the columns the table has:
    "directory_id" (16.13+) or "uri" (up to 16.12). An empty table joins nothing either way."""
    rows = list(definitions)
    if any("directory_id" in d for d in rows):
        return "directory_id"
    if any("uri" in d for d in rows):
        return "uri"
    return "directory_id"


def definitions_of(directory: Mapping[str, Any], definitions: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The definitions confgend makes sources of for `directory` (xivo-dao directory_dao.py
    `_get_nonldap_sources`): `directories.uri = ctidirectories.uri` (string equality, NULL never
    matches) up to 16.12, `ctidirectories.directory_id = directories.id` from 16.13."""
    rows = list(definitions)
    if join_column(rows) == "uri":
        uri = directory.get("uri")
        return [d for d in rows if uri is not None and d.get("uri") == uri]
    return [d for d in rows if d.get("directory_id") is not None and d.get("directory_id") == directory.get("id")]


def _read_by_confgend(directories: list[Mapping[str, Any]], definitions: list[Mapping[str, Any]],
                      ) -> list[Mapping[str, Any]]:
    """The definitions confgend's two queries return (directory_dao.get_all_sources): those joined to
    a directory, and up to 16.12 those whose uri starts with `ldapfilter://` (`_get_ldap_sources`).
    From 16.13 an LDAP definition with no mapped field is left out by an inner join on
    ctidirectoryfields, which the doctor does not read: such a definition is counted here."""
    if join_column(definitions) == "uri":
        uris = {d.get("uri") for d in directories if d.get("uri") is not None}
        return [d for d in definitions if d.get("uri") in uris or str(d.get("uri") or "").startswith("ldapfilter://")]
    ids = {d.get("id") for d in directories}
    return [d for d in definitions if d.get("directory_id") is not None and d.get("directory_id") in ids]


def parse_columns(text: str | None) -> Any:
    """`json.loads(match_direct or '[]')` (same for match_reverse) in directory_dao.get_all_sources;
    SourcesFileError when it is not JSON."""
    try:
        return json.loads(text or "[]")
    except ValueError as exc:
        raise SourcesFileError(f"{text!r} is not JSON ({exc.msg})") from None


def searched_columns(value: Any) -> list[str]:
    """What dird's `xivo` backend iterates (`for column in self._searched_columns`): a list as is,
    a text letter by letter, an object by its keys; anything else raises in `search` (caught: no result)."""
    if isinstance(value, str):
        return list(value)
    if isinstance(value, list | dict):
        return [str(c) for c in value]
    return []


def sources_file_breakers(directories: Iterable[Mapping[str, Any]], definitions: Iterable[Mapping[str, Any]],
                          ) -> list[dict[str, str]]:
    """Every row that makes confgend fail the whole sources file: a definition it reads whose
    match_direct or match_reverse is not JSON, a `xivo` directory it formats (one with a definition)
    whose URI the confd config cannot be built from. [{"directory" | "definition", "reason"}]."""
    directories, definitions = list(directories), list(definitions)
    found = []
    for d in _read_by_confgend(directories, definitions):
        for column in ("match_direct", "match_reverse"):
            try:
                parse_columns(d.get(column))
            except SourcesFileError as exc:
                found.append({"definition": str(d.get("name")), "reason": f"its {column} {exc}"})
    for row in directories:
        if row.get("dirtype") == "xivo" and definitions_of(row, definitions):
            try:
                confd_config(row)
            except SourcesFileError as exc:
                found.append({"directory": str(row.get("name")), "reason": str(exc)})
    return found


# -- profiles (cticontexts joined to ctidisplays) ------------------------------------------------

def listing_contexts(definition: str, contexts: Iterable[Mapping[str, Any]], displays: Iterable[str],
                     ) -> tuple[list[str], list[tuple[str, str]]]:
    """The contexts listing `definition` (exact name: confgend does not strip), split into profiles
    (their display is a ctidisplays row) and [(context, display)] that give no profile at all."""
    names = set(displays)
    profiles, displayless = [], []
    for c in contexts:
        if definition in c.get("directory_names", ()):
            if c.get("display") in names:
                profiles.append(str(c.get("name")))
            else:
                displayless.append((str(c.get("name")), str(c.get("display"))))
    return profiles, displayless


# -- the lookup at run time ----------------------------------------------------------------------

def misses_user_uuid(local: str, peer: str) -> bool:
    """Whether a dird of `local` gets nothing from a confd of `peer`: dird ≥ 16.02 reads `entry['uuid']`
    of each user, which confd's view=directory serves from 16.02 (releases.py); a KeyError ends the
    search (wazo-dird RaiseStopper: "An error occured in search", no result)."""
    mine, theirs = release(local), release(peer)
    return bool(mine and theirs and mine.dird_needs_user_uuid and not theirs.confd_directory_uuid)


def too_slow(ms: float, version: str | None, xivo: str) -> str | None:
    """Why an answer taking `ms` is lost to a lookup of dird `version` on `xivo`, None when it is not:
    the confd client gives up at 4 s at every release; the lookup waits 2.9 s from 15.20, every
    source at 15.19 (releases.py `lookup_timeout_s`); an unknown version is taken as 15.20 or later."""
    if ms > CONFD_TIMEOUT_S * 1000:
        return "past the confd client's 4 s timeout xivo-dird gets nothing from it"
    rel = release(version)
    limit = rel.lookup_timeout_s if rel else 2.9
    if limit and ms > limit * 1000:
        unsure = "" if rel else f" (XiVO 15.20 and later; {xivo}'s version is not known)"
        return f"past dird's {limit:g} s lookup timeout{unsure} its results are dropped silently"
    return None
