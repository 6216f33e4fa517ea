"""The HTML report's view model: what the page shows, as plain values, built from a `Report`.

Place in the pipeline: presentation: reads the (already redacted) Report, never probes. `html.py`
renders this model with the templates; no markup is built here. Every string in it came from the
inspected systems or the topology and may be hostile: the templates escape all of it.

The page, top to bottom: the verdict line (a ticket title), what changed since the previous run
(with a history, `html_changes.py`), what to fix first, the picture (`picture.py`), the check x
XiVO and pair matrices, the ports from -> to (`ports.py`), every item grouped by check, the environment.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from xivo_doctor.foundation.measures import FACT_LABELS, FACT_ORDER, LinkKind
from xivo_doctor.foundation.results import Report, Result, Status, thaw
from xivo_doctor.render.html.changes import changes_view
from xivo_doctor.render.html.picture import build_picture
from xivo_doctor.render.html.ports import port_grid
from xivo_doctor.render.terminal import blocked_by_result
from xivo_doctor.render.words import headline
from xivo_doctor.render.xivos import declared_xivos, xivo_names

GLYPHS = {"pass": "✓", "warn": "!", "fail": "✗", "error": "?", "skip": "–", "none": "·"}
STATUS_ORDER = ("fail", "error", "warn", "pass", "skip")
MANUAL_PAGES = {  # the two manual pages the checks cite (/work/shared/docs, XIVO-FACTS conventions)
    "contact_and_presence_sharing.rst": "Contact and Presence Sharing",
    "phonebook_sharing.rst": "Phonebook Sharing",
}
XIVO_WORD, ADDRESS_WORD = "<XiVO>", "<address>"  # the row's own XiVO in a data source its table shares
# How much of a passing item is repeated as HTML, by the size of the embedded JSON, which holds all
# of it anyway. A report must stay under 300 kB for 10 XiVOs (issue 5), whose JSON alone is about
# 230 kB: up to about 4 XiVOs a passing item is a row with its evidence, up to about 7 a row without,
# beyond that just its matrix cell (what it observed stays in the JSON).
ROW_EVIDENCE_MAX_CHARS = 80_000
PASS_ROWS_MAX_CHARS = 150_000
MAX_DEPTH = 8  # deeper evidence is shown as JSON text: a hostile source cannot exhaust recursion


@dataclass(frozen=True)
class Tree:
    """Evidence (or the topology) as the template draws it: `s` a scalar, `m` key/value pairs,
    `l` a list, `t` a table (a list of mappings: `columns` x `rows` of trees)."""

    kind: str
    text: str = ""
    pairs: tuple[tuple[str, Tree], ...] = ()
    items: tuple[Tree, ...] = ()
    columns: tuple[str, ...] = ()
    rows: tuple[tuple[Tree | None, ...], ...] = ()
    keys: tuple[str, ...] = ()  # a table made of a mapping of mappings: each row's key


@dataclass(frozen=True)
class ItemView:
    r: Result
    slug: str
    source: str
    evidence: Tree | None  # None when empty, or left to the embedded JSON (a passing item of a big report)
    doc: str
    blockers: tuple[Result, ...]
    unmatched_blocked_by: tuple[str, ...]
    blocks: tuple[Result, ...]
    place: str  # "details": in full (failed, warned, could not check); "row" of a table; its matrix "cell"


@dataclass(frozen=True)
class Group:
    """One check's items: what they share (title, why, manual section), then the items."""

    check: str
    anchor: str
    title: str
    why: str
    doc: str
    detailed: tuple[ItemView, ...]
    rows: tuple[ItemView, ...]
    shared_source: str  # the rows' data source, when it is said once for all of them

    @property
    def row_tables(self) -> list[tuple[str, list[ItemView]]]:
        """The rows by status (passing first), one collapsed table each."""
        tables: dict[str, list[ItemView]] = {}
        for v in sorted(self.rows, key=lambda v: v.r.status is not Status.PASS):
            tables.setdefault(v.r.status.value, []).append(v)
        return list(tables.items())


def _source_shape(v: ItemView, addresses: Mapping[str, str]) -> str:
    """The row's data source with its own XiVO's name and address replaced by placeholders."""
    own = v.r.target.partition("->")[0]
    shape = v.source
    for word, placeholder in ((addresses.get(own, ""), ADDRESS_WORD), (own, XIVO_WORD)):
        if word and word != "*":
            shape = re.sub(rf"(?<![\w.-]){re.escape(word)}(?![\w-])", placeholder, shape)
    return shape


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text.replace("->", "-to-")).strip("-") or "x"


