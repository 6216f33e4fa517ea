"""Reads the topology file into a positioned tree that `schema` validates into the model.

Place in the pipeline: `load_topology` (the CLI's entry point, in `__init__`) calls `read_tree`,
which reads the bytes and parses YAML into `Scalar` / `MappingNode` / `SequenceNode` nodes that remember
their line and dotted key path; `schema.build_topology` then validates that tree through a
`Source`, which reads values (`${VAR}` expansion, `*_file` secrets) and words the errors. Every bad
input becomes a `TopologyError` (one line: file, line, key, what to write instead); the CLI turns
it into exit 3. No other exception type leaves this module.
"""

from __future__ import annotations

import codecs
import errno
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from ..foundation.errors import TopologyError

MAX_FILE_BYTES = 1024 * 1024  # a topology is a few KiB; anything bigger is a wrong file
MAX_SECRET_BYTES = 64 * 1024  # a password, token or DSN
MAX_DEPTH = 32  # topology files are four levels deep; deeper nesting is a mistake
MAX_KEY_CHARS = 64  # the longest real key is `serf_wan_port`
MAX_SHOWN_CHARS = 60  # a value quoted in a message: enough to recognise it, never a flood

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_YAML = "tag:yaml.org,2002:"
# Scalars whose YAML type we keep (the schema reports "got 16.1 (float)" and the like).
_TYPED_TAGS = {_YAML + t for t in ("null", "bool", "int", "float")}
# Scalars we keep as their text: a date-looking name or the odd `=` / `<<` is just a string here.
_TEXT_TAGS = {_YAML + t for t in ("str", "timestamp", "value", "merge")}


@dataclass
class Node:
    """A YAML node with where it came from: `line` is 1-based, `path` like `xivos[1].rabbitmq`."""

    line: int
    path: str


@dataclass
class Scalar(Node):
    value: Any  # None, bool, int, float or str (str before `${VAR}` expansion)
    text: str  # the text as written, e.g. "16.10" for a version YAML reads as 16.1


@dataclass
class Entry:
    key_line: int
    node: Node


@dataclass
class MappingNode(Node):
    items: dict[str, Entry] = field(default_factory=dict)  # in file order


@dataclass
class SequenceNode(Node):
    items: list[Node] = field(default_factory=list)


NOT_SCALAR = object()  # what `Source.scalar` returns for a list or mapping


