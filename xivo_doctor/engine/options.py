"""What a run is asked to do, and the options that say it, declared once for every way in.

Place in the pipeline: the engine's input. `RunOptions` is frozen before the run starts (the
run's changing state is `run.Run`). `SELECTION` declares the options every way in shares — the
`run` and `nagios` commands (cli/options.py builds their argparse parents from it) and the pytest
plugin (`pytest checks/ --topology FILE`, engine/plugin.py) — so a flag, its meaning and its
checks are written once. Building them imports nothing heavy: the CLI builds its parser on every
start.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xivo_doctor.topology.model import Topology

DEFAULT_TIMEOUT = 30.0  # `run`; the Nagios plugin's is the guidelines' 10 s (cli)
MAX_TIMEOUT = 3600.0


@dataclass(frozen=True)
class RunOptions:
    """One run's request, validated (engine/setup.py): nothing in it changes while the run goes."""

    topology: Topology
    timeout: float = DEFAULT_TIMEOUT
    checks: tuple[str, ...] = ()  # only these check ids (empty: every check)
    nodes: tuple[str, ...] = ()  # only these XiVOs and the pairs that contain them (empty: all)
    passive: bool = False  # no write at all: the federation probe message is not sent
    redact_addresses: bool = False  # pseudonyms for IP addresses and host names in every output
    checks_folder: Path | None = None  # where the check modules are (default: the doctor's own, registry.py)


def seconds(text: str) -> float:
    """A `-t` value: a number of seconds in (0, 3600]; argparse (and pytest's option parser) shows
    the words of the error it raises otherwise."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= MAX_TIMEOUT:
        raise argparse.ArgumentTypeError(f"{text} is out of range; give 0 < SECONDS <= {MAX_TIMEOUT:g}")
    return value


@dataclass(frozen=True)
class Option:
    """One option shared by the ways in: its flags on the command line and in the pytest plugin."""

    dest: str  # the argparse destination
    flags: tuple[str, ...]  # on the command line
    plugin_flag: str  # in the pytest plugin (`pytest checks/`), whose own flags must not collide
    plugin_dest: str
    help: str
    metavar: str | None = None
    action: str | None = None  # "append", "store_true" or None (a value)
    kind: Callable[[str], Any] | None = None
    default: Any = None

    def kwargs(self, help: str | None = None) -> dict[str, Any]:
        """`add_argument`'s keyword arguments (argparse's, and pytest's, which takes the same)."""
        kwargs: dict[str, Any] = {"dest": self.dest, "help": help or self.help}
        if self.action:
            kwargs["action"] = self.action
        if self.metavar:
            kwargs["metavar"] = self.metavar
        if self.kind is not None:
            kwargs["type"] = self.kind
        kwargs["default"] = [] if self.action == "append" else self.default
        return kwargs


TOPOLOGY = Option("topology", ("-T", "--topology"), "--topology", "doctor_topology",
                  "topology file (default: ./xivo-doctor.yml, /etc/xivo-doctor/topology.yml, then the running lab's)",
                  metavar="FILE")
CHECK = Option("check", ("--check",), "--check", "doctor_checks", "only this check (repeatable)", metavar="ID",
               action="append")
NODE = Option("node", ("--node",), "--node", "doctor_nodes", "only this XiVO and the pairs that contain it "
              "(repeatable)", metavar="NAME", action="append")
TIMEOUT = Option("timeout", ("-t", "--timeout"), "--doctor-timeout", "doctor_timeout",
                 f"deadline for the whole run (default {DEFAULT_TIMEOUT:g})", metavar="SECONDS", kind=seconds,
                 default=DEFAULT_TIMEOUT)
PASSIVE = Option("passive", ("--passive",), "--passive", "doctor_passive",
                 "read only: do not send the federation probe message", action="store_true", default=False)
SELECTION = (TOPOLOGY, CHECK, NODE, TIMEOUT, PASSIVE)
