"""The token manager of the lab's xivo-auth stand-in: its tokens, the web services users' passwords and
ACLs per backend, ACL matching, and the Consul it stores tokens in upstream.

Place in the lab: a part of the xivo-auth stand-in (`standins.auth`, which serves it over HTTPS; the
upstream sources of each behaviour are cited there and here, docs/research-directory-lookup.md §5).
"""

from __future__ import annotations

import re
import socket
import threading
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg

from xivo_doctor.lab import releases_lookup
from xivo_doctor.lab.standins.base import Node

SERVICE = "xivo-auth"


class DatabaseError(Exception):
    pass


class ConsulDown(Exception):
    """Storage's `_ConsulConnectionException`: 500 `Connection to consul failed`."""


class InternalError(Exception):
    """What Flask turns into its bare 500 page: an exception the resource does not catch."""


@dataclass
class Token:
    token: str
    auth_id: str
    xivo_user_uuid: str | None
    issued: datetime
    expires: datetime
    acls: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        # `Token.to_dict` (xivo_auth/token.py@xivo-15.19 .. @xivo-16.15): naive local ISO times, as
        # `helpers.now()` / `later()` make them with `datetime.now().isoformat()`.
        return {"token": self.token, "auth_id": self.auth_id, "xivo_user_uuid": self.xivo_user_uuid,
                "issued_at": self.issued.isoformat(), "expires_at": self.expires.isoformat(), "acls": self.acls}


def acl_regex(acl: str, auth_id: str, me_literal: bool) -> re.Pattern[str]:
    """One token ACL as the regex `Token.matches_required_acl` tries: `*` one dot-free segment
    (`[^.]*?`), `#` anything (`.*?`), anchored both ends (`_transform_acl_to_regex`, token.py@xivo-15.19).
    `.me`: up to 16.07 replaced by the auth_id before (a trailing `.me`, else every `.me.`); from 16.08
    it matches `me` or the auth_id (`_transform_acl_me_to_uuid_or_me`, token.py@xivo-16.08)."""
    if not me_literal:
        acl = f"{acl[:-3]}.{auth_id}" if acl.endswith(".me") else acl.replace(".me.", f".{auth_id}.")
    pattern = "".join("[^.]*?" if c == "*" else ".*?" if c == "#" else re.escape(c) for c in acl)
    if me_literal:
        either = rf"\.(me|{re.escape(auth_id)})"
        pattern = pattern.replace(r"\.me\.", either + r"\.")
        if pattern.endswith(r"\.me"):
            pattern = pattern[:-4] + either
    return re.compile(f"^{pattern}$")


def matches(token: Token, required: str | None, me_literal: bool) -> bool:
    """No scope always matches; else any of the token's ACLs (token.py `matches_required_acl`)."""
    if required is None:
        return True
    return any(acl_regex(acl, token.auth_id, me_literal).match(required) for acl in token.acls)


def _ascii(text: str) -> str:
    # `unidecode(required_acl)` in MissingACLTokenException, to the nearest ASCII
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


