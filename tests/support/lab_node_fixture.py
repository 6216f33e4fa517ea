"""Helpers for the lab stand-in tests: node roots built by hand, processes, a fake Consul agent.

The node roots hold the files of docs/lab.md that the ctid, confd and web-services stand-ins read,
written by hand from the research notes (R1 §2, §3) for the release asked, so that these tests do
not take the lab's own `releases` table for granted.
The fake Consul is a plain HTTP server recording what xivo-ctid's registration sends, so these
tests do not depend on the lab's Consul stand-in.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from conftest import REPO
from xivo_doctor.lab import postgres

CTID_DEFAULTS = {  # etc/xivo-ctid/config.yml as shipped (XIVO-FACTS §3)
    "rest_api": {"http": {"listen": "127.0.0.1", "port": 9495}, "cors": {"enabled": True}},
    "service_discovery": {"advertise_address": "localhost", "advertise_address_interface": "eth0",
                          "advertise_port": 9495, "ttl_interval": 30, "refresh_interval": 27, "retry_interval": 2,
                          "extra_tags": []},
}
CTID_DEFAULTS_15 = {  # etc/xivo-ctid/config.yml @xivo-15.19 / @xivo-15.20 (R1 §3)
    "rest_api": {"http": {"listen": "127.0.0.1", "port": 9495}, "cors": {"enabled": True}},
    "service_discovery": {"advertise_address": "localhost", "advertise_port": 9495,
                          "check_url": "http://localhost:9495/0.1/infos", "check_url_interval": "300s",
                          "check_url_timeout": "10s", "extra_tags": []},
}
MANUAL_CTID = {"rest_api": {"http": {"listen": "0.0.0.0"}},  # the manual's interconnection.yml (16.01+)
               "service_discovery": {"advertise_address": "auto", "advertise_address_interface": "eth0"}}


def manual_ctid_15(address: str) -> dict[str, Any]:
    """The manual's interconnection.yml at 15.19-15.20: the IP literally and a check_url (R1 §3)."""
    return {"rest_api": {"http": {"listen": "0.0.0.0"}},
            "service_discovery": {"advertise_address": address, "check_url": f"http://{address}:9495/0.1/infos"}}


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def make_cert(root: Path, address: str) -> None:
    certs = root / "usr/share/xivo-certs"
    certs.mkdir(parents=True, exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
                    "-subj", f"/CN={address}", "-addext", f"subjectAltName=IP:{address}",
                    "-keyout", certs / "server.key", "-out", certs / "server.crt"],
                   check=True, capture_output=True)


def make_root(root: Path, *, address: str, uuid: str | None, version: str | None = "16.13", dsn: str = "",
              ctid: dict[str, Any] | None = None, consul_client_addr: str = "0.0.0.0",
              interfaces: dict[str, str] | None = None, cert_from: Path | None = None) -> Path:
    """A node root with docs/lab.md's files for ctid, confd and the web services.

    `uuid`: the XIVO_UUID files as xivo-configure-uuid writes them (16.02+), None for none;
    `version` None: no version file; `dsn`: also xivo-dao's config.yml (where ctid <= 16.01 reads its UUID)."""
    short = f"xivo-lab-{address.rsplit('.', 1)[1]}"
    write(root / "etc/hostname", short + "\n")
    if uuid:
        write(root / "etc/profile.d/xivo_uuid.sh", f"export XIVO_UUID={uuid}\n")
        write(root / "etc/default/xivo", f"export XIVO_UUID={uuid}\n")
        write(root / "etc/systemd/system.conf", f'[Manager]\nDefaultEnvironment="XIVO_UUID={uuid}"\n')
    if version is not None:
        write(root / "usr/share/xivo/XIVO-VERSION", version + "\n")
    if dsn:
        write(root / "etc/xivo-dao/config.yml", yaml.safe_dump({"db_uri": dsn}))
    if cert_from is not None:
        for name in ("server.crt", "server.key"):
            write(root / "usr/share/xivo-certs" / name, (cert_from / "usr/share/xivo-certs" / name).read_text())
    else:
        make_cert(root, address)
    write(root / "etc/consul/xivo/config.json", json.dumps({"client_addr": "127.0.0.1", "bind_addr": "127.0.0.1",
                                                             "ports": {"dns": -1, "http": -1, "https": 8500}}))
    write(root / "etc/consul/xivo/interconnection.json",
          json.dumps({"client_addr": consul_client_addr, "bind_addr": address, "advertise_addr": address}))
    # The ctid talks to the fake Consul: plain HTTP on the node's consul address.
    consul = {"consul": {"scheme": "http", "host": "localhost", "port": 8500,
                         "verify": "/usr/share/xivo-certs/server.crt"}}
    write(root / "var/lib/consul/default_xivo_consul_config.yml", yaml.safe_dump(consul))
    write(root / "var/lib/consul/default_xivo_consul_token.yml", yaml.safe_dump({"consul": {"token": "t0k3n"}}))
    old = version is not None and version_key(version) < (16, 1)
    write(root / "etc/xivo-ctid/config.yml", yaml.safe_dump(CTID_DEFAULTS_15 if old else CTID_DEFAULTS))
    write(root / "etc/xivo-ctid/conf.d/050-xivo-consul-config.yml", yaml.safe_dump(consul))
    write(root / "etc/xivo-ctid/conf.d/050-xivo-consul-token.yml", yaml.safe_dump({"consul": {"token": "t0k3n"}}))
    if ctid is not None:
        write(root / "etc/xivo-ctid/conf.d/interconnection.yml", yaml.safe_dump(ctid))
    write(root / "etc/xivo-lab/interfaces.json", json.dumps(interfaces or {"eth0": address}))
    https = {"listen": "0.0.0.0", "port": 9486, "certificate": "/usr/share/xivo-certs/server.crt",
             "private_key": "/usr/share/xivo-certs/server.key"}
    write(root / "etc/xivo-confd/config.yml", yaml.safe_dump({"db_uri": dsn, "rest_api": {"https": https}}))
    write(root / "etc/xivo-web-interface/lab.yml",
          yaml.safe_dump({"db_uri": dsn, "http_port": 80, "https_port": 443, "listen": "0.0.0.0"}))
    return root


