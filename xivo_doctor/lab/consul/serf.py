"""The Consul stand-in's WAN gossip: a real `serf agent` child, and what the stand-in asks of it.

Place in the pipeline: lab only (docs/lab.md, "consul"). Consul's WAN pool *is* serf/memberlist with
the WAN profile (LAB-NOTES §D), so the stand-in runs one serf agent per node on `bind_addr:8302`
with the tags a consul server sets (dc, role=consul, port=8300, vsn, vsn_min, vsn_max, build =
`<version>:<revision>` of the node's consul, bootstrap=1 or expect=<n>) and node name `<node>.<dc>`.
Membership, join, failure detection (~40 s in the wan profile) and the rejoin after a restart
(snapshot in `<data_dir>/serf/remote.snapshot`, as consul's `serf/` folder) are serf's own.
Every serf CLI call has a timeout so an HTTP request never waits on serf for more than ~2 s.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CLI_TIMEOUT = 2.0          # serf members / serf join
START_TIMEOUT = 5.0        # until the agent's RPC port accepts
STOP_GRACE = 3.0           # TERM, then KILL
STATUS_CODES = {"none": 0, "alive": 1, "leaving": 2, "left": 3, "failed": 4}  # serf MemberStatus (LAB-NOTES §C.2)
_SERF_LINE = re.compile(r"^\s*\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[(\w+)\] (.*)$")
_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARN": logging.WARNING, "ERR": logging.ERROR}


class SerfError(Exception):
    """serf failed: the text is serf's own message."""


def _die_with_parent() -> None:
    """Child side of Popen: get SIGTERM if the stand-in dies without stopping us (PR_SET_PDEATHSIG)."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


class SerfAgent:
    """One `serf agent` child process, with the CLI calls the Consul API needs."""

    def __init__(self, *, node_name: str, datacenter: str, bind_addr: str, advertise_addr: str, port: int,
                 server_port: int, snapshot: Path, rejoin: bool, log: logging.Logger,
                 extra_tags: dict[str, str] | None = None) -> None:
        self.name = f"{node_name}.{datacenter}"   # WAN member names are <node>.<dc> (LAB-NOTES §C.2)
        self.rpc_addr = f"{bind_addr}:7373"
        self.log = log
        self.proc: subprocess.Popen[str] | None = None
        self.stopping = False
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        self.argv = ["serf", "agent", f"-node={self.name}", f"-bind={bind_addr}:{port}", f"-rpc-addr={self.rpc_addr}",
                     "-tag", f"dc={datacenter}", "-tag", "role=consul", "-tag", f"port={server_port}",
                     "-tag", "vsn=2", "-profile=wan", f"-snapshot={snapshot}"]
        for name, value in (extra_tags or {}).items():  # build, vsn_min, vsn_max, bootstrap/expect
            self.argv += ["-tag", f"{name}={value}"]
        if advertise_addr != bind_addr:
            self.argv.append(f"-advertise={advertise_addr}:{port}")
        if rejoin:  # consul's rejoin_after_leave (XiVO sets it, XIVO-FACTS §4)
            self.argv.append("-rejoin")

    def start(self, on_exit: Callable[[int], None]) -> None:
        """Start serf and wait until its RPC answers; SerfError if it exits (port taken, ...)."""
        self.log.info(f"agent: starting WAN serf: {' '.join(self.argv)}")
        # Own session: a Ctrl-C in the terminal must not make serf leave (a consul 0.7 server skips
        # the leave on interrupt); we stop it ourselves with TERM, which serf handles without a leave.
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True,
                                     preexec_fn=_die_with_parent)
        threading.Thread(target=self._pump, args=(self.proc, on_exit), daemon=True, name="serf-log").start()
        host, port = self.rpc_addr.rsplit(":", 1)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SerfError(f"serf agent exited with code {self.proc.returncode} (see the serf lines above)")
            try:
                socket.create_connection((host, int(port)), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SerfError(f"serf agent RPC {self.rpc_addr} not answering after {START_TIMEOUT:.0f} s")

    def _pump(self, proc: subprocess.Popen[str], on_exit: Callable[[int], None]) -> None:
        """Copy serf's log into consul.log (consul logs its WAN serf the same way), then report the exit."""
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            if not line.strip() or "agent.ipc: Accepted client" in line:  # one per CLI call: noise
                continue
            match = _SERF_LINE.match(line)
            if match:  # serf's own `agent:` lines become consul's `agent: (WAN) ...`
                message = re.sub(r"^agent: ", "agent: (WAN) ", match[2])
                self.log.log(_LEVELS.get(match[1], logging.INFO), message)
            else:
                failed = "Failed" in line or "Error" in line
                self.log.log(logging.ERROR if failed else logging.INFO, f"serf: {line.strip()}")
        code = proc.wait()
        if not self.stopping:
            on_exit(code)

    def stop(self) -> None:
        """TERM (serf shuts down *without* a leave: peers see this node `failed`), KILL after 3 s."""
        self.stopping = True
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            self.log.warning("agent: serf did not stop after TERM, killing it")
            self.proc.kill()
            self.proc.wait()

    def _cli(self, *args: str) -> str:
        try:
            # Flags before the arguments: Go's flag parsing stops at the first non-flag.
            argv = ["serf", args[0], f"-rpc-addr={self.rpc_addr}", *args[1:]]
            done = subprocess.run(argv, capture_output=True, text=True, timeout=CLI_TIMEOUT, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise SerfError(f"serf {args[0]}: no answer from {self.rpc_addr} within {CLI_TIMEOUT} s") from exc
        if done.returncode != 0:
            raise SerfError((done.stderr + done.stdout).strip() or f"serf {args[0]} failed")
        return done.stdout

    def members(self) -> list[dict[str, Any]]:
        """`serf members -format=json`: [{name, addr "ip:port", port, tags, status, protocol}]."""
        try:
            return json.loads(self._cli("members", "-format=json"))["members"]
        except (ValueError, KeyError) as exc:
            raise SerfError(f"serf members: unreadable answer: {exc}") from exc

    def join(self, address: str) -> str:
        """`serf join <address>`; serf's own error text on failure."""
        return self._cli("join", address).strip()

