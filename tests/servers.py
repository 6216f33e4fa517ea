"""Real sockets for the tests: listeners that accept, and black holes that never answer a SYN.

A black hole is a listener with a backlog of 0 whose one queued slot is taken by a connection
nobody accepts: further SYNs are dropped, so a connect times out exactly as behind a firewall
that drops packets (LAB-NOTES §A.5, checked on this machine).
"""

from __future__ import annotations

import socket
import threading
from contextlib import ExitStack


class Listener:
    """Accepts connections (and closes them) until stopped."""

    def __init__(self, address: str, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, port))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
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
