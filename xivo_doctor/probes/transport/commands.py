"""The one way the doctor runs a command: bounded in time and in output, with nothing to answer.

Place in the pipeline: acquisition, transport. Every on-box command goes through `run_bounded`:
rabbitmqctl for the federation state (probes/rabbitmq/broker.py) and the support bundle's
troubleshooting commands (probes/troubleshoot.py); an SSH transport will run its commands the
same way. The command gets no shell, no standard input (it cannot prompt), its own session (at
its deadline the whole process group is killed: rabbitmqctl's Erlang VM, what a shell started),
and its output is read as it comes, so a command printing gigabytes or one whose child keeps the
pipe open after it exited still ends in time.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

MAX_BYTES = 256 * 1024  # kept of each stream; the rest is read and dropped, so the command never blocks
EXIT_GRACE = 0.2  # s: after the command exits, how long a child it left holding the output may keep it


@dataclass(frozen=True)
class Ran:
    output: str | None  # stdout (stderr interleaved, as a terminal shows it, unless kept apart); None: not started
    exit_code: int | None  # None: not started, or killed at its deadline
    problem: str | None  # not found / permission denied / timed out after N s / exit code N
    truncated: bool = False  # printed more than was kept
    errors: str = ""  # stderr, when kept apart
    timed_out: bool = False
    reason: str = ""  # why it did not start, in the system's words ("No such file or directory")


def os_reason(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "not found"
    if isinstance(exc, PermissionError):
        return "permission denied"
    return exc.strerror or str(exc) or type(exc).__name__


def run_bounded(argv: Sequence[str], timeout: float, *, max_bytes: int = MAX_BYTES, merge_stderr: bool = True,
                clock: Callable[[], float] = time.monotonic) -> Ran:
    """Run `argv` for at most `timeout` s, keeping the first `max_bytes` bytes of its output (and
    of its stderr, kept apart unless `merge_stderr`)."""
    if os.sep not in argv[0] and shutil.which(argv[0]) is None:
        return Ran(None, None, f"{argv[0]}: not found on PATH", reason="not found on PATH")
    try:
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE, start_new_session=True)
    except OSError as exc:
        return Ran(None, None, f"{argv[0]}: {os_reason(exc)}", reason=exc.strerror or os_reason(exc))
    end = clock() + timeout
    streams = [s for s in (proc.stdout, proc.stderr) if s is not None]
    kept = {s.fileno(): bytearray() for s in streams}
    dropped, timed_out, exited_at = False, False, None
    with contextlib.ExitStack() as stack, selectors.DefaultSelector() as sel:
        for stream in streams:
            stack.enter_context(stream)
            sel.register(stream, selectors.EVENT_READ)
        while sel.get_map():
            now = clock()
            if now >= end:
                timed_out = True
                break
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at >= EXIT_GRACE:
                break  # exited, but something it started still holds the pipe: stop reading
            for key, _ in sel.select(min(end - now, EXIT_GRACE if exited_at is not None else 0.1)):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                room = max_bytes - len(kept[key.fd])
                kept[key.fd] += chunk[:room]  # past the cap, keep draining so the command is not blocked writing
                dropped = dropped or len(chunk) > room
    if not timed_out:
        try:
            proc.wait(timeout=max(0.0, end - clock()))
        except subprocess.TimeoutExpired:
            timed_out = True
    if timed_out:
        _kill_group(proc)
    texts = [bytes(kept[fd]).decode("utf-8", "replace") for fd in kept]
    output, errors = texts[0], (texts[1] if len(texts) > 1 else "")
    if timed_out:
        return Ran(output, None, f"timed out after {round(timeout, 1):g} s", dropped, errors, timed_out=True)
    problem = f"exit code {proc.returncode}" if proc.returncode != 0 else None
    return Ran(output, proc.returncode, problem, dropped, errors)


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group already ended
        os.killpg(proc.pid, signal.SIGKILL)  # our own child's session: it and whatever it started
    proc.wait()
