"""lab: real RabbitMQ nodes side by side on one host — each node's files, environment and CLI (LAB-NOTES §A).

Each lab node is a real RabbitMQ 3.10 broker run from `/usr/lib/rabbitmq/bin/*` with a clean
environment (LAB-NOTES §A.2): the Debian wrappers in /usr/sbin would `su rabbitmq`, `cd
/var/lib/rabbitmq` and read /etc/rabbitmq, i.e. touch the system broker, which the lab never does.
Files live under the node's root as on a XiVO (docs/lab.md): `root/etc/rabbitmq/`,
`root/var/lib/rabbitmq/mnesia/`, `root/var/log/rabbitmq/`, `root/run/rabbitmq.pid`.

Place in the lab: the bottom of `lab.rabbitmq` (public API in its `__init__`). Processes (epmd,
start/stop, readiness) are in `rabbitmq.process`; federation (the manual's commands) in `rabbitmq.federation`.
"""

from __future__ import annotations

import secrets
import shlex
import string
import subprocess
from dataclasses import dataclass
from pathlib import Path

from xivo_doctor.lab import netns

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")  # upstream scripts, not the /usr/sbin wrappers (§A.2)
EPMD_PORT = 4370  # lab-private epmd, apart from a system epmd on 4369 (§A.7)
DIST_PORT_BASE = 25700  # node N: 127.0.0.1:(25700+N) (docs/lab.md); the default 25672 would collide (§A.1)


@dataclass
class RabbitNode:
    """One lab broker: `<name>@localhost`, AMQP on `address:amqp_port`, distribution on 127.0.0.1:dist_port."""

    name: str  # xivo-1
    index: int  # 1
    address: str  # 127.10.0.1
    root: Path  # DIR/nodes/xivo-1/root
    amqp_port: int = 5672
    dist_port: int = 0  # 0: 25700 + index
    epmd_port: int = EPMD_PORT
    enter: tuple[str, ...] = ()  # prefix onto the node's own network and files (`LabState.enter`); () shares the host

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        if not self.dist_port:
            self.dist_port = DIST_PORT_BASE + self.index

    @property
    def nodename(self) -> str:
        # `@localhost`: the CLI connects to the node name's host, and distribution listens on
        # 127.0.0.1 only; epmd keys nodes by the part before '@', so names must differ (§A.1).
        return f"{self.name}@localhost"

    @property
    def etc_dir(self) -> Path:
        return self.root / "etc/rabbitmq"

    @property
    def mnesia_base(self) -> Path:
        return self.root / "var/lib/rabbitmq/mnesia"

    @property
    def log_base(self) -> Path:
        return self.root / "var/log/rabbitmq"

    @property
    def console_log(self) -> Path:
        return self.log_base / "console.log"

    @property
    def pid_file(self) -> Path:
        """The launcher's pid (process group leader of beam.smp and erl_child_setup)."""
        return self.root / "run/rabbitmq.pid"

    @property
    def beam_pid_file(self) -> Path:
        """Written by RabbitMQ itself (RABBITMQ_PID_FILE): beam.smp's pid, where Debian keeps it."""
        return self.mnesia_base / f"{self.nodename}.pid"

    @property
    def bin_dir(self) -> Path:
        """DIR/nodes/<name>/bin: the rabbitmqctl / rabbitmq-plugins wrappers for admins."""
        return self.root.parent / "bin"


def write_config(node: RabbitNode) -> None:
    """The node's /etc/rabbitmq as XiVO has it after the manual's steps (LAB-NOTES §A.2, §A.4)."""
    for folder in (node.etc_dir, node.mnesia_base, node.log_base, node.pid_file.parent):
        folder.mkdir(parents=True, exist_ok=True)
    # loopback_users stays RabbitMQ's default: guest only from loopback, as on XiVO (XIVO-FACTS §5).
    if node.enter:  # the node has its own network: all addresses are its own, as on a XiVO
        listener = f"listeners.tcp.default = {node.amqp_port}\n"
    else:  # one host, many nodes: XiVO's listen-on-all-addresses is this node's own address (docs/lab.md)
        listener = ("# lab: XiVO's broker listens on all addresses; here all means this node's own address\n"
                    f"listeners.tcp.1 = {node.address}:{node.amqp_port}\n")
    (node.etc_dir / "rabbitmq.conf").write_text(listener)
    # The CLI reaches `<name>@localhost`, so distribution listens on 127.0.0.1 only (§A.1).
    (node.etc_dir / "advanced.config").write_text("[{kernel, [{inet_dist_use_interface, {127,0,0,1}}]}].\n")
    # The manual runs `rabbitmq-plugins enable rabbitmq_federation` (no management plugin).
    (node.etc_dir / "enabled_plugins").write_text("[rabbitmq_federation].\n")
    # Empty, so /etc/rabbitmq/rabbitmq-env.conf of the system broker is never read (§A.2).
    (node.etc_dir / "rabbitmq-env.conf").write_text("")


