"""Parsers for what RabbitMQ's tools print about federation (LAB-NOTES §A.5, XIVO-FACTS §5).

Place in the pipeline: acquisition (pure text -> data, no I/O). `probes/rabbitmq.py` runs the
commands and turns a `ParseError` into a `ProbeError`: an output of unknown shape is reported as
"could not check", never guessed at.

- `rabbitmqctl eval 'rabbit_federation_status:status().'` (the manual's troubleshooting command)
  prints Erlang terms, read by `erlang_term.parse_term`.
- `rabbitmqctl list_parameters` / `list_policies` (`--formatter json`, or tab-separated text with
  or without the "Listing ..." and column header lines) and `rabbitmq-plugins list -e -m`.

Upstream URIs hold the password of the upstream's RabbitMQ user: `parse_uri` keeps only whether one
is set, and every URI leaves this module masked. No error message here ever quotes a value.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote, urlsplit

from .erlang_term import Atom, ParseError, parse_term, render

__all__ = ["Atom", "ParseError", "parse_term", "render"]


def proplist(term: Any, what: str) -> dict[str, Any]:
    """`[{key, value}, ...]` (or a map) as a dict keyed by text."""
    if isinstance(term, dict):
        return {str(k): v for k, v in term.items()}
    if not isinstance(term, list) or not all(isinstance(t, tuple) and len(t) == 2 and isinstance(t[0], str)
                                             for t in term):
        raise ParseError(f"{what} is not a list of {{key, value}} pairs")
    return {str(k): v for k, v in term}


def to_json(term: Any) -> Any:
    """A JSON value as RabbitMQ stores it (proplists with binary keys, true/false/null atoms)."""
    if isinstance(term, Atom):
        return {"true": True, "false": False, "null": None}.get(term, str(term))
    if isinstance(term, list) and term and all(isinstance(t, tuple) and len(t) == 2 for t in term):
        return {str(k): to_json(v) for k, v in term}
    if isinstance(term, list):
        return [to_json(t) for t in term]
    if isinstance(term, dict):
        return {str(k): to_json(v) for k, v in term.items()}
    if isinstance(term, (str, int, float)):
        return term
    raise ParseError("a stored JSON value holds an Erlang tuple")


# -- federation status ----------------------------------------------------------------------------

# noproc: the plugin's status server is not running; undef: its code is not even loaded.
# Two searches, not `(noproc|undef).*rabbit_federation_status`: that regex rescans the rest of
# the text from every "undef", quadratic on an output full of them.
NOPROC = re.compile(r"noproc|undef")


def plugin_not_running(text: str) -> bool:
    """The manual's command while the federation plugin is off: `Error: {:noproc, {:gen_server, ...}}`."""
    found = NOPROC.search(text)
    return found is not None and text.find("rabbit_federation_status", found.end()) >= 0


def links_from_term(term: Any) -> list[dict[str, Any]] | None:
    """The status term -> links; `{'EXIT', {noproc, ...}}` (a caught call) -> None."""
    if isinstance(term, tuple) and term[:1] == ("EXIT",):
        if plugin_not_running(render(term)):
            return None
        raise ParseError(f"rabbit_federation_status:status() failed: {render(term)[:160]}")
    if not isinstance(term, list):
        raise ParseError("the federation status is not a list of links")
    return [_link(proplist(t, "a federation link")) for t in term]


def _link(p: dict[str, Any]) -> dict[str, Any]:
    status, error = p.get("status"), p.get("error")
    if isinstance(status, tuple) and len(status) == 2:  # older plugins: {status, {error, Reason}}
        status, error = status
    if not isinstance(status, Atom) or not isinstance(p.get("upstream"), str):
        raise ParseError("a federation link without an upstream name or a status")
    stamp = p.get("timestamp")
    if stamp is not None:
        stamp = datetime_text(stamp)
    return {
        "exchange": p.get("exchange"), "upstream_exchange": p.get("upstream_exchange"),
        "type": str(p.get("type", "")), "vhost": p.get("vhost"), "upstream": p["upstream"],
        "status": str(status), "error": None if error is None else render(error),
        "uri": mask_uri(p["uri"]) if isinstance(p.get("uri"), str) else None, "timestamp": stamp,
    }


def datetime_text(term: Any) -> str:
    """`{{2026,11,25},{7,58,18}}` (calendar:local_time()) -> "2026-11-25 07:58:18"."""
    try:
        (y, mo, d), (h, mi, s) = term
        return f"{y:04d}-{mo:02d}-{d:02d} {h:02d}:{mi:02d}:{s:02d}"
    except (TypeError, ValueError):
        raise ParseError("a timestamp that is not {{Y,M,D},{h,m,s}}") from None


# -- list_parameters, list_policies, rabbitmq-plugins ---------------------------------------------

def _rows(text: str, columns: tuple[str, ...]) -> list[dict[str, Any]]:
    """`--formatter json` output, or tab-separated rows (header lines, "...done." skipped)."""
    body = text.strip()
    if body.startswith("["):
        try:
            rows = json.loads(body)
        except ValueError:
            raise ParseError("the JSON output does not parse") from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ParseError("the JSON output is not a list of objects")
        return rows
    out = []
    for line in body.splitlines():
        cells = line.split("\t")
        if line.startswith("Listing ") or line == "...done." or not line.strip() or cells == list(columns):
            continue
        if len(cells) != len(columns):
            raise ParseError(f"a line has {len(cells)} columns where {len(columns)} were expected")
        out.append(dict(zip(columns, cells, strict=True)))
    return out


