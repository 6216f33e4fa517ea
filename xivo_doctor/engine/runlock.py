"""The run lock: two runs of the same topology and selection never overlap.

Place in the pipeline: around a whole run (acquisition -> evaluation -> presentation), taken by the
CLI (`run`, `nagios`) before any probe starts. Cron and Nagios start runs on a clock; a slow run
(a black-holed XiVO, a long `-t`) must not have a second one pile up behind it, sending its own
federation probe (XIVO-FACTS §5) and writing the same history. The second run stops at once with
`AlreadyRunning` (UNKNOWN, exit 3) instead of waiting: a monitoring system re-runs it anyway.

The key is the resolved topology path and the sorted selection (`--check`, `--node`), so Nagios
services that run different `--check`s of one topology in parallel do not block each other.

The lock is `flock(2)` on a file: the kernel releases it when the holder's last descriptor
closes, which a crash or `kill -9` does too, so a stale lock cannot outlive its process: a file
left by a crash only names a dead holder, and the next run takes it over. A run that ends
normally removes its file (while still holding the lock), so the directory does not fill with
one file per topology ever checked; a run that locked a file just removed checks that its file
is still the one at the path, and starts again if not, so two runs never hold two inodes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import hashlib
import os
import stat
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from xivo_doctor.foundation.errors import DoctorError

SYSTEM_LOCK_DIR = Path("/run/lock/xivo-doctor")
_MAX_HOLDER_BYTES = 4096  # the holder writes four short lines; more is not one of ours
_ATTEMPTS = 5  # a file removed under us each time means runs keep starting and ending: one is running


class AlreadyRunning(DoctorError):
    """Another run with the same key holds the lock: this one stops, UNKNOWN."""


class LockDirError(DoctorError):
    """No directory could hold the lock file."""


class RunKey(str):
    """A run key (a file-name-safe hash) that also says, in words, what it stands for.

    It is a plain `str` wherever a key is expected; `RunLock` writes `topology` and `selection`
    in the lock file so that a second run can name what the first one is doing.
    """

    topology: str
    selection: str

    def __new__(cls, value: str, topology: str = "", selection: str = "") -> RunKey:
        key = super().__new__(cls, value)
        key.topology = topology
        key.selection = selection
        return key


def _selection(checks: Iterable[str], nodes: Iterable[str]) -> tuple[list[str], list[str], str]:
    wanted_checks, wanted_nodes = sorted(set(checks)), sorted(set(nodes))
    words = ("checks " + ", ".join(wanted_checks) if wanted_checks else "every check") + "; " + (
        "XiVOs " + ", ".join(wanted_nodes) if wanted_nodes else "every XiVO")
    return wanted_checks, wanted_nodes, words


def run_key(topology_path: str | os.PathLike[str], checks: Iterable[str] = (), nodes: Iterable[str] = ()) -> RunKey:
    """A stable key for "this topology file, this selection": the same whatever the order or
    repetition of `--check`/`--node` and whether the path is given relative or absolute."""
    path = str(Path(topology_path).resolve())
    wanted_checks, wanted_nodes, words = _selection(checks, nodes)
    digest = hashlib.sha256("\0".join([path, ",".join(wanted_checks), ",".join(wanted_nodes)]).encode()).hexdigest()
    return RunKey(digest[:16], topology=path, selection=words)


def _usable(directory: Path) -> bool:
    """A directory of ours, not a symlink, that we can write: another user's directory in a
    shared place (/run/lock, /tmp) could swap our lock file for a link."""
    try:
        info = directory.lstat()
    except OSError:
        return False
    return (stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid()
            and os.access(directory, os.W_OK | os.X_OK))


def _make(directory: Path) -> Path | None:
    """`directory`, created 0700 if missing, when it is usable; else None."""
    try:
        directory.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    return directory if _usable(directory) else None


def lock_directory() -> Path:
    """Where lock files go, usable without HOME and by any user: `$XDG_RUNTIME_DIR/xivo-doctor`
    (a user session), else `/run/lock/xivo-doctor` (root, or whoever created it), else
    `<tmp>/xivo-doctor-<uid>` (any other user, e.g. nagios)."""
    candidates = []
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime) and os.access(runtime, os.W_OK | os.X_OK):
        candidates.append(Path(runtime) / "xivo-doctor")
    candidates.append(SYSTEM_LOCK_DIR)
    fallback = Path(tempfile.gettempdir()) / f"xivo-doctor-{os.geteuid()}"
    for directory in [*candidates, fallback]:
        made = _make(directory)
        if made is not None:
            return made
    raise LockDirError(f"no directory for the run lock: {fallback} is not a writable directory owned by this user; "
                       f"remove it or set XDG_RUNTIME_DIR to one")


def _since(started: float) -> str:
    when = dt.datetime.fromtimestamp(started)
    same_day = when.date() == dt.datetime.now().date()
    return when.strftime("%H:%M:%S" if same_day else "%Y-%m-%d %H:%M:%S")


class RunLock:
    """`with RunLock(key):` holds the lock for the run, or raises `AlreadyRunning` at once."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.path: Path | None = None
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        self.path = lock_directory() / f"run-{self.key}.lock"
        for _attempt in range(_ATTEMPTS):
            fd = _open(self.path)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = _read_holder(fd)
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise AlreadyRunning(self._message(holder)) from None
                raise LockDirError(f"cannot lock {self.path}: {exc.strerror or exc}") from None
            if _same_file(fd, self.path):
                self._fd = fd
                _write_holder(fd, self.key)
                return self
            os.close(fd)  # the run before removed this file as we opened it: lock the new one
        raise AlreadyRunning(self._message({}))

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()

    def release(self) -> None:
        if self._fd is not None:
            if self.path is not None and _same_file(self._fd, self.path):
                with contextlib.suppress(OSError):  # left behind, it is only taken over next time
                    self.path.unlink()  # before closing: nobody else can hold it yet
            os.close(self._fd)  # closing the only descriptor releases the flock
            self._fd = None

    def _message(self, holder: dict[str, str]) -> str:
        topology = holder.get("topology") or getattr(self.key, "topology", "") or "the same topology"
        selection = holder.get("selection") or getattr(self.key, "selection", "") or "the same selection"
        pid = holder.get("pid") or "unknown"
        try:
            since = _since(float(holder["started"]))
        except (KeyError, ValueError, OverflowError, OSError):
            since = "unknown"  # the holder had not written its line yet
        return (f"another xivo-doctor run of {topology} ({selection}) is still running (pid {pid}, since {since}); "
                "this run stops (UNKNOWN) — if it is stuck, kill it")


