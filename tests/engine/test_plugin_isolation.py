"""The doctor's run loads no pytest plugin installed on the machine, only its own.

An admin's machine may carry pytest plugins (pytest-benchmark ran git, hg and `file` at start-up
here: 0.2 s per run) that would load into every `xivo-doctor run` through their entry points and
could change how checks are collected or judged. A plugin is installed for the test (a dist-info
on PYTHONPATH) that leaves a mark when loaded: plain pytest loads it (the control), the doctor not.
"""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import ExitStack

from conftest import REPO, TEST_PORTS, loopback_topology
from servers import Listener, serve

PLUGIN = "xivo_doctor_test_intruder"


def install_plugin(site, mark) -> dict[str, str]:
    (site / f"{PLUGIN}.py").write_text(f"from pathlib import Path\nPath({str(mark)!r}).write_text('loaded')\n")
    info = site / f"{PLUGIN}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {PLUGIN}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[pytest11]\nintruder = {PLUGIN}\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


def test_an_installed_pytest_plugin_does_not_load_into_the_run(tmp_path, own_peers):
    site, mark = tmp_path / "site", tmp_path / "loaded"
    site.mkdir()
    env = install_plugin(site, mark)
    control = subprocess.run([sys.executable, "-m", "pytest", "--co", "-q", str(tmp_path)], env=env,
                             cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert mark.exists(), control.stdout + control.stderr  # pytest itself does load it
    mark.unlink()
    with ExitStack() as stack:
        serve(stack, Listener, "127.10.159.1", list(TEST_PORTS.values()))
        topology = loopback_topology(tmp_path, ["127.10.159.1", "127.10.159.2"])
        argv = [sys.executable, "-m", "xivo_doctor", "run", "-T", str(topology), "-q", "--check", "port-reachable",
                "--node", "xivo-1"]
        done = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not mark.exists()
