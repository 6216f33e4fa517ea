"""The run lock: keys, where lock files go, real processes holding and losing the lock, and two
overlapping `xivo-doctor run`s of one topology (the second exits 3 with one line)."""

from __future__ import annotations

import fcntl
import os
import re
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from conftest import REPO, TEST_PORTS, loopback_topology
from servers import BlackHole, Listener, serve
from xivo_doctor.engine import runlock
from xivo_doctor.engine.runlock import AlreadyRunning, LockDirError, RunLock, run_key

MESSAGE = re.compile(
    r"another xivo-doctor run of (?P<topology>\S+) \((?P<selection>[^)]*)\) is still running "
    r"\(pid (?P<pid>\d+), since (?P<since>\d\d:\d\d:\d\d)\); this run stops \(UNKNOWN\) — if it is stuck, kill it")
HOLDER = """
import sys
from xivo_doctor.engine.runlock import RunLock, run_key
with RunLock(run_key(sys.argv[1], sys.argv[2:], [])):
    print("locked", flush=True)
    sys.stdin.read()  # held until the test kills this process
"""


def env_with(runtime: Path) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "XDG_RUNTIME_DIR": str(runtime)}


def wait_for(predicate, what: str, bound_s: float = 30.0) -> None:
    """Poll until `predicate()`; the bound only stops a broken test from hanging."""
    end = time.monotonic() + bound_s
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.02)


@pytest.fixture
def holder(tmp_path, runtime_dir):
    """Start a process holding the lock of (topology, checks); kill it at the end."""
    procs: list[subprocess.Popen] = []

    def start(topology: Path, *checks: str) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(topology), *checks], cwd=REPO,
                                env=env_with(runtime_dir), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout.readline() == "locked\n"
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


# --- keys -------------------------------------------------------------------------------------


def test_run_key_is_the_topology_file_and_the_selection_whatever_the_spelling(tmp_path, monkeypatch):
    topology = tmp_path / "t.yml"
    monkeypatch.chdir(tmp_path)
    key = run_key(topology, ["consul-wan", "port-reachable"], ["xivo-2", "xivo-1"])
    assert re.fullmatch(r"[0-9a-f]{16}", key)
    assert key == run_key("t.yml", ["port-reachable", "consul-wan", "consul-wan"], ["xivo-1", "xivo-2"])
    assert key.topology == str(topology) and key.selection == "checks consul-wan, port-reachable; XiVOs xivo-1, xivo-2"
    others = {
        run_key(topology, ["consul-wan"], ["xivo-1", "xivo-2"]),  # Nagios: one service per check
        run_key(topology, ["consul-wan", "port-reachable"], ["xivo-1"]),
        run_key(tmp_path / "u.yml", ["consul-wan", "port-reachable"], ["xivo-1", "xivo-2"]),
        run_key(topology),
    }
    assert key not in others and len(others) == 4
    assert run_key(topology).selection == "every check; every XiVO"


# --- where the lock files go ------------------------------------------------------------------


def test_lock_directory_is_the_session_runtime_dir_when_there_is_one(runtime_dir):
    directory = runlock.lock_directory()
    assert directory == runtime_dir / "xivo-doctor"
    assert directory.stat().st_mode & 0o777 == 0o700


