"""What xivo-confgend makes of a XiVO's directory tables, said as `directory-source`'s findings.

Place in the pipeline: XiVO facts for the `directory-source` check (checks/directory_source.py); no
I/O. From the rows the on-box probe reads, as confgend and xivo-dird would use them
(dird_sources.py cites the code): the rows that stop confgend generating any source (it then serves
its cached copy), a directory without definition, a definition in no profile, a context whose
display filter is missing (no profile at all), a definition with no Direct match column (dird
keeps no user). Each finding is {"peer", "kind", ..., "text"}: the check shows them, its fix reads
their kinds.
"""

from __future__ import annotations

from xivo_doctor.xivo.dird_sources import (
    SourcesFileError,
    definitions_of,
    join_column,
    listing_contexts,
    parse_columns,
    searched_columns,
    sources_file_breakers,
)


def frozen_problems(rows, definitions, remote, xivo) -> list[dict]:
    """What makes confgend fail the whole sources file (it then serves its cached copy); `remote`:
    the (row, peer) of by_peer, to name the peer of a directory."""
    peer_of = {row["name"]: peer.name for row, peer in remote}
    out = []
    for b in sources_file_breakers(rows, definitions):
        what = f"directory {b['directory']!r}" if "directory" in b else f"definition {b['definition']!r}"
        peer = {"peer": peer_of[b["directory"]]} if b.get("directory") in peer_of else {}
        out.append({**peer, "kind": "frozen", **{k: v for k, v in b.items() if k != "reason"},
                    "text": f"xivo-confgend cannot generate xivo-dird's sources because of {what}: {b['reason']}; "
                            f"it serves its last cached dird/sources.yml instead, so ALL directories of {xivo.name} "
                            "stay as they were when it last generated (changes since are ignored, even after "
                            "restarting xivo-dird)"})
    return out


def definition_problems(row, peer, xivo, definitions, contexts, displays) -> list[dict]:
    """Whether a profile searches `row` (a remote `xivo` directory): its definitions, the contexts
    listing them whose display filter exists, their Direct match columns."""
    linked = definitions_of(row, definitions)
    base = {"peer": peer.name, "directory": row["name"]}
    if not linked:
        how = (" whose URI is exactly the directory's (up to XiVO 16.12 xivo-confgend joins them by URI)"
               if join_column(definitions) == "uri" else "")
        return [{**base, "kind": "definition", "text": f"directory {row['name']!r} has no CTI definition{how}, "
                 "so xivo-dird never loads it"}]
    out, searched = [], False
    for d in linked:
        profiles, displayless = listing_contexts(d["name"], contexts, displays)
        out += [{**base, "kind": "display", "definition": d["name"], "context": c, "display": shown,
                 "text": f"context {c!r} lists definition {d['name']!r}, but its display {shown!r} is no display "
                         f"filter of {xivo.name}: xivo-confgend makes no lookup profile for {c!r}, so its users "
                         "search nothing (xivo-dird answers 404)"} for c, shown in displayless]
        searched = searched or bool(profiles or displayless)
        if profiles and "match_direct" in d:
            try:
                columns = searched_columns(parse_columns(d["match_direct"]))
            except SourcesFileError:
                continue  # the whole sources file fails: said first
            if not columns:
                out.append({**base, "kind": "columns", "definition": d["name"],
                            "text": f"definition {d['name']!r} has no Direct match column ({d['match_direct']!r}): "
                                    "xivo-dird keeps only the users matching one of them, so every search of "
                                    f"{row['name']!r} returns nothing"})
    if not searched:
        out.append({**base, "kind": "context", "definition": linked[0]["name"],
                    "text": f"definition {linked[0]['name']!r} is in no context's direct directories, so no "
                            "profile searches it"})
    return out
