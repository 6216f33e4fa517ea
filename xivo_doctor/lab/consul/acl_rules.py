"""Consul 0.5–0.7's ACL rules: the text of a token's `Rules` (HCL or JSON), parsed and checked.

Place in the lab: `consul.acl` parses every client token's rules here when it resolves the token
(`Policy.rules`) and when `acl/create|update` stores them (a rule Consul refuses fails there).
Semantics follow hashicorp/consul's 0.6-era `acl/policy.go` (`acl.Parse`, research R1 §4c):

- the rules are HCL or JSON (HCL's decoder takes both; keys are matched case-insensitively);
- service rules match by name prefix, the longest prefix wins (`Rules.service_policy`);
- `key`, `event` and `query` rules and the `keyring`/`operator` policies are only validated:
  the lab serves nothing they govern.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import Any

POLICIES = ("read", "write", "deny")


class RulesError(ValueError):
    """`acl.Parse` refused the rules (the text is Consul's)."""


@dataclass(frozen=True)
class Rules:
    services: tuple[tuple[str, str], ...] = ()  # (prefix, policy)

    def service_policy(self, name: str) -> str | None:
        """The policy of the longest prefix of `name` that has a rule (None: no rule applies)."""
        best: tuple[str, str] | None = None
        for prefix, policy in self.services:
            if name.startswith(prefix) and (best is None or len(prefix) >= len(best[0])):
                best = (prefix, policy)
        return None if best is None else best[1]


_TOKEN = re.compile(r'\s+|#[^\n]*|//[^\n]*|/\*.*?\*/|(?P<str>"(?:[^"\\\n]|\\.)*")|(?P<word>[A-Za-z0-9_.\-]+)'
                    r"|(?P<punct>[{}=\[\],])", re.S)


def _tokens(text: str) -> list[tuple[str, str, str]]:
    """(kind, value, "line:col") of an HCL text; RulesError on a character HCL does not know."""
    out, position = [], 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        where = f"{text.count(chr(10), 0, position) + 1}:{position - text.rfind(chr(10), 0, position)}"
        if match is None:
            raise RulesError(f"Failed to parse ACL rules: At {where}: illegal char {text[position]!r}")
        if match["str"] is not None:
            out.append(("str", json.loads(match["str"]), where))
        elif match["word"] is not None:
            out.append(("word", match["word"], where))
        elif match["punct"] is not None:
            out.append(("punct", match["punct"], where))
        position = match.end()
    return out


def _parse_hcl(text: str) -> dict[str, Any]:
    """The HCL subset ACL rules use: `key "name" { policy = "read" }` blocks and `keyring = "read"`.

    Blocks become {kind: {label: {attr: value}}}, as the JSON form is written.
    """
    tokens = _tokens(text)
    position = 0

    def peek() -> tuple[str, str, str] | None:
        return tokens[position] if position < len(tokens) else None

    def body(closing: bool) -> dict[str, Any]:
        nonlocal position
        out: dict[str, Any] = {}
        while True:
            token = peek()
            if token is None:
                if closing:
                    raise RulesError("Failed to parse ACL rules: object expected closing RBRACE got: EOF")
                return out
            if token == ("punct", "}", token[2]):
                if not closing:
                    raise RulesError(f"Failed to parse ACL rules: At {token[2]}: unexpected token: }}")
                position += 1
                return out
            if token[0] not in ("word", "str"):
                raise RulesError(f"Failed to parse ACL rules: At {token[2]}: expected a key, got {token[1]!r}")
            key = token[1]
            position += 1
            labels = []
            while (nxt := peek()) is not None and nxt[0] == "str":
                labels.append(nxt[1])
                position += 1
            nxt = peek()
            if nxt is not None and nxt[:2] == ("punct", "=") and not labels:
                position += 1
                value = peek()
                if value is None or value[0] not in ("str", "word"):
                    raise RulesError(f"Failed to parse ACL rules: At {nxt[2]}: expected a value after '='")
                position += 1
                out[key] = value[1]
            elif nxt is not None and nxt[:2] == ("punct", "{"):
                position += 1
                block = body(closing=True)
                target = out.setdefault(key, {})
                for label in labels[:-1]:
                    target = target.setdefault(label, {})
                if labels:
                    target[labels[-1]] = block
                else:
                    out[key] = block
            else:
                where = nxt[2] if nxt else "EOF"
                raise RulesError(f"Failed to parse ACL rules: At {where}: key '{key}' expected start of object "
                                 "('{') or assignment ('=')")
            if (comma := peek()) is not None and comma[:2] == ("punct", ","):
                position += 1

    return body(closing=False)


def _lower(mapping: Any) -> Any:
    return {str(k).lower(): v for k, v in mapping.items()} if isinstance(mapping, dict) else mapping


def _blocks(value: Any) -> list[tuple[str, Any]]:
    """`{"xivo-": {...}}` or `[{"xivo-": {...}}, ...]` (both decode into Consul's []*ServicePolicy)."""
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if not isinstance(item, dict):
            raise RulesError(f"Failed to parse ACL rules: expected an object, got {item!r}")
        out.extend(item.items())
    return out


@functools.lru_cache(maxsize=256)
def parse_rules(text: str) -> Rules:
    """`acl.Parse`: HCL or JSON (HCL's decoder takes both; keys are matched case-insensitively)."""
    if not text.strip():
        return Rules()
    if text.lstrip().startswith("{"):
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise RulesError(f"Failed to parse ACL rules: {exc}") from exc
        if not isinstance(raw, dict):
            raise RulesError("Failed to parse ACL rules: root should be an object")
    else:
        raw = _parse_hcl(text)
    raw = _lower(raw)
    services = []
    for kind, struct in (("service", "ServicePolicy"), ("key", "KeyPolicy"), ("event", "EventPolicy"),
                         ("query", "PreparedQueryPolicy")):
        for name, rule in _blocks(raw.get(kind, {})):
            policy = str(_lower(rule).get("policy", "")) if isinstance(rule, dict) else ""
            if policy not in POLICIES and not (kind == "key" and policy == "list"):
                field_name = "Prefix" if kind in ("key", "event", "query") else "Name"
                raise RulesError(f'Invalid {kind} policy: &acl.{struct}{{{field_name}:"{name}", Policy:"{policy}"}}')
            if kind == "service":
                services.append((str(name), policy))
    for single in ("keyring", "operator"):
        value = raw.get(single, "")
        if value and value not in POLICIES:
            raise RulesError(f'Invalid {single} policy: "{value}"')
    return Rules(tuple(services))
