"""`xivo-doctor lab ...` and `xivo-doctor demo`: the CLI side of the lab.

Place in the pipeline: part of the CLI (the only place that turns errors into messages and exit
codes). `LabError`s become one line and exit 3, like every other error.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from xivo_doctor.cli.guarded import Masks, guarded, on_stderr
from xivo_doctor.foundation.errors import DoctorError


class LabCommandError(DoctorError):
    """A lab command could not do what was asked."""


# Said in `lab up --help` without importing the lab to build the parser (lab.nodes.DEFAULT_VERSION,
# which tests/test_startup.py holds equal to this).
DEFAULT_VERSION_SHOWN = "16.13"


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Declare `lab` and `demo`; their defaults that the lab package knows are filled in when they run
    (`_defaults`), so building the parser on every start imports nothing of the lab."""
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--dir", type=Path, default=None,
                       help="lab directory (default $XIVO_DOCTOR_LAB_DIR or /var/tmp/xivo-doctor-lab)")
    lab = commands.add_parser("lab", help="a live interconnection of XiVO nodes on this machine")
    actions = lab.add_subparsers(dest="lab_command", metavar="ACTION", required=True)

    def action(name: str, text: str) -> argparse.ArgumentParser:
        return actions.add_parser(name, help=text, parents=[where])

    up = action("up", "start the lab (idempotent) and write DIR/topology.yml")
    up.add_argument("--nodes", type=int, default=2, help="number of XiVO nodes (default 2)")
    up.add_argument("--version", default=None,
                    help="XiVO version of every node, or one per node comma-separated (16.13,16.15), each from "
                         f"15.19 to 16.15 (default {DEFAULT_VERSION_SHOWN}); kept by an existing lab")
    up.add_argument("--base", default=None,
                    help="node N gets base+N (default 198.18.0.0, a /24 in 198.18.0.0/15; with --no-netns 127.10.0.0)")
    up.add_argument("--netns", action=argparse.BooleanOptionalAction, default=True,
                    help="each node a host of its own (the default): its network namespace on a lab bridge, own "
                         "loopback, iptables, PostgreSQL, files and sshd, checked over SSH; --no-netns: the nodes "
                         "share this host's network and are checked with on-box access (kept by an existing lab)")
    action("down", "stop every process the lab started (files are kept)")
    action("status", "each node, each service, pid, address:port, up or down")
    action("faults", "the catalogue of faults, one line each")
    broken = action("break", "make a fault as an administrator would")
    broken.add_argument("fault")
    broken.add_argument("port", nargs="?", type=int, help="the port of firewall-drop and firewall-reject")
    broken.add_argument("--node", help="the node to break (default: xivo-2)")
    broken.add_argument("--from", dest="from_node", metavar="PEER",
                        help="firewall-drop/-reject: filter this peer only (default: everyone)")
    action("heal", "back to the healthy interconnection")
    run = action("exec", "run a command as on that node: its rabbitmqctl, psql, consul, service, files")
    run.add_argument("node")
    run.add_argument("exec_command", nargs=argparse.REMAINDER, metavar="COMMAND",
                     help="-- COMMAND [ARGS...] (or one shell string)")
    restart = action("restart", "restart one service of one node")
    restart.add_argument("node")
    restart.add_argument("service", help="rabbitmq, consul, xivo-ctid, xivo-confd or webservices")

    demo = commands.add_parser("demo", help="lab up + run + report under reports/: a first look with no XiVO",
                               parents=[where])
    demo.add_argument("--reports", type=Path, default=Path("reports"), help="where the report goes (default reports/)")


def _defaults(args: argparse.Namespace) -> None:
    from xivo_doctor.lab.nodes import DEFAULT_VERSION
    from xivo_doctor.lab.state import lab_dir_default

    if args.dir is None:
        args.dir = lab_dir_default()
    if getattr(args, "version", "") is None:
        args.version = DEFAULT_VERSION


def command_lab(args: argparse.Namespace, masks: Masks) -> int:
    from xivo_doctor.lab import faults, healing, lifecycle
    from xivo_doctor.lab.state import LabError

    _defaults(args)

    try:
        if args.lab_command == "up":
            lifecycle.up(args.dir, count=args.nodes, version=args.version, base=args.base, own_network=args.netns)
        elif args.lab_command == "down":
            lifecycle.down(args.dir)
        elif args.lab_command == "status":
            rows = [("NODE", "SERVICE", "PID", "ADDRESS", "STATE"), *lifecycle.status(args.dir)]
            widths = [max(len(r[i]) for r in rows) for i in range(4)]
            for row in rows:
                print("  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4])
        elif args.lab_command == "faults":
            from xivo_doctor.lab import firewall

            width = max(len(f.name) for f in faults.CATALOGUE)
            for fault in faults.CATALOGUE:
                print(f"{fault.name.ljust(width)}  {fault.summary}")
            for name, (_, summary) in firewall.FAULTS.items():
                print(f"{(name + ' PORT').ljust(width)}  {summary}; not on a `lab up --no-netns` lab")
        elif args.lab_command == "break":
            faults.break_(args.dir, args.fault, args.node, port=args.port, from_node=args.from_node)
        elif args.lab_command == "heal":
            healing.heal(args.dir)
        elif args.lab_command == "restart":
            lifecycle.restart(args.dir, args.node, args.service)
        elif args.lab_command == "exec":
            from xivo_doctor.lab import execute

            command = args.exec_command[1:] if args.exec_command[:1] == ["--"] else args.exec_command
            if not command:
                raise LabError("give the command after --: xivo-doctor lab exec xivo-1 -- rabbitmqctl list_policies")
            return execute.run(args.dir, args.node, command)
    except LabError as exc:
        raise LabCommandError(str(exc)) from None
    return 0


def command_demo(args: argparse.Namespace, masks: Masks) -> int:
    """Start the lab unless it runs, check it, and write the reports (HTML, JSON, JUnit) under reports/."""
    import datetime as dt

    from xivo_doctor.cli.run import RunRequest, run_and_report
    from xivo_doctor.lab import lifecycle
    from xivo_doctor.lab.state import LabError, LabState

    _defaults(args)
    try:
        state = LabState.load(args.dir) if (args.dir / "lab.json").exists() else None
        if state is None or any(row[4] != "up" for row in lifecycle.status(args.dir)):
            lifecycle.up(args.dir, count=len(state.nodes) if state else 2, own_network=True)  # as `lab up`
    except LabError as exc:
        raise LabCommandError(str(exc)) from None
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    report = args.reports / f"demo-{stamp}.html"
    request = RunRequest(topology=str(args.dir / "topology.yml"), html=str(report),
                         json=str(args.reports / f"demo-{stamp}.json"),
                         junit=str(args.reports / f"demo-{stamp}.junit.xml"))
    # The run's own errors are said as `run` says them; the way on is printed whatever the verdict.
    code = guarded(lambda: run_and_report(request, masks), say=on_stderr, masks=masks)
    print(f"\nreport: {report} (open it in a browser; also .json and .junit.xml). "
          "Next: `xivo-doctor lab faults` lists what can break; "
          "`xivo-doctor lab break federation-wrong-password`, then `xivo-doctor demo` again; "
          "`xivo-doctor lab heal` to repair")
    return code
