"""The topology picture of the HTML report, as data: where each XiVO sits, which links are drawn
between them, and the status colouring each one. The template turns these numbers into SVG.

Place in the pipeline: presentation: reads the Report, never probes; no markup is built here, and
no check is named: each result says which kind of link it judges (`Result.link`, declared by its
check, foundation/measures.py) and, for a per-XiVO item, its view of each peer (`link_views`).

One panel per kind of link, drawn in their declared order, all with the XiVOs at the same places on
a circle, so that even 10 XiVOs (90 federation links) stay readable:

- pair items (`a->b`): one arrow per expected pair, from `a` to `b`, or from `b` to `a` when what
  the link carries flows to the pair's XiVO (`flows_to_xivo`: federation messages go upstream ->
  downstream, XIVO-FACTS §5); the two directions bow to opposite sides, so both show;
- per-XiVO items, directed: one arrow x -> peer per peer, from x's view of that peer; several
  checks may share a kind (the directories: contacts and phonebooks), the worst view wins;
- per-XiVO items, undirected: one line per two XiVOs, the worse of the two views (Consul WAN).
A view says whether that peer is fine by the item; an item with no view of a peer colours it by
its own status (an error or a skip holds for every peer).

A node takes the worst status of the per-XiVO items that judge no link (ports, UUID, presence
advertisement, version, ...). "Worst": fail > error > warn > skip because blocked > pass > skip
because not applicable; `none` is "no item about it in this run".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from xivo_doctor.foundation.measures import LinkKind
from xivo_doctor.foundation.results import Report, Result, Status
from xivo_doctor.render.xivos import listed, xivo_names

NONE = "none"  # no item about this node or link in the run (e.g. `--check` left it out)
_RANK = {Status.FAIL.value: 5, Status.ERROR.value: 4, Status.WARN.value: 3, "blocked": 2,
         Status.PASS.value: 1, Status.SKIP.value: 0, NONE: -1}
NOTE_CHARS = 160  # of a message in a tooltip
LABEL_CHARS = 18  # longer names are cut in the picture (the full name is in the tooltip)


@dataclass(frozen=True)
class Mark:
    """A status as drawn: the status word, how bad it is, the item to open and why."""

    status: str
    rank: int
    item: str = ""
    note: str = ""
    own: bool = True  # the item's own status (else a part of it, e.g. one peer of a passing item)


@dataclass(frozen=True)
class Node:
    name: str
    label: str
    x: int
    y: int
    lx: int  # where the label goes, and how it is anchored (start / middle / end)
    ly: int
    anchor: str
    mark: Mark


@dataclass(frozen=True)
class Link:
    """From `a` to `b`; straight when `cx`/`cy` are None, else a quadratic curve through them."""

    a: str
    b: str
    x1: int
    y1: int
    x2: int
    y2: int
    cx: int | None
    cy: int | None
    mark: Mark
    text: str  # what the link is, in words: "xivo-2 → xivo-1"


@dataclass(frozen=True)
class Panel:
    key: str
    title: str
    caption: str
    directed: bool
    width: int
    height: int
    node_r: int
    nodes: tuple[Node, ...]
    links: tuple[Link, ...]  # best first

    @property
    def passing(self) -> tuple[Link, ...]:
        """Passing links: drawn thin, as one path, without arrowheads (both ways work)."""
        return tuple(k for k in self.links if k.mark.status == Status.PASS.value)

    @property
    def others(self) -> tuple[Link, ...]:
        """Links not passing, best first so the worst are drawn on top, each with its arrowhead."""
        return tuple(k for k in self.links if k.mark.status != Status.PASS.value)

    @property
    def problems(self) -> tuple[Link, ...]:
        """Links not passing, worst first: the text list under the picture."""
        return tuple(reversed(self.others))


@dataclass(frozen=True)
class Picture:
    panels: tuple[Panel, ...]
    nodes: Mapping[str, Mark]  # each XiVO's own mark, also shown in the environment table


def mark_of(result: Result, status: str | None = None, note: str | None = None) -> Mark:
    """The mark of `result` (or of one of its parts, with `status`); a blocked skip ranks above pass."""
    word = status or result.status.value
    rank_key = "blocked" if word == Status.SKIP.value and result.blocked_by else word
    text = result.message if note is None else note
    text = text if len(text) <= NOTE_CHARS else text[: NOTE_CHARS - 1] + "…"
    return Mark(word, _RANK[rank_key], result.item_id, text, own=word == result.status.value)


def worst(marks: Iterable[Mark]) -> Mark:
    """The worst mark; of two as bad, the one that is its item's own status (the item to open)."""
    return max(marks, key=lambda m: (m.rank, m.own), default=Mark(NONE, _RANK[NONE]))


def _view(result: Result | None, peer: str) -> Mark:
    """What `result` (a per-XiVO item about its peers) says about one `peer`: its view of that peer
    when it has one and was judged (passed, failed or warned), else its own status."""
    if result is None:
        return Mark(NONE, _RANK[NONE])
    view = result.link_views.get(peer)
    if view is not None and result.status in (Status.PASS, Status.FAIL, Status.WARN):
        bad = Status.WARN.value if result.severity == "warn" else Status.FAIL.value
        return mark_of(result, Status.PASS.value if view.ok else bad, view.note)
    return mark_of(result)


