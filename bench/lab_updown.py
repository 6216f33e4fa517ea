#!/usr/bin/env python3
"""Benchmark of the lab itself: `lab up` (a new lab) and `lab down` times, and the lab's memory once up,
for nodes sharing this host and for nodes as hosts (`--netns`), at 2 and 10 nodes.

Place: outside the pipeline and the test suite, as run_bench.py; it drives the installed
`xivo-doctor lab` in subprocesses and asserts nothing. Memory is the sum of the proportional set
size (PSS, /proc/PID/smaps_rollup: shared pages split between their users) of every process of the
lab once `up` returned: the processes whose command line names the lab's folder, and all their
descendants (PostgreSQL's backends, Erlang's helpers, serf). Labs run in their own folders on their
own addresses and are removed at the end.

    python3 bench/lab_updown.py [--sizes 2,10] [--modes shared,netns]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

BASES = {"shared": "127.10.185.0", "netns": "198.18.185.0"}


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (ppid, command line)."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found[int(proc.name)] = (int(stat.rsplit(")", 1)[1].split()[1]), cmdline)
    return found


def lab_pss_mb(lab_dir: Path) -> tuple[float, int]:
    """(PSS in MB, process count) of the lab's processes and their descendants."""
    table = _processes()
    ours = {pid for pid, (_, cmd) in table.items() if str(lab_dir) in cmd}
    grew = True
    while grew:
        more = {pid for pid, (ppid, _) in table.items() if ppid in ours and pid not in ours}
        ours |= more
        grew = bool(more)
    total = 0
    for pid in ours:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024, len(ours)


def timed(argv: list[str]) -> float:
    began = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, timeout=900)
    return time.perf_counter() - began


def one(mode: str, nodes: int) -> str:
    lab_dir = Path(tempfile.mkdtemp(prefix=f"xivo-doctor-bench-{mode}{nodes}-", dir="/var/tmp"))
    lab_dir.chmod(0o711)
    up = ["xivo-doctor", "lab", "up", "--dir", str(lab_dir), "--nodes", str(nodes), "--base", BASES[mode]]
    try:
        up_s = timed(up + (["--netns"] if mode == "netns" else ["--no-netns"]))
        time.sleep(2)  # let the stand-ins settle after their first requests
        pss, count = lab_pss_mb(lab_dir)
        down_s = timed(["xivo-doctor", "lab", "down", "--dir", str(lab_dir)])
        again_s = timed(up)  # a lab that exists: its files are kept, its processes and namespaces are made again
        again_down_s = timed(["xivo-doctor", "lab", "down", "--dir", str(lab_dir)])
    finally:
        subprocess.run(["xivo-doctor", "lab", "down", "--dir", str(lab_dir)], capture_output=True, timeout=300)
        shutil.rmtree(lab_dir, ignore_errors=True)
    return (f"| {mode:6} | {nodes:2} | {up_s:6.1f} s | {down_s:5.1f} s | {again_s:6.1f} s | {again_down_s:5.1f} s "
            f"| {pss:6.0f} MB | {count:3} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2,10")
    parser.add_argument("--modes", default="shared,netns")
    args = parser.parse_args()
    print("| lab | N | up (new) | down | up (again) | down | PSS once up | processes |")
    print("|---|---|---|---|---|---|---|---|")
    for nodes in map(int, args.sizes.split(",")):
        for mode in args.modes.split(","):
            print(one(mode, nodes), flush=True)


if __name__ == "__main__":
    main()
