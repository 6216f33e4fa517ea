"""The lab's table of what each release of the daemons behind a directory lookup does differently:
xivo-dird (and the files xivo-confgend generates for it), xivo-auth, and the directory view of
xivo-confd that dird reads.

Place in the lab: beside `lab.releases` (the rest of the table; this part was split off to keep
each module readable), with the same rule: no I/O, a source for every fact. Read by the stand-ins
`standins.dird*`, `standins.auth*` and `standins.confd`, and by `faults`. The upstream sources are
docs/research-directory-lookup.md's, read at each `xivo-<version>` tag.
"""

from __future__ import annotations

from xivo_doctor.lab.releases import key

# -- xivo-dird (docs/research-directory-lookup.md)

def dird_context_separation(version: str) -> bool:
    """xivo-confgend reads `ctimain.context_separation` (and fails every dird file without a `ctimain`
    row) from 15.20 (`DirdFrontend.__getattr__`, xivo_confgen/dird.py@xivo-15.20, confgend d6c3abf);
    15.19's dird.py has no such switch (§1.3, §1.6)."""
    return key(version) >= (15, 20)


def dird_lookup_timeout(version: str) -> float | None:
    """`services.lookup.<profile>.timeout`: none at 15.19 (dird waits for every source), 2.9 from 15.20
    (xivo_confgen/dird.py@xivo-15.20 `_default_timeout`, confgend 099d954; §1.4)."""
    return None if key(version) < (15, 20) else 2.9


def dird_source_types(version: str) -> tuple[str, ...]:
    """confgend's `supported_types` for dird/sources.yml (§1.3): xivo_confgen/dird.py@xivo-15.19..16.12;
    plugins/dird_sources.py@xivo-16.13 adds dird_phonebook (a3a8bd8), @xivo-16.14 drops phonebook (4067084)."""
    if key(version) <= (16, 12):
        return ("csv", "csv_ws", "ldap", "phonebook", "xivo")
    if key(version) == (16, 13):
        return ("csv", "csv_ws", "ldap", "phonebook", "xivo", "dird_phonebook")
    return ("csv", "csv_ws", "ldap", "xivo", "dird_phonebook")


def dird_phonebook_backend(version: str) -> bool:
    """dird's `phonebook` backend (json.php) is enabled up to 16.13; its plugin and its line in
    enabled_plugins.backends are gone at 16.14 (wazo-dird etc/xivo-dird/config.yml@xivo-16.13/@xivo-16.14,
    77a6c75d; §1.6, §4)."""
    return key(version) <= (16, 13)


def dird_reverse_row_required(version: str) -> bool:
    """`cti_reverse_dao.get_config` reads `rows.first().directories`: no `ctireversedirectories` row fails
    dird/services.yml up to 16.14; 16.15 skips rows whose `directories` is '' and gives [] (xivo-dao
    4352bde5; cti_reverse_dao.py@xivo-16.14/@xivo-16.15; §1.6)."""
    return key(version) <= (16, 14)


def dird_lookup_acl(version: str) -> bool:
    """dird asks auth for `dird.directories.lookup.<profile>.read` (dots of the profile as `_`) from 16.03;
    15.19-16.02 send no scope, so any valid token passes (wazo-dird 57c026fc,
    default_json_view.py@xivo-16.03; §2.1)."""
    return key(version) >= (16, 3)


def dird_auth_verifier(version: str) -> bool:
    """16.01+: xivo-lib-python's AuthVerifier, JSON 401 `Unauthorized` / 503 `Authentication server
    unreachable` (timestamp a float); 15.19-15.20: dird's own verify_token, flask-restful's abort(401)
    and a 503 `Could not connect to authentication server on <host>:<port>: <error>` (timestamp a list)
    (xivo_dird/core/auth.py@xivo-15.19, core/rest_api.py@xivo-16.01, a9d01d49; §2.4)."""
    return key(version) >= (16, 1)