def _circle(names: list[str]) -> tuple[dict[str, tuple[float, float]], float, int, float, float]:
    """Centres on a circle (two XiVOs side by side, else the first at the top, clockwise),
    the circle's radius, the node radius and the panel's size."""
    n = max(len(names), 1)
    radius = 60.0 + 10.0 * n
    node_r = 15 if n <= 6 else 11
    longest = min(LABEL_CHARS, max((len(name) for name in names), default=1))
    margin_x, margin_y = node_r + 10.0 + 7.0 * longest, node_r + 22.0
    start = math.pi if n == 2 else -math.pi / 2
    angles = [start + 2 * math.pi * i / n for i in range(n)]
    # As high as the nodes reach (two XiVOs side by side need a strip, not a square), at least 120.
    width = 2 * (radius + margin_x)
    height = max(120.0, 2 * (max(abs(radius * math.sin(a)) for a in angles) + margin_y))
    places = {name: (width / 2 + radius * math.cos(a), height / 2 + radius * math.sin(a))
              for name, a in zip(names, angles, strict=False)}
    return places, radius, node_r, width, height


def _node(name: str, x: float, y: float, cx: float, cy: float, node_r: float, mark: Mark) -> Node:
    angle = math.atan2(y - cy, x - cx)
    cos, sin = math.cos(angle), math.sin(angle)
    lx, ly = x + (node_r + 6) * cos, y + (node_r + 6) * sin + 4
    anchor = "start" if cos > 0.3 else "end" if cos < -0.3 else "middle"
    if anchor == "middle":
        ly += 8 if sin > 0 else -4
    label = name if len(name) <= LABEL_CHARS else name[: LABEL_CHARS - 1] + "…"
    return Node(name, label, round(x), round(y), round(lx), round(ly), anchor, mark)


def _toward(x: float, y: float, tx: float, ty: float, dist: float) -> tuple[float, float]:
    length = math.hypot(tx - x, ty - y) or 1.0
    return x + (tx - x) / length * dist, y + (ty - y) / length * dist


def _link(a: str, b: str, places: dict[str, tuple[float, float]], node_r: float, mark: Mark, *,
          curved: bool, text: str) -> Link:
    (ax, ay), (bx, by) = places[a], places[b]
    if not curved:
        x1, y1 = _toward(ax, ay, bx, by, node_r + 2)
        x2, y2 = _toward(bx, by, ax, ay, node_r + 2)
        return Link(a, b, round(x1), round(y1), round(x2), round(y2), None, None, mark, text)
    # Bow to the right of the direction of travel: a->b and b->a bow to opposite sides.
    length = math.hypot(bx - ax, by - ay) or 1.0
    bow = max(14.0, 0.13 * length)
    cx = (ax + bx) / 2 - (by - ay) / length * bow
    cy = (ay + by) / 2 + (bx - ax) / length * bow
    x1, y1 = _toward(ax, ay, cx, cy, node_r + 2)
    x2, y2 = _toward(bx, by, cx, cy, node_r + 5)  # room for the arrowhead
    return Link(a, b, round(x1), round(y1), round(x2), round(y2), round(cx), round(cy), mark, text)


def _sorted(links: list[Link]) -> tuple[Link, ...]:
    return tuple(sorted(links, key=lambda k: k.mark.rank))


def _pairs(report: Report, names: list[str], checks: set[str]) -> list[tuple[str, str]]:
    """Expected pairs: the topology's, then any other the items of `checks` name."""
    declared = [p for p in listed(report.topology, "pairs") if isinstance(p, str)]
    found = [r.target for r in report.results if r.check in checks and "->" in r.target]
    pairs = [tuple(p.split("->", 1)) for p in dict.fromkeys(declared + found)]
    return [(a, b) for a, b in pairs if a in names and b in names and a != b]


def build_picture(report: Report) -> Picture:
    """The picture of `report`: one panel per kind of link its items judge."""
    names = xivo_names(report)
    places, _radius, node_r, width, height = _circle(names)
    by_item = {(r.check, r.target): r for r in report.results}
    own = {n: worst(mark_of(r) for r in report.results if r.target == n and r.link is None) for n in names}
    nodes = tuple(_node(n, *places[n], width / 2, height / 2, node_r, own[n]) for n in names)
    kinds: dict[str, tuple[LinkKind, set[str]]] = {}
    for r in report.results:
        if r.link is not None:
            kinds.setdefault(r.link.key, (r.link, set()))[1].add(r.check)
    panels = []
    for kind, checks in sorted(kinds.values(), key=lambda k: (k[0].order, k[0].key)):
        if any("->" in r.target for r in report.results if r.check in checks):
            # a panel may hold pair items and per-XiVO items (directories: directory-lookup beside
            # directory-source): an arrow a->b is the worst of the pair items and of a's view of b
            links = [_arrow(a, b, kind, [*(mark_of(r) for c in checks if (r := by_item.get((c, f"{a}->{b}")))),
                                         *(_view(r, b) for c in checks if (r := by_item.get((c, a))))],
                            places, node_r)
                     for a, b in _pairs(report, names, checks)]
        elif kind.directed:
            links = [_link(a, b, places, node_r, worst(_view(by_item.get((c, a)), b) for c in checks), curved=True,
                           text=f"{a} → {b}") for a in names for b in names if a != b]
        else:
            links = [_link(a, b, places, node_r, worst([*(_view(by_item.get((c, a)), b) for c in checks),
                                                        *(_view(by_item.get((c, b)), a) for c in checks)]),
                           curved=False, text=f"{a} ↔ {b}") for i, a in enumerate(names) for b in names[i + 1:]]
        panels.append(Panel(kind.key, kind.title, kind.caption, kind.directed, round(width), round(height), node_r,
                            nodes, _sorted(links)))
    return Picture(tuple(panels), own)


def _arrow(a: str, b: str, kind: LinkKind, marks: list[Mark], places: dict[str, tuple[float, float]],
           node_r: float) -> Link:
    """The pair `a->b` as an arrow, drawn the way what it judges flows."""
    mark = worst(marks)
    start, end = (b, a) if kind.flows_to_xivo else (a, b)
    return _link(start, end, places, node_r, mark, curved=True, text=f"{start} → {end}")
