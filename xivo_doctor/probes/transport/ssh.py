"""SSH to a XiVO: the system's OpenSSH client, one multiplexed connection per XiVO per run.

Place in the pipeline: acquisition, transport. `Probes.ssh` holds one `SshLinks` per run; the on-box
sources (probes/onbox.py, probes/rabbitmq/broker.py) run their read-only commands through `run`,
and requests that must leave from a XiVO (probes/web.py) go through `socks`, the SOCKS port of the
XiVO's connection (`ssh -D`): the TCP connection to the peer is then opened by the XiVO's sshd.

Why OpenSSH's client rather than a Python library: it is what the admin's own `ssh` is, so their
~/.ssh/config, agent, ProxyJump and known_hosts apply unchanged (as Ansible and testinfra's `ssh`
backend use it), and ControlMaster gives one TCP connection and one authentication per XiVO for
every command of a run. Nothing prompts (BatchMode), host keys are checked (`yes`, or `accept-new`
where the topology says so). The master starts at the first use, within the run's deadline (a
server that accepts TCP and never speaks SSH ends at that budget, not at ssh's), and lives at most
a few seconds past the run; `close` ends it at the end of the run. Each command goes through
`run_bounded` (time, output size, no standard input) and, for a user that is not root, `sudo -n`
(which fails instead of asking for a password).
"""

from __future__ import annotations

import base64
import contextlib
import math
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from xivo_doctor.foundation.deadline import Deadline
from xivo_doctor.foundation.errors import ProbeError, ProbeTimeout
from xivo_doctor.probes.transport.commands import MAX_BYTES, Ran, run_bounded
from xivo_doctor.probes.transport.slots import Slots
from xivo_doctor.topology.model import SshAccess, Xivo

# Commands at once on one XiVO's connection: sshd's MaxSessions (default 10, sshd_config(5)) refuses
# more ("Session open refused by peer"), and the doctor's commands are short.
SESSIONS = 6
COMMAND_FLOOR = 5.0  # s: the least one command over SSH may take (probe_timeout is for one connect)
# s: the least the login may take once the server has answered. ssh's ConnectTimeout (the probe
# timeout) bounds the TCP connect and the wait for the server's banner (OpenSSH: "Connection timed out
# during banner exchange", sshconnect.c, kex.c in later releases), so a silent server is still found at
# the probe timeout; what comes after (key exchange, the key's check, sshd's fork and PAM session) is CPU
# on both hosts, and a busy one (Nagios starting ten plugins at once) is slow, not silent.
LOGIN_FLOOR = 5.0

# read_files: $1 the most bytes kept per file, then the paths; one line each: `absent PATH`,
# `file PATH BASE64` (one byte more than kept: too large shows), or `error PATH` (then read alone).
_READ_FILES = r"""set -o pipefail; n=$1; shift
for f in "$@"; do
  if [ ! -e "$f" ]; then printf 'absent %s\n' "$f"
  elif data=$(head -c "$((n + 1))" -- "$f" 2>/dev/null | base64 -w0); then printf 'file %s %s\n' "$f" "$data"
  else printf 'error %s\n' "$f"; fi
done"""

# What ssh prints -> what it means for the admin (the first that matches)
_REASONS = (
    ("REMOTE HOST IDENTIFICATION HAS CHANGED", "host key changed: {host} shows another key than the known_hosts"
     " file has (a reinstalled XiVO, or someone in between); check it, then update known_hosts"),
    ("Host key verification failed", "host key not known: add {host}'s key to the known_hosts file, or set"
     " ssh.accept_new_host_key: true"),
    ("Permission denied", "authentication refused for user {user} (the key is not accepted)"),
    ("Too many authentication failures", "authentication refused for user {user} (too many keys offered)"),
    ("Connection refused", "refused: nothing listens for SSH on {host} port {port}"),
    ("banner exchange", "no SSH answer from {host} port {port} (it takes the connection and says nothing)"),
    ("timed out", "timed out connecting to {host} port {port}"),
    ("No route to host", "no route to {host}"),
    ("Could not resolve hostname", "cannot resolve {host}"),
    ("Connection closed", "the server closed the connection ({detail})"),
)


def reason(stderr: str, host: str, port: str, user: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip() and not line.startswith("Warning:")]
    detail = lines[-1] if lines else "no message"
    for mark, words in _REASONS:
        if mark in stderr:
            return words.format(host=host, port=port, user=user, detail=detail)
    return detail


@dataclass
class _Link:
    control: Path
    socks_port: int
    problem: ProbeError | None = None
    sessions: threading.BoundedSemaphore = field(default_factory=lambda: threading.BoundedSemaphore(SESSIONS))


