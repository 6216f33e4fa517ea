#!/usr/bin/env python3
"""Benchmark of a run over SSH against the same run on-box: `xivo-doctor run -q` on a healthy lab
whose nodes share this host (on-box access) and on one whose nodes are hosts of their own
(`--netns`, reached by SSH only), 2 and 10 nodes, in the same sitting.

Place: outside the pipeline and the test suite, as run_bench.py; it prints figures (median wall
time of N runs after one warm-up run, once the machine is idle again after `lab up`, and the ratio
SSH / on-box) against issue 15's goals (SSH at
most 1.3x on-box; 2 nodes over SSH within 1.5 s) and asserts nothing. Labs run in their own
folders and addresses and are removed at the end.

    python3 bench/ssh_vs_onbox.py [--sizes 2,10] [--runs 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASES = {"on-box": "127.10.186.0", "SSH": "198.18.186.0"}
# The console script beside this Python, not a wrapper found on PATH (a pyenv shim is a bash script
# that costs 0.1 s a start): the figures are the doctor's.
DOCTOR = str(Path(sys.executable).with_name("xivo-doctor"))


def _busy() -> tuple[int, int]:
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(values) - values[3] - values[4], sum(values)


def settle(most: float = 90.0) -> float:
    """Wait (at most `most` s) until this machine is 85% idle over 2 s: a lab just up keeps its
    RabbitMQ nodes busy for a while, which would be measured as the doctor's time. Returns the wait."""
    began = time.monotonic()
    while time.monotonic() - began < most:
        before = _busy()
        time.sleep(2)
        after = _busy()
        if (after[0] - before[0]) <= 0.15 * max(1, after[1] - before[1]):
            break
    return time.monotonic() - began


def median_run(topology: Path, runs: int) -> tuple[float, str]:
    argv = [DOCTOR, "run", "-q", "-T", str(topology)]
    subprocess.run(argv, capture_output=True, timeout=300)  # warm-up: page cache, .pyc
    times, verdict = [], ""
    for _ in range(runs):
        began = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        times.append(time.perf_counter() - began)
        verdict = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr.strip()
    return statistics.median(times), verdict


def one(kind: str, nodes: int, runs: int) -> tuple[float, str]:
    lab_dir = Path(tempfile.mkdtemp(prefix=f"xivo-doctor-bench-{kind.replace('-', '')}{nodes}-", dir="/var/tmp"))
    lab_dir.chmod(0o711)
    up = ["xivo-doctor", "lab", "up", "--dir", str(lab_dir), "--nodes", str(nodes), "--base", BASES[kind]]
    try:
        mode = ["--netns"] if kind == "SSH" else ["--no-netns"]
        subprocess.run(up + mode, check=True, capture_output=True, timeout=900)
        settle()
        return median_run(lab_dir / "topology.yml", runs)
    finally:
        subprocess.run(["xivo-doctor", "lab", "down", "--dir", str(lab_dir)], capture_output=True, timeout=300)
        shutil.rmtree(lab_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2,10")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print("| nodes | on-box `run -q` | over SSH | SSH / on-box | goal | verdicts |")
    print("|---|---|---|---|---|---|")
    for nodes in map(int, args.sizes.split(",")):
        onbox, onbox_verdict = one("on-box", nodes, args.runs)
        ssh, ssh_verdict = one("SSH", nodes, args.runs)
        goal = "≤ 1.3×" + (", SSH ≤ 1.5 s" if nodes == 2 else "")
        print(f"| {nodes} | {onbox:.2f} s | {ssh:.2f} s | {ssh / onbox:.2f}× | {goal} "
              f"| {onbox_verdict} / {ssh_verdict} |", flush=True)


if __name__ == "__main__":
    main()
