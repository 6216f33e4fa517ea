"""Preparing a run, the same for every way in: find and load the topology, validate the selection,
make sure the history can be kept, and name the run for its lock and its history.

Place in the pipeline: the engine's entry. The `run` and `nagios` commands and the pytest plugin
call `prepare` before any probe; every problem is a narrow `DoctorError` (one line naming the
file, key or option and the fix), which the CLI alone turns into a message and an exit code.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from xivo_doctor.engine.options import DEFAULT_TIMEOUT, RunOptions
from xivo_doctor.engine.runlock import RunKey, run_key
from xivo_doctor.foundation.errors import UsageError
from xivo_doctor.topology import find_topology, load_topology
from xivo_doctor.topology.model import Topology


@dataclass(frozen=True)
class Prepared:
    """A run ready to start: its options, the topology file it came from, its key (the lock and the
    history of "this topology file, this selection", engine/runlock.py) and the history folder."""

    options: RunOptions
    path: Path
    key: RunKey
    history: Path | None = None


def prepare(topology: str | None = None, *, checks: Sequence[str] = (), nodes: Sequence[str] = (),
            timeout: float = DEFAULT_TIMEOUT, passive: bool = False, redact_addresses: bool = False,
            history: str | None = None, checks_known: bool = True, checks_folder: Path | None = None) -> Prepared:
    """Everything checked before the first probe (a wrong `--history` costs no probing either).
    `checks_known=False`: the check ids are validated later, against the checks collected (the
    pytest plugin, whose checks may come from anywhere pytest collects)."""
    from xivo_doctor.engine import registry
    from xivo_doctor.engine.history import ensure_directory

    path = find_topology(topology)
    loaded = load_topology(path)
    validate_selection(checks if checks_known else (), nodes, loaded,
                       [spec.id for spec in registry.discover(checks_folder)] if checks_known else [])
    kept = ensure_directory(Path(history)) if history else None
    options = RunOptions(topology=loaded, timeout=timeout, checks=tuple(checks), nodes=tuple(nodes), passive=passive,
                         redact_addresses=redact_addresses, checks_folder=checks_folder)
    return Prepared(options, Path(path), run_key(path, checks, nodes), kept)


def validate_selection(checks: Sequence[str], nodes: Sequence[str], topology: Topology, known: Sequence[str]) -> None:
    """Refuse an unknown `--check` or `--node` before anything runs (UsageError, one line)."""
    for wanted in checks:
        if wanted not in known:
            close = difflib.get_close_matches(wanted, known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
            raise UsageError(f"--check {wanted}: no such check; {hint}")
    names = [x.name for x in topology.xivos]
    for node in nodes:
        if node not in names:
            raise UsageError(f"--node {node}: no such XiVO in {topology.source}; known: {', '.join(names)}")
