"""Start-up imports only what the command needs (issue 7): the parser of every command is built on
each start, so declaring a command must not import its implementation, and the heavy libraries
(psycopg ~65 ms, pika, the lab, pytest) come in only where they are used.

What is asserted is which modules a fresh interpreter holds, not how long it took (speed is the
benchmark's: bench/run_bench.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from conftest import REPO, loopback_topology
from xivo_doctor.cli import lab as cli_lab
from xivo_doctor.cli.guarded import UNKNOWN
from xivo_doctor.cli.main import build_parser
from xivo_doctor.foundation.results import Verdict
from xivo_doctor.lab.nodes import DEFAULT_VERSION

HEAVY = ("psycopg", "pika", "pytest", "requests", "consul", "yaml", "rich")
NEVER_TO_START = ("xivo_doctor.engine.run", "xivo_doctor.engine.plugin", "xivo_doctor.cli.nagios",
                  "xivo_doctor.lab.nodes", "xivo_doctor.lab.state", "xivo_doctor.foundation.redact",
                  "xivo_doctor.probes")


def modules_after(code: str) -> set[str]:
    """The modules a fresh `python3` holds once `code` ran (printed on stderr at exit: stdout is the
    command's own, and the nagios plugin writes there through its own descriptor)."""
    prelude = ("import atexit, json, sys\n"
               "atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr))\n")
    proc = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    return set(json.loads(proc.stderr.strip().splitlines()[-1]))


def roots(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def test_building_the_parser_imports_no_command():
    held = modules_after("from xivo_doctor.cli.main import build_parser\nbuild_parser()")
    assert not roots(held) & set(HEAVY), sorted(roots(held) & set(HEAVY))
    assert not held & set(NEVER_TO_START), sorted(held & set(NEVER_TO_START))


def test_version_imports_no_command():
    held = modules_after("""
        from xivo_doctor.cli.main import main
        try:
            main(['--version'])
        except SystemExit:
            pass
    """)
    assert not roots(held) & set(HEAVY)
    assert not held & set(NEVER_TO_START)


def test_checks_reads_no_database_library():
    held = modules_after("from xivo_doctor.cli.main import main\nmain(['checks'])")
    assert "xivo_doctor.probes.onbox" in held  # the checks import its constants...
    assert not roots(held) & {"psycopg", "pika", "pytest"}  # ... not the libraries it reads with


def test_nagios_port_reachable_loads_neither_psycopg_nor_pika(tmp_path):
    topology = loopback_topology(tmp_path, ["127.10.176.1", "127.10.176.2"])  # nothing listens: refused
    held = modules_after(f"""
        from xivo_doctor.cli.main import main
        code = main(['nagios', '-T', {str(topology)!r}, '--check', 'port-reachable'])
    """)
    assert "xivo_doctor.probes.transport.tcp" in held and "pytest" in roots(held)  # it did run the check
    assert not roots(held) & {"psycopg", "pika"}


def test_the_values_the_parsers_repeat_stay_those_of_their_modules():
    assert Verdict.UNKNOWN.exit_code == UNKNOWN
    assert cli_lab.DEFAULT_VERSION_SHOWN == DEFAULT_VERSION
    lab_up = build_parser().parse_args(["lab", "up"])
    assert lab_up.version is None and lab_up.dir is None  # filled in when the command runs


def test_the_lab_defaults_are_filled_in_when_a_lab_command_runs(monkeypatch, tmp_path):
    monkeypatch.setenv("XIVO_DOCTOR_LAB_DIR", str(tmp_path / "lab"))
    args = build_parser().parse_args(["lab", "up"])
    cli_lab._defaults(args)
    assert args.dir == tmp_path / "lab" and args.version == DEFAULT_VERSION
    args = build_parser().parse_args(["lab", "up", "--dir", "/x", "--version", "15.20"])
    cli_lab._defaults(args)
    assert str(args.dir) == "/x" and args.version == "15.20"
    status = build_parser().parse_args(["lab", "status"])
    cli_lab._defaults(status)
    assert status.dir == tmp_path / "lab"
