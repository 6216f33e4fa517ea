"""What a topology file may say, and its validation into the model.

Place in the pipeline: `loader.read_tree` gives a positioned tree; `build_topology` checks it
against the tables below and produces the immutable `Topology`. The first problem raises a
`TopologyError` naming file, line and dotted key, and ending with what to write instead; the CLI
turns it into exit 3. Secret values (`password`, `token`, `database`, their `*_file` contents)
never appear in a message.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .convert import (
    LABEL_RE,
    NAME_RE,
    Converter,
    boolean,
    command,
    directory,
    ip_address,
    port,
    scheme,
    secret,
    secret_file,
    text,
    verify,
    version,
)
from .loader import MappingNode, Node, SequenceNode, Source, got, kind, shown
from .model import (
    AuthAccess,
    ConfdAccess,
    ConsulAccess,
    CtidAccess,
    DirdAccess,
    OnBoxAccess,
    Pair,
    RabbitMQAccess,
    RabbitMQManagement,
    SshAccess,
    Topology,
    WebServicesAccess,
    Xivo,
)


@dataclass(frozen=True)
class Key:
    convert: Converter
    example: str  # the value in "write e.g. key: example"
    file_example: str = ""  # set for secrets: `<key>_file` is accepted too and read from that file


# The declarative part: section -> key -> how to read it. Field names are the model's.
Table = dict[str, "Key | Table"]
MANAGEMENT: Table = {
    "scheme": Key(scheme, "http"), "port": Key(port, "15672"), "user": Key(text, "xivo"),
    "password": Key(secret, '"${RABBITMQ_MANAGEMENT_PASSWORD}"', "/etc/xivo-doctor/rabbitmq-management.secret"),
}
SECTIONS: dict[str, Table] = {
    "consul": {
        "scheme": Key(scheme, "https"), "port": Key(port, "8500"), "verify": Key(verify, "false"),
        "token": Key(secret, '"${CONSUL_TOKEN}"', "/var/lib/consul/master_token"),
        "rpc_port": Key(port, "8300"), "serf_wan_port": Key(port, "8302"),
    },
    "rabbitmq": {
        "port": Key(port, "5672"), "user": Key(text, "xivo"),
        "password": Key(secret, '"${RABBITMQ_PASSWORD}"', "/etc/xivo-doctor/rabbitmq.secret"),
        "vhost": Key(text, "/"), "management": MANAGEMENT,
    },
    "ctid": {"port": Key(port, "9495")},
    "confd": {
        "port": Key(port, "9486"), "username": Key(text, "xivo-doctor"),
        "password": Key(secret, '"${CONFD_PASSWORD}"', "/etc/xivo-doctor/confd.secret"),
        "verify": Key(verify, "false"),
    },
    "webservices": {
        "http_port": Key(port, "80"), "https_port": Key(port, "443"), "verify": Key(verify, "false"),
        "phonebook_sharing": Key(boolean, "true"),
    },
    "auth": {
        "port": Key(port, "9497"), "username": Key(text, "xivo-doctor"),
        "password": Key(secret, '"${XIVO_AUTH_PASSWORD}"', "/etc/xivo-doctor/auth.secret"),
        "verify": Key(verify, "false"),
    },
    "dird": {"port": Key(port, "9489"), "verify": Key(verify, "false")},
    "on_box": {
        "root": Key(directory, "/"),
        "database": Key(secret, '"${XIVO_DATABASE}"', "/etc/xivo-doctor/database.secret"),
        "rabbitmqctl": Key(command, "[rabbitmqctl]"), "source_address": Key(ip_address, "192.168.1.124"),
        "consul": Key(command, "[consul]"),
    },
    "ssh": {
        "host": Key(text, "192.168.1.124"), "port": Key(port, "22"), "user": Key(text, "root"),
        "identity_file": Key(directory, "~/.ssh/id_ed25519"), "known_hosts_file": Key(directory, "~/.ssh/known_hosts"),
        "sudo": Key(boolean, "false"), "accept_new_host_key": Key(boolean, "false"),
    },
}
TOP_KEYS = ("name", "probe_timeout", "defaults", "xivos", "federation")
DEFAULTS_KEYS = ("version", *SECTIONS)
XIVO_KEYS = ("name", "address", "version", *SECTIONS)
LINK_KEYS = ("downstream", "upstream")
MISSING_HINTS = {
    "name": "name: <a short name for this XiVO, e.g. xivo-1>",
    "address": "address: <IP address or hostname of this XiVO, reachable from the others>",
    "xivos": "xivos: with one item per XiVO (- name: ..., address: ...), at least two",
    "links": "links: [{downstream: xivo-1, upstream: xivo-2}]",
    "downstream": "downstream: <name of the XiVO that receives the messages>",
    "upstream": "upstream: <name of the XiVO the messages come from>",
}


def _check_keys(src: Source, node: MappingNode, allowed: tuple[str, ...] | list[str]) -> None:
    for key, entry in node.items.items():
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed keys: {', '.join(allowed)}"
            raise src.error(node, f"unknown key; {hint}", key=entry.node.path, line=entry.key_line)


def _require(src: Source, node: MappingNode, key: str) -> Node:
    if key not in node.items:
        raise src.error(node, f"missing key {key!r}; write {MISSING_HINTS[key]}")
    return node.items[key].node


def _mapping(src: Source, node: Node | None, what: str, hint: str) -> MappingNode | None:
    """`node` as a mapping; an empty value (`consul:` alone) counts as an empty one."""
    if node is None or kind(node) == "nothing":
        return None
    if not isinstance(node, MappingNode):
        raise src.error(node, f"expected {what}, got {kind(node)}; write e.g. {hint}")
    return node


def _section(src: Source, node: Node, table: Table) -> dict[str, Any]:
    """The settings a section gives, converted, keyed by model field name."""
    name = node.path.rsplit(".", 1)[-1]
    mapping = _mapping(src, node, f"a mapping of {name} settings", f"{name}: {{port: ...}}")
    if mapping is None:
        return {}
    allowed = [k for key, spec in table.items()
               for k in ((key, f"{key}_file") if isinstance(spec, Key) and spec.file_example else (key,))]
    _check_keys(src, mapping, allowed)
    out: dict[str, Any] = {}
    for key, entry in mapping.items.items():
        field = key.removesuffix("_file") if key not in table else key
        spec = table[field]
        if field in out:  # `password` and `password_file` in the same mapping
            raise src.error(entry.node, f"give either {field} or {field}_file, not both; keep one",
                            line=entry.key_line)
        if isinstance(spec, dict):
            out[field] = _section(src, entry.node, spec)
        elif key != field:
            out[field] = secret_file(src, entry.node, f"{key}: {spec.file_example}")
        else:
            out[field] = spec.convert(src, entry.node, f"{key}: {spec.example}")
    return out


def _settings(src: Source, node: MappingNode) -> dict[str, Any]:
    """`version` and the access sections of `defaults` or of one XiVO."""
    out: dict[str, Any] = {}
    for key, entry in node.items.items():
        if key == "version":
            out[key] = version(src, entry.node, 'version: "16.13"')
        elif key in SECTIONS:
            out[key] = _section(src, entry.node, SECTIONS[key])
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Key by key; nested mappings (sections, `management`) merge the same way."""
    merged = dict(base)
    for key, value in over.items():
        old = merged.get(key)
        merged[key] = _merge(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
    return merged


def _xivo(name: str, address: str, s: dict[str, Any]) -> Xivo:
    rabbitmq = dict(s.get("rabbitmq", {}))
    management = rabbitmq.pop("management", None)
    return Xivo(
        name=name, address=address, version=s.get("version"),
        consul=ConsulAccess(**s.get("consul", {})),
        rabbitmq=RabbitMQAccess(**rabbitmq, management=None if management is None
                                else RabbitMQManagement(**management)),
        ctid=CtidAccess(**s.get("ctid", {})), confd=ConfdAccess(**s.get("confd", {})),
        webservices=WebServicesAccess(**s.get("webservices", {})),
        auth=AuthAccess(**s.get("auth", {})), dird=DirdAccess(**s.get("dird", {})),
        on_box=OnBoxAccess(**s["on_box"]) if "on_box" in s else None,
        ssh=SshAccess(**s["ssh"]) if "ssh" in s else None,
    )


def _name(src: Source, node: Node) -> str:
    v = text(src, node, "name: xivo-1")
    if not NAME_RE.fullmatch(v):
        raise src.error(node, f"{shown(v)} is not a valid XiVO name: use up to 63 letters, digits, '.', '_' "
                              "or '-', starting with a letter or digit; write e.g. name: xivo-1")
    return v


def _address(src: Source, node: Node) -> str:
    v = text(src, node, "address: 192.168.1.124")
    try:
        return str(ipaddress.ip_address(v))
    except ValueError:
        pass
    labels = v.removesuffix(".").split(".")
    # An all-digit last label is a mistyped IPv4 address (192.168.1.300), not a hostname.
    if len(v) <= 253 and all(LABEL_RE.fullmatch(label) for label in labels) and not labels[-1].isdigit():
        return v
    raise src.error(node, f"{shown(v)} is not an IPv4 address, an IPv6 address or a hostname; "
                          "write e.g. address: 192.168.1.124")


def _xivos(src: Source, top: MappingNode, defaults: dict[str, Any]) -> tuple[list[Xivo], dict[str, int]]:
    seq = _require(src, top, "xivos")
    if not isinstance(seq, SequenceNode):
        raise src.error(seq, "expected a list of XiVOs (- name: ..., address: ...), "
                             f"got {kind(seq)}")
    xivos: list[Xivo] = []
    lines: dict[str, int] = {}
    seen_names: dict[str, tuple[str, int]] = {}  # folded name -> (path, line) of its first XiVO
    seen_addresses: dict[str, tuple[str, int]] = {}
    for item in seq.items:
        if not isinstance(item, MappingNode):
            raise src.error(item, f"expected a XiVO (name: ..., address: ...), got {kind(item)}")
        _check_keys(src, item, XIVO_KEYS)
        name_node, address_node = _require(src, item, "name"), _require(src, item, "address")
        name, address = _name(src, name_node), _address(src, address_node)
        # Folded: --node and humans treat Xivo-1 and xivo-1 as the same server.
        for value, node, seen, what in ((name, name_node, seen_names, "name"),
                                        (address, address_node, seen_addresses, "address")):
            if value.lower() in seen:
                path, line = seen[value.lower()]
                raise src.error(node, f"{value!r} is already the {what} of {path} (line {line}); "
                                      f"give each XiVO its own {what}")
            seen[value.lower()] = (item.path, item.line)
        xivos.append(_xivo(name, address, _merge(defaults, _settings(src, item))))
        lines[name] = item.line
    if len(xivos) < 2:
        plural = "XiVO" if len(xivos) == 1 else "XiVOs"
        raise src.error(seq, f"{len(xivos)} {plural} declared; an interconnection needs at least two")
    return xivos, lines


def _pairs(src: Source, top: MappingNode, xivos: list[Xivo]) -> tuple[str, list[Pair]]:
    node = top.items["federation"].node if "federation" in top.items else None
    if node is None or src.scalar(node) == "full-mesh":
        return "full-mesh", [Pair(a, b) for a in xivos for b in xivos if a is not b]
    hint = "federation: full-mesh, or federation: {links: [{downstream: xivo-1, upstream: xivo-2}]}"
    if not isinstance(node, MappingNode):
        raise src.error(node, f"expected full-mesh or links: [...], got {got(node, src.scalar(node))}; "
                              f"write {hint}")
    _check_keys(src, node, ("links",))
    links = _require(src, node, "links")
    if not isinstance(links, SequenceNode) or not links.items:
        found = "an empty list" if isinstance(links, SequenceNode) else kind(links)
        raise src.error(links, f"expected a list of links, got {found}; write e.g. "
                               "links: [{downstream: xivo-1, upstream: xivo-2}], or federation: full-mesh")
    by_name = {x.name: x for x in xivos}
    pairs: dict[tuple[str, str], Node] = {}
    for link in links.items:
        if not isinstance(link, MappingNode):
            raise src.error(link, f"expected a link {{downstream: ..., upstream: ...}}, "
                                  f"got {kind(link)}")
        _check_keys(src, link, LINK_KEYS)
        ends = []
        for key in LINK_KEYS:
            end = _require(src, link, key)
            name = text(src, end, f"{key}: {xivos[0].name}")
            if name not in by_name:
                raise src.error(end, f"{shown(name)} is not a declared XiVO; write one of: {', '.join(by_name)}")
            ends.append(name)
        down, up = ends
        if down == up:
            raise src.error(link, f"downstream and upstream are both {down!r}; a XiVO does not federate "
                                  "with itself: name two different XiVOs")
        if (down, up) in pairs:
            first = pairs[down, up]
            raise src.error(link, f"{down}->{up} is already listed at {first.path} (line {first.line}); "
                                  "keep one")
        pairs[down, up] = link
    return "links", [Pair(by_name[d], by_name[u]) for d, u in pairs]


def _probe_timeout(src: Source, node: Node) -> float:
    v = src.scalar(node)
    if isinstance(v, int | float) and not isinstance(v, bool) and 0 < v <= 300:
        return float(v)
    raise src.error(node, f"expected a number of seconds, more than 0 and at most 300, got {got(node, v)}; "
                          "write e.g. probe_timeout: 3")


def build_topology(tree: Node, file: str, source: Path) -> Topology:
    """Validate `tree` (read from `file`, resolved as `source`) into the model."""
    src = Source(file, source.parent)
    if not isinstance(tree, MappingNode):
        raise src.error(tree, f"the top level must be a mapping (name:, defaults:, xivos:, federation:), "
                              f"got {kind(tree)}; start from examples/minimal.yml")
    _check_keys(src, tree, TOP_KEYS)
    items = tree.items
    name = text(src, items["name"].node, "name: head-office") if "name" in items else Path(file).stem
    timeout = _probe_timeout(src, items["probe_timeout"].node) if "probe_timeout" in items else 3.0
    defaults: dict[str, Any] = {}
    defaults_node = _mapping(src, items["defaults"].node if "defaults" in items else None,
                             "a mapping of default settings", "defaults: {version: \"16.13\"}")
    if defaults_node is not None:
        _check_keys(src, defaults_node, DEFAULTS_KEYS)
        defaults = _settings(src, defaults_node)
    xivos, lines = _xivos(src, tree, defaults)
    federation, pairs = _pairs(src, tree, xivos)
    # A XiVO's name and address identify it in every report; `--redact-addresses` hides those.
    env_values = tuple(v for path, v in src.env_values.items()
                       if v and not re.search(r"\.(name|address)$", path) and path != "name")
    return Topology(name=name, source=source, xivos=tuple(xivos), pairs=tuple(pairs),
                    federation=federation, probe_timeout=timeout, lines=lines, env_values=env_values)
