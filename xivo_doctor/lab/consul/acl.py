"""Consul 0.5–0.7's ACL system for one datacenter: tokens kept in the raft store, rules, resolution.

Place in the lab: `consul.api` resolves every request's token here (discovery filtering, the
`/v1/acl/*` endpoints, whether a registered service reaches the catalog), and `consul.agent`
creates the store at start; the text of a token's rules is parsed by `consul.acl_rules`. Semantics
follow hashicorp/consul's 0.6-era `consul/acl.go`, `consul/acl_endpoint.go`,
`consul/leader.go:initializeACL` and `acl/policy.go` (research R1 §4c):

- a XiVO is its own ACL datacenter (`acl_datacenter` = `datacenter`, R1 §4b), so every token is
  resolved against this store; an empty token is `anonymous`; a token not in the store fails with
  `ACL not found`; the root ids `allow`/`deny`/`manage` cannot be resolved;
- a `management` token may do anything; a `client` token has its rules over the parent policy
  `acl_default_policy` (XiVO: `deny`);
- service rules match by name prefix, the longest prefix wins; `read` and `write` grant read,
  only `write` grants write, `deny` denies;
- at start (as the leader does) the `anonymous` token ("Anonymous Token", client, no rules) and the
  `acl_master_token` ("Master Token", management) are created if missing;
- `acl/update` replaces the whole token (a field left out of the body becomes empty, `Type` defaults
  to `client`), creating it if missing (upsert, Consul 0.5.1).

The tokens live in `<data_dir>/raft/acl.json` (the lab's format; Consul keeps them in its raft log
and snapshots under `raft/`), so the manual's `rm -rf /var/lib/consul/raft/` forgets them at the next
start, as on a XiVO. Not emulated: ACL replication and non-authoritative datacenters (`acl_datacenter`
naming another datacenter), the token cache and `acl_down_policy`, key/event/query/keyring rules
beyond their validation.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# `Rules`, `RulesError` and `parse_rules` live in `consul.acl_rules`; they are importable from here
# too (tests/lab/test_lab_consul_versions.py reads `acl.parse_rules` and `acl.RulesError`).
from xivo_doctor.lab.consul.acl_rules import Rules, RulesError, parse_rules

ANONYMOUS = "anonymous"
ROOT_IDS = ("allow", "deny", "manage")
PERMISSION_DENIED = "Permission denied"
ACL_NOT_FOUND = "ACL not found"
CLIENT, MANAGEMENT = "client", "management"


class AclError(Exception):
    """An error of the ACL RPCs, with Consul's text; see `http_status`."""


def http_status(message: str) -> int:
    """Consul's HTTP wrapper (command/agent/http.go): 403 if the error mentions `Permission denied` or
    `ACL not found`, else 500. Read in the 0.6/0.7 wrapper; kept for 0.5.2 too (R3 §2c: 0.5.2 not read)."""
    return 403 if PERMISSION_DENIED in message or ACL_NOT_FOUND in message else 500


# -- what a token may do ------------------------------------------------------------------------
@dataclass(frozen=True)
class Policy:
    """What a resolved token may do (only the parts the lab serves)."""

    manage: bool = False
    rules: Rules = field(default_factory=Rules)
    parent_allows: bool = False  # acl_default_policy "allow" (XiVO: "deny")

    def service_read(self, name: str) -> bool:
        if self.manage:
            return True
        policy = self.rules.service_policy(name)
        return self.parent_allows if policy is None else policy in ("read", "write")

    def service_write(self, name: str) -> bool:
        if self.manage:
            return True
        policy = self.rules.service_policy(name)
        return self.parent_allows if policy is None else policy == "write"


ALLOW_ALL = Policy(manage=True)  # ACLs disabled (no acl_datacenter): nothing is filtered


