"""Server side of HTTP Digest authentication (RFC 2617, MD5, qop=auth) for the xivo-confd stand-in.

Place in the pipeline: none — a helper of the lab's xivo-confd stand-in (xivo_doctor/lab/standins/confd.py),
which accepts Digest credentials of `accesswebservice` rows as confd_auth.py does (XIVO-FACTS §6.4).
`requests.auth.HTTPDigestAuth` and `curl --digest` work against it.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time

_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')
NONCE_LIFETIME = 300.0


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def parse(header: str | None) -> dict[str, str] | None:
    """The fields of an `Authorization: Digest ...` header, or None if it is not Digest."""
    if not header or header[:7].lower() != "digest ":
        return None
    return {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)).replace('\\"', '"')
            for m in _PARAM.finditer(header[7:])}


class Digest:
    """Issues challenges and checks responses against the nonces it issued."""

    def __init__(self, realm: str) -> None:
        self.realm = realm
        self._nonces: dict[str, float] = {}
        self._lock = threading.Lock()

    def challenge(self) -> str:
        """The `WWW-Authenticate` value of a 401."""
        nonce = secrets.token_hex(16)
        now = time.monotonic()
        with self._lock:
            self._nonces = {n: t for n, t in self._nonces.items() if now - t < NONCE_LIFETIME}
            self._nonces[nonce] = now
        opaque = secrets.token_hex(8)
        return f'Digest realm="{self.realm}", nonce="{nonce}", opaque="{opaque}", qop="auth", algorithm=MD5'

    def check(self, method: str, fields: dict[str, str], password: str) -> bool:
        """Whether `fields` (parsed Authorization) prove knowledge of `password` for this request."""
        with self._lock:
            issued = self._nonces.get(fields.get("nonce", ""))
        if issued is None or time.monotonic() - issued >= NONCE_LIFETIME:
            return False
        if fields.get("realm") != self.realm or fields.get("algorithm", "MD5").upper() != "MD5":
            return False
        ha1 = _md5(f"{fields.get('username', '')}:{self.realm}:{password}")
        ha2 = _md5(f"{method}:{fields.get('uri', '')}")
        qop = fields.get("qop")
        if qop == "auth":
            expected = _md5(f"{ha1}:{fields['nonce']}:{fields.get('nc', '')}:{fields.get('cnonce', '')}:auth:{ha2}")
        elif qop is None:  # RFC 2069 compatibility
            expected = _md5(f"{ha1}:{fields['nonce']}:{ha2}")
        else:
            return False
        return secrets.compare_digest(expected, fields.get("response", ""))
