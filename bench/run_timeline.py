#!/usr/bin/env python3
"""Where the time of one run goes: a timeline of everything a `xivo-doctor run` waits on.

Place: outside the pipeline and the test suite, beside ssh_vs_onbox.py (which gives the totals);
this one says why. It runs the doctor in this process, once to warm up and once measured, with
the transport calls wrapped to record their start and end: each command (here or over SSH, with
the wait for a free SSH slot apart), each SSH master's start, each HTTP request, each AMQP
connection, and each item's run. It prints the timeline sorted by start (ms since the run began)
and asserts nothing.

    python3 bench/run_timeline.py TOPOLOGY.yml [-- extra `run` arguments]
"""

from __future__ import annotations

import contextlib
import functools
import io
import sys
import threading
import time

RECORDS: list[tuple[float, float, str, str]] = []  # (start, end, thread, what)
_LOCK = threading.Lock()


def _record(what: str, began: float) -> None:
    with _LOCK:
        RECORDS.append((began, time.perf_counter(), threading.current_thread().name, what))


def wrap(owner: object, name: str, label) -> None:
    original = getattr(owner, name)

    @functools.wraps(original)
    def timed(*args, **kwargs):
        began = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            _record(label(*args, **kwargs), began)

    setattr(owner, name, timed)


def instrument() -> None:
    import pika
    import requests

    from xivo_doctor.engine import run as engine_run
    from xivo_doctor.probes.rabbitmq import broker
    from xivo_doctor.probes.transport import ssh, tcp_over_ssh

    def command(argv, *_a, **_k) -> str:
        words = list(argv)
        if words and words[0] == "ssh":  # the remote command is the last word; the host before "--"
            host = words[words.index("--") - 1] if "--" in words else "?"
            return f"ssh {host}: {words[-1][:70]}"
        return " ".join(words)[:80]

    wrap(ssh, "run_bounded", command)
    wrap(broker, "run_bounded", command)
    wrap(ssh.SshLinks, "_start", lambda self, xivo: f"SSH master to {xivo.name}")
    wrap(ssh.SshLinks, "run", lambda self, xivo, argv, **k: f"  (with slot wait) {k.get('what')} on {xivo.name}")
    wrap(tcp_over_ssh, "scan_from", lambda _ssh, xivo, targets, *a: f"TCP scan from {xivo.name} ({len(targets)} ports)")
    wrap(requests.Session, "request", lambda self, method, url, *a, **k: f"HTTP {method} {url}"[:90])
    wrap(pika.BlockingConnection, "__init__", lambda self, params=None, *a: f"AMQP {getattr(params, 'host', '')}")
    wrap(engine_run, "classify", lambda spec, target, **k: f"item {spec.id}[{target}] classified (its end)")


def main() -> None:
    argv = sys.argv[1:]
    if not argv or argv[0].startswith("-"):
        sys.exit(__doc__)
    topology, extra = argv[0], argv[2:] if argv[1:2] == ["--"] else argv[1:]
    instrument()
    from xivo_doctor.cli.main import main as doctor

    run = ["run", "-q", "-T", topology, *extra]
    with contextlib.redirect_stdout(io.StringIO()):
        doctor(run)  # warm-up: imports, page cache
    RECORDS.clear()
    began = time.perf_counter()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = doctor(run)
    total = time.perf_counter() - began
    print(f"run: exit {code}, {total * 1000:.0f} ms: {out.getvalue().strip().splitlines()[-1:]}")
    for start, end, thread, what in sorted(RECORDS):
        print(f"{(start - began) * 1000:7.0f} {(end - began) * 1000:7.0f} {(end - start) * 1000:6.0f} ms "
              f"{thread[:18]:18} {what}")


if __name__ == "__main__":
    main()