def _open(path: Path) -> int:
    # O_NOFOLLOW: never write through a link planted in our place. Python opens descriptors
    # non-inheritable, so a command the run starts (rabbitmqctl) cannot keep the lock alive.
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise LockDirError(f"cannot open the run lock {path}: {exc.strerror or exc}; "
                           "remove it or set XDG_RUNTIME_DIR to a directory of yours") from None


def _same_file(fd: int, path: Path) -> bool:
    try:
        mine, there = os.fstat(fd), path.lstat()
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)


def _write_holder(fd: int, key: str) -> None:
    """pid, start time and what runs, one `name value` per line, read by the run that is refused."""
    lines = {"pid": str(os.getpid()), "started": f"{time.time():.3f}",
             "topology": getattr(key, "topology", ""), "selection": getattr(key, "selection", "")}
    text = "".join(f"{k} {' '.join(v.split())}\n" for k, v in lines.items())
    os.ftruncate(fd, 0)
    os.pwrite(fd, text.encode("utf-8", "replace"), 0)


def _read_holder(fd: int) -> dict[str, str]:
    try:
        data = os.pread(fd, _MAX_HOLDER_BYTES, 0).decode("utf-8", "replace")
    except OSError:
        return {}
    holder = {}
    for line in data.splitlines():
        name, _, value = line.partition(" ")
        if name in ("pid", "started", "topology", "selection"):
            holder[name] = value.strip()
    return holder
