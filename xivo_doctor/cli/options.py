"""The options the commands share, as argparse parents: declared once (engine/options.py), used by
`run` and `nagios` alike; the pytest plugin declares the same ones from the same table.

Place in the pipeline: the CLI, before anything runs. Imports nothing heavy: the parser of every
command is built on each start.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping

from xivo_doctor.engine.options import SELECTION, TIMEOUT


def selection(*, timeout: float = TIMEOUT.default, helps: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """A parent parser with the selection options (`-T`, `--check`, `--node`, `-t`, `--passive`) and
    `--history`; `timeout` is the command's default deadline, `helps` its own words for an option."""
    helps = helps or {}
    parent = argparse.ArgumentParser(add_help=False)
    for option in SELECTION:
        kwargs = option.kwargs(helps.get(option.dest))
        if option is TIMEOUT:
            kwargs.update(default=timeout,
                          help=helps.get("timeout", f"deadline for the whole run (default {timeout:g})"))
        parent.add_argument(*option.flags, **kwargs)
    parent.add_argument("--history", metavar="DIR", help=helps.get(
        "history", "keep the last results in DIR and say what changed since the previous run: new failures, "
                   "resolved, flapping"))
    return parent

