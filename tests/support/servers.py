"""Real sockets for the tests: listeners that accept, black holes that never answer a SYN, an HTTP
server answering fixed routes, and hostile peers that accept and then misbehave (slow-loris,
endless bodies, endless redirects, silence).

A black hole is a listener with a backlog of 0 whose one queued slot is taken by a connection
nobody accepts: further SYNs are dropped, so a connect times out exactly as behind a firewall
that drops packets (LAB-NOTES §A.5, checked on this machine).
"""

from __future__ import annotations

import json
import socket
import threading
from contextlib import ExitStack, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


def listening(address: str, port: int, backlog: int, timeout: float) -> socket.socket:
    """A listening TCP socket whose accept() wakes every `timeout` s (so a server can stop)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, port))
    sock.listen(backlog)
    sock.settimeout(timeout)
    return sock


class Listener:
    """Accepts connections (and closes them) until stopped."""

    def __init__(self, address: str, port: int) -> None:
        self.sock = listening(address, port, 64, 0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(1)
        self.sock.close()


class BlackHole:
    """Takes the port but never completes another handshake: connects time out."""

    def __init__(self, address: str, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, port))
        self.sock.listen(0)
        self.filler = socket.create_connection((address, port), timeout=1)

    def close(self) -> None:
        self.filler.close()
        self.sock.close()


def serve(stack: ExitStack, kind: type, address: str, ports) -> None:
    for port in ports:
        server = kind(address, port)
        stack.callback(server.close)


class Routes:
    """An HTTP server answering `routes[path]` = (status, headers, body) and recording each request
    (path, query, X-Consul-Token). A body is sent as is (bytes), encoded (str), called (a callable,
    at each request) or as JSON (anything else); an unknown path gets Consul's own 404."""

    def __init__(self, address: str, port: int = 0, routes: dict[str, tuple] | None = None) -> None:
        self.routes: dict[str, tuple[int, dict[str, str], Any]] = dict(routes or {})
        self.requests: list[dict[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                owner.requests.append({"path": url.path, "query": url.query,
                                       "token": self.headers.get("X-Consul-Token")})
                status, headers, body = owner.routes.get(url.path, (404, {}, b"404 page not found"))
                data = _body_bytes(body() if callable(body) else body)
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer((address, port), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def paths(self) -> list[str]:
        return [r["path"] for r in self.requests]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _body_bytes(body: Any) -> bytes:
    if isinstance(body, bytes):
        return body
    return body.encode() if isinstance(body, str) else json.dumps(body).encode()



# -- hostile peers (tests/test_bounded.py): they accept, then misbehave ---------------------------------

class Hostile:
    """Accepts connections and hands each to `behave(conn, stopped)` in its own thread.

    `sent` counts the bytes written to all connections (so a test can tell how much a client read).
    """

    def __init__(self, address: str, port: int, behave) -> None:
        self.sock = listening(address, port, 64, 0.1)
        self.behave = behave
        self.stopped = threading.Event()
        self.sent = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def send(self, conn: socket.socket, data: bytes) -> None:
        conn.sendall(data)
        with self._lock:
            self.sent += len(data)

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                self.connections += 1
                self._conns.append(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            self.behave(self, conn)
        except OSError:
            pass  # the client gave up: what we want
        finally:
            conn.close()

    def close(self) -> None:
        self.stopped.set()
        self._thread.join(1)
        with self._lock:
            for conn in self._conns:
                with suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        self.sock.close()


def _read_request(conn: socket.socket) -> bytes:
    """The request's head (enough for these servers: no request has a body)."""
    conn.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def slow_loris(server: Hostile, conn: socket.socket) -> None:
    """Headers that never end: one byte every 0.2 s (each byte resets a client's read timeout)."""
    _read_request(conn)
    while not server.stopped.is_set():
        for byte in b"HTTP/1.1 200 OK\r\nX-Slow: yes\r\n":
            server.send(conn, bytes([byte]))
            if server.stopped.wait(0.2):
                return


def slow_body(server: Hostile, conn: socket.socket) -> None:
    """Valid headers announcing a gigabyte, then the body one byte every 0.2 s."""
    _read_request(conn)
    server.send(conn, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n")
    while not server.stopped.wait(0.2):
        server.send(conn, b" ")


def huge_body(server: Hostile, conn: socket.socket) -> None:
    """A gigabyte body sent as fast as the client reads it."""
    _read_request(conn)
    server.send(conn, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n")
    chunk = b"[" + b"0," * 32767
    left = 1_000_000_000
    while left > 0 and not server.stopped.is_set():
        server.send(conn, chunk[:left])
        left -= len(chunk)


def redirect_forever(server: Hostile, conn: socket.socket) -> None:
    """Every request answered 302 to the next path, on the same keep-alive connection."""
    while not server.stopped.is_set():
        head = _read_request(conn)
        if not head:
            return
        path = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b"/"
        server.send(conn, b"HTTP/1.1 302 Found\r\nLocation: " + path.split(b"?")[0].rstrip(b"/") + b"/next\r\n"
                          b"Content-Length: 0\r\n\r\n")


def silent(server: Hostile, conn: socket.socket) -> None:
    """Accepts TCP and never says a word: no AMQP greeting, no TLS ServerHello, no HTTP answer."""
    server.stopped.wait()