class Auth:
    """What the handler needs: the node's release, its database, the settings and the tokens."""

    def __init__(self, node: Node, config: dict[str, Any], service_keys: dict[str, str]) -> None:
        self.node = node
        self.version = node.release()
        self.config = config
        self.db_uri = str(config.get("db_uri") or "")
        self.backends = set(config.get("enabled_plugins") or ())
        self.lifetime = config.get("default_token_lifetime", 7200)
        self.service_keys = service_keys
        self.tokens: dict[str, Token] = {}
        self.lock = threading.Lock()
        self.log = node.log(SERVICE)

    def query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        try:
            with psycopg.connect(self.db_uri, connect_timeout=3) as conn:
                return conn.execute(sql, params).fetchall()
        except psycopg.Error as e:
            raise DatabaseError(str(e).strip()) from e

    # -- the backends: verify_password, get_ids, get_acls -----------------------------------------

    def _ws_password(self, login: str, password: str) -> bool:
        # accesswebservice_dao.check_username_password (xivo-dao@xivo-15.19 .. @xivo-16.15): an enabled
        # row with exactly this login and this plain-text passwd
        return bool(self.query("SELECT login FROM accesswebservice WHERE login = %s AND passwd = %s AND disable = 0",
                               (login, password)))

    def _ws_id(self, login: str) -> str:
        # accesswebservice_dao.get_user_id: `.scalar()` of the enabled rows' ids; two rows with the login
        # raise MultipleResultsFound, which nothing catches (500)
        rows = self.query("SELECT id FROM accesswebservice WHERE login = %s AND disable = 0", (login,))
        if len(rows) != 1:
            raise InternalError(f"get_user_id({login!r}): {len(rows)} rows")
        return str(rows[0][0])

    def verify_password(self, backend: str, login: str, password: str) -> bool:
        """`_call_backend('verify_password', ...)` (http.py, every tag): stevedore's map_method skips a
        name that is not a loaded plugin, the empty result raises IndexError, taken as a refusal."""
        if backend not in self.backends:
            return False
        ws_backend = releases_lookup.auth_ws_backend(self.version)
        if backend == "xivo_ws" or (backend == "xivo_service" and ws_backend == backend):
            return self._ws_password(login, password)
        if backend == "xivo_service":
            # 15.19-15.20: the login of a `services` entry whose key file's service_key is the password
            # (xivo_service.py@xivo-15.19 `verify_password`, config.py `_load_key_files`)
            return login in self.service_keys and self.service_keys[login] == password
        return False  # xivo_user, xivo_admin, ldap_user: not emulated

    def identity(self, backend: str, login: str) -> tuple[str, str | None, list[str]]:
        """(auth_id, xivo_user_uuid, acls) in `Manager.new_token`'s order: `get_ids`, then the ACLs."""
        if backend == "xivo_service" and releases_lookup.auth_ws_backend(self.version) != backend:
            # 15.19-15.20 key-file services: `get_ids` is (login, login), fixed ACLs
            return login, login, list(releases_lookup.auth_service_key_acls(self.version))
        auth_id = self._ws_id(login)
        if backend == "xivo_ws":
            return auth_id, None, list(releases_lookup.AUTH_XIVO_WS_ACLS)  # XiVOWS.get_acls
        # 16.01+ xivo_service: accesswebservice_dao.get_user_acl, the first enabled row's `acl`
        rows = self.query("SELECT acl FROM accesswebservice WHERE login = %s AND disable = 0", (login,))
        return auth_id, None, list(rows[0][0] or []) if rows else []

    # -- the token store ---------------------------------------------------------------------------

    def new_token(self, backend: str, login: str, expiration: float | None) -> Token:
        self.consul()  # Storage.create_token
        auth_id, user_uuid, acls = self.identity(backend, login)
        issued = datetime.now()
        token = Token(str(uuid.uuid4()), auth_id, user_uuid, issued,
                      issued + timedelta(seconds=self.lifetime if expiration is None else expiration), acls)
        with self.lock:
            self.tokens = {k: t for k, t in self.tokens.items() if t.expires >= issued}  # celery's clean_token
            self.tokens[token.token] = token
        return token

    def get(self, token_id: str, required: str | None) -> Token:
        """`Manager.get`: 404 `No such token` when it is not a UUID (`Storage._check_valid_token_id`),
        unknown or expired; 403 `Unauthorized for <acl>` when no ACL matches the scope."""
        self._check_id(token_id)
        self.consul()
        with self.lock:
            token = self.tokens.get(token_id)
        if token is None or datetime.now() > token.expires:
            raise LookupError
        if not matches(token, required, releases_lookup.auth_me_matches_literal(self.version)):
            raise PermissionError(f"Unauthorized for {_ascii(required or '')}")
        return token

    def remove(self, token_id: str) -> None:
        self._check_id(token_id)
        self.consul()
        with self.lock:
            self.tokens.pop(token_id, None)

    def consul(self) -> None:
        """Raise ConsulDown unless the node's Consul agent takes a connection (where upstream reads
        and writes its tokens). `localhost` is the node's own address when nodes share this host."""
        settings = self.config.get("consul") or {}
        host = str(settings.get("host") or "localhost")
        if host == "localhost":
            host = "127.0.0.1" if self.node.own_network else self.node.address
        try:
            socket.create_connection((host, int(settings.get("port") or 8500)), timeout=1).close()
        except OSError as e:
            self.log.error("Connection to consul failed: %s", e)
            raise ConsulDown from None

    def _check_id(self, token_id: str) -> None:
        """A token id that is not a UUID is no token (`Storage._check_valid_token_id`): 404."""
        try:
            uuid.UUID(hex=token_id)
        except ValueError as e:
            self.log.warning("Invalid token ID: %s", e)
            raise LookupError from None