def dird_verifies_auth_certificate(version: str) -> bool:
    """dird's auth client verifies xivo-auth's certificate from 16.08 (config.yml `auth.verify_certificate:
    /usr/share/xivo-certs/server.crt`, client default True); up to 16.07 the client default is False
    (wazo-dird etc/xivo-dird/config.yml@xivo-16.08, wazo-auth-client client.py@xivo-16.08; §2.1)."""
    return key(version) >= (16, 8)


def dird_user_uuid_relation(version: str) -> bool:
    """`relations.user_uuid` = the confd entry's `uuid` from 16.02 (KeyError against a peer whose confd
    has no `uuid`); absent before (wazo-dird 7d09022b, source_result.py@xivo-16.02; §2.3, §3.4)."""
    return key(version) >= (16, 2)


def dird_xivo_valid_keys(version: str) -> tuple[str, ...]:
    """The confd entry's keys the `xivo` backend keeps as fields (`_valid_keys`): `email` from 16.02
    (wazo-dird 08a30b0f, xivo_user_plugin.py@xivo-15.19/@xivo-16.02; §3.4)."""
    keys = ("id", "exten", "firstname", "lastname", "userfield", "description", "mobile_phone_number",
            "voicemail_number")
    return (*keys, "email") if key(version) >= (16, 2) else keys


def dird_none_as_text(version: str) -> bool:
    """The `xivo` backend's search matches a None field as the text 'none' up to 16.13 (`unicode(value)`);
    16.14+ uses '' (wazo-dird af6b6b3b, xivo_user_plugin.py@xivo-16.14; §3.4)."""
    return key(version) <= (16, 13)


def dird_favorites_strict(version: str) -> bool:
    """From 16.07 a lookup profile missing from `services.favorites` raises NoSuchProfileException in
    `favorite_ids`, uncaught: HTTP 500; up to 16.06 the consul-based favourites only warn (wazo-dird
    2aa098e8, favorites_service.py@xivo-16.07; §2.4)."""
    return key(version) >= (16, 7)


def dird_default_phone_sources(version: str) -> list[str]:
    """config.yml's `services.lookup.default_phone.sources`: `xivodir, internal` up to 16.13, `internal`
    from 16.14 (wazo-dird etc/xivo-dird/config.yml@xivo-16.13/@xivo-16.14)."""
    return ["xivodir", "internal"] if key(version) <= (16, 13) else ["internal"]


def dird_missing_term(version: str) -> str:
    """flask-restful's reqparse message for the missing `term` (help 'term is missing'): 0.3.4 up to
    16.01 `(help)  Missing required parameter in the query string`, 0.3.5 from 16.02 the help alone
    (wazo-dird requirements.txt@xivo-16.01/@xivo-16.02; flask-restful reqparse.py@0.3.4/@0.3.5
    `handle_validation_error`). Pins read, packages not: [INFERRED]."""
    if key(version) <= (16, 1):
        return "(term is missing)  Missing required parameter in the query string"
    return "term is missing"


def dird_view_logger(version: str) -> str:
    """The logger of `Lookup for <t> with profile <p>`: the view module, moved at 16.15 (wazo-dird
    47a43018; §2.6)."""
    if key(version) >= (16, 15):
        return "xivo_dird.plugins.views.default_json.default_json_view"
    return "xivo_dird.plugins.default_json_view"


def confgend_logs_errors(version: str) -> bool:
    """xivo-confgend logs `unexpected error raised by handler` / `No cached content for <key>` from 16.10
    (ea5157b, 55afb4a); up to 16.09 it prints the error and `No such configuration for <key>` into
    twistd's log, the same /var/log/xivo-confgend.log (confgen.py@xivo-15.19, debian/xivo-confgend.init;
    §1.1)."""
    return key(version) >= (16, 10)


# -- xivo-auth (docs/research-directory-lookup.md)