def test_lock_directory_without_runtime_dir_or_run_lock_is_per_user_under_tmp(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    (tmp_path / "file").write_text("")
    monkeypatch.setattr(runlock, "SYSTEM_LOCK_DIR", tmp_path / "file" / "xivo-doctor")  # cannot be created
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    directory = runlock.lock_directory()
    assert directory == tmp_path / f"xivo-doctor-{os.geteuid()}"
    assert directory.stat().st_mode & 0o777 == 0o700
    with RunLock(run_key(tmp_path / "t.yml")) as lock:
        assert lock.path.parent == directory


def test_a_lock_directory_planted_by_someone_else_is_never_used(tmp_path, monkeypatch):
    """A shared /tmp: another user's directory, or a symlink, in our place is refused."""
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(runlock, "SYSTEM_LOCK_DIR", tmp_path / "elsewhere")
    (tmp_path / "elsewhere").symlink_to(tmp_path)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    planted = tmp_path / f"xivo-doctor-{os.geteuid()}"
    planted.mkdir()
    if os.geteuid() == 0:
        os.chown(planted, 65534, 65534)  # nobody's
    else:
        planted.chmod(0o500)  # not writable by us
    with pytest.raises(LockDirError) as caught:
        runlock.lock_directory()
    assert str(caught.value) == (f"no directory for the run lock: {planted} is not a writable directory owned by "
                                 "this user; remove it or set XDG_RUNTIME_DIR to one")


# --- the lock ---------------------------------------------------------------------------------


def test_a_second_process_with_the_same_key_fails_at_once_with_the_holders_pid(tmp_path, holder):
    topology = tmp_path / "t.yml"
    proc = holder(topology, "rabbitmq-federation")
    with pytest.raises(AlreadyRunning) as caught, RunLock(run_key(topology, ["rabbitmq-federation"])):
        pytest.fail("the lock was taken twice")
    message = str(caught.value)
    assert "\n" not in message
    found = MESSAGE.fullmatch(message)
    assert found, message
    assert found["pid"] == str(proc.pid)
    assert found["topology"] == str(topology) and found["selection"] == "checks rabbitmq-federation; every XiVO"


def test_different_keys_do_not_block_each_other(tmp_path, holder):
    """Nagios runs one service per check in parallel: they must all run."""
    topology = tmp_path / "t.yml"
    holder(topology, "rabbitmq-federation")
    with RunLock(run_key(topology, ["consul-wan"])), RunLock(run_key(topology)):
        pass


def test_the_lock_dies_with_a_killed_holder(tmp_path, holder, runtime_dir):
    topology = tmp_path / "t.yml"
    proc = holder(topology)
    with pytest.raises(AlreadyRunning):
        RunLock(run_key(topology)).__enter__()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = list((runtime_dir / "xivo-doctor").glob("run-*.lock"))
    assert len(left) == 1 and f"pid {proc.pid}\n" in left[0].read_text()  # a crash leaves the file...
    with RunLock(run_key(topology)) as lock:  # ...which the next run takes over
        assert f"pid {os.getpid()}\n" in lock.path.read_text()


def test_a_finished_run_releases_and_removes_its_lock_file(tmp_path, runtime_dir):
    key = run_key(tmp_path / "t.yml")
    with RunLock(key) as lock:
        with pytest.raises(AlreadyRunning):  # flock is per open file: the same process is refused too
            RunLock(key).__enter__()
        held = lock.path
        assert held.exists()
    assert not held.exists()
    with RunLock(key):
        pass


def test_a_run_that_locked_a_file_removed_under_it_locks_the_new_one(tmp_path, runtime_dir):
    """The race deletion invites: B opened the file A then removed; B must not run on it."""
    key = run_key(tmp_path / "t.yml")
    first = RunLock(key).__enter__()
    stale = os.open(first.path, os.O_RDWR)  # what a run starting now has opened
    first.release()  # removes the file, then unlocks it
    third = RunLock(key).__enter__()  # a run starting later creates and locks a new file
    try:
        fcntl.flock(stale, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the old inode is free...
        assert not runlock._same_file(stale, third.path)  # ...and is told apart from the file in use
        with pytest.raises(AlreadyRunning):
            RunLock(key).__enter__()
    finally:
        os.close(stale)
        third.release()


# --- the CLI ----------------------------------------------------------------------------------


def test_two_overlapping_runs_of_one_topology_the_second_exits_3_with_one_line(tmp_path, runtime_dir, own_peers):
    """A black-holed xivo-2 keeps the first run busy until its deadline; the second stops at once,
    while a run of another selection of the same topology is not blocked."""
    with ExitStack() as stack:
        serve(stack, Listener, "127.10.157.1", TEST_PORTS.values())
        serve(stack, BlackHole, "127.10.157.2", TEST_PORTS.values())
        topology = loopback_topology(tmp_path, ["127.10.157.1", "127.10.157.2"], probe_timeout=60)
        command = [sys.executable, "-m", "xivo_doctor", "run", "-T", str(topology), "-q", "-t", "60",
                   "--check", "port-reachable"]
        first = subprocess.Popen(command, cwd=REPO, env=env_with(runtime_dir), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        try:
            lock = runtime_dir / "xivo-doctor" / f"run-{run_key(topology, ['port-reachable'])}.lock"
            wait_for(lambda: lock.exists() and f"pid {first.pid}\n" in lock.read_text(), "the first run locks")
            second = subprocess.run(command, cwd=REPO, env=env_with(runtime_dir), capture_output=True, text=True,
                                    timeout=60)
            other = subprocess.run([*command, "--node", "xivo-1"], cwd=REPO, env=env_with(runtime_dir),
                                   capture_output=True, text=True, timeout=60)
            assert first.poll() is None, "the first run ended before the second started: nothing overlapped"
        finally:
            first.kill()
            first.communicate()
    assert second.returncode == 3 and second.stdout == ""
    assert second.stderr.count("\n") == 1 and second.stderr.startswith("xivo-doctor: error: another xivo-doctor run")
    found = MESSAGE.fullmatch(second.stderr.removeprefix("xivo-doctor: error: ").rstrip("\n"))
    assert found and found["pid"] == str(first.pid) and found["topology"] == str(topology)
    assert found["selection"] == "checks port-reachable; every XiVO"
    assert other.returncode == 0, other.stdout + other.stderr
    assert other.stdout.startswith("OK: 1 item passes")
