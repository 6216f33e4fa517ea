"""Lab nodes as hosts one logs into: each node's files at the XiVO paths, and an SSH server on its port 22.

Place in the lab: a step of `lifecycle.up --netns`, after the nodes' roots are written and before
their daemons start. For every node: its mount namespace (`mountns`), then Debian's OpenSSH server
(`/usr/sbin/sshd`) inside the node's network and files, on all of the node's addresses, port 22,
accepting only the lab's key. The lab writes, under DIR/ssh/: `id` and `id.pub` (the key),
`known_hosts` (each node's host key, by address and by name) and `config` (one `Host` per node), so
`ssh -F DIR/ssh/config xivo-1` or `ssh -i DIR/ssh/id -o UserKnownHostsFile=DIR/ssh/known_hosts
root@<address>` gives a shell on that node, with its rabbitmqctl, psql, consul, service and iptables
first on root's PATH (/usr/local/sbin, `mountns`).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from xivo_doctor.lab import accounts, mountns
from xivo_doctor.lab.bindir import bin_dir
from xivo_doctor.lab.nodes import LabNode
from xivo_doctor.lab.state import LabError, LabState, alive, read_pid, wait_port

Say = Callable[[str], None]
SSHD = Path("/usr/sbin/sshd")
PRIVSEP = Path("/run/sshd")  # OpenSSH's privilege separation folder, as Debian's package makes it at start


def ssh_dir(state: LabState) -> Path:
    return state.dir / "ssh"


def key_file(state: LabState) -> Path:
    return ssh_dir(state) / "id"


def _keygen(path: Path, comment: str) -> None:
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                          capture_output=True, text=True, timeout=30)
    if done.returncode:
        raise LabError(f"ssh-keygen for {path} failed: {done.stderr.strip()}")


def node_ssh_dir(state: LabState, node: LabNode) -> Path:
    return state.dir / "nodes" / node.name / "ssh"


def sshd_config(state: LabState, node: LabNode) -> str:
    """The node's sshd_config: key logins as root (or the admin account), the lab's key only, no /etc/ssh here."""
    folder = node_ssh_dir(state, node)
    return "\n".join([
        "# xivo-doctor lab: this node's OpenSSH server (lab.hosts)",
        "ListenAddress 0.0.0.0",
        "Port 22",
        f"HostKey {folder / 'ssh_host_ed25519_key'}",
        f"PidFile {state.pidfile(node, 'sshd')}",
        f"AuthorizedKeysFile {ssh_dir(state) / 'authorized_keys'}",
        "PermitRootLogin prohibit-password",
        # The lab's key is root's, as a XiVO admin's key in /root/.ssh/authorized_keys; it also logs
        # in as an admin's own account, which may not sudo (lab.accounts)
        f"AllowUsers root {accounts.ADMIN}",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",  # the lab folder may sit in a world-writable /var/tmp
        "PrintMotd no",
        "UseDNS no",
        "Subsystem sftp internal-sftp",
        "",
    ])


def write_client_files(state: LabState) -> None:
    """DIR/ssh/known_hosts and DIR/ssh/config, from every node's host key."""
    folder = ssh_dir(state)
    known, config = [], []
    for node in state.nodes:
        public = (node_ssh_dir(state, node) / "ssh_host_ed25519_key.pub").read_text().split()
        known.append(f"{node.address},{node.name} {public[0]} {public[1]}")
        config += [f"Host {node.name} {node.address}", f"  HostName {node.address}", "  User root",
                   f"  IdentityFile {key_file(state)}", "  IdentitiesOnly yes",
                   f"  UserKnownHostsFile {folder / 'known_hosts'}", "  StrictHostKeyChecking yes",
                   "  BatchMode yes", ""]
    (folder / "known_hosts").write_text("\n".join(known) + "\n")
    (folder / "config").write_text("\n".join(config))


def start_sshd(state: LabState, node: LabNode) -> None:
    if alive(read_pid(state.pidfile(node, "sshd"))):
        return
    config = node_ssh_dir(state, node) / "sshd_config"
    config.write_text(sshd_config(state, node))
    PRIVSEP.mkdir(mode=0o755, exist_ok=True)
    log = state.root(node) / "var/log/sshd.console.log"
    with log.open("ab") as out:
        proc = subprocess.Popen([*state.enter(node), str(SSHD), "-D", "-e", "-f", str(config)],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
    state.pidfile(node, "sshd").write_text(f"{proc.pid}\n")  # nsenter execs sshd: the same pid


def hosts_up(state: LabState, step: Say) -> None:
    """Each node's own files (mount namespace) and SSH server; idempotent."""
    if not SSHD.exists():
        raise LabError("missing openssh-server (/usr/sbin/sshd); run ./install-deps.sh")
    _keygen(key_file(state), "xivo-doctor-lab")
    (ssh_dir(state) / "authorized_keys").write_text((ssh_dir(state) / "id.pub").read_text())
    for node in state.nodes:
        root = state.root(node)
        for folder in ("etc/rabbitmq", "var/lib/rabbitmq", "var/log", "run"):  # mount points made before
            (root / folder).mkdir(parents=True, exist_ok=True)
        mountns.create(state.net_id, node.index, root, state.dir / "nodes" / node.name / "mnt",
                       bin_dir(state, node.name))
        _keygen(node_ssh_dir(state, node) / "ssh_host_ed25519_key", f"root@{node.hostname}")
    write_client_files(state)
    for node in state.nodes:
        start_sshd(state, node)
    for node in state.nodes:
        wait_port(node.address, 22, 20, f"sshd of {node.name}")
    step(f"hosts: each node's files at the XiVO paths, sshd on port 22 (`ssh -F {ssh_dir(state) / 'config'}"
         f" {state.nodes[0].name}`)")
