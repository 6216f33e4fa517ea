"""A lab node's `bin/`: the admin tools the lab shims, and the small scripts that run the shims.

Place in the lab: under `lab exec`. `lifecycle.up` writes the scripts when the lab comes up and
`execute.run` rewrites them before each command, then puts the folder first on PATH; each script
runs `python -m xivo_doctor.lab.shim --dir DIR --node NAME TOOL -- ARGS` (`shim` does the work).
It imports only `state`, so `shim` (which drives `lifecycle`), `lifecycle` and `execute` all
depend on it and none of them on another through it.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from xivo_doctor.lab.state import LabState

# what `lab.shim` stands in for; rabbitmqctl and rabbitmq-plugins beside them are real (`rabbitmq.node`)
TOOLS = ("consul", "service", "systemctl", "xivo-service", "psql", "sudo", "curl", "iptables", "xivo-configure-uuid",
         "xivo-backup-consul-kv", "xivo-restore-consul-kv")


def bin_dir(state: LabState, name: str) -> Path:
    return state.dir / "nodes" / name / "bin"


# On a node that is a host of its own (`--netns`) these run there already: plain shell, no Python start-up
# (the doctor's SSH reads run `sudo -u postgres psql asterisk` on every run).
OWN_HOST_SCRIPTS = {
    # the lab runs everything as root: sudo's options go, the command runs
    "sudo": 'while [ $# -gt 0 ]; do case "$1" in -u|-g) shift 2;; --) shift; break;; -*) shift;; *) break;; esac; '
            'done\nexec "$@"\n',
    "curl": 'exec /usr/bin/curl "$@"\n',
    "iptables": 'exec /usr/sbin/iptables "$@"\n',
    # the node's own cluster, through its socket (local connections are trusted, as `sudo -u postgres` is)
    "psql": 'for arg do shift; [ "$arg" = asterisk ] || set -- "$@" "$arg"; done\n'
            'exec /usr/lib/postgresql/15/bin/psql -h {sock} -p 5432 -U asterisk -d asterisk "$@"\n',
}


def write_shims(state: LabState) -> None:
    """One small script per shimmed tool in each node's bin/ (idempotent)."""
    for node in state.nodes:
        folder = bin_dir(state, node.name)
        folder.mkdir(parents=True, exist_ok=True)
        sock = state.dir / "nodes" / node.name / "postgres" / "sock"
        for tool in TOOLS:
            script = (f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m xivo_doctor.lab.shim "
                      f"--dir {shlex.quote(str(state.dir))} --node {node.name} {tool} -- \"$@\"\n")
            if state.net_id and tool in OWN_HOST_SCRIPTS:
                script = f"#!/bin/sh\n# lab: {tool} on {node.name}\n" + OWN_HOST_SCRIPTS[tool].replace(
                    "{sock}", shlex.quote(str(sock)))
            path = folder / tool
            if not path.exists() or path.read_text() != script:
                path.write_text(script)
                path.chmod(0o755)