def auth_backends(version: str) -> tuple[str, ...]:
    """`enabled_plugins` of the shipped etc/xivo-auth/config.yml (wazo-auth, each tag): 15.19-15.20 list
    xivo_ws beside xivo_admin, xivo_service, xivo_user; 16.01 drops xivo_ws (b3959a85); 16.02 adds
    ldap_user (§5.3)."""
    if key(version) < (16, 1):
        return ("xivo_admin", "xivo_service", "xivo_user", "xivo_ws")
    if key(version) < (16, 2):
        return ("xivo_admin", "xivo_service", "xivo_user")
    return ("ldap_user", "xivo_admin", "xivo_service", "xivo_user")


def auth_ws_backend(version: str) -> str:
    """The backend that checks a web services user (`accesswebservice` login/passwd): `xivo_ws` at
    15.19-15.20 (plugins/backends/xivo_ws.py@xivo-15.19), `xivo_service` from 16.01, which took over its
    SQL and reads the row's `acl` (xivo_service.py@xivo-16.01, b3959a85; §5.3). Before 16.01
    `xivo_service` is another thing: the services' key files."""
    return "xivo_ws" if key(version) < (16, 1) else "xivo_service"


# xivo_ws's token ACLs, whatever the row (XiVOWS.get_acls, plugins/backends/xivo_ws.py@xivo-15.19/15.20)
AUTH_XIVO_WS_ACLS = ("confd.#",)


def auth_service_key_acls(version: str) -> tuple[str, ...]:
    """15.19-15.20 `xivo_service` (a login of config.yml's `services`, password = its key file's
    service_key): fixed ACLs `agentd.#, dird.#, confd.#`, 15.20 adds `ctid-ng.#`
    (XiVOService.get_acls, xivo_service.py@xivo-15.19 / @xivo-15.20, f159ab9b; §5.3)."""
    acls = ("agentd.#", "dird.#", "confd.#")
    return (*acls, "ctid-ng.#") if key(version) >= (15, 20) else acls


def auth_json_401(version: str) -> bool:
    """A refused `POST /0.1/token`: Flask-HTTPAuth 2.2.1's plain `Unauthorized Access` (realm
    `Authentication Required`) up to 16.02; from 16.03 the JSON `{"reason": ["Authentication Failed"],
    "timestamp": [t], "status_code": 401}` (http.py@xivo-16.03 `Tokens.post`, c7474f0f, 40d21916; §5.2)."""
    return key(version) >= (16, 3)


def auth_integer_expiration(version: str) -> bool:
    """16.02+: `expiration` must be a positive integer, null means the default lifetime
    (`_is_positive_integer`, http.py@xivo-16.02, 5bea29f4); 15.19-16.01: any value `> 0` (Python 2
    comparison), null refused (http.py@xivo-15.19; §5.2)."""
    return key(version) >= (16, 2)


def auth_token_resources_split(version: str) -> bool:
    """16.02+: `Tokens` (POST /token) apart from `Token` (/token/<t>), so `GET /0.1/token` is 405
    (controller.py@xivo-16.02, 2d0c17d8 "forbid GET /token"); before, one resource served both (§5.1)."""
    return key(version) >= (16, 2)


def auth_me_matches_literal(version: str) -> bool:
    """An ACL's `.me` segment: replaced by the token's auth_id up to 16.07; from 16.08 it matches `me` or
    the auth_id (token.py@xivo-16.08 `_transform_acl_me_to_uuid_or_me`, c6ec845a; §5.4)."""
    return key(version) >= (16, 8)


# -- xivo-confd's view=directory (docs/research-directory-lookup.md §3.3)

def confd_directory_has_uuid(version: str) -> bool:
    """`/1.1/users?view=directory` carries each user's `uuid` and `email` from 16.02
    (wazo-platform/wazo-confd xivo_confd/plugins/user/resource.py@xivo-16.02, 5662ff7c): a dird >= 16.02
    reading an older peer gets KeyError 'uuid' and no result."""
    return key(version) >= (16, 2)
