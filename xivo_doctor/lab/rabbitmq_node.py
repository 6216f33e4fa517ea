"""lab: real RabbitMQ nodes side by side on one host — files, environment, epmd, start/stop (LAB-NOTES §A).

Each lab node is a real RabbitMQ 3.10 broker run from `/usr/lib/rabbitmq/bin/*` with a clean
environment (LAB-NOTES §A.2): the Debian wrappers in /usr/sbin would `su rabbitmq`, `cd
/var/lib/rabbitmq` and read /etc/rabbitmq, i.e. touch the system broker, which the lab never does.
Files live under the node's root as on a XiVO (docs/lab.md): `root/etc/rabbitmq/`,
`root/var/lib/rabbitmq/mnesia/`, `root/var/log/rabbitmq/`, `root/run/rabbitmq.pid`.
Federation (the manual's commands) is in `rabbitmq_federation`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import signal
import socket
import string
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pika
import pika.exceptions

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
    # One host, many nodes: XiVO's listen-on-all-addresses is this node's own address (docs/lab.md).
    # loopback_users stays RabbitMQ's default: guest only from loopback, as on XiVO (XIVO-FACTS §5).
    (node.etc_dir / "rabbitmq.conf").write_text(
        "# lab: XiVO's broker listens on all addresses; here all means this node's own address\n"
        f"listeners.tcp.1 = {node.address}:{node.amqp_port}\n"
    )
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
    return ["env", "-i", *variables, str(RABBITMQ_BIN / tool)]


def write_ctl_wrappers(node: RabbitNode, lab_dir: Path) -> list[Path]:
    """Executable DIR/nodes/<name>/bin/rabbitmqctl and rabbitmq-plugins, for admins reproducing faults."""
    node.bin_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for tool in ("rabbitmqctl", "rabbitmq-plugins"):
        path = node.bin_dir / tool
        command = " ".join(shlex.quote(part) for part in ctl_argv(node, lab_dir, tool))
        path.write_text(f"#!/bin/sh\n# lab: {tool} for {node.nodename} (LAB-NOTES §A.2)\nexec {command} \"$@\"\n")
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


# -- processes -------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    """True if pid runs (a zombie child is reaped and counts as gone)."""
    with contextlib.suppress(ChildProcessError, OSError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _environ(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _wait_gone(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in pids):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def start_epmd(lab_dir: Path, port: int = EPMD_PORT) -> int:
    """Start (or reuse) the lab-private epmd on 127.0.0.1:port; pid in DIR/epmd.pid (§A.2, §A.7)."""
    pid_file = Path(lab_dir) / "epmd.pid"
    pid = _read_pid(pid_file)
    if pid and _alive(pid) and Path(f"/proc/{pid}/comm").read_text().strip() == "epmd":
        return pid
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(["epmd", "-port", str(port), "-address", "127.0.0.1"], env={"PATH": "/usr/bin:/bin"},
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + 5
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            break
        if process.poll() is not None or time.monotonic() >= deadline:
            process.kill()
            raise RuntimeError(f"epmd did not start on 127.0.0.1:{port} (port taken by another epmd?)")
        time.sleep(0.02)
    if process.poll() is not None:  # another epmd answered and ours exited: not ours to manage
        raise RuntimeError(f"127.0.0.1:{port} is already served by an epmd the lab did not start")
    pid_file.write_text(f"{process.pid}\n")
    return process.pid


def stop_epmd(lab_dir: Path, port: int | None = None) -> None:
    """epmd outlives the nodes, so it is killed by pid at teardown (§A.7); `port` is accepted for
    symmetry with start_epmd: the pid file alone says which epmd is the lab's."""
    pid_file = Path(lab_dir) / "epmd.pid"
    pid = _read_pid(pid_file)
    if pid and _alive(pid) and Path(f"/proc/{pid}/comm").read_text().strip() == "epmd":
        os.kill(pid, signal.SIGTERM)
        if not _wait_gone([pid], 3):
            os.kill(pid, signal.SIGKILL)
            _wait_gone([pid], 3)
    pid_file.unlink(missing_ok=True)


def is_running(node: RabbitNode) -> bool:
    """The node's launcher (pid in root/run/rabbitmq.pid) runs, and is this node's (not a reused pid)."""
    pid = _read_pid(node.pid_file)
    return bool(pid and _launcher_of(node, pid))


