"""Property-based test of the topology loader: valid documents load, invalid ones give one TopologyError.

Place: tests of acquisition. Documents are built from the schema's own tables
(`schema.SECTIONS` / `Key`), then mutated (a key removed, a value of the wrong type, an unknown
key, a duplicate name or address). `load_topology` runs in-process on a tmp file: a valid document
loads and `describe()` gives back its names and addresses; an invalid one raises exactly one
`TopologyError` whose message is one line. Any other exception fails the test.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xivo_doctor.foundation.errors import TopologyError
from xivo_doctor.topology import convert, load_topology
from xivo_doctor.topology.schema import SECTIONS, Key

VALID: dict[Any, st.SearchStrategy[Any]] = {
    convert.port: st.integers(1, 65535),
    convert.text: st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True),
    convert.scheme: st.sampled_from(["http", "https"]),
    convert.verify: st.booleans(),
    convert.secret: st.text(alphabet="abcXYZ019!@#-", min_size=1, max_size=12),
    convert.boolean: st.booleans(),
    convert.ip_address: st.ip_addresses().map(str),
    convert.command: st.lists(st.from_regex(r"[a-z/][a-z0-9/_.-]{0,10}", fullmatch=True), min_size=1, max_size=3),
    convert.directory: st.just("/"),
}
WRONG = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30), st.floats(allow_nan=False),
                  st.text(max_size=20), st.lists(st.integers(), max_size=2),
                  st.dictionaries(st.sampled_from(["a", "port"]), st.integers(), max_size=2))


def _section(table: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    fields = {key: VALID[spec.convert] if isinstance(spec, Key) else _section(spec) for key, spec in table.items()}
    return st.fixed_dictionaries({}, optional=fields)


@st.composite
def valid_documents(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(2, 4))
    names = draw(st.lists(st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True), min_size=n, max_size=n,
                          unique_by=str.lower))
    addresses = draw(st.lists(st.ip_addresses(v=4).map(str), min_size=n, max_size=n, unique=True))
    xivos = []
    for name, address in zip(names, addresses, strict=True):
        xivo = {"name": name, "address": address}
        xivo.update(draw(st.fixed_dictionaries({}, optional={k: _section(t) for k, t in SECTIONS.items()})))
        if draw(st.booleans()):
            xivo["version"] = draw(st.from_regex(r"1[5-9]\.[0-9]{1,2}", fullmatch=True))
        xivos.append(xivo)
    doc: dict[str, Any] = {"xivos": xivos}
    if draw(st.booleans()):
        doc["probe_timeout"] = draw(st.floats(0.1, 300))
    if draw(st.booleans()):
        doc["federation"] = {"links": [{"downstream": names[0], "upstream": names[1]}]}
    return doc


def _paths(value: Any, path: tuple = ()) -> list[tuple]:
    """Every key path in the document, lists included (index steps)."""
    out = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for k, v in items:
        out.append((*path, k))
        out.extend(_paths(v, (*path, k)))
    return out


@st.composite
def mutated_documents(draw: st.DrawFn) -> dict[str, Any]:
    doc = draw(valid_documents())
    paths = [p for p in _paths(doc) if isinstance(p[-1], str)]
    path = draw(st.sampled_from(paths))
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    how = draw(st.sampled_from(["remove", "wrong-type", "unknown-key", "duplicate"]))
    if how == "remove":
        del parent[path[-1]]
    elif how == "wrong-type":
        parent[path[-1]] = draw(WRONG)
    elif how == "unknown-key":
        parent[draw(st.from_regex(r"[a-z]{1,12}", fullmatch=True)) + "_x"] = 1
    else:
        what = draw(st.sampled_from(["name", "address"]))
        doc["xivos"][1][what] = doc["xivos"][0][what]
    return doc


def _load(doc: dict[str, Any]):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "topology.yml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return load_topology(path)


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(valid_documents())
def test_valid_documents_load_and_round_trip(doc: dict[str, Any]) -> None:
    described = _load(doc).describe()
    assert [x["name"] for x in described["xivos"]] == [x["name"] for x in doc["xivos"]]
    assert [x["address"] for x in described["xivos"]] == [x["address"] for x in doc["xivos"]]


@FAST
@given(mutated_documents())
def test_mutated_documents_load_or_give_one_line(doc: dict[str, Any]) -> None:
    try:
        _load(doc)
    except TopologyError as exc:
        assert "\n" not in str(exc) and str(exc)
