"""What an item says beyond its status, in shapes every renderer reads without knowing the check.

Place in the pipeline: part of the result model (`results.py` holds them on each `Result`). A
check declares them beside its code (`@check(metrics=..., link=..., facts=...)`); the engine fills
them in when it classifies the item; the renderers read them:

- `Metric`: one measurement, as a monitoring system graphs it (the Nagios perfdata);
- `LinkKind` and `LinkView`: the kind of link between XiVOs an item judges, and its verdict on
  each peer (the HTML report's topology picture: one panel per kind);
- facts: what an item observed about a XiVO's identity (its version, its UUID), shown in the
  report's table of XiVOs. `FACT_ORDER` says which come first;
- `Reach`: one port of the item's XiVO tried from one place (a peer, over SSH, or the doctor's
  host), a cell of the HTML report's grid of ports read from -> to.
"""

from __future__ import annotations

from dataclasses import dataclass

FACT_ORDER = ("version", "uuid")  # the XiVO table's columns, then any other fact as first seen
FACT_LABELS = {"uuid": "UUID"}  # a fact's column heading when it is not the fact's name


@dataclass(frozen=True)
class Metric:
    """One measurement (Monitoring Plugins guidelines, "Performance data"): `label=value[unit]`."""

    label: str  # unique in a run, e.g. `fed_xivo-2_from_xivo-1`
    value: float | None  # None: not measured this time (perfdata `U`)
    unit: str = ""  # the guidelines' UOM: "", "s", "ms", "%", "B", "c"
    minimum: float | None = None
    maximum: float | None = None
    # True: judged against the plugin's -w/-c ranges, and a breach raises the verdict.
    thresholds: bool = False
    words: str = ""  # what it measures, for a status line: "federation latency xivo-2←xivo-1"


@dataclass(frozen=True)
class LinkKind:
    """A kind of link between XiVOs that a check judges: one panel of the topology picture.

    Pair items (`a->b`) draw one arrow each; per-XiVO items draw one link per peer from their
    `LinkView`s. `flows_to_xivo`: what the link carries goes from the pair's peer to its XiVO (the
    arrow is drawn `b -> a`, the item named `a←b`), as federation messages flow upstream to
    downstream. Undirected kinds draw one line per two XiVOs, the worse of both views."""

    key: str
    title: str
    caption: str
    directed: bool = True
    flows_to_xivo: bool = False
    order: int = 50  # panels are drawn by this order, then by key
    # Pair items, in the report's pair matrix: what the link carries ("messages") and the roles of
    # the pair's XiVO and peer ("downstream", "upstream").
    carries: str = ""
    roles: tuple[str, str] = ("XiVO", "peer")


@dataclass(frozen=True)
class LinkView:
    """A per-XiVO item's verdict on one peer: `ok`, with a note shown over the link (None: the
    item's own message)."""

    ok: bool
    note: str | None = None


@dataclass(frozen=True)
class Reach:
    """One port of an item's XiVO as tried from `origin`: a peer XiVO's name, or the vantage of the
    doctor's host when no peer could try it."""

    origin: str
    port: str  # "5672/tcp"
    service: str  # "RabbitMQ AMQP"
    state: str  # the connect's outcome: "open", "refused", "timeout", "unreachable", ...
    ok: bool
