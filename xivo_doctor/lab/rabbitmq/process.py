"""lab: the processes of the lab's RabbitMQ nodes — the lab-private epmd, start, readiness, stop (LAB-NOTES §A).

Place in the lab: part of `lab.rabbitmq` (public API in its `__init__`), above `rabbitmq.node` (the
node's files, environment and CLI). Every process is found by its pid file and signalled only when it is
the lab's (the epmd of DIR/epmd.pid; a launcher or beam.smp naming the node's mnesia base), never by name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pika
import pika.exceptions

from xivo_doctor.lab.rabbitmq.node import EPMD_PORT, RabbitNode, ctl, ctl_argv, ensure_cookie


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
            if node.enter:
                # A node with its own network sees this machine as a remote client: guest is refused
                # (loopback_users) and `xivo` exists only once federated. Refusing credentials is answering AMQP.
                return time.monotonic() - began
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
