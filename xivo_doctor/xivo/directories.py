"""Which of a XiVO's directories point at which declared peer (XIVO-FACTS §6.1, §6.2).

Place in the pipeline: a helper for evaluation, shared by `directory-source` (dirtype `xivo`) and
`phonebook-restricted` (dirtype `phonebook`); no I/O. A directory is matched to a peer by the host
of its URI (`scheme://host[:port]`, tolerant of a path or an IPv6 literal, so that a broken URI is
still matched to the peer it was meant for); what xivo-confgend itself makes of the URI — split at
the first ':' — is dird_sources.confd_config. Both checks judge the same link, drawn as one panel
(`SEARCHES`): this XiVO searching each peer's contacts and phonebook.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from xivo_doctor.foundation.measures import LinkKind
from xivo_doctor.topology.model import Topology, Xivo

SEARCHES = LinkKind("directories", "Directories", "an arrow per XiVO → peer whose contacts and phonebook it searches",
                    directed=True, order=30)

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
_URI = re.compile(r"^(?P<scheme>[a-zA-Z][\w+.-]*)://(?:[^@/]*@)?(?P<host>\[[^\]]*\]|[^:/?#]*)(?::(?P<port>\d*))?")


def parse_uri(text: str | None) -> tuple[str, str, int | None]:
    """(scheme, host, port) of a directory URI; ("", "", None) when it is not one."""
    match = _URI.match(text or "")
    if not match:
        return "", "", None
    port = match["port"]
    return match["scheme"].lower(), match["host"].strip("[]").lower(), int(port) if port else None


def by_peer(rows: Iterable[Mapping[str, Any]], dirtype: str, xivo: Xivo, topology: Topology,
            addresses: Callable[[str], Iterable[str]] | None = None,
            ) -> tuple[list[tuple[Mapping[str, Any], Xivo]], list[str]]:
    """The `dirtype` rows of `xivo` pointing at a declared peer, and those pointing at hosts the
    topology does not declare ("name (uri)"). Rows pointing at the XiVO itself are its own
    directories (the internal `http://localhost:9487`, dird's local phonebook) and are left out.
    `addresses` resolves a host name (Probes.addresses): a URI host and a declared address match when
    they are the same text or stand for a same address."""
    resolve = addresses or (lambda host: ())

    def names(host: str) -> set[str]:
        return {host.lower(), *resolve(host)}

    own = names(xivo.address)
    peers = [(x, names(x.address)) for x in topology.xivos if x.name != xivo.name]
    matched, elsewhere = [], []
    for row in (r for r in rows if r["dirtype"] == dirtype):
        host = parse_uri(row["uri"])[1]
        if host in LOCAL_HOSTS:
            continue
        seen = names(host) if host else set()
        if seen & own:
            continue
        peer = next((x for x, addrs in peers if seen & addrs), None)
        if peer is not None:
            matched.append((row, peer))
        else:
            elsewhere.append(f"{row['name']} ({row['uri']})")
    return matched, elsewhere


def sends_from_its_address(xivo: Xivo) -> bool:
    """Whether a request can leave from `xivo`'s own address (`on_box.source_address`, or through its
    SSH connection): the peers authorise a directory without credentials by the host it comes from
    (XIVO-FACTS §6.3, §6.4)."""
    return bool(xivo.on_box and xivo.on_box.source_address) or xivo.ssh is not None


def served_uuid(readings: Iterable[Any]) -> tuple[str | None, str]:
    """(uuid, where it was read) of a XiVO as its xivo-confd serves it to dird's `xivo` backend
    (`/1.1/infos` reads `infos.uuid`, XIVO-FACTS §2), else as its xivo-ctid or Consul say it;
    `readings` are probes.onbox.uuid_readings' (each with .kind, .uuid, .source)."""
    readings = list(readings)
    for kind in ("database", "ctid", "consul"):
        for r in readings:
            if r.kind == kind and r.uuid:
                return r.uuid, r.source
    return None, "no source"
