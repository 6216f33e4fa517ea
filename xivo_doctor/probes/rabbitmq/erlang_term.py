"""Erlang terms as `rabbitmqctl eval` prints them, read into Python values (LAB-NOTES §A.5).

Place in the pipeline: acquisition (pure text -> data, no I/O). A small tokenizer and a recursive
descent parser with a depth bound; every malformed input raises `ParseError` (turned into a
`ProbeError` by `probes/rabbitmq.py`), never another exception. The tokens are disjoint
alternatives matched from a position, so reading is linear in the text's length.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 64  # the status term is four levels deep; an error reason a few more


class ParseError(ValueError):
    """An output of a shape this module does not know."""


class Atom(str):
    """An Erlang atom (`running`, `'apply-to'`), told apart from strings and binaries."""


# -- Erlang terms ---------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<punct><<|>>|\#\{|=>|[\[\]{},/])
  | (?P<pid><\d+\.\d+\.\d+>)
  | (?P<number>-?\d+(?:\.\d+(?:[eE][-+]?\d+)?)?)
  | (?P<atom>[a-z][A-Za-z0-9_@]*)
  | (?P<qatom>'(?:[^'\\]|\\.)*')
  | (?P<string>"(?:[^"\\]|\\.)*")
""", re.VERBOSE | re.DOTALL)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "s": " ", "b": "\b", "f": "\f", "v": "\v", "e": "\x1b", "d": "\x7f"}


def _unescape(body: str) -> str:
    try:
        return _unescaped(body)
    except (ValueError, OverflowError):  # \\x{110000}: no such character
        raise ParseError("an escape that is not a character") from None


def _unescaped(body: str) -> str:
    def one(m: re.Match[str]) -> str:
        code = m.group(1)
        if code.startswith("x{"):
            return chr(int(code[2:-1], 16))
        if code.startswith("x"):
            return chr(int(code[1:], 16))
        if code[0] in "01234567":
            return chr(int(code, 8))
        if code.startswith("^"):
            return chr(ord(code[1]) & 31)
        return _ESCAPES.get(code, code)
    return re.sub(r"\\(x\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|[0-7]{1,3}|\^.|.)", one, body, flags=re.DOTALL)


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise ParseError(f"unexpected character {text[pos]!r} at offset {pos}")
        if m.lastgroup != "ws":
            out.append((m.lastgroup or "", m.group()))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.depth = 0

    def peek(self) -> str:
        return self.toks[self.i][1] if self.i < len(self.toks) else ""

    def take(self, want: str | None = None) -> tuple[str, str]:
        if self.i >= len(self.toks):
            raise ParseError("the term ends too early")
        kind, value = self.toks[self.i]
        if want is not None and value != want:
            raise ParseError(f"expected {want!r}, found {value!r}")
        self.i += 1
        return kind, value

    def seq(self, close: str, item) -> list[Any]:
        items: list[Any] = []
        if self.peek() == close:
            self.take(close)
            return items
        while True:
            items.append(item())
            value = self.take()[1]
            if value == close:
                return items
            if value != ",":
                raise ParseError(f"expected ',' or {close!r}, found {value!r}")

    def value(self) -> Any:
        kind, value = self.take()
        if value in ("[", "{", "#{") and self.depth >= MAX_DEPTH:
            raise ParseError(f"terms nested more than {MAX_DEPTH} deep")
        self.depth += 1
        try:
            return self._value(kind, value)
        finally:
            self.depth -= 1

    def _value(self, kind: str, value: str) -> Any:
        if value == "[":
            return self.seq("]", self.value)
        if value == "{":
            return tuple(self.seq("}", self.value))
        if value == "#{":
            pairs = self.seq("}", self.pair)
            try:
                return dict(pairs)
            except TypeError:  # #{[] => 1}: a list key has no Python dict equivalent
                raise ParseError("a map key that is a list or a map") from None
        if value == "<<":
            return self.binary()
        if kind == "number":
            try:
                return float(value) if "." in value else int(value)
            except ValueError:  # more digits than int() converts (Python caps it at 4300)
                raise ParseError("a number too long to read") from None
        if kind == "atom":
            return Atom(value)
        if kind == "qatom":
            return Atom(_unescape(value[1:-1]))
        if kind == "string":
            return _unescape(value[1:-1])
        if kind == "pid":
            return value
        raise ParseError(f"unexpected {value!r}")

    def pair(self) -> tuple[Any, Any]:
        key = self.value()
        self.take("=>")
        return key, self.value()

    def binary(self) -> str:
        if self.peek() == ">>":
            self.take()
            return ""
        kind, value = self.take()
        if kind == "string":
            text = _unescape(value[1:-1])
            if self.peek() == "/":  # <<"é"/utf8>>: already characters
                self.take("/")
                self.take("utf8")
            else:  # <<"Ã©">>: one character per byte
                text = text.encode("latin-1", "replace").decode("utf-8", "replace")
            self.take(">>")
            return text
        data = [value]
        while self.peek() == ",":
            self.take(",")
            data.append(self.take()[1])
        self.take(">>")
        if not all(d.isdigit() and int(d) < 256 for d in data):
            raise ParseError("a binary holds something other than bytes")
        return bytes(int(d) for d in data).decode("utf-8", "replace")


def parse_term(text: str) -> Any:
    """One Erlang term as Python: list, tuple, dict (map), Atom, str (string, binary), int, float."""
    parser = _Parser(text.strip())
    value = parser.value()
    if parser.i != len(parser.toks):
        raise ParseError(f"unexpected {parser.peek()!r} after the term")
    return value


def render(term: Any) -> str:
    """A term as Erlang would print it (the management API shows link errors so)."""
    if isinstance(term, Atom):
        return term
    if isinstance(term, str):
        return json.dumps(term, ensure_ascii=False)
    if isinstance(term, tuple):
        return "{" + ",".join(render(t) for t in term) + "}"
    if isinstance(term, list):
        return "[" + ",".join(render(t) for t in term) + "]"
    if isinstance(term, dict):
        return "#{" + ",".join(f"{render(k)} => {render(v)}" for k, v in term.items()) + "}"
    return str(term)