class SshLinks:
    """The run's SSH connections, one per XiVO, made on first use."""

    def __init__(self, deadline: Deadline, timeout: float) -> None:
        self.deadline = deadline
        self.timeout = timeout
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._links: dict[str, _Link] = {}
        self._controls: dict[str, int] = {}
        self._files: dict[str, dict[str, str | None]] = {}  # read_files: by XiVO, by path (None: absent)
        self._reading: dict[str, threading.Event] = {}  # read_files under way or done, by XiVO
        self._slots = Slots(max(4, 2 * (os.cpu_count() or 2)))
        self._dir: Path | None = None

    @staticmethod
    def source(xivo: Xivo) -> str:
        return f"SSH to {xivo.name}"

    def _options(self, xivo: Xivo, control: Path) -> list[str]:
        access = xivo.ssh or SshAccess()
        options = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={max(1, math.ceil(self.timeout))}",
                   "-o", f"StrictHostKeyChecking={'accept-new' if access.accept_new_host_key else 'yes'}",
                   "-o", f"ControlPath={control}", "-o", "LogLevel=ERROR", "-l", access.user]
        if access.port:
            options += ["-p", str(access.port)]
        if access.identity_file:
            options += ["-i", str(access.identity_file), "-o", "IdentitiesOnly=yes"]
        if access.known_hosts_file:
            options += ["-o", f"UserKnownHostsFile={access.known_hosts_file}"]
        return options

    @staticmethod
    def host(xivo: Xivo) -> str:
        return (xivo.ssh.host if xivo.ssh and xivo.ssh.host else None) or xivo.address

    def _folder(self) -> Path:
        with self._lock:
            if self._dir is None:  # short: a control socket's path must fit 108 bytes
                self._dir = Path(tempfile.mkdtemp(prefix="xd-ssh-"))
            return self._dir

    def _link(self, xivo: Xivo) -> _Link:
        with self._lock:
            lock = self._locks.setdefault(xivo.name, threading.Lock())
            # One control socket per XiVO, never shared: ssh sends a command to whichever master
            # listens on the path it is given, whatever host that master is connected to.
            self._controls.setdefault(xivo.name, len(self._controls))
        with lock:
            if xivo.name not in self._links:
                self._links[xivo.name] = self._start(xivo)
            link = self._links[xivo.name]
        if link.problem is not None:
            raise link.problem
        return link

    def connect(self, xivo: Xivo) -> None:
        """Make the XiVO's connection now (a failure is kept, and said by the first command)."""
        with contextlib.suppress(ProbeError):
            self._link(xivo)

    def _start(self, xivo: Xivo) -> _Link:
        source, access = self.source(xivo), xivo.ssh or SshAccess()
        control = self._folder() / str(self._controls[xivo.name])
        with socket.socket() as probe:  # a free local port for the SOCKS end (ssh -D)
            probe.bind(("127.0.0.1", 0))
            socks_port = probe.getsockname()[1]
        if access.identity_file is not None and not _readable(access.identity_file):
            why = "not found" if not access.identity_file.exists() else "not readable"
            return _Link(control, socks_port, ProbeError(source, f"identity file {access.identity_file}: {why}"))
        budget = self.deadline.budget(max(self.timeout, LOGIN_FLOOR), source)
        persist = max(5, math.ceil(self.deadline.remaining() + 5))  # never outlives the run by much
        argv = ["ssh", "-M", "-N", "-f", "-o", f"ControlPersist={persist}", "-D", f"127.0.0.1:{socks_port}",
                *self._options(xivo, control), self.host(xivo)]
        with tempfile.TemporaryFile() as errors:  # a file: the backgrounded master keeps no pipe of ours
            try:
                done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors,
                                      timeout=budget, start_new_session=True)
            except subprocess.TimeoutExpired:
                return _Link(control, socks_port, ProbeTimeout(source, f"no SSH login within {budget:g} s on"
                                                                       f" {self.host(xivo)} (a stalled server?)"))
            except FileNotFoundError:
                return _Link(control, socks_port, ProbeError(source, "no ssh client here (install openssh-client)"))
            errors.seek(0)
            stderr = errors.read().decode(errors="replace")
        if done.returncode != 0:
            words = reason(stderr, self.host(xivo), str(access.port or 22), access.user)
            return _Link(control, socks_port, ProbeError(source, words))
        return _Link(control, socks_port)

    def run(self, xivo: Xivo, argv: list[str], *, what: str, max_bytes: int = MAX_BYTES,
            timeout: float | None = None, rank: int = 1) -> Ran:
        """Run `argv` on the XiVO (through `sudo -n` when ssh.sudo), stdout and stderr apart, within
        `timeout` (default the probe timeout) cut to the run's deadline; rank 0 starts before the
        others waiting (transport/slots.py).
        Raises ProbeError/ProbeTimeout when the XiVO cannot be reached over SSH."""
        link = self._link(xivo)
        remote = shlex.join(["sudo", "-n", *argv] if xivo.ssh and xivo.ssh.sudo else argv)
        # A command over SSH is a new session (a fork of sshd, a shell): a floor above the network
        # timeout, so that a busy XiVO (or this host) is slow, not silent.
        budget = self.deadline.budget(max(timeout or self.timeout, COMMAND_FLOOR), f"{what} on {xivo.name} over SSH")
        # sshd refuses sessions beyond MaxSessions (10) on one connection; and every command costs
        # this host an ssh process: at most a few at once in the whole run (a 10-XiVO run would
        # otherwise start sixty at a time and starve each of them past its timeout)
        with self._slots.held(rank, budget, f"{what} on {xivo.name} over SSH"), link.sessions:
            budget = self.deadline.budget(budget, f"{what} on {xivo.name} over SSH")
            ran = run_bounded(["ssh", *self._options(xivo, link.control), "-o", "ControlMaster=no",
                               self.host(xivo), "--", remote], budget, max_bytes=max_bytes, merge_stderr=False)
        if ran.timed_out:
            raise ProbeTimeout(f"{what} on {xivo.name} over SSH", f"no answer within {budget:g} s")
        if ran.exit_code == 255:  # ssh's own failure (the connection), not the command's
            access = xivo.ssh or SshAccess()
            words = reason(ran.errors, self.host(xivo), str(access.port or 22), access.user)
            raise ProbeError(self.source(xivo), words)
        if "sudo:" in ran.errors and "password" in ran.errors:
            raise ProbeError(self.source(xivo), f"sudo needs a password for {xivo.ssh.user if xivo.ssh else '?'}"
                                                " (give it NOPASSWD for the doctor's read-only commands)")
        return ran

    def read_files(self, xivo: Xivo, paths: tuple[str, ...], max_bytes: int) -> None:
        """Read the small files a run needs of this XiVO in ONE command (each a new session would
        cost a fork of sshd and a shell), kept for `read_file`. Quietly nothing when that command
        fails: each file is then read on its own, and says why."""
        with self._lock:
            if xivo.name in self._reading:
                return
            done = self._reading[xivo.name] = threading.Event()
        try:
            found = self._read_batch(xivo, paths, max_bytes)
            with self._lock:
                self._files[xivo.name] = found
        finally:
            done.set()

    def _read_batch(self, xivo: Xivo, paths: tuple[str, ...], max_bytes: int) -> dict[str, str | None]:
        try:
            ran = self.run(xivo, ["bash", "-c", _READ_FILES, "xivo-doctor-read", str(max_bytes), *paths],
                           what="read files", max_bytes=(max_bytes * 4 // 3 + 300) * len(paths))
        except ProbeError:
            return {}
        found: dict[str, str | None] = {}
        for line in (ran.output or "").splitlines():
            kind, _, rest = line.partition(" ")
            path, _, data = rest.partition(" ")
            if path not in paths:
                continue
            if kind == "absent":
                found[path] = None
            elif kind == "file":
                raw = base64.b64decode(data or "")
                if len(raw) <= max_bytes:  # a larger one is read (and refused) on its own
                    found[path] = raw.decode("utf-8", "replace")
        return found

    def read_file(self, xivo: Xivo, path: str, max_bytes: int) -> str | None:
        """The file's text, None when it does not exist. ProbeError when it cannot be read."""
        with self._lock:
            reading = self._reading.get(xivo.name)
        if reading is not None:  # the batch under way holds it, most likely: not a second session for it
            reading.wait(self.deadline.budget(self.timeout + COMMAND_FLOOR, f"cat {path} on {xivo.name} over SSH"))
        with self._lock:
            batch = self._files.get(xivo.name, {})
        if path in batch:
            self._link(xivo)  # the same failure as the batch's, if SSH has failed since
            return batch[path]
        ran = self.run(xivo, ["cat", "--", path], what=f"cat {path}", max_bytes=max_bytes)
        if ran.exit_code == 0:
            return ran.output or ""
        if f"cat: {path}: No such file or directory" in ran.errors:  # cat's own words for this file
            return None
        raise ProbeError(f"{path} on {xivo.name} (over SSH)", ran.errors.strip() or ran.problem or "not read")

    def keep_copy(self, xivo: Xivo, path: str, text: str) -> Path:
        """`text`, read from the XiVO's `path`, in a file here for the rest of the run."""
        copy = self._folder() / f"{xivo.name}{path.replace('/', '_')}"
        copy.write_text(text)
        return copy

    def socks(self, xivo: Xivo) -> tuple[str, int]:
        """The local SOCKS5 address whose connections the XiVO opens (its SSH connection's -D)."""
        return "127.0.0.1", self._link(xivo).socks_port

    def close(self) -> None:
        """End every master of the run (`ssh -O exit`) and remove their sockets' folder."""
        with self._lock:
            links, folder = dict(self._links), self._dir
        for link in links.values():
            if link.problem is None and link.control.exists():
                subprocess.run(["ssh", "-o", f"ControlPath={link.control}", "-O", "exit", "xivo"],
                               capture_output=True, timeout=5)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def _readable(path: Path) -> bool:
    try:
        with open(path, "rb"):
            return True
    except OSError:
        return False
