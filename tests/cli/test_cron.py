"""Cron mode: `xivo-doctor run -q`, `--quiet-ok` and `--history DIR` as cron runs them (no HOME,
no terminal), against real sockets on 127.10.158.x."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import jsonschema
import pytest
from html_page import Page
from schema import load_schema
from services import starts_services

from conftest import TEST_PORTS, loopback_topology
from servers import Listener, serve
from xivo_doctor.cli.main import main
from xivo_doctor.engine.runlock import run_key

ALL = list(TEST_PORTS.values())


@pytest.fixture
@starts_services
def stack():
    with ExitStack() as s:
        yield s


def test_quiet_prints_exactly_the_verdict_line_even_when_something_changed(tmp_path, stack, capsys, runtime_dir):
    serve(stack, Listener, "127.10.158.1", ALL)
    topology = loopback_topology(tmp_path, ["127.10.158.1", "127.10.158.2"])
    args = ["run", "-T", str(topology), "-q", "--check", "port-reachable", "--history", str(tmp_path / "h")]
    assert main(args) == 2
    serve(stack, Listener, "127.10.158.2", ALL)
    assert main(args) == 0  # port-reachable[xivo-2] resolved
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 2 and err == ""
    assert lines[0].startswith("CRITICAL: port-reachable[xivo-2] failed — 1 fail, 0 error, 0 warn, 1 pass, 0 skip")
    assert lines[1].startswith("OK: 2 items pass (0 skip) in ")


def test_quiet_ok_prints_nothing_when_ok_and_the_verdict_line_when_not(tmp_path, stack, capsys, runtime_dir):
    serve(stack, Listener, "127.10.158.1", ALL)
    topology = loopback_topology(tmp_path, ["127.10.158.1", "127.10.158.2"])
    assert main(["run", "-T", str(topology), "--quiet-ok", "--check", "port-reachable", "--node", "xivo-1"]) == 0
    assert capsys.readouterr() == ("", "")
    bundle = tmp_path / "b.tar.gz"
    assert main(["run", "-T", str(topology), "--quiet-ok", "--check", "port-reachable", "--bundle", str(bundle)]) == 2
    out, err = capsys.readouterr()
    assert out.count("\n") == 1 and out.startswith("CRITICAL: port-reachable[xivo-2] failed") and err == ""
    assert bundle.exists()  # written, but not announced


def cron(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """As cron runs a command: `env -i PATH=...`, no HOME, no terminal on any stream."""
    script = Path(sys.executable).parent / "xivo-doctor"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "xivo_doctor"]
    return subprocess.run([*command, *args], env={"PATH": os.environ["PATH"]}, cwd=cwd, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)


def test_cron_environment_no_home_no_tty_exit_codes(tmp_path, stack):
    serve(stack, Listener, "127.10.158.1", ALL)
    topology = loopback_topology(tmp_path, ["127.10.158.1", "127.10.158.2"])
    critical = cron(["run", "-T", str(topology), "-q", "--check", "port-reachable"], tmp_path)
    assert (critical.returncode, critical.stderr) == (2, "")
    assert critical.stdout.count("\n") == 1 and critical.stdout.startswith("CRITICAL: port-reachable[xivo-2] failed")
    assert "\x1b[" not in critical.stdout
    ok = cron(["run", "-T", str(topology), "--quiet-ok", "--node", "xivo-1", "--check", "port-reachable",
               "--history", str(tmp_path / "h")], tmp_path)
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "", "")
    assert len(list((tmp_path / "h").glob("run-*.json"))) == 1
    unknown = cron(["run", "-T", str(tmp_path / "missing.yml"), "-q"], tmp_path)
    assert unknown.returncode == 3 and unknown.stdout == "" and unknown.stderr.count("\n") == 1


def test_history_changes_reach_the_terminal_json_and_html(tmp_path, stack, capsys, runtime_dir):
    serve(stack, Listener, "127.10.158.1", ALL)
    topology = loopback_topology(tmp_path, ["127.10.158.1", "127.10.158.2"])
    out = tmp_path / "out"
    args = ["run", "-T", str(topology), "--check", "port-reachable", "--history", str(tmp_path / "h"),
            "--json", str(out / "r.json"), "--html", str(out / "r.html")]
    assert main(args) == 2
    first = json.loads((out / "r.json").read_text())
    assert first["changes"]["previous"] is None and first["changes"]["runs"] == 1
    capsys.readouterr()
    serve(stack, Listener, "127.10.158.2", ALL)
    assert main(args) == 0
    terminal_out = capsys.readouterr().out
    doc = json.loads((out / "r.json").read_text())
    jsonschema.Draft202012Validator(load_schema()).validate(doc)
    assert doc["changes"]["previous"] == first["started_at"] and doc["changes"]["runs"] == 2
    assert doc["changes"]["resolved"] == ["port-reachable[xivo-2]"] and doc["changes"]["new_failures"] == []
    assert f"Changes since {first['started_at']}  (2 runs kept)\n  resolved: port-reachable[xivo-2]\n" in terminal_out
    section = Page((out / "r.html").read_text()).one("changes")
    assert "Resolved port-reachable[xivo-2] ✓ pass" in " ".join(section.text().split())
    # The run key names the files: another selection of this topology keeps its own history.
    key = run_key(topology, ["port-reachable"], [])
    assert len(list((tmp_path / "h").glob(f"run-*-{key}.json"))) == 2


def test_an_unusable_history_directory_stops_the_run_before_probing(tmp_path, capsys, runtime_dir):
    (tmp_path / "file").write_text("")
    topology = loopback_topology(tmp_path, ["127.10.158.1", "127.10.158.2"])
    directory = tmp_path / "file" / "h"
    assert main(["run", "-T", str(topology), "-q", "--history", str(directory)]) == 3
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (f"xivo-doctor: error: cannot keep the history in {directory}: Not a directory; create it writable "
                   f"by this user (mkdir -p {directory}) or choose another --history DIR\n")


def test_cron_on_the_healthy_lab_every_check_says_nothing_at_all(lab, tmp_path):
    """Every check against the real lab (HTTPS to Consul and xivo-confd with verify off, rabbitmqctl,
    the federation probe): `--quiet-ok` stays silent on both streams, and `-q` prints one line. A
    library warning reaching stderr would mail the admin every five minutes."""
    topology = str(lab.dir / "topology.yml")
    silent = cron(["run", "-T", topology, "--quiet-ok"], tmp_path)
    assert (silent.returncode, silent.stdout, silent.stderr) == (0, "", "")
    quiet = cron(["run", "-T", topology, "-q"], tmp_path)
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout.count("\n") == 1, quiet