def _launcher_of(node: RabbitNode, pid: int) -> bool:
    """`pid` is alive and is this node's launcher. The launcher is `env -i RABBITMQ_...=... rabbitmq-server`:
    until `env` has exec'd the script (a while, on a loaded machine), the node's variables are in its
    command line, not yet in its environment; a check of the environment alone then read a node just
    started as one that had already exited."""
    mark = f"RABBITMQ_MNESIA_BASE={node.mnesia_base}"
    for _ in range(50):
        if not _alive(pid):
            return False
        environ, cmdline = _environ(pid), _cmdline(pid).split(" ")
        if mark in environ or mark in cmdline:
            return True
        if environ != [""] or cmdline != [""]:
            return False  # another program's: a pid reused
        time.sleep(0.01)  # both read empty: the process is between two exec(2)s; look again
    return False


def start(node: RabbitNode, lab_dir: Path) -> int:
    """Launch `rabbitmq-server` as root in the background; return the launcher's pid.

    The launcher is `/usr/lib/rabbitmq/bin/rabbitmq-server` (it traps TERM and stops beam, §A.2),
    in its own session so the whole tree (beam.smp, erl_child_setup) is one process group.
    """
    if is_running(node):
        return _read_pid(node.pid_file) or 0
    ensure_cookie(lab_dir)
    for folder in (node.mnesia_base, node.log_base, node.pid_file.parent):
        folder.mkdir(parents=True, exist_ok=True)
    with node.console_log.open("ab") as console:
        process = subprocess.Popen(ctl_argv(node, lab_dir, "rabbitmq-server"), stdin=subprocess.DEVNULL,
                                   stdout=console, stderr=subprocess.STDOUT, cwd=node.mnesia_base.parent,
                                   start_new_session=True)
    node.pid_file.write_text(f"{process.pid}\n")
    return process.pid


def _console_tail(node: RabbitNode, lines: int = 15) -> str:
    try:
        return "\n".join(node.console_log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def wait_ready(node: RabbitNode, timeout: float = 30, credentials: tuple[str, str] = ("xivo", "xivo")) -> float:
    """Loop pika connections every 0.1 s until AMQP is accepted (§A.2); return the seconds waited.

    guest works from loopback (all lab addresses are 127/8, §A.7); the xivo user is tried when guest
    is refused (an admin may have removed it). 5 s for one node, 7.5 s for two at once (§A.3).
    """
    began = time.monotonic()
    users = [("guest", "guest"), credentials]
    attempt = 0
    while True:
        user, password = users[attempt % len(users)]
        params = pika.ConnectionParameters(node.address, node.amqp_port,
                                           credentials=pika.PlainCredentials(user, password),
                                           connection_attempts=1, socket_timeout=1, blocked_connection_timeout=2)
        try:
            pika.BlockingConnection(params).close()
            return time.monotonic() - began
        except pika.exceptions.ProbableAuthenticationError:
            attempt += 1  # the broker answers: try the other user at once
            if attempt > 2 * len(users):
                raise RuntimeError(f"{node.nodename} refuses both guest and {credentials[0]}") from None
            continue
        except pika.exceptions.AMQPError:
            pass
        if not is_running(node):
            raise RuntimeError(f"{node.nodename} exited while starting:\n{_console_tail(node)}")
        if time.monotonic() - began >= timeout:
            raise TimeoutError(f"{node.nodename} not accepting AMQP on {node.address}:{node.amqp_port} "
                               f"after {timeout:.0f} s:\n{_console_tail(node)}")
        time.sleep(0.1)


def stop(node: RabbitNode, lab_dir: Path, timeout: float = 15) -> None:
    """`rabbitmqctl stop`, then SIGTERM / SIGKILL to the process group: no beam.smp nor erl_child_setup left."""
    pid = _read_pid(node.pid_file)
    ours = bool(pid and _launcher_of(node, pid))
    beam = _read_pid(node.beam_pid_file)
    beam_ours = bool(beam and _alive(beam) and str(node.mnesia_base) in _cmdline(beam))
    if not ours and not beam_ours:
        node.pid_file.unlink(missing_ok=True)
        return
    deadline = time.monotonic() + timeout
    pids = [p for p, mine in ((pid, ours), (beam, beam_ours)) if p and mine]
    with contextlib.suppress(subprocess.TimeoutExpired):
        ctl(node, lab_dir, "stop", check=False, timeout=max(1.0, timeout - 4))
    if not _wait_gone(pids, max(0.0, deadline - time.monotonic() - 3)):
        _signal_tree(pid if ours else None, pids, signal.SIGTERM)
        if not _wait_gone(pids, 2):
            _signal_tree(pid if ours else None, pids, signal.SIGKILL)
            _wait_gone(pids, 2)
    if ours and pid:  # leftovers of the group (erl_child_setup, inet_gethost) go with it
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    node.pid_file.unlink(missing_ok=True)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _signal_tree(group: int | None, pids: list[int], sig: signal.Signals) -> None:
    if group:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, sig)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
