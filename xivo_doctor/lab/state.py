"""The lab's saved state (DIR/lab.json) and the processes it started (pid files under each root).

Place in the lab: written by `lab up`, read by every other `lab` command, so that `down`,
`status`, `restart`, `break` and `heal` act on exactly what `up` started — by pid, never by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from xivo_doctor.lab import mountns, netns
from xivo_doctor.lab.errors import LabError  # the lab's modules import it from here
from xivo_doctor.lab.nodes import LabNode

# service -> the module its stand-in runs as (`python -m MODULE --root <node root>`)
STANDINS = {"consul": "xivo_doctor.lab.consul", "xivo-ctid": "xivo_doctor.lab.standins.ctid",
            "xivo-confd": "xivo_doctor.lab.standins.confd", "webservices": "xivo_doctor.lab.standins.webservices",
            "xivo-auth": "xivo_doctor.lab.standins.auth", "xivo-dird": "xivo_doctor.lab.standins.dird"}


def lab_dir_default() -> Path:
    return Path(os.environ.get("XIVO_DOCTOR_LAB_DIR", "/var/tmp/xivo-doctor-lab"))


@dataclass
class LabState:
    dir: Path
    nodes: list[LabNode]
    postgres_address: str
    postgres_port: int = 5432
    epmd_port: int = 4370  # the lab's own epmd, apart from a system one on 4369 (LAB-NOTES §A.7)
    dist_base: int = 25700  # node N's Erlang distribution port is dist_base + N, on 127.0.0.1
    notes: list[str] = field(default_factory=list)  # what `up` did about ports taken by others
    net_id: str = ""  # with --netns: the id naming the lab's namespaces and links (`netns`); "" shares the host

    def ns(self, node: LabNode) -> str:
        """The node's network namespace, or "" when the nodes share this host's network."""
        return netns.ns_name(self.net_id, node.index) if self.net_id else ""

    def enter(self, node: LabNode) -> list[str]:
        """argv prefix that runs a command on the node's own network and files (`netns`, `mountns`);
        nothing when the nodes share this host's."""
        if not self.net_id or netns.inside(self.ns(node)):  # a shell on the node is there already
            return []
        return self.reach(node)

    def reach(self, node: LabNode) -> list[str]:
        """`enter` as seen from this machine, for what is written once and run from anywhere (wrappers)."""
        if not self.net_id:
            return []
        files, name = mountns.ns_file(self.net_id, node.index), mountns.uts_file(self.net_id, node.index)
        return netns.enter(self.ns(node), files if files.exists() else None, name if name.exists() else None)

    @property
    def file(self) -> Path:
        return self.dir / "lab.json"

    def save(self) -> None:
        data = asdict(self)
        data["dir"] = str(self.dir)
        self.file.write_text(json.dumps(data, indent=2) + "\n")

    @staticmethod
    def load(lab_dir: Path) -> LabState:
        path = lab_dir / "lab.json"
        if not path.exists():
            raise LabError(f"no lab in {lab_dir} (no lab.json); start one with `xivo-doctor lab up`")
        data = json.loads(path.read_text())
        data["dir"] = Path(data["dir"])
        data["nodes"] = [LabNode(**n) for n in data["nodes"]]
        return LabState(**data)

    def node(self, name: str) -> LabNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise LabError(f"no node {name!r} in the lab; nodes: {', '.join(n.name for n in self.nodes)}")

    def root(self, node: LabNode) -> Path:
        return node.root(self.dir)

    def pidfile(self, node: LabNode, service: str) -> Path:
        return self.root(node) / "run" / f"{service}.pid"

    def federation_record(self, node: LabNode) -> Path:
        """The node's federation definitions as the manual's commands left them (rabbitmq.save_healthy)."""
        return self.dir / "nodes" / node.name / "federation.healthy"


def read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def alive(pid: int | None) -> bool:
    """Running and not a zombie."""
    if not pid:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def start_standin(state: LabState, node: LabNode, service: str) -> int:
    """Start one stand-in for `node` in its own session (it outlives this command)."""
    root = state.root(node)
    log = root / "var" / "log" / f"{service}.console.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [*state.enter(node), sys.executable, "-m", STANDINS[service], "--root", str(root)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
        )
    state.pidfile(node, service).write_text(f"{proc.pid}\n")
    return proc.pid


def stop_pid(pid: int | None, timeout: float = 10.0) -> None:
    """SIGTERM, wait, then SIGKILL: by pid, and only processes the lab recorded."""
    if not alive(pid):
        return
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    end = time.monotonic() + timeout
    while time.monotonic() < end and alive(pid):
        _reap(pid)
        time.sleep(0.05)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    _reap(pid)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop_service(state: LabState, node: LabNode, service: str) -> None:
    pidfile = state.pidfile(node, service)
    stop_pid(read_pid(pidfile))
    pidfile.unlink(missing_ok=True)


def port_open(address: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(address: str, port: int, timeout: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if port_open(address, port):
            return time.monotonic() - started
        time.sleep(0.05)
    raise LabError(f"{what} did not open {address}:{port} within {timeout:g} s")


def bindable(address: str, port: int) -> bool:
    """Could a lab service bind address:port? False when anything holds it (even on 0.0.0.0)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError:
            return False
    return True
