"""One live lab shared by the whole test session (pytest plugin loaded from tests/conftest.py).

It runs on its own addresses (127.10.100.x), epmd port and Erlang distribution ports, so it never
collides with a lab a developer runs on the defaults; it is stopped at the end of the session and
must leave no listener behind.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from services import starts_services

# The session's labs are made of hosts of their own (`lab up`'s default, reached by SSH), on 198.18.100.x
# and 198.18.120.x; XIVO_TEST_LAB_NETNS=0 runs them as nodes sharing this host (`--no-netns`, on-box access).
NETNS = os.environ.get("XIVO_TEST_LAB_NETNS", "1") != "0"
# Overridable so that several people (or agents) can run the lab tests at once on one machine.
LAB_BASE = os.environ.get("XIVO_TEST_LAB_BASE", "198.18.100.0" if NETNS else "127.10.100.0")
LAB_EPMD = int(os.environ.get("XIVO_TEST_LAB_EPMD", "4372"))
LAB_DIST = int(os.environ.get("XIVO_TEST_LAB_DIST", "25900"))


@pytest.fixture(scope="session")
@starts_services
def lab(tmp_path_factory):
    """The lab's state after `lab up` (2 nodes), healthy."""
    from xivo_doctor.lab import lifecycle

    # Not under pytest's tmp tree: it is root-only and the lab's PostgreSQL runs as `postgres`.
    lab_dir = Path(tempfile.mkdtemp(prefix="xivo-doctor-test-lab-"))
    lab_dir.chmod(0o711)
    lines: list[str] = []
    try:
        state = lifecycle.up(lab_dir, count=2, base=free_base(LAB_BASE), epmd_port=LAB_EPMD, dist_base=LAB_DIST,
                             own_network=NETNS, say=lines.append)
    except Exception:
        _down(lab_dir)
        print("\n".join(lines))
        raise
    state.up_log = lines  # type: ignore[attr-defined]
    yield state
    _down(lab_dir)
    shutil.rmtree(lab_dir, ignore_errors=True)
    leftovers = listeners(state.nodes[0].address.rsplit(".", 1)[0] + ".")
    assert not leftovers, f"lab down left listeners: {leftovers}"


def free_base(base: str) -> str:
    """`base`, or, when something on this machine already routes its /24 (a lab left by a killed run,
    another run of the suite at once), the first free /24 of 198.18.200.0-198.18.253.0."""
    from xivo_doctor.lab import netns

    if not base.startswith("198.18.") or not netns.routed_elsewhere(base):
        return base
    for third in range(200, 254):
        if not netns.routed_elsewhere(candidate := f"198.18.{third}.0"):
            print(f"{base}/24 is taken on this machine ({netns.routed_elsewhere(base)}): this lab uses {candidate}")
            return candidate
    return base  # `lab up` refuses it, in one line


def _down(lab_dir: Path) -> None:
    from xivo_doctor.lab import lifecycle

    if (lab_dir / "lab.json").exists():
        lifecycle.down(lab_dir, say=lambda _: None)


def listeners(prefix: str) -> list[str]:
    out = subprocess.run(["ss", "-ltnuH"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if prefix in line]


def tcp_state(address: str, port: int, timeout: float = 1.0) -> str:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return "open"
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "timeout"


def eventually(predicate, timeout: float = 15.0, interval: float = 0.25, what: str = "condition"):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            last = predicate()
        except Exception as exc:  # a service restarting refuses for a moment: not yet
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout:g} s (last: {last!r})")


@contextmanager
def own_lab(prefix: str, **up) -> Iterator:
    """A lab of its own (`lifecycle.up(**up)`) in a new folder, down and removed at the end; what
    `up` said is printed when it fails."""
    from xivo_doctor.lab import lifecycle

    lab_dir = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    lab_dir.chmod(0o711)  # the lab's PostgreSQL runs as `postgres` and must traverse it
    lines: list[str] = []
    if "base" in up:
        up["base"] = free_base(up["base"])
    try:
        state = lifecycle.up(lab_dir, say=lines.append, **up)
    except Exception:
        _down(lab_dir)
        print("\n".join(lines))
        raise
    try:
        yield state
    finally:
        _down(lab_dir)
        shutil.rmtree(lab_dir, ignore_errors=True)


def traces_of(lab_dir: Path, prefix: str, but: int | None = None) -> list[str]:
    """Processes (but pid `but`) whose command line names the lab's folder or addresses, and
    listeners on those addresses."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or proc.name == str(but):
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(lab_dir) in cmdline or prefix in cmdline:
            found.append(f"process {proc.name}: {cmdline[:120]}")
    sockets = subprocess.run(["ss", "-Hltnup"], capture_output=True, text=True).stdout
    return found + [f"listener {line}" for line in sockets.splitlines() if prefix in line]


def run_doctor(topology: Path, *args: str, on: list[str] | None = None) -> dict:
    """`xivo-doctor run -T TOPOLOGY --json - ARGS` here, or after `on` (a lab node's `enter` prefix: the
    doctor installed on that XiVO, run in its namespaces as `xivo-doctor lab exec` runs it, without its
    0.35 s start-up); its JSON result."""
    argv = [*(on or []), "xivo-doctor", "run", "-T", str(topology), "--json", "-", *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.stdout, done.stderr
    return json.loads(done.stdout)
