"""What xivo-confgend generates for xivo-dird from a node's `asterisk` tables, as each release's does.

Place in the lab: part of the xivo-dird stand-in (`standins.dird` calls `confgend` once, at start, as
dird runs `xivo-confgen dird/{sources,services,views}.yml` through its three conf.d `!exec` files).
Generation reads the tables through a query function (`Database`, or any callable taking SQL and
parameters); a missing table counts as a missing row. `confgend` adds xivo-confgend's cache: a file
generated is written to `/var/lib/xivo-confgend/dird/<file>` under the node root, a file whose
generation fails is served from there, or not at all (docs/research-directory-lookup.md §1).

Upstream (xivo-confgend `xivo_confgen/dird.py`, `plugins/dird_sources.py` from 16.13; xivo-dao
`directory_dao`, `cti_displays_dao`, `cti_context_dao`, `cti_reverse_dao`, `cti_main_dao`), each
behaviour cited where it is coded. Not generated: LDAP sources (the lab has no `ldapfilter` tables;
each is skipped with xivo-dao's `Skipping LDAP source <name>`).
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import yaml

from xivo_doctor.lab import releases, releases_lookup

FILES = ("sources.yml", "services.yml", "views.yml")
CACHE = "/var/lib/xivo-confgend/dird"
PERSONAL = ["personal"]  # _LookupServiceMixin._default_sources (dird.py, every tag)
Query = Callable[..., list[tuple[Any, ...]]]
dao_log = logging.getLogger("xivo_dao.directory_dao")
confgend_log = logging.getLogger("xivo_confgen.confgen")


class MissingTable(LookupError):
    pass


class Database:
    """The node's `asterisk` database, one connection for a whole generation (autocommit: a failed
    query does not spoil the next). Connects at the first query, so that a database down fails each
    file as confgend's handler fails (and the cache answers)."""

    def __init__(self, db_uri: str) -> None:
        self.db_uri = db_uri
        self.conn: psycopg.Connection | None = None

    def __call__(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        if self.conn is None:
            self.conn = psycopg.connect(self.db_uri, connect_timeout=3, autocommit=True)
        try:
            return self.conn.execute(sql, params).fetchall()
        except psycopg.errors.UndefinedTable as e:
            raise MissingTable(str(e).strip()) from e

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def _rows(query: Query, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    """The rows of `sql`; none when its table does not exist (the lab's schema may lack a table a XiVO has)."""
    try:
        return query(sql, params)
    except MissingTable:
        return []


def _join(release: str) -> str:
    # ctidirectories names its directory by the URI string up to 16.12, by directory_id from 16.13
    # (xivo-dao directory_dao.py@xivo-15.19 `Directories.uri == CtiDirectories.uri`; @xivo-16.13 the FK, 9bb84328)
    return "d.id = c.directory_id" if releases.ctidirectories_by_id(release) else "d.uri = c.uri"


def context_separation(query: Query, release: str) -> bool:
    """`bool(cti_main_dao.get_config()['main']['context_separation'])`, from 15.20
    (wazo-platform/xivo-confgend:xivo_confgen/dird.py@xivo-15.20 `DirdFrontend.__getattr__`): with no
    `ctimain` row the attribute read on None raises, and the file fails."""
    if not releases_lookup.dird_context_separation(release):
        return False
    rows = _rows(query, "SELECT context_separation FROM ctimain LIMIT 1")
    if not rows:
        raise AttributeError("'NoneType' object has no attribute 'cti_ip'")  # cti_main_dao.get_config on no row
    return bool(rows[0][0])


def profiles(query: Query, release: str) -> dict[str, dict[str, Any]]:
    """cti_displays_dao.get_profile_configuration: cticontexts inner-joined to ctidisplays by name; sources =
    `directories.split(',')`, not stripped; from 15.20 each source's type (its directory's dirtype, else
    'ldap'), joined as definitions are (wazo-platform/xivo-dao:xivo_dao/cti_displays_dao.py@xivo-15.19,
    @xivo-15.20, @xivo-16.13)."""
    result = {name: {"display": display, "sources": directories.split(",") if directories else []}
              for name, display, directories in _rows(
                  query, "SELECT c.name, d.name, c.directories FROM ctidisplays d JOIN cticontexts c"
                         " ON c.display = d.name ORDER BY c.id, d.id")}
    if releases_lookup.dird_context_separation(release):
        kinds = _types(query, release, sorted({s for p in result.values() for s in p["sources"]}))
        for profile in result.values():
            profile["types"] = [kinds.get(name, "ldap") for name in profile["sources"]]
    return result


def _types(query: Query, release: str, names: list[str]) -> dict[str, str]:
    if not names:
        return {}
    return {name: dirtype for name, dirtype in _rows(
        query, f"SELECT c.name, d.dirtype FROM ctidirectories c JOIN directories d ON {_join(release)}"
               " WHERE c.name = ANY(%s) ORDER BY c.id, d.id", (names,))}


def context_names(query: Query) -> list[str]:
    """cti_context_dao.get_context_names: every cticontexts row, display or not."""
    return [row[0] for row in _rows(query, "SELECT name FROM cticontexts ORDER BY id")]


def raw_sources(query: Query, release: str) -> list[dict[str, Any]]:
    """directory_dao.get_all_sources, its non-LDAP part (wazo-platform/xivo-dao:xivo_dao/directory_dao.py
    @xivo-15.19, @xivo-16.13
    `_get_nonldap_sources`): definitions inner-joined to directories, match_* parsed as JSON (any
    non-JSON fails the file), fields as format_columns."""
    by_id = releases.ctidirectories_by_id(release)
    extra = ", d.dird_tenant, d.dird_phonebook" if by_id else ", NULL, NULL"
    where = " WHERE d.dirtype != 'ldapfilter'" if by_id else ""
    rows = _rows(query, "SELECT c.id, c.name, d.dirtype, d.uri, c.delimiter, c.match_direct, c.match_reverse,"
                        " d.xivo_username, d.xivo_password, d.xivo_verify_certificate, d.xivo_custom_ca_path"
                        f"{extra} FROM ctidirectories c JOIN directories d ON {_join(release)}{where}"
                        " ORDER BY c.id, d.id")
    fields: dict[int, dict[str, Any]] = {}
    for dir_id, fieldname, value in _rows(query, "SELECT dir_id, fieldname, value FROM ctidirectoryfields"
                                                 " ORDER BY dir_id, fieldname"):
        fields.setdefault(dir_id, {})[fieldname] = value
    sources = []
    for (cid, name, dirtype, uri, delimiter, direct, reverse, username, password, verify, ca_path,
         tenant, phonebook) in rows:
        source = {"name": name, "type": dirtype, "uri": uri, "delimiter": delimiter,
                  "searched_columns": json.loads(direct or "[]"),
                  "first_matched_columns": json.loads(reverse or "[]"),
                  "format_columns": fields.get(cid, {})}
        if dirtype == "xivo":
            source.update(xivo_username=username, xivo_password=password, xivo_verify_certificate=verify,
                          xivo_custom_ca_path=ca_path)
        elif dirtype == "dird_phonebook":
            source.update(dird_tenant=tenant, dird_phonebook=phonebook)
        sources.append(source)
    ldap = ("SELECT c.name FROM ctidirectories c JOIN directories d ON d.id = c.directory_id"
            " WHERE d.dirtype = 'ldapfilter'" if by_id else
            "SELECT name FROM ctidirectories WHERE uri LIKE 'ldapfilter://%'")
    for (name,) in _rows(query, ldap):
        dao_log.warning("Skipping LDAP source %s", name)  # _get_ldap_sources: no such filter (LookupError)
    return sources


def confd_config(source: dict[str, Any]) -> dict[str, Any]:
    """`_format_confd_config` (wazo-platform/xivo-confgend:xivo_confgen/dird.py@xivo-15.19,
    plugins/dird_sources.py@xivo-16.15): the URI split at
    '://' then at the first ':'; `int(port)` (a path, a trailing '/', an IPv6 literal: ValueError, the
    whole file fails); https only for the scheme `https`; credentials only when both are set."""
    scheme, _, end = source["uri"].partition("://")  # a NULL uri: AttributeError, the file fails
    host, _, port = end.partition(":")
    config: dict[str, Any] = {"https": scheme == "https", "host": host, "timeout": 4, "version": "1.1",
                              "verify_certificate": (source["xivo_custom_ca_path"] or True)
                              if source["xivo_verify_certificate"] else False}
    if port:
        config["port"] = int(port)
    if source["xivo_username"] and source["xivo_password"]:
        config["username"], config["password"] = source["xivo_username"], source["xivo_password"]
    return config


def format_source(source: dict[str, Any]) -> dict[str, Any]:
    """`_format_source` and the per-type `_format_*_source` of the same files."""
    kind = source["type"]
    config = {"type": kind, "name": source["name"], "searched_columns": source["searched_columns"],
              "first_matched_columns": source["first_matched_columns"], "format_columns": source["format_columns"]}
    if kind == "xivo":
        config.update(unique_column="id", confd_config=confd_config(source))
    elif kind == "phonebook":
        config.update(phonebook_url=source["uri"], phonebook_timeout=4)
    elif kind == "csv":
        config.update(file=source["uri"].partition("file://")[2], separator=source["delimiter"])
    elif kind == "csv_ws":
        config.update(delimiter=source["delimiter"], lookup_url=source["uri"])
    elif kind == "dird_phonebook":
        config.update(tenant=source["dird_tenant"], phonebook_name=source["dird_phonebook"], db_uri=source["uri"])
    return config


def _source_name(profile: str, name: str, kind: str) -> str:
    # _ContextSeparatedMixin.source_name: only `xivo` sources are separated (dird.py@xivo-15.20)
    return f"{name}_{profile}" if kind == "xivo" else name


def sources_yml(query: Query, release: str) -> dict[str, Any]:
    """`{sources: ...}` of the release's supported types; with context separation each `xivo` source
    becomes one `<name>_<profile>` per cticontexts row, with `extra_search_params.context`, and the
    plain name is not emitted (`_ContextSeparatedSourceGenerator`, dird.py@xivo-15.20, dird_sources.py@16.13)."""
    raw = raw_sources(query, release)  # dird_sources.py@xivo-16.13 reads the sources before ctimain
    separated = context_separation(query, release)
    supported = releases_lookup.dird_source_types(release)
    generated = dict((s["name"], format_source(s)) for s in raw if s["type"] in supported)
    if not separated:
        return {"sources": generated}
    result: dict[str, Any] = {}
    names = context_names(query)
    for name, config in generated.items():
        if config["type"] != "xivo":
            result[name] = config
            continue
        for profile in names:
            copy = dict(config, name=_source_name(profile, name, "xivo"), extra_search_params={"context": profile})
            result[copy["name"]] = copy
    return {"sources": result}


def reverse_sources(query: Query, release: str) -> Any:
    """cti_reverse_dao.get_config: the JSON of the first row's `directories`; no row fails up to 16.14
    (`rows.first().directories` on None), 16.15 skips '' rows and takes []
    (wazo-platform/xivo-dao:xivo_dao/cti_reverse_dao.py@xivo-15.19, @xivo-16.14, @xivo-16.15; 4352bde5)."""
    if releases_lookup.dird_reverse_row_required(release):
        rows = _rows(query, "SELECT directories FROM ctireversedirectories LIMIT 1")
        if not rows:
            raise AttributeError("'NoneType' object has no attribute 'directories'")
        return json.loads(rows[0][0])
    rows = _rows(query, "SELECT directories FROM ctireversedirectories WHERE directories != '' LIMIT 1")
    return json.loads(rows[0][0]) if rows else []


def services_yml(query: Query, release: str) -> dict[str, Any]:
    """`{services: {lookup, favorites, reverse}}` (`services_yml`, wazo-platform/xivo-confgend:
    xivo_confgen/dird.py@xivo-15.19, @xivo-15.20..@xivo-16.15):
    one lookup and favorites entry per profile, its sources + `personal` (suffixed under context
    separation), the lookup timeout from 15.20; reverse for profile `default` only, timeout 1."""
    separated = context_separation(query, release)  # DirdFrontend.__getattr__ runs first (15.20+)
    config = profiles(query, release)
    reverse = reverse_sources(query, release)
    timeout = releases_lookup.dird_lookup_timeout(release)

    def entry(profile: str, conf: dict[str, Any]) -> dict[str, Any]:
        names = ([_source_name(profile, s, t) for s, t in zip(conf["sources"], conf["types"], strict=False)]
                 if separated else list(conf["sources"]))
        return {"sources": names + PERSONAL, **({"timeout": timeout} if timeout is not None else {})}

    lookups = {profile: entry(profile, conf) for profile, conf in config.items()}
    if not isinstance(reverse, list):
        raise TypeError(f"can only concatenate list (not {type(reverse).__name__!r}) to list")
    if separated:
        kinds = _types(query, release, sorted(set(reverse)))
        reverse = [_source_name("default", s, kinds.get(s, "ldap")) for s in reverse]
    return {"services": {"lookup": lookups, "favorites": {p: dict(v) for p, v in lookups.items()},
                         "reverse": {"default": {"sources": reverse + PERSONAL, "timeout": 1}}}}


def views_yml(query: Query, release: str) -> dict[str, Any]:
    """`{views: {displays, profile_to_display, profile_to_display_phone}}` (`_DisplayGenerator`,
    `_AssociationGenerator`, `_PhoneAssociationGenerator`, wazo-platform/xivo-confgend:xivo_confgen/dird.py
    @xivo-15.19..@xivo-16.15): each display's
    columns in the order of its JSON keys sorted as text, `[title, type, default, field]` with a
    default '' as null (a non-JSON data or a line shorter than 3 fails the file)."""
    context_separation(query, release)  # every file goes through DirdFrontend.__getattr__ (15.20+)
    displays = {}
    for name, data in _rows(query, "SELECT name, data FROM ctidisplays ORDER BY id"):
        columns = json.loads(data)
        if not isinstance(columns, dict):  # `column_configs.iterkeys()`
            raise AttributeError(f"'{type(columns).__name__}' object has no attribute 'iterkeys'")
        lines = []
        for column in sorted(columns):
            line = columns[column]
            if not isinstance(line, list):  # item assignment on the JSON value
                raise TypeError(f"'{type(line).__name__}' object does not support item assignment")
            line[2] = line[2] or None
            lines.append(dict(zip(("title", "type", "default", "field"), line, strict=False)))
        displays[name] = lines
    associations = {profile: conf["display"] for profile, conf in profiles(query, release).items()}
    return {"views": {"displays": displays, "profile_to_display": associations,
                      "profile_to_display_phone": {name: "default" for name in context_names(query)}}}


GENERATORS: dict[str, Callable[[Query, str], dict[str, Any]]] = {
    "sources.yml": sources_yml, "services.yml": services_yml, "views.yml": views_yml}


def confgend(root: Path, query: Query, release: str) -> dict[str, dict[str, Any]]:
    """What dird reads from each `!exec xivo-confgen dird/<file>`: the generated file, written to the
    cache; on failure the cached copy, or {} when there is none (wazo-platform/xivo-confgend:
    xivo_confgen/confgen.py@xivo-15.19 `_write_response`, @xivo-16.15 `ConfgendFactory.generate`; what
    the client gives then is [NOT CONFIRMED], §1.1). Logged to xivo-confgend.log as the release words it."""
    result: dict[str, dict[str, Any]] = {}
    for name, generate in GENERATORS.items():
        key, cache = f"dird/{name}", Path(root) / CACHE.lstrip("/") / name
        started = time.monotonic()
        try:
            text = yaml.safe_dump(generate(query, release))
        except Exception as e:  # any exception fails the file, as in confgend
            if releases_lookup.confgend_logs_errors(release):
                confgend_log.error("unexpected error raised by handler", exc_info=True)
            else:  # printed into twistd's log: the error, then its traceback
                confgend_log.error("%s\n%s", e, traceback.format_exc().rstrip())
            confgend_log.info("cache hit on %s", key)
            try:
                text = cache.read_text()
            except OSError:
                confgend_log.warning("No cached content for %s" if releases_lookup.confgend_logs_errors(release)
                                     else "No such configuration for %s", key)
                result[name] = {}
                continue
        else:
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(text)
        confgend_log.info("serving %s in %.3f seconds", key, time.monotonic() - started)
        result[name] = yaml.safe_load(text) or {}  # parse_config_file: `data if data else {}`
    return result