# -- the store -----------------------------------------------------------------------------------
class AclStore:
    """The ACL table of the raft store, for a datacenter that is its own ACL datacenter."""

    def __init__(self, raft_dir: Path, *, enabled: bool, master_token: str | None, default_policy: str,
                 bump: Callable[[], int], log: logging.Logger) -> None:
        self.path = raft_dir / "acl.json"
        self.enabled = enabled
        self.master_token = master_token
        self.parent_allows = default_policy == "allow"
        self.bump = bump
        self.log = log
        self.lock = threading.RLock()
        self.acls: dict[str, dict[str, Any]] = {}
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        try:
            acls = json.loads(self.path.read_text())["ACLs"]
            self.acls = {str(a["ID"]): a for a in acls}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.log.error(f"consul.fsm: failed to restore ACLs from {self.path}: {exc}")

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"ACLs": list(self.acls.values())}, indent=2))
        os.replace(tmp, self.path)

    def max_index(self) -> int:
        with self.lock:
            return max((int(a.get("ModifyIndex", 0)) for a in self.acls.values()), default=0)

    def _put(self, acl_id: str, name: str, kind: str, rules: str) -> None:
        index = self.bump()
        existing = self.acls.get(acl_id)
        self.acls[acl_id] = {"CreateIndex": existing["CreateIndex"] if existing else index, "ModifyIndex": index,
                             "ID": acl_id, "Name": name, "Type": kind, "Rules": rules}
        self._save()

    def initialize(self) -> None:
        """leader.go initializeACL: the anonymous and master tokens, created if missing."""
        if not self.enabled:
            return
        with self.lock:
            if ANONYMOUS not in self.acls:
                self._put(ANONYMOUS, "Anonymous Token", CLIENT, "")
            if self.master_token and self.master_token not in self.acls:
                self._put(self.master_token, "Master Token", MANAGEMENT, "")

    def resolve(self, token: str | None) -> Policy:
        """resolveToken: the policy of `token` (empty: anonymous); AclError `ACL not found` if unknown."""
        if not self.enabled:
            return ALLOW_ALL
        acl_id = token or ANONYMOUS
        if acl_id in ROOT_IDS:
            raise AclError("Cannot resolve root ACL")
        with self.lock:
            acl = self.acls.get(acl_id)
        if acl is None:
            raise AclError(ACL_NOT_FOUND)
        if acl["Type"] == MANAGEMENT:
            return Policy(manage=True)
        return Policy(rules=parse_rules(str(acl.get("Rules") or "")), parent_allows=self.parent_allows)

    def _require_manage(self, token: str | None) -> None:
        if not self.resolve(token).manage:
            raise AclError(PERMISSION_DENIED)

    def apply_set(self, token: str | None, acl_id: str, name: str, kind: str, rules: str) -> str:
        """ACL.Apply with op set (acl/create, acl/update): the token's id."""
        self._require_manage(token)
        if kind not in (CLIENT, MANAGEMENT):
            raise AclError("Invalid ACL Type")
        if acl_id in ROOT_IDS:
            raise AclError(f"{PERMISSION_DENIED}: Cannot modify root ACL")
        try:
            parse_rules(rules)
        except RulesError as exc:
            raise AclError(f"ACL rule compilation failed: {exc}") from exc
        with self.lock:
            while not acl_id:
                candidate = str(uuid.uuid4())
                acl_id = "" if candidate in self.acls else candidate
            self._put(acl_id, name, kind, rules)
        return acl_id

    def apply_delete(self, token: str | None, acl_id: str) -> None:
        """ACL.Apply with op delete (acl/destroy)."""
        self._require_manage(token)
        if acl_id == ANONYMOUS:
            raise AclError(f"{PERMISSION_DENIED}: Cannot delete anonymous token")
        with self.lock:
            if self.acls.pop(acl_id, None) is not None:
                self.bump()
                self._save()

    def get(self, acl_id: str) -> list[dict[str, Any]]:
        """ACL.Get (acl/info): no token needed in 0.6/0.7 (consul/acl_endpoint.go); [] if unknown."""
        with self.lock:
            acl = self.acls.get(acl_id)
            return [dict(acl)] if acl else []

    def list(self, token: str | None) -> list[dict[str, Any]]:
        """ACL.List (acl/list): management tokens only."""
        self._require_manage(token)
        with self.lock:
            return [dict(a) for a in self.acls.values()]
