#!/usr/bin/env python3
"""Benchmark of xivo-doctor against its own lab: prints one table of figures against goals.

Place: outside the pipeline and outside the test suite (pytest's testpaths is `tests/`); it drives
the installed `xivo-doctor` as an admin would, in subprocesses, and never asserts anything.
Each figure is the median of several runs: wall time (perf_counter around the child) and peak
RSS from os.wait4 (the largest process of the child's tree: with rabbitmqctl, its Erlang VM).
Children are started by a small launcher process (bench/spawner.py), not by this Python: a
child forked from here would start its ru_maxrss at this process's own peak (~50 MB).
Labs run on their own addresses/epmd/distribution ports (127.10.190.x, 4379, 26600) and are
stopped at the end; `--keep` leaves the 2-node lab running for the next run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from functools import cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests" / "support")]  # bench helpers; tests/servers.py's black holes

import manual  # noqa: E402

from servers import BlackHole, serve  # noqa: E402
from xivo_doctor.lab import lifecycle  # noqa: E402

LAB_BASE, LAB_EPMD, LAB_DIST = "127.10.190.0", 4379, 26600
HOLE = "127.10.191.2"  # the black-holed XiVO's address: nothing of the lab listens there
BENCH_DIR = Path(os.environ.get("XIVO_BENCH_DIR", "/var/tmp/xivo-doctor-bench"))


@dataclass
class Figure:
    name: str
    goal: str
    walls: list[float]
    rss_kb: list[int]
    ok: bool | None = None  # None: no goal of its own (a reference figure)

    @property
    def median(self) -> float:
        return statistics.median(self.walls)

    def row(self) -> str:
        if self.name.startswith("ratio"):
            return f"| {self.name} | {self.goal} | {self.median:.2f} | | {'OK' if self.ok else 'over'} |"
        verdict = "-" if self.ok is None else ("OK" if self.ok else "over")
        spread = f"{self.median:.2f} s ({min(self.walls):.2f}–{max(self.walls):.2f})"
        return f"| {self.name} | {self.goal} | {spread} | {statistics.median(self.rss_kb) / 1024:.0f} MB | {verdict} |"


def doctor() -> list[str]:
    """The installed console script next to this Python (not a pyenv shim, which adds its own start-up)."""
    script = Path(sys.executable).with_name("xivo-doctor")
    return [str(script)] if script.exists() else [sys.executable, "-m", "xivo_doctor"]


class Spawner:
    """The launcher (bench/spawner.py) in its own small process, started once, fed one command at a time."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-S", str(HERE / "spawner.py")], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.stderr = BENCH_DIR / "last-stderr"

    def run(self, argv: list[str]) -> tuple[float, int, int, str]:
        """Wall seconds, peak RSS (KB), exit code and stderr of one run of `argv`."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        BENCH_DIR.mkdir(parents=True, exist_ok=True)
        self.proc.stdin.write(json.dumps({"argv": argv, "stderr": str(self.stderr)}) + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        err = self.stderr.read_text(errors="replace") if self.stderr.exists() else reply.get("error", "")
        return reply["wall"], reply["maxrss_kb"], reply["status"], err


@cache
def spawner() -> Spawner:
    return Spawner()


def once(argv: list[str]) -> tuple[float, int, int]:
    """Wall seconds, peak RSS (KB) and exit code of one run of `argv`."""
    wall, rss, code, err = spawner().run(argv)
    if code not in (0, 1, 2, 3) or "Traceback" in err:
        print(f"  ! {' '.join(argv)}: exit {code}: {err[-400:]}", file=sys.stderr)
    return wall, rss, code


def measure(name: str, goal: str, argv: list[str], runs: int, limit: float | None) -> Figure:
    once(argv)  # warm-up: page cache, .pyc files; not counted
    samples = [once(argv) for _ in range(runs)]
    figure = Figure(name, goal, [s[0] for s in samples], [s[1] for s in samples])
    figure.ok = None if limit is None else figure.median <= limit
    print(f"  {figure.row()}  exit {sorted({s[2] for s in samples})}", flush=True)
    return figure


def lab_up(nodes: int) -> Path:
    lab_dir = BENCH_DIR / f"lab{nodes}"
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    BENCH_DIR.chmod(0o711)  # the lab's PostgreSQL runs as `postgres` and must traverse it
    began = time.monotonic()
    lifecycle.up(lab_dir, count=nodes, base=LAB_BASE, epmd_port=LAB_EPMD, dist_base=LAB_DIST, say=lambda _: None)
    print(f"lab of {nodes} nodes up in {time.monotonic() - began:.0f} s ({lab_dir})", flush=True)
    return lab_dir


def lab_down(lab_dir: Path) -> None:
    lifecycle.down(lab_dir, say=lambda _: None)
    shutil.rmtree(lab_dir, ignore_errors=True)


def two_nodes(args: argparse.Namespace, lab_dir: Path) -> list[Figure]:
    topology = str(lab_dir / "topology.yml")
    run = [*doctor(), "run", "-T", topology, "-q"]
    figures = [measure("`run -q`, healthy 2-node lab", "≤ 1.0 s", run, args.runs, 1.0)]
    script = manual.write_script(lab_dir, [*doctor(), "run", "-T", topology, "--json", "-"])
    by_hand = measure("the manual's commands, one after another (sh)", "reference", ["sh", str(script)], args.runs,
                      None)
    ratio = figures[0].median / by_hand.median
    figures.append(by_hand)
    figures.append(Figure("ratio doctor / manual", "≤ 0.5", [ratio], [0], ratio <= 0.5))
    print(f"  ratio doctor / manual: {ratio:.2f}", flush=True)
    figures += blackholed(args, lab_dir)
    checks = manual.check_ids(doctor())
    for check in checks:
        figures.append(measure(f"`nagios --check {check}`", "≤ 0.7 s",
                               [*doctor(), "nagios", "-T", topology, "--check", check], args.runs, 0.7))
    figures.append(measure("`--version`", "start-up", [*doctor(), "--version"], args.runs, None))
    figures.append(measure("`checks`", "start-up", [*doctor(), "checks"], args.runs, None))
    return figures


def blackholed(args: argparse.Namespace, lab_dir: Path) -> list[Figure]:
    """xivo-2 moved to an address where every port it uses is a black hole (SYNs unanswered)."""
    topology, ports, timeout = manual.blackholed_topology(lab_dir, "xivo-2", HOLE)
    checks = manual.check_ids(doctor())
    limit = timeout + 1.0
    figures = []
    with ExitStack() as stack:
        serve(stack, BlackHole, HOLE, ports)
        for label, chosen in (("1 check", checks[:1]), ("5 checks", checks[:5]), ("all checks", [])):
            selection = [a for c in chosen for a in ("--check", c)]
            figures.append(measure(f"xivo-2 black-holed, {label}", f"≤ probe timeout + 1 = {limit:g} s",
                                   [*doctor(), "run", "-T", str(topology), "-q", *selection], args.runs, limit))
    return figures


def scaling(args: argparse.Namespace, sizes: list[int]) -> list[Figure]:
    figures = []
    for nodes in sizes:
        lab_dir = lab_up(nodes)
        try:
            goal, limit = ("≤ 3 s", 3.0) if nodes == 10 else ("growth", None)
            figures.append(measure(f"`run -q`, {nodes} nodes ({nodes * (nodes - 1)} pairs)", goal,
                                   [*doctor(), "run", "-T", str(lab_dir / "topology.yml"), "-q"], args.runs, limit))
        finally:
            lab_down(lab_dir)
    return figures


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 // 1024
    return f"{cpu}, {os.cpu_count()} CPUs, {mem} GB RAM, {platform.system()} {platform.release()}, " \
           f"Python {platform.python_version()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs per figure, no 10-node lab")
    parser.add_argument("--runs", type=int, default=None, help="runs per figure (default 5, 3 with --quick)")
    parser.add_argument("--sizes", default=None, help="lab sizes for the growth figures (default 5,10; 5 with --quick)")
    parser.add_argument("--keep", action="store_true", help="leave the 2-node lab running")
    args = parser.parse_args()
    args.runs = args.runs or (3 if args.quick else 5)
    wanted = args.sizes if args.sizes is not None else ("5" if args.quick else "5,10")
    sizes = [int(s) for s in wanted.split(",") if s]
    lab_dir = lab_up(2)
    try:
        figures = two_nodes(args, lab_dir)
        run2 = figures[0]
    finally:
        if not args.keep:
            lab_down(lab_dir)
    if sizes and args.keep:
        lab_down(lab_dir)  # the other labs use the same addresses
    figures += [Figure("`run -q`, 2 nodes (2 pairs)", "growth", run2.walls, run2.rss_kb)]
    figures += scaling(args, sizes)
    print(f"\nmachine: {machine()}\nmedian of {args.runs} runs (after one warm-up run)\n")
    print("| figure | goal | measured: median (min–max) | peak RSS | |\n|---|---|---|---|---|")
    for figure in figures:
        print(figure.row())
    return 0


if __name__ == "__main__":
    sys.exit(main())
