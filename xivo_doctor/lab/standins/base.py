"""What every lab stand-in shares: its node's root, addresses, TLS, an HTTP server, clean stop.

Place in the pipeline: none — the lab is the system being inspected, not the doctor. In the lab:
the base of the stand-ins of this package (`standins.confd`, `.ctid`, `.webservices`) and of the
Consul stand-in (`lab.consul`). A stand-in is started as `python -m xivo_doctor.lab.standins.<service>
--root <node root>` (Consul: `python -m xivo_doctor.lab.consul`) and reads everything from files
under that root, as the real daemon reads them from `/` (docs/lab.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from xivo_doctor.lab import releases


class Node:
    """A lab node seen from inside: its root and the files an admin edits there."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    def path(self, absolute: str) -> Path:
        """A XiVO path (`/usr/share/xivo-certs/server.crt`) under this node's root."""
        return self.root / absolute.lstrip("/")

    @property
    def address(self) -> str:
        """The node's own address: the `eth0` of its interfaces file."""
        return self.interfaces()["eth0"]

    def interfaces(self) -> dict[str, str]:
        return json.loads(self.path("/etc/xivo-lab/interfaces.json").read_text())

    @property
    def own_network(self) -> bool:
        """The node runs in its own network namespace (`lab up --netns`): its addresses are all its own."""
        return self.path("/etc/xivo-lab/netns").exists()

    def listen_address(self, configured: str) -> str:
        """0.0.0.0 (and "::") as the node means it: all of its interfaces on its own network; when all
        nodes share one host, this node's own address."""
        if self.own_network:
            return "0.0.0.0" if configured in ("::", "") else configured
        return self.address if configured in ("0.0.0.0", "::", "") else configured

    def xivo_uuid(self) -> str:
        """XIVO_UUID as the daemons get it: from /etc/profile.d/xivo_uuid.sh (XIVO-FACTS §2)."""
        for line in self.path("/etc/profile.d/xivo_uuid.sh").read_text().splitlines():
            line = line.strip()
            if line.startswith("export XIVO_UUID="):
                return line.split("=", 1)[1].strip().strip("'\"")
        raise RuntimeError("undefined environment variable XIVO_UUID")

    def version(self) -> str:
        return self.path("/usr/share/xivo/XIVO-VERSION").read_text().strip()

    def release(self) -> str:
        """The XiVO release whose daemons this node runs: its version file (`16.13`), as the packages
        installed it. A stand-in reads it once, at start, and behaves as that release (lab.releases).
        A missing or unknown file gives the lab's default release (fidelity limit: a real daemon has
        its release built in; docs/lab.md)."""
        try:
            text = self.version()
        except OSError:
            return releases.DEFAULT
        return text if releases.supported(text) else releases.DEFAULT

    def hostname(self) -> str:
        return self.path("/etc/hostname").read_text().strip().split(".")[0]

    def read_yaml(self, absolute: str) -> dict[str, Any]:
        path = self.path(absolute)
        return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}

    def log(self, service: str) -> logging.Logger:
        logfile = self.path(f"/var/log/{service}.log")
        logfile.parent.mkdir(parents=True, exist_ok=True)
        logger = logging.getLogger(service)
        if not logger.handlers:
            handler = logging.FileHandler(logfile)
            handler.setFormatter(logging.Formatter("%(asctime)s [%(process)d] (%(levelname)s) (%(name)s): %(message)s"))
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
        return logger


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """How XiVO daemons merge config.yml with conf.d/*.yml: mappings key by key, the rest replaced."""
    out = dict(base)
    for key, value in over.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def tls_context(node: Node, cert: str, key: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(node.path(cert), node.path(key))
    return context


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve(address: str, port: int, handler: type[BaseHTTPRequestHandler], *,
          tls: ssl.SSLContext | None = None) -> Server:
    """Start an HTTP(S) server in a thread and return it (`shutdown()` to stop)."""
    server = Server((address, port), handler)
    if tls is not None:
        # The handshake happens on the first read, in the connection's own thread: a client that
        # connects and says nothing must not stall the accept loop.
        server.socket = tls.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    threading.Thread(target=server.serve_forever, daemon=True, name=f"http-{address}:{port}").start()
    return server


class QuietHandler(BaseHTTPRequestHandler):
    """Base handler: no stderr chatter, JSON helpers, HTTP/1.1."""

    protocol_version = "HTTP/1.1"
    server_version = "xivo-lab"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def send_text(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""


def main_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--root", required=True, help="the node's filesystem root")
    return parser.parse_args()


def wait_for_stop() -> None:
    """Block until SIGTERM or SIGINT; the caller then cleans up (deregisters, closes sockets)."""
    # A flag, not a threading.Event: the handler runs in the main thread, and Event.set() there can
    # deadlock on the lock Event.wait() holds when the signal lands inside it (then SIGKILL after 10 s)
    stopping: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: stopping.append(signum))
    while not stopping:
        time.sleep(0.2)  # a signal interrupts the sleep; the flag is then seen at once
