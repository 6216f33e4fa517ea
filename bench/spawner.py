"""The benchmark's launcher: a small process that starts each measured command, so that the
command's peak RSS is its own.

Place: benchmark helper (bench/run_bench.py), outside the package and the test suite.

Why a launcher: on Linux, a process's ru_maxrss starts at the high-water RSS of the memory it
was forked from (exec records the old address space's peak, fs/exec.c `exec_mmap`), and fork,
vfork and posix_spawn all start from the parent's. Started straight from the benchmark's Python
(~50 MB once the lab modules are loaded), `xivo-doctor --version` reads as ~50 MB whatever it
uses. This launcher is `python3 -S` (no site, ~10 MB): a command it starts reads as
max(its own peak, ~10 MB), and every command measured here needs more than that.

Protocol, one JSON object per line: in {"argv": [...], "stderr": PATH} (stdin and stdout go to
/dev/null, stderr to PATH); out {"wall": seconds, "maxrss_kb": int, "status": exit code or
-signal}. `wall` is measured here, from posix_spawn to wait4, so it holds no pipe round trip.
`maxrss_kb` is from wait4: the largest process of the command's tree (with rabbitmqctl, its
Erlang VM).
"""

import json
import os
import sys
import time


def serve() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        argv = request["argv"]
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_OPEN, 2, request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
        ]
        began = time.perf_counter()
        try:
            pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=actions)
        except OSError as exc:
            reply = {"wall": 0.0, "maxrss_kb": 0, "status": 127, "error": str(exc)}
        else:
            _, status, usage = os.wait4(pid, 0)
            reply = {"wall": time.perf_counter() - began, "maxrss_kb": usage.ru_maxrss,
                     "status": os.waitstatus_to_exitcode(status)}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    serve()
