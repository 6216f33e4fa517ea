"""A wheel built from the repository, installed in a fresh virtual environment, works: checks included."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO, loopback_topology

SKIP = shutil.ignore_patterns(".git", "tests", "build", "dist", "*.egg-info", "__pycache__", "reports", ".ci")


def sh(*cmd, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=cwd, timeout=timeout)
    assert proc.returncode in (0, 2), f"{cmd}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_wheel_in_a_fresh_venv_runs_checks_and_run(tmp_path, own_peers):
    source = tmp_path / "src"
    shutil.copytree(REPO, source, ignore=SKIP)  # build from a copy: the work tree stays clean
    sh(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path / "dist",
       source, cwd=tmp_path)
    wheel = next((tmp_path / "dist").glob("xivo_doctor-*.whl"))
    listing = sh(sys.executable, "-m", "zipfile", "-l", wheel, cwd=tmp_path).stdout
    for check in ("port_reachable", "consul_wan", "ctid_advertise", "rabbitmq_federation", "uuid_unique",
                  "xivo_version", "directory_source", "phonebook_restricted"):
        assert f"xivo_doctor/checks/{check}.py" in listing
    assert "xivo_doctor/engine/pytest-run.ini" in listing and "xivo_doctor/result-schema.json" in listing

    # The dependencies come from this interpreter (no network needed); the package only from the wheel.
    venv = tmp_path / "venv"
    sh(sys.executable, "-m", "venv", "--system-site-packages", venv, cwd=tmp_path)
    sh(venv / "bin" / "pip", "install", "--no-deps", "-q", wheel, cwd=tmp_path)
    where = sh(venv / "bin" / "python", "-c", "import xivo_doctor.checks as c; print(c.__file__)", cwd=tmp_path)
    assert where.stdout.strip().startswith(str(venv)), where.stdout

    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    listed = sh(venv / "bin" / "xivo-doctor", "checks", cwd=workdir)
    assert "port-reachable" in listed.stdout
    topology = loopback_topology(workdir, ["127.10.203.1", "127.10.203.2"])
    ran = sh(venv / "bin" / "xivo-doctor", "run", "-T", topology, "--json", "-", "--check", "port-reachable",
             cwd=workdir)
    data = json.loads(ran.stdout)
    assert ran.returncode == 2 and data["verdict"] == "CRITICAL"
    assert [r["item"] for r in data["results"]] == ["port-reachable[xivo-1]", "port-reachable[xivo-2]"]
