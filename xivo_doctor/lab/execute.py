"""`xivo-doctor lab exec NODE -- COMMAND`: run a command as on that lab XiVO.

Place in the lab: it lets a fix printed by the doctor be applied exactly as written. The command
runs under bash with the node's `bin/` first on PATH (real `rabbitmqctl`/`rabbitmq-plugins` for
that node, and the scripts of `lab.bindir` that run `lab.shim` for consul, service, systemctl,
xivo-service, psql, sudo, curl, iptables, xivo-configure-uuid), in the node's root, with XiVO's
absolute paths (/etc, /var/lib, /var/log, /usr/share/xivo*, 16.15's consul-customize-anonymous-token)
mapped under that root — the node's files are where the admin's commands expect. A node that is a
host of its own (`lab up --netns`) runs the command in its namespaces instead: `localhost`, `iptables`
and the XiVO paths are the node's, with no rewriting.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

from xivo_doctor.lab.bindir import bin_dir, write_shims
from xivo_doctor.lab.state import LabState

XIVO_PATH = re.compile(r"(^|[\s'\"=(<>])(/(?:etc|var/lib|var/log|usr/share/xivo[\w-]*|usr/bin/consul-customize-"
                       r"anonymous-token)(?=[/\s'\";|&)]|$))", re.M)


def map_paths(command: str, root: Path) -> str:
    """XiVO paths in a command, moved under the node's root."""
    return XIVO_PATH.sub(lambda m: m.group(1) + str(root) + m.group(2), command)


def run(lab_dir: Path, name: str, argv: list[str]) -> int:
    """Run `argv` (one shell string, or words) as on node `name`; return its exit code."""
    state = LabState.load(lab_dir)
    node = state.node(name)
    write_shims(state)
    command = argv[0] if len(argv) == 1 else shlex.join(argv)
    root = state.root(node)
    env = dict(os.environ, PATH=f"{bin_dir(state, name)}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    if state.net_id:  # the node's own files are at the XiVO paths in its mount namespace (`mountns`)
        return subprocess.run([*state.enter(node), "bash", "-c", command], env=env).returncode
    return subprocess.run(["bash", "-c", map_paths(command, root)], cwd=root, env=env).returncode
