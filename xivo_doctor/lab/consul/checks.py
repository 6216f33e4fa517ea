"""The Consul stand-in's HTTP checks: run as consul's CheckHTTP does (command/agent/check.go, 0.5–0.7).

Place in the lab: `consul.agent_endpoint` calls `HttpChecks.sync()` after every (de)registration and
`consul.agent` once at start; results go to `consul.state` (`State.update_check`). xivo-ctid on
XiVO 15.19/15.20 registers `{"HTTP": "http://localhost:9495/0.1/infos", "Interval": "300s",
"Timeout": "10s"}` with its service (R1 §3).

Consul's behaviour, kept: a new check is `critical` until its first run; the first run comes after a
random stagger within the interval (`lib.RandomStagger`), then one run per interval; the interval
is at least 1 s (`MinInterval`); the timeout defaults to 10 s. `GET` with `User-Agent: Consul Health
Check` (0.5.2+) and `Accept: text/plain, text/*, */*` (0.6.4+); 2xx → `passing`, 429 → `warning`,
anything else → `critical` with `HTTP GET <url>: <status> Output: <body>` (the body's last 4 KiB); a
failed request → `critical` with the error as Output, worded as Go's net/http words it (the
refusal as Go 1.4 or 1.5+ words it; the other wordings are those of Go 1.6/1.7, unverified for 0.5.2).

One host, many nodes (docs/lab.md): a URL host `localhost`/`127.0.0.1` means the node itself. On a
XiVO, `localhost:9495` reaches a daemon listening on 0.0.0.0 as well as on 127.0.0.1; in the lab the
first is bound on the node's address and the second on 127.0.0.1, so the check connects to the
node's address and, if that is refused, to 127.0.0.1. Not emulated: redirects (Go follows them),
proxies from the environment, `TLSSkipVerify` (https URLs are verified against the system CAs).
"""

from __future__ import annotations

import functools
import http.client
import logging
import random
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Callable

from xivo_doctor.lab.consul.state import State
from xivo_doctor.lab.consul.versions import ConsulVersion

MIN_INTERVAL = 1.0        # command/agent/check.go MinInterval
OUTPUT_LIMIT = 4 * 1024   # CheckBufSize: the output keeps the body's last 4 KiB
LOOPBACK_NAMES = ("localhost", "127.0.0.1")


@functools.cache
def _system_roots() -> ssl.SSLContext:
    """Go's default client verifies against the system roots; loading them costs ~45 ms of CPU, so
    once per process rather than once per check run."""
    return ssl.create_default_context()


class HttpChecks:
    """One thread per HTTP check of the state, restarted when the check is registered again."""

    def __init__(self, state: State, node_address: str, version: ConsulVersion, log: logging.Logger,
                 stagger: Callable[[float], float] | None = None) -> None:
        self.state = state
        self.node_address = node_address
        self.version = version
        self.log = log
        self.stagger = stagger or (lambda interval: random.uniform(0, interval))
        self.lock = threading.Lock()
        self.running: dict[str, tuple[int, threading.Event]] = {}  # check id -> (CreateIndex, stop)

    def sync(self) -> None:
        """Start the checks the state has and we do not run; stop the ones it no longer has."""
        wanted = self.state.http_checks()
        with self.lock:
            for check_id, (index, stop) in list(self.running.items()):
                if wanted.get(check_id, (None,))[0] != index:
                    stop.set()
                    del self.running[check_id]
            for check_id, (index, url, interval, timeout) in wanted.items():
                if check_id in self.running:
                    continue
                stop = threading.Event()
                self.running[check_id] = (index, stop)
                threading.Thread(target=self._run, args=(check_id, index, url, interval, timeout, stop),
                                 daemon=True, name=f"check-{check_id}").start()

    def stop(self) -> None:
        with self.lock:
            for _, stop in self.running.values():
                stop.set()
            self.running.clear()

    def _run(self, check_id: str, index: int, url: str, interval: float, timeout: float,
             stop: threading.Event) -> None:
        if interval < MIN_INTERVAL:
            self.log.warning(f"agent: check '{check_id}' has interval below minimum of 1s")
            interval = MIN_INTERVAL
        if stop.wait(self.stagger(interval)):
            return
        while True:
            status, output = self.probe(check_id, url, timeout)
            if not self.state.update_check(check_id, index, status, output) or stop.wait(interval):
                return

    # -- one run -----------------------------------------------------------------------------
    def _targets(self, host: str) -> list[str]:
        return [self.node_address, "127.0.0.1"] if host in LOOPBACK_NAMES else [host]

    def probe(self, check_id: str, url: str, timeout: float) -> tuple[str, str]:
        """(status, output) of one GET of `url`."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https"):
            return self._failed(url, f'Get {url}: unsupported protocol scheme "{parts.scheme}"')
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        shown = f"{'127.0.0.1' if host == 'localhost' else host}:{port}"  # what Go's dialer names
        headers = {"User-Agent": "Consul Health Check"}
        if self.version.sends_accept_header:
            headers["Accept"] = "text/plain, text/*, */*"
        try:
            sock = self._connect(host, port, timeout)
        except ConnectionRefusedError:
            # Go >= 1.5 (Consul 0.6+) says "getsockopt: connection refused", Go 1.4 (Consul 0.5.2) does not
            refused = "getsockopt: connection refused" if self.version.number >= (0, 6, 0) else "connection refused"
            return self._failed(url, f"Get {url}: dial tcp {shown}: {refused}")
        except TimeoutError:
            return self._failed(url, f"Get {url}: dial tcp {shown}: i/o timeout")
        except OSError as exc:
            return self._failed(url, f"Get {url}: dial tcp {shown}: {exc.strerror or exc}")
        connection: http.client.HTTPConnection = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            if parts.scheme == "https":
                sock = _system_roots().wrap_socket(sock, server_hostname=host)
            connection.sock = sock
            connection.request("GET", urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, "")),
                               headers=headers)
            answer = connection.getresponse()
            body = answer.read()
        except ssl.SSLCertVerificationError:
            return self._failed(url, f"Get {url}: x509: certificate signed by unknown authority")
        except TimeoutError:
            return self._failed(url, f"Get {url}: net/http: request canceled "
                                     "(Client.Timeout exceeded while awaiting headers)")
        except (OSError, http.client.HTTPException) as exc:
            return self._failed(url, f"Get {url}: {exc}")
        finally:
            connection.close()
        text = body[-OUTPUT_LIMIT:].decode("utf-8", "replace")
        output = f"HTTP GET {url}: {answer.status} {answer.reason} Output: {text}"
        if 200 <= answer.status <= 299:
            return "passing", output
        if answer.status == 429:
            self.log.warning(f"agent: check '{check_id}' is warning: Too many requests")
            return "warning", output
        self.log.warning(f"agent: check '{check_id}' is critical: {answer.status} {answer.reason}")
        return "critical", output

    def _connect(self, host: str, port: int, timeout: float) -> socket.socket:
        targets = self._targets(host)
        for n, address in enumerate(targets):
            try:
                return socket.create_connection((address, port), timeout=timeout)
            except ConnectionRefusedError:
                if n == len(targets) - 1:
                    raise
        raise ConnectionRefusedError  # not reached: the loop returns or raises

    def _failed(self, url: str, error: str) -> tuple[str, str]:
        self.log.warning(f"agent: http request failed '{url}': {error}")
        return "critical", error