class _AliasFound(Exception):
    def __init__(self, mark: yaml.Mark) -> None:
        self.mark = mark


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses anchors and aliases while composing.

    Refusing them outright is the simplest defence against "billion laughs" expansion, and a
    topology file never needs them.
    """

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise _AliasFound(event.start_mark)
        return super().compose_node(parent, index)


def read_tree(path: Path, file: str) -> Node:
    """Read and parse `path`; `file` is the path as the user gave it, for messages."""
    text = _read_text(path, file)
    try:
        loader = _Loader(text)  # the reader refuses control characters right here
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
    except _AliasFound as e:
        raise TopologyError(
            "YAML anchors and aliases (&/*) are not supported in topology files; write the values out",
            file=file, line=e.mark.line + 1) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise TopologyError(_syntax_message(e), file=file, line=mark.line + 1 if mark else None) from None
    except yaml.reader.ReaderError as e:  # a control character the YAML reader refuses
        line = text.count("\n", 0, e.position) + 1
        raise TopologyError(
            f"YAML syntax error: control character U+{e.character:04X} is not allowed; remove it",
            file=file, line=line) from None
    except yaml.YAMLError as e:
        raise TopologyError(f"YAML syntax error: {e}; check the file against examples/minimal.yml",
                            file=file) from None
    except RecursionError:
        raise TopologyError(
            f"the YAML is nested too deeply; a topology file is at most {MAX_DEPTH} levels deep",
            file=file) from None
    if root is None:
        raise TopologyError("the file is empty; start from examples/minimal.yml", file=file)
    return _convert(root, "", file, SafeConstructor(), 0)


def _syntax_message(e: yaml.MarkedYAMLError) -> str:
    """PyYAML's problem in the admin's words where we know a clearer one."""
    mark = e.problem_mark or e.context_mark
    problem = e.problem or e.context or "invalid YAML"
    column = f" (column {mark.column + 1})" if mark else ""
    if "another document" in problem:
        return ("the file holds several YAML documents (a second `---`); a topology file is one "
                "document: keep one and remove the other")
    if "'\\t'" in problem:
        return f"YAML syntax error: a tab character{column}; YAML indents with spaces only: replace tabs with spaces"
    return (f"YAML syntax error: {problem}{column}; check the indentation and quote values "
            "that contain ': ' or '#'")


def _read_text(path: Path, file: str) -> str:
    try:
        try:
            st = path.stat()
        except FileNotFoundError:
            if not path.is_symlink():
                raise
            raise TopologyError(f"is a symbolic link to {os.readlink(path)}, which does not exist; "
                                "fix the link or pass the topology file itself", file=file) from None
        if stat.S_ISDIR(st.st_mode):
            raise TopologyError(
                f"is a directory; pass the topology file itself, e.g. -T {Path(file) / 'topology.yml'}",
                file=file)
        if not stat.S_ISREG(st.st_mode):
            # Opening a FIFO or a device could block forever or never end.
            raise TopologyError("is not a regular file; pass the topology file (.yml) itself", file=file)
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise TopologyError(
            "file not found; write a topology file there (see README: Topology file) or pass -T FILE",
            file=file) from None
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the path
        reason = getattr(e, "strerror", None) or "invalid path"
        raise TopologyError(f"cannot read the file: {reason}; check its path and permissions",
                            file=file) from None
    if len(data) > MAX_FILE_BYTES:
        raise TopologyError(
            "the file is larger than 1 MiB; a topology file is a few KiB: pass the right file",
            file=file)
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # Windows editors' "Unicode"
        raise TopologyError("the file is UTF-16 text; save it as UTF-8", file=file)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise TopologyError(
            f"not UTF-8 text (byte 0x{data[e.start]:02x}); save the file as UTF-8",
            file=file, line=line) from None
    if not text.strip():
        raise TopologyError("the file is empty; start from examples/minimal.yml", file=file)
    return text


def _convert(node: yaml.Node, path: str, file: str, ctor: SafeConstructor, depth: int) -> Node:
    line = node.start_mark.line + 1
    if depth > MAX_DEPTH:
        raise TopologyError(
            f"nested more than {MAX_DEPTH} levels deep; a topology file is a few levels deep",
            file=file, line=line, key=path)
    if isinstance(node, yaml.ScalarNode):
        if node.tag in _TYPED_TAGS:
            try:
                value = ctor.construct_object(node)
            except (yaml.YAMLError, ValueError):
                value = node.value
        elif node.tag in _TEXT_TAGS:
            value = node.value
        else:
            raise _tag_error(node, file, line, path)
        return Scalar(line, path, value, node.value)
    if isinstance(node, yaml.SequenceNode):
        if node.tag != _YAML + "seq":
            raise _tag_error(node, file, line, path)
        return SequenceNode(line, path, [_convert(item, f"{path}[{i}]", file, ctor, depth + 1)
                                     for i, item in enumerate(node.value)])
    if node.tag != _YAML + "map":
        raise _tag_error(node, file, line, path)
    result = MappingNode(line, path)
    for key_node, value_node in node.value:
        key_line = key_node.start_mark.line + 1
        if not isinstance(key_node, yaml.ScalarNode):
            raise TopologyError("a key must be a plain word, not a list or mapping; write key: value",
                                file=file, line=key_line, key=path)
        # The key as written: `on:` or `yes:` stay words instead of YAML booleans.
        key = key_node.value
        if len(key) > MAX_KEY_CHARS or not key.isprintable():
            # Echoed as is, such a key would flood or break the one-line message.
            raise TopologyError(f"unknown key {shown(key)}; topology keys are short words such as "
                                "name, address, consul", file=file, line=key_line, key=path)
        child = f"{path}.{key}" if path else key
        if key in result.items:
            first = result.items[key].key_line
            raise TopologyError(f"key {key!r} appears twice (first at line {first}); keep one",
                                file=file, line=key_line, key=child)
        result.items[key] = Entry(key_line, _convert(value_node, child, file, ctor, depth + 1))
    return result


def _tag_error(node: yaml.Node, file: str, line: int, path: str) -> TopologyError:
    tag = node.tag.replace(_YAML, "!!")  # as the user most likely wrote it
    return TopologyError(f"YAML tag {tag} is not supported in topology files; remove it",
                         file=file, line=line, key=path)


def shown(value: str) -> str:
    """`value` quoted for a message: repr (a newline stays `\\n`), cut when it is long."""
    if len(value) <= MAX_SHOWN_CHARS:
        return repr(value)
    return f"{value[:MAX_SHOWN_CHARS]!r}... ({len(value)} characters)"


def kind(node: Node) -> str:
    """`a str`, `an int`, `a list`...: what a node holds, without its value (secrets, containers)."""
    if isinstance(node, MappingNode | SequenceNode):
        return "a mapping" if isinstance(node, MappingNode) else "a list"
    value = node.value if isinstance(node, Scalar) else None
    if value is None:
        return "nothing"
    name = type(value).__name__
    return f"an {name}" if name[0] in "aeiou" else f"a {name}"


def got(node: Node, value: Any) -> str:
    """What a node holds, value included: `'five' (str)`, `70000 (int)`, `a list`."""
    if isinstance(value, str):
        return f"{shown(value)} (str)"
    if isinstance(node, Scalar) and value is not None:
        text = node.text if len(node.text) <= MAX_SHOWN_CHARS else f"{node.text[:MAX_SHOWN_CHARS]}..."
        return f"{text} ({type(value).__name__})"
    return kind(node)


class Source:
    """The topology file being validated: builds its errors, reads its values and secret files."""

    def __init__(self, file: str, base: Path) -> None:
        self.file = file  # as the user named it, for messages
        self.base = base  # the file's directory, absolute: relative paths in the file start there
        # Every value `${VAR}` expanded to, by key path: redaction masks them in every output
        # (an admin puts in the environment what should not be written down).
        self.env_values: dict[str, str] = {}

    def error(self, node: Node, message: str, *, key: str | None = None,
              line: int | None = None) -> TopologyError:
        return TopologyError(message, file=self.file, line=line or node.line,
                             key=node.path if key is None else key)

    def scalar(self, node: Node) -> Any:
        """The scalar's value, `${VAR}` expanded in strings; `NOT_SCALAR` for a list or mapping."""
        if not isinstance(node, Scalar):
            return NOT_SCALAR
        if not isinstance(node.value, str):
            return node.value

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise self.error(node, f"environment variable {name} is not set; export it before "
                                       "running, or write the value")
            self.env_values[node.path] = os.environ[name]
            return os.environ[name]

        return _ENV_REF.sub(replace, node.value)

    def path(self, value: str) -> Path:
        return self.base / Path(value).expanduser()  # an absolute value (or ~/...) stays as it is

    def read_secret(self, node: Node, value: str) -> str:
        """The content of a `*_file` secret, without its one trailing newline."""
        path = self.path(value)
        try:
            mode = path.stat().st_mode
            if stat.S_ISDIR(mode):
                raise IsADirectoryError(errno.EISDIR, "Is a directory")
            if not stat.S_ISREG(mode):  # a FIFO would block the run
                raise OSError(errno.EINVAL, "not a regular file")
            with path.open("rb") as f:
                data = f.read(MAX_SECRET_BYTES + 1)
            if len(data) > MAX_SECRET_BYTES:
                raise OSError(errno.EFBIG, "larger than 64 KiB, not a secret")
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise self.error(node, f"cannot read {path} (not UTF-8 text); save it as UTF-8") from None
        except (OSError, ValueError) as e:  # ValueError: a NUL byte in the path
            # "(reason)", not "path: reason": a file named `x.secret: reason` reads to the
            # redactor as a `secret: value` pair and the reason would be masked.
            reason = getattr(e, "strerror", None) or "invalid path"
            raise self.error(node, f"cannot read {path} ({reason}); create it or fix the path") from None
        # Editors add one final newline; a secret itself never ends with one.
        return text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")
