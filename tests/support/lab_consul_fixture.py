"""Helpers for tests/lab/test_lab_consul.py: node roots built by hand, and the stand-in as a real process.

A root holds exactly the files the Consul stand-in reads (docs/lab.md "Layout"): etc/hostname,
etc/xivo-lab/interfaces.json, usr/share/xivo/XIVO-VERSION (which Consul the node runs),
etc/consul/xivo/config.json (XiVO's default, XIVO-FACTS §4) plus the manual's interconnection.json,
a self-signed cert under usr/share/xivo-certs/ and, on 16.15, consul 0.7.0~xivo4's
usr/bin/consul-customize-anonymous-token (as lab.nodes.write_root writes them).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CUSTOMIZE_SCRIPT = "usr/bin/consul-customize-anonymous-token"
# XiVO 16.15's script (research R1 §4b): the consul stand-in runs its body at start.
CUSTOMIZE_SCRIPT_TEXT = (
    "#!/bin/sh\n"
    "body='" + json.dumps({"ID": "anonymous", "Rules": json.dumps({"service": {"xivo-": {"Policy": "read"}}})}) + "'\n"
    "token=$(cat /var/lib/consul/master_token)\n"
    'curl -k -s -o /dev/null -XPUT "https://localhost:8500/v1/acl/update" -d "${body}" -H "X-Consul-Token: ${token}"\n'
)


def make_root(base: Path, address: str, hostname: str, token: str, *, interconnection: bool = True,
              version: str | None = "16.15", customize_script: bool | None = None) -> Path:
    """A node root; `version` None writes no version file; the 16.15 script by default on 16.15 only."""
    root = base / hostname / "root"
    (root / "etc/xivo-lab").mkdir(parents=True)
    (root / "etc/hostname").write_text(f"{hostname}\n")
    (root / "etc/xivo-lab/interfaces.json").write_text(json.dumps({"eth0": address}))
    if version is not None:
        (root / "usr/share/xivo").mkdir(parents=True)
        (root / "usr/share/xivo/XIVO-VERSION").write_text(f"{version}\n")
    if customize_script if customize_script is not None else version == "16.15":
        (root / "usr/bin").mkdir(parents=True)
        (root / CUSTOMIZE_SCRIPT).write_text(CUSTOMIZE_SCRIPT_TEXT)
        (root / CUSTOMIZE_SCRIPT).chmod(0o755)
    consul_dir = root / "etc/consul/xivo"
    consul_dir.mkdir(parents=True)
    config = {
        "acl_default_policy": "deny", "acl_master_token": token, "acl_datacenter": hostname,
        "datacenter": hostname, "server": True, "bind_addr": "127.0.0.1", "advertise_addr": "127.0.0.1",
        "client_addr": "127.0.0.1", "bootstrap_expect": 1, "rejoin_after_leave": True,
        "data_dir": "/var/lib/consul", "enable_syslog": True, "disable_update_check": True, "log_level": "INFO",
        "ports": {"dns": -1, "http": -1, "https": 8500},
        "cert_file": "/usr/share/xivo-certs/server.crt", "key_file": "/usr/share/xivo-certs/server.key",
    }
    (consul_dir / "config.json").write_text(json.dumps(config, indent=4))
    if interconnection:
        (consul_dir / "interconnection.json").write_text(json.dumps(
            {"client_addr": "0.0.0.0", "bind_addr": "0.0.0.0", "advertise_addr": address}))
    (root / "var/lib/consul").mkdir(parents=True)
    (root / "var/lib/consul/master_token").write_text(token)
    certs = root / "usr/share/xivo-certs"
    certs.mkdir(parents=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
                    "-keyout", str(certs / "server.key"), "-out", str(certs / "server.crt"),
                    "-subj", f"/CN={address}", "-addext", f"subjectAltName=IP:{address}"],
                   check=True, capture_output=True)
    return root


def serf_pids(address: str) -> list[int]:
    """Serf agents whose RPC is on `address` (ours), found through /proc."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            zombie = stat.rsplit(")", 1)[-1].split()[0] == "Z"
            if not zombie and argv[:2] == [b"serf", b"agent"] and f"-rpc-addr={address}:7373".encode() in argv:
                pids.append(int(entry.name))
    return pids


def port_open(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=0.2).close()
        return True
    except OSError:
        return False


class StandIn:
    """`python -m xivo_doctor.lab.consul --root ROOT` as a child process."""

    def __init__(self, root: Path, address: str) -> None:
        self.root, self.address = root, address
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True, timeout: float = 10.0) -> float:
        """Start; with `wait`, return the seconds until 8500 accepts connections."""
        started = time.monotonic()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CONSUL_HTTP_")}
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen([sys.executable, "-m", "xivo_doctor.lab.consul", "--root", str(self.root)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        while wait:
            if self.proc.poll() is not None:
                raise RuntimeError(f"stand-in exited {self.proc.returncode}: {self.proc.stderr.read().decode()}")
            if port_open(self.address, 8500):
                break
            if time.monotonic() - started > timeout:
                raise RuntimeError("stand-in did not answer on 8500")
            time.sleep(0.05)
        return time.monotonic() - started

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 5 s; the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def log(self) -> str:
        path = self.root / "var/log/consul.log"
        return path.read_text() if path.exists() else ""