def _json_value(value: Any, what: str) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise ParseError(f"{what} is not JSON") from None  # never quote it: it may hold a password
    return value


def parse_parameters(text: str) -> list[dict[str, Any]]:
    """`rabbitmqctl list_parameters` -> [{component, name, value (dict)}]."""
    rows = _rows(text, ("component", "name", "value"))
    return [{"component": r.get("component"), "name": r.get("name"),
             "value": _json_value(r.get("value"), f"the value of parameter {r.get('name')!r}")} for r in rows]


def parse_policies(text: str) -> list[dict[str, Any]]:
    """`rabbitmqctl list_policies` -> [{vhost, name, pattern, apply-to, definition (dict), priority}]."""
    rows = _rows(text, ("vhost", "name", "pattern", "apply-to", "definition", "priority"))
    out = []
    for r in rows:
        if r.get("apply-to") not in APPLY_TO and r.get("pattern") in APPLY_TO:  # RabbitMQ 3.3's column order
            r["pattern"], r["apply-to"] = r["apply-to"], r["pattern"]
        out.append(policy(r))
    return out


APPLY_TO = ("exchanges", "queues", "all")


def policy(row: dict[str, Any]) -> dict[str, Any]:
    try:
        priority = int(row.get("priority", 0))
    except (TypeError, ValueError):
        raise ParseError(f"policy {row.get('name')!r} has a priority that is not a number") from None
    definition = _json_value(row.get("definition"), f"the definition of policy {row.get('name')!r}")
    if not isinstance(definition, dict):
        raise ParseError(f"the definition of policy {row.get('name')!r} is not an object")
    return {"vhost": row.get("vhost"), "name": row.get("name"), "pattern": row.get("pattern"),
            "apply-to": row.get("apply-to"), "definition": definition, "priority": priority}


def parse_plugins(text: str) -> set[str]:
    """`rabbitmq-plugins list -e -m` (or `--formatter json`) -> enabled plugin names."""
    body = text.strip()
    if body.startswith("{"):
        try:
            return {p["name"] for p in json.loads(body)["plugins"]}
        except (ValueError, KeyError, TypeError):
            raise ParseError("the JSON plugin list does not have the expected shape") from None
    names = {line.strip() for line in body.splitlines() if line.strip() and not line.startswith("Listing ")}
    if not all(re.fullmatch(r"[a-z0-9_]+", n) for n in names):
        raise ParseError("the plugin list holds something other than plugin names")
    return names


# -- upstream URIs ---------------------------------------------------------------------------------

DEFAULT_PORTS = {"amqp": 5672, "amqps": 5671}


def parse_uri(uri: str) -> dict[str, Any]:
    """An AMQP URI without its password: scheme, host, port (None: the scheme's default), user,
    whether a password is set, vhost, and the URI masked for display."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return {"scheme": None, "host": None, "port": None, "user": None, "password_set": False,
                "vhost": None, "masked": "<an URI that does not parse>"}
    return {"scheme": parts.scheme, "host": parts.hostname, "port": port,
            "user": unquote(parts.username) if parts.username is not None else None,
            "password_set": parts.password is not None, "vhost": unquote(parts.path[1:]) if parts.path else None,
            "masked": mask_uri(uri)}


def mask_uri(uri: str) -> str:
    """`amqp://xivo:secret@host` -> `amqp://xivo:***@host`: what follows the user up to the last '@'
    is hidden, so a password holding '/' or '@' does not leak either."""
    scheme, sep, rest = uri.partition("://")
    if not sep or "@" not in rest:
        return uri
    userinfo, _, host = rest.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{host}"


_URI = re.compile(r"[a-z][a-z0-9+]*://[^\s\"'<>]+")


def first_line(text: str) -> str:
    """The first meaningful line of an error (rabbitmqctl's, pika's), any URI in it masked."""
    lines = [line.strip() for line in text.splitlines() if line.strip() and line.strip() != "Error:"]
    return _URI.sub(lambda m: mask_uri(m.group()), (lines[0] if lines else "no output"))[:240]


def upstream(value: Any) -> dict[str, Any]:
    """A federation-upstream definition, its URI(s) parsed and masked, nothing else secret kept."""
    if not isinstance(value, dict) or "uri" not in value:
        raise ParseError("a federation-upstream definition without an uri")
    raw = value["uri"] if isinstance(value["uri"], list) else [value["uri"]]
    if not all(isinstance(u, str) for u in raw):
        raise ParseError("a federation-upstream uri that is not text")
    uris = [parse_uri(u) for u in raw]
    out: dict[str, Any] = {"uri": ", ".join(u["masked"] for u in uris), "uris": uris,
                           "max-hops": value.get("max-hops")}
    for key in ("exchange", "expires", "message-ttl", "ack-mode", "trust-user-id", "prefetch-count"):
        if key in value:
            out[key] = value[key]
    return out


def pattern_matches(pattern: Any, name: str) -> bool:
    """A policy pattern is an unanchored regex (LAB-NOTES §A.7); one Python cannot compile matches nothing."""
    try:
        return isinstance(pattern, str) and re.search(pattern, name) is not None
    except re.error:
        return False
