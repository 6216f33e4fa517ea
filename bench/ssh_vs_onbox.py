#!/usr/bin/env python3
"""Benchmark of a run over SSH against the same run on-box: `xivo-doctor run -q` on a healthy lab
whose nodes share this host (on-box access) and on one whose nodes are hosts of their own
(`--netns`, reached by SSH only), 2 and 10 nodes, in the same sitting.

Place: outside the pipeline and the test suite, as run_bench.py; it prints figures (median wall
time of N runs after one warm-up run, and the ratio SSH / on-box) against issue 15's goals (SSH at
most 1.3x on-box; 2 nodes over SSH within 1.5 s) and asserts nothing. Labs run in their own
folders and addresses and are removed at the end.

    python3 bench/ssh_vs_onbox.py [--sizes 2,10] [--runs 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

BASES = {"on-box": "127.10.186.0", "SSH": "198.18.186.0"}


def median_run(topology: Path, runs: int) -> tuple[float, str]:
    argv = ["xivo-doctor", "run", "-q", "-T", str(topology)]
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
