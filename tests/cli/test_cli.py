"""The `xivo-doctor` command: exit codes, one-line errors, outputs, and parity with `pytest checks/`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from contextlib import ExitStack
from pathlib import Path

import pytest

from conftest import REPO, TEST_PORTS, loopback_topology
from servers import BlackHole, Listener, serve
from xivo_doctor.cli.main import main


def test_checks_lists_every_check_with_its_doc_reference(capsys):
    assert main(["checks"]) == 0
    out = capsys.readouterr().out
    assert "port-reachable" in out and "contact_and_presence_sharing.rst#prerequisite" in out


def test_missing_topology_is_one_line_and_exit_3(tmp_path, capsys):
    code = main(["run", "-T", str(tmp_path / "nope.yml")])
    err = capsys.readouterr().err
    assert code == 3
    assert err == (f"xivo-doctor: error: {tmp_path / 'nope.yml'}: file not found; write a topology file there "
                   "(see README: Topology file) or pass -T FILE\n")


def test_invalid_topology_is_one_line_and_exit_3(tmp_path, capsys):
    path = tmp_path / "t.yml"
    path.write_text("xivos:\n  - name: xivo-1\n    address: 127.10.202.1\n")
    assert main(["run", "-T", str(path)]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err == f"xivo-doctor: error: {path}:2: xivos: 1 XiVO declared; an interconnection needs at least two\n"


def test_unknown_check_and_node_say_what_exists(tmp_path, capsys):
    topology = loopback_topology(tmp_path, ["127.10.202.1", "127.10.202.2"])
    assert main(["run", "-T", str(topology), "--check", "port-reachabel"]) == 3
    assert capsys.readouterr().err == (
        "xivo-doctor: error: --check port-reachabel: no such check; did you mean 'port-reachable'?\n")
    assert main(["run", "-T", str(topology), "--node", "xivo-9"]) == 3
    assert capsys.readouterr().err == (
        f"xivo-doctor: error: --node xivo-9: no such XiVO in {topology}; known: xivo-1, xivo-2\n")


def test_bad_timeout_is_refused_by_the_parser(capsys):
    try:
        main(["run", "-t", "soon"])
    except SystemExit as exc:
        assert exc.code == 2
    assert "'soon' is not a number of seconds" in capsys.readouterr().err


def test_quiet_prints_the_verdict_line_only_and_files_are_written(tmp_path, capsys):
    topology = loopback_topology(tmp_path, ["127.10.202.1", "127.10.202.2"])
    junit, js = tmp_path / "out" / "junit.xml", tmp_path / "out" / "result.json"
    code = main(["run", "-T", str(topology), "-q", "--junit", str(junit), "--json", str(js),
                 "--check", "port-reachable"])
    out = capsys.readouterr().out
    assert code == 2
    assert out.startswith("CRITICAL: port-reachable[xivo-1] failed (+1 more) — 2 fail, 0 error, 0 warn, 0 pass")
    assert out.count("\n") == 1
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("tests") == "2" and suite.get("failures") == "2"
    case = suite.find("testcase")
    assert case.get("classname") == "port-reachable" and case.get("name") == "port-reachable[xivo-1]"
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["doc"] == "contact_and_presence_sharing.rst#prerequisite"
    assert props["fix.command.1"] == "ping -c 3 127.10.202.1"  # nothing answers there: one fix
    assert json.loads(js.read_text())["schema"] == "xivo-doctor/1"


def test_not_a_terminal_means_no_colour_no_progress(tmp_path):
    topology = loopback_topology(tmp_path, ["127.10.202.1", "127.10.202.2"])
    proc = subprocess.run([sys.executable, "-m", "xivo_doctor", "run", "-T", str(topology),
                           "--check", "port-reachable"],
                          capture_output=True, text=True, timeout=30, cwd=REPO, env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2
    assert "\x1b[" not in proc.stdout and proc.stderr == ""
    assert proc.stdout.rstrip().splitlines()[-1].startswith("CRITICAL: ")


def test_pytest_checks_and_xivo_doctor_run_give_the_same_results(tmp_path, own_peers):
    """Same topology, both ways in: same items, statuses, messages, fixes."""
    with ExitStack() as stack:
        serve(stack, Listener, "127.10.202.1", TEST_PORTS.values())
        serve(stack, Listener, "127.10.202.2", [TEST_PORTS["consul-rpc"], TEST_PORTS["serf-wan"]])
        serve(stack, BlackHole, "127.10.202.2", [TEST_PORTS["ctid"]])
        topology = loopback_topology(tmp_path, ["127.10.202.1", "127.10.202.2"], probe_timeout=0.5)
        via_pytest = tmp_path / "pytest.json"
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "checks/", "--topology", str(topology), "--check", "port-reachable",
             "--doctor-json", str(via_pytest), "-p", "no:cacheprovider"],
            capture_output=True, text=True, timeout=60, cwd=REPO,
        )
        assert proc.returncode == 1, proc.stdout + proc.stderr  # pytest: some tests failed
        assert "CRITICAL: port-reachable[xivo-2] failed" in proc.stdout
        run = subprocess.run(
            [sys.executable, "-m", "xivo_doctor", "run", "-T", str(topology), "--json", "-",
             "--check", "port-reachable"],
            capture_output=True, text=True, timeout=60, cwd=tmp_path,
        )
    assert run.returncode == 2

    def essentials(data):
        return [(r["item"], r["status"], r["message"], r["fix"], r["blocked_by"]) for r in data["results"]]

    ran = json.loads(run.stdout)
    assert essentials(json.loads(via_pytest.read_text())) == essentials(ran)
    assert [r["status"] for r in ran["results"]] == ["pass", "fail"]


def test_an_unwritable_output_is_one_line_and_exit_3(tmp_path, capsys):
    topology = loopback_topology(tmp_path, ["127.10.202.1", "127.10.202.2"])
    (tmp_path / "file").write_text("")
    code = main(["run", "-T", str(topology), "-q", "--json", str(tmp_path / "file" / "out.json"),
                 "--check", "port-reachable"])
    err = capsys.readouterr().err
    assert code == 3
    assert err.startswith(f"xivo-doctor: error: cannot write {tmp_path / 'file' / 'out.json'}: ")
    assert err.endswith("; choose a writable path\n") and err.count("\n") == 1


def test_a_topology_error_about_a_secret_key_is_not_eaten_by_redaction(tmp_path, capsys):
    # The `token:`/`password:` rule for free text would take the word after the key for a secret.
    topology = tmp_path / "t.yml"
    topology.write_text("xivos:\n  - {name: a, address: 10.1.1.1, consul: {token: 5}}\n"
                        "  - {name: b, address: 10.1.1.2}\n")
    assert main(["run", "-T", str(topology)]) == 3
    assert "xivos[0].consul.token: expected a string, got an int" in capsys.readouterr().err


def test_lab_up_in_a_folder_the_postgres_user_cannot_traverse_says_so_in_one_line(capsys):
    """`lab up --dir "$(mktemp -d)"`: a 0700 folder. Said before anything starts, with the fix."""
    if shutil.which("serf") is None or shutil.which("/usr/lib/postgresql/15/bin/initdb") is None:
        pytest.skip("the lab's prerequisites are not installed (./install-deps.sh)")
    folder = Path(tempfile.mkdtemp(prefix="xivo-doctor-test-"))  # as `mktemp -d`: 0700 under /tmp
    try:
        code = main(["lab", "up", "--dir", str(folder)])
        err = capsys.readouterr().err
        assert code == 3 and err.count("\n") == 1 and "Traceback" not in err, err
        assert err == (f"xivo-doctor: error: the postgres user cannot traverse {folder} (mode 0700) to reach the"
                       f" lab's PostgreSQL under {folder}: `chmod o+x {folder}`, or give --dir a folder it can reach"
                       " (the default is /var/tmp/xivo-doctor-lab)\n")
        assert list(folder.iterdir()) == []  # nothing made, nothing started
    finally:
        shutil.rmtree(folder)


def test_a_reader_that_goes_away_stops_the_output_quietly():
    """`xivo-doctor checks | head -1`: the pipe closes under the writer. As a Unix filter: no
    "internal error: BrokenPipeError" line, exit 141 (128 + SIGPIPE)."""
    code = "import time; time.sleep(0.3); from xivo_doctor.cli.main import main; raise SystemExit(main(['checks']))"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    proc.stdout.close()  # the reader is gone before the first line is written
    err = proc.stderr.read()
    assert proc.wait(timeout=30) == 141 and err == "", err