def rabbitmq_home(lab_dir: Path) -> Path:
    """HOME of every lab node and CLI call: holds the shared .erlang.cookie (§A.7)."""
    return Path(lab_dir) / "rabbitmq-home"


def ensure_cookie(lab_dir: Path) -> Path:
    """One Erlang cookie (mode 0400) shared by all nodes and the CLI; nothing written to /root (§A.7)."""
    home = rabbitmq_home(lab_dir)
    home.mkdir(parents=True, exist_ok=True)
    cookie = home / ".erlang.cookie"
    if not cookie.exists():
        cookie.write_text("".join(secrets.choice(string.ascii_uppercase) for _ in range(20)))
        cookie.chmod(0o400)
    return cookie


def env(node: RabbitNode, lab_dir: Path, epmd_port: int | None = None) -> dict[str, str]:
    """The clean environment of LAB-NOTES §A.2 for this node's server and CLI calls."""
    return {
        "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
        "HOME": str(rabbitmq_home(lab_dir)),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        # Every server and CLI call needs the lab epmd's port (§A.7).
        "ERL_EPMD_PORT": str(epmd_port or node.epmd_port),
        "RABBITMQ_NODENAME": node.nodename,
        "RABBITMQ_CONF_ENV_FILE": str(node.etc_dir / "rabbitmq-env.conf"),
        "RABBITMQ_CONFIG_FILE": str(node.etc_dir / "rabbitmq.conf"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(node.etc_dir / "advanced.config"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(node.etc_dir / "enabled_plugins"),
        "RABBITMQ_MNESIA_BASE": str(node.mnesia_base),
        "RABBITMQ_LOG_BASE": str(node.log_base),
        "RABBITMQ_PID_FILE": str(node.beam_pid_file),
        "RABBITMQ_DIST_PORT": str(node.dist_port),
    }


def ctl_argv(node: RabbitNode, lab_dir: Path, tool: str = "rabbitmqctl", epmd_port: int | None = None) -> list[str]:
    """argv prefix running `tool` (rabbitmqctl, rabbitmq-plugins, ...) against this node (§A.2)."""
    variables = [f"{key}={value}" for key, value in env(node, lab_dir, epmd_port).items()]
    return [*([] if _inside(node) else node.enter), "env", "-i", *variables, str(RABBITMQ_BIN / tool)]


def _net_file(node: RabbitNode) -> str | None:
    return next((part.split("=", 1)[1] for part in node.enter if part.startswith("--net=")), None)


def _inside(node: RabbitNode) -> bool:
    """Already on the node's network (a shell on it, a shim it runs): nothing to enter."""
    net = _net_file(node)
    return bool(net) and netns.in_namespace(str(net))


def write_ctl_wrappers(node: RabbitNode, lab_dir: Path) -> list[Path]:
    """Executable DIR/nodes/<name>/bin/rabbitmqctl and rabbitmq-plugins, for admins reproducing faults."""
    node.bin_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for tool in ("rabbitmqctl", "rabbitmq-plugins"):
        path = node.bin_dir / tool
        variables = [f"{key}={value}" for key, value in env(node, lab_dir).items()]
        inner = " ".join(shlex.quote(part) for part in ["env", "-i", *variables, str(RABBITMQ_BIN / tool)])
        text = f"#!/bin/sh\n# lab: {tool} for {node.nodename} (LAB-NOTES §A.2)\n"
        net = _net_file(node)
        if net:  # run from this machine it enters the node; a shell on the node is there already
            outer = " ".join(shlex.quote(part) for part in node.enter)
            text += (f'if [ "$(stat -L -c %i /proc/self/ns/net)" != "$(stat -L -c %i {net})" ]; then\n'
                     f'  exec {outer} "$0" "$@"\nfi\n')
        path.write_text(text + f'exec {inner} "$@"\n')
        path.chmod(0o755)
        written.append(path)
    return written


def ctl(node: RabbitNode, lab_dir: Path, *args: str, tool: str = "rabbitmqctl", check: bool = True,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run one CLI command against the node (about 0.3–0.5 s each, §A.3)."""
    result = subprocess.run([*ctl_argv(node, lab_dir, tool), *args], capture_output=True, text=True,
                            timeout=timeout, stdin=subprocess.DEVNULL)
    if check and result.returncode != 0:
        raise RuntimeError(f"{tool} {shlex.join(args)} on {node.nodename} failed ({result.returncode}): "
                           f"{(result.stderr or result.stdout).strip()}")
    return result
