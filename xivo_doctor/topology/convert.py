"""Converters for the topology file's scalar values: ports, booleans, paths, addresses, secrets.

Place in the pipeline: `schema` applies one converter per key while validating the file; each
returns the model's value or raises a `TopologyError` (through `Source.error`) that ends with
what to write instead. A secret's text never appears in a message.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .loader import Node, SequenceNode, Source, got, kind, shown
from .model import Secret

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")  # fullmatch: "x\n" must not pass
VERSION_RE = re.compile(r"[0-9]+\.[0-9]+(\.[0-9]+)?")
LABEL_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")

# Converters: (src, node, hint) -> value, where hint is "key: example" for "write e.g. ...".
Converter = Callable[[Source, Node, str], Any]


def _simple(expected: str, accept: Callable[[Any], bool]) -> Converter:
    """A converter that returns the scalar as it is when `accept` says it fits."""

    def convert(src: Source, node: Node, hint: str) -> Any:
        v = src.scalar(node)
        if accept(v):
            return v
        raise src.error(node, f"expected {expected}, got {got(node, v)}; write e.g. {hint}")

    return convert


# type(), not isinstance(): YAML's true is an int to Python, never a port.
port = _simple("an integer from 1 to 65535", lambda v: type(v) is int and 1 <= v <= 65535)
boolean = _simple("true or false", lambda v: isinstance(v, bool))
text = _simple("a non-empty string", lambda v: isinstance(v, str) and v != "")
scheme = _simple("http or https", lambda v: v in ("http", "https"))


def verify(src: Source, node: Node, hint: str) -> bool | str:
    v = src.scalar(node)
    if isinstance(v, bool):
        return v
    if not isinstance(v, str) or not v:
        raise src.error(node, f"expected true, false or the path of a CA file, got {got(node, v)}; "
                              f"write e.g. {hint}")
    ca = src.path(v)
    if not ca.is_file():
        raise src.error(node, f"CA file {ca} does not exist; fix the path, or write verify: false "
                              "(no certificate check) or verify: true (the system's CAs)")
    return str(ca)


def directory(src: Source, node: Node, hint: str) -> Path:
    return src.path(text(src, node, hint))


def ip_address(src: Source, node: Node, hint: str) -> str:
    v = text(src, node, hint)
    try:
        return str(ipaddress.ip_address(v))
    except ValueError:
        raise src.error(node, f"{shown(v)} is not an IPv4 or IPv6 address; write e.g. {hint}") from None


def command(src: Source, node: Node, hint: str) -> tuple[str, ...]:
    """An argv prefix: a list of strings, or one string split the way a shell would."""
    if isinstance(node, SequenceNode):
        argv = tuple(text(src, item, hint) for item in node.items)
    else:
        v = text(src, node, hint)
        try:
            argv = tuple(shlex.split(v))
        except ValueError as e:
            raise src.error(node, f"cannot split {shown(v)} into words ({e}); write e.g. {hint}") from None
    if not argv:
        raise src.error(node, f"expected a command, got an empty one; write e.g. {hint}")
    return argv


def secret(src: Source, node: Node, hint: str) -> Secret:
    v = src.scalar(node)
    if isinstance(v, str):
        return Secret(v)
    # Never echo the value: a mistyped password is still a password.
    raise src.error(node, f"expected a string, got {kind(node)}; quote it, e.g. {hint}")


def secret_file(src: Source, node: Node, hint: str) -> Secret:
    return Secret(src.read_secret(node, text(src, node, hint)))


def version(src: Source, node: Node, hint: str) -> str:
    v = src.scalar(node)
    if isinstance(v, int | float) and not isinstance(v, bool):
        raise src.error(node, f'{v} is read by YAML as a number; quote it: version: "{node.text}"')
    if isinstance(v, str) and VERSION_RE.fullmatch(v):
        return v
    shown_v = shown(v) if isinstance(v, str) else got(node, v)
    raise src.error(node, f'{shown_v} is not a XiVO version; write e.g. {hint}')