def accepts(address: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((address, port)) == 0


def start(service: str, root: Path, *, wait_for: tuple[str, int] | None = None) -> subprocess.Popen[bytes]:
    """`python -m xivo_doctor.lab.standins.<service> --root root`, waiting until it accepts on `wait_for`."""
    errors = open(root / f"{service}.stderr", "wb")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen([sys.executable, "-m", f"xivo_doctor.lab.standins.{service}", "--root", str(root)],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=errors)
    errors.close()
    deadline = time.monotonic() + 10
    while wait_for is not None and not accepts(*wait_for):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise RuntimeError(f"{service} did not listen on {wait_for}: {(root / f'{service}.stderr').read_text()}")
        time.sleep(0.05)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.terminate()
        try:
            return proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


class FakeConsul:
    """Consul's agent API as far as xivo-ctid uses it; records every call."""

    def __init__(self, address: str, port: int = 8500) -> None:
        self.calls: list[tuple[str, str, dict[str, str], Any]] = []
        self.services: dict[str, dict[str, Any]] = {}
        self.lock = threading.RLock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_PUT(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                with fake.lock:
                    fake.calls.append(("PUT", url.path, query, body))
                    status = fake.answer(url.path, body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer((address, port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, path: str, body: Any) -> int:
        if path == "/v1/agent/service/register":
            self.services[body["ID"]] = body
            return 200
        if path.startswith("/v1/agent/check/pass/service:"):
            return 200 if path.rsplit(":", 1)[1] in self.services else 500  # "CheckID does not have associated TTL"
        if path.startswith("/v1/agent/service/deregister/"):
            self.services.pop(path.rsplit("/", 1)[1], None)
        return 200

    def paths(self) -> list[str]:
        with self.lock:
            return [call[1] for call in self.calls]

    def wait(self, predicate: Any, timeout: float = 8) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if predicate(self):
                    return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def postgres_cluster(stack: ExitStack, address: str) -> Path:
    """A fresh lab PostgreSQL cluster listening on `address`, stopped and removed when `stack` closes.
    Its parent is made under /tmp with mode 0711: pytest's tmp tree is 0700 (root only) and the
    postgres user must reach its cluster's directory."""
    pg_parent = Path(tempfile.mkdtemp(prefix="xivo-doctor-test-pg-", dir="/tmp"))
    pg_parent.chmod(0o711)
    pgdir = pg_parent / "postgres"
    stack.callback(shutil.rmtree, pg_parent, True)
    stack.callback(lambda: postgres.stop(pgdir) if (pgdir / postgres.MARKER).exists() else None)
    postgres.init(pgdir, address)
    return pgdir


@contextmanager
def ctids(folder: Path, cert_from: Path, default_address: str | None = None):
    """`run(address, wait_for=..., **make_root keywords)` starts a ctid stand-in on a fresh node root
    under `folder` (a new UUID unless given; the TLS files copied from `cert_from`) and returns
    (process, root); every ctid started is stopped on exit."""
    procs: list[subprocess.Popen] = []

    def run(address: str | None = default_address, *, wait_for: tuple[str, int] | None = None, **kwargs):
        root = make_root(folder / f"ctid-{len(procs)}", address=address, cert_from=cert_from,
                         **{"uuid": str(uuid.uuid4()), **kwargs})
        proc = start("ctid", root, wait_for=wait_for)
        procs.append(proc)
        return proc, root

    try:
        yield run
    finally:
        for proc in procs:
            stop(proc)


@contextmanager
def fake_consuls(*addresses: str):
    """{address: FakeConsul} listening on each address, closed on exit."""
    with ExitStack() as stack:
        fakes = {}
        for address in addresses:
            fakes[address] = FakeConsul(address)
            stack.callback(fakes[address].close)
        yield fakes