def slugs(report: Report) -> dict[str, str]:
    """A stable HTML id per item id: `item-` + the id with `->` as `-to-` and anything but letters,
    digits, `.`, `_`, `-` as `-`; a clash (names differing only there) gets `-2`, `-3`, ..."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for r in report.results:
        base = "item-" + _slug(r.item_id)
        slug, n = base, 1
        while slug in used:
            n += 1
            slug = f"{base}-{n}"
        used.add(slug)
        out.setdefault(r.item_id, slug)
    return out


def scalar(value: Any) -> str:
    """One value as text: strings as they are, JSON's spelling for the rest."""
    if isinstance(value, str):
        return value if value else '""'
    if value is None or isinstance(value, bool | Mapping | tuple | list):
        return json.dumps(thaw(value), ensure_ascii=False, default=str)
    return str(value)


def tree(value: Any, depth: int = 0) -> Tree:
    """`value` (JSON-like, from an inspected system) as a `Tree` the template can draw."""
    if depth >= MAX_DEPTH and isinstance(value, Mapping | list | tuple):
        return Tree("s", scalar(value))
    if isinstance(value, Mapping | list | tuple) and not value:
        return Tree("s", "{}" if isinstance(value, Mapping) else "[]")
    if isinstance(value, Mapping):
        # {port: {state, ms, ...}, ...}: a table, one row per key (as the terminal gives one line each)
        table = len(value) > 1 and all(isinstance(v, Mapping) and v and not any(
            isinstance(x, Mapping | list | tuple) for x in v.values()) for v in value.values())
        return _table(tuple(value.values()), depth, tuple(map(str, value))) if table else Tree(
            "m", pairs=tuple((str(k), tree(v, depth + 1)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        if all(not isinstance(v, Mapping | list | tuple) for v in value):
            return Tree("s", ", ".join(scalar(v) for v in value))
        if all(isinstance(v, Mapping) and v for v in value):
            return _table(tuple(value), depth)
        return Tree("l", items=tuple(tree(v, depth + 1) for v in value))
    return Tree("s", scalar(value))


def _table(rows: tuple[Mapping[str, Any], ...], depth: int, keys: tuple[str, ...] = ()) -> Tree:
    """Mappings as one table, their keys as its columns (too many: a list of mappings instead)."""
    columns = tuple(dict.fromkeys(str(k) for v in rows for k in v))
    if len(columns) > 12:
        return Tree("l", items=tuple(tree(v, depth + 1) for v in rows))
    cells = tuple(tuple(tree(v[c], depth + 2) if c in v else None for c in columns) for v in rows)
    return Tree("t", columns=columns, rows=cells, keys=keys)


def _place(r: Result, size: int) -> str:
    if r.status not in (Status.PASS, Status.SKIP):
        return "details"
    return "cell" if r.status is Status.PASS and size > PASS_ROWS_MAX_CHARS else "row"


def _items(report: Report, anchors: dict[str, str], size: int) -> dict[int, ItemView]:
    """Each item's view; `size` (of the embedded JSON) decides how much of a passing item is shown."""
    blockers: dict[int, list[Result]] = {}
    blocks: dict[int, tuple[Result, ...]] = {}
    for b in report.results:
        blocks[id(b)] = blocked_by_result(report, b)
        for r in blocks[id(b)]:
            blockers.setdefault(id(r), []).append(b)
    views = {}
    for r in report.results:
        mine = tuple(blockers.get(id(r), ()))
        named = {x.item_id for x in mine} | {x.check for x in mine}
        unmatched = tuple(e for e in r.blocked_by if e.split(":")[0] not in named)
        evidence = {k: v for k, v in r.evidence.items() if k != "source"}
        place = _place(r, size)
        shown = place == "details" or size <= ROW_EVIDENCE_MAX_CHARS
        views[id(r)] = ItemView(
            r=r, slug=anchors[r.item_id],
            source=scalar(r.evidence["source"]) if "source" in r.evidence else "",
            evidence=tree(evidence) if evidence and shown else None,
            doc=(r.fix.doc if r.fix is not None and r.fix.doc else "") or r.doc,
            blockers=mine, unmatched_blocked_by=unmatched, blocks=blocks[id(r)], place=place,
        )
    return views


def _groups(report: Report, views: dict[int, ItemView]) -> list[Group]:
    """Per check: its items in full when they failed, warned or could not be checked, the others as
    rows, whose data source is said once when it is the same but for each row's own XiVO
    (`rabbitmqctl on xivo-1`, `... on xivo-2`: `rabbitmqctl on <XiVO>`)."""
    addresses = {str(x.get("name")): str(x.get("address", "")) for x in declared_xivos(report)}
    by_check: dict[str, list[ItemView]] = {}
    for r in report.results:
        by_check.setdefault(r.check, []).append(views[id(r)])
    groups = []
    for check, vs in by_check.items():
        rows, full = tuple(v for v in vs if v.place == "row"), tuple(v for v in vs if v.place == "details")
        shapes = {_source_shape(v, addresses) for v in rows if v.source}
        groups.append(Group(check=check, anchor=f"check-{_slug(check)}", title=vs[0].r.title or check,
                            why=vs[0].r.why, doc=vs[0].r.doc, detailed=full, rows=rows,
                            shared_source=shapes.pop() if len(shapes) == 1 and len(rows) > 1 else ""))
    return groups


def _matrices(report: Report, names: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The check x XiVO matrix (with an `all` column for whole-topology items) and, per pair
    check, a XiVO x peer matrix, in the roles its link kind names (downstream x upstream). Cells
    are results (or None: no such item)."""
    cell = {(r.check, r.target): r for r in report.results}
    checks = list(dict.fromkeys(r.check for r in report.results))
    single = [c for c in checks if any(r.check == c and "->" not in r.target for r in report.results)]
    columns = [*names, "*"] if any(r.target == "*" for r in report.results) else names
    rows = [(c, [cell.get((c, n)) for n in columns]) for c in single]
    kinds = {r.check: r.link for r in report.results if r.link is not None}
    pairs = [{"check": c, "link": kinds.get(c) or LinkKind(c, c, ""),
              "rows": [(d, [cell.get((c, f"{d}->{u}")) if d != u else None for u in names]) for d in names]}
             for c in checks if any(r.check == c and "->" in r.target for r in report.results)]
    return {"columns": columns, "rows": rows}, pairs


def _xivo_table(report: Report, names: list[str]) -> tuple[list[str], list[dict[str, Any]]]:
    """The facts columns (the version and the UUID always, then any other fact an item gave), and per
    XiVO its name, address and facts as the checks saw them (`Result.facts`; "unknown" when none
    did). A XiVO's own items are believed before what another item says of it."""
    own: dict[str, dict[str, str]] = {}
    others: dict[str, dict[str, str]] = {}
    for r in report.results:
        for xivo, facts in r.facts.items():
            for key, value in facts.items():
                (own if r.target == xivo else others).setdefault(xivo, {}).setdefault(key, value)
    seen = [k for n in names for f in (own.get(n, {}), others.get(n, {})) for k in f]
    columns = [*FACT_ORDER, *(k for k in dict.fromkeys(seen) if k not in FACT_ORDER)]
    declared = {str(x.get("name")): x for x in declared_xivos(report)}
    rows = []
    for n in names:
        facts = {**others.get(n, {}), **own.get(n, {})}
        rows.append({"name": n, "address": scalar(declared.get(n, {}).get("address", "unknown")),
                     "facts": [scalar(facts[c]) if facts.get(c) else "unknown" for c in columns]})
    return [FACT_LABELS.get(c, c) for c in columns], rows


def page_model(report: Report, json_size: int) -> dict[str, Any]:
    """Everything the template shows; `json_size` (of the embedded result) decides how much of
    each passing item is repeated as HTML."""
    anchors = slugs(report)
    names = xivo_names(report)
    views = _items(report, anchors, json_size)
    groups = _groups(report, views)
    matrix, pair_matrices = _matrices(report, names)
    fact_columns, xivos = _xivo_table(report, names)
    counts = report.counts()
    return {
        "report": report,
        "topology_name": scalar(report.topology.get("name") or ""),
        "headline": headline(report),
        "changes": changes_view(report),
        "verdict": report.verdict.value,
        "counts": [(s, counts[s]) for s in STATUS_ORDER],
        "root_causes": [views[id(r)] for r in report.root_causes()],
        "errors": [views[id(r)] for r in report.with_status(Status.ERROR)],
        "picture": build_picture(report),
        "matrix": matrix,
        "pair_matrices": pair_matrices,
        "port_grid": port_grid(report, names),
        "groups": groups,
        "check_anchors": {g.check: g.anchor for g in groups},
        "row_evidence": json_size <= ROW_EVIDENCE_MAX_CHARS,
        "in_cells": {v.r.item_id for v in views.values() if v.place == "cell"},
        "fact_columns": fact_columns,
        "xivos": xivos,
        "topology": tree(report.topology),
        "anchors": anchors,
        "glyphs": GLYPHS,
        "manual_pages": MANUAL_PAGES,
    }
