"""The bounded HTTP transport: one request costs at most its budget, and reads at most a capped body.

Place in the pipeline: acquisition, under every HTTP probe (`http.fetch`, python-consul2's session in
`consul.py`). A socket read timeout alone does not bound a request: a peer that sends one byte
every 0.2 s (slow-loris) resets it at each byte, and `requests` checks nothing between bytes. So:

- `guard()` arms a watchdog for the whole request (connect, TLS, headers, body, redirects): when the
  budget is spent it shuts down every socket the request opened, which wakes a blocked `recv` at
  once (shutdown(2), unlike close(2), reliably does so on Linux), and the request ends in
  `ProbeTimeout`. The sockets are found through a context variable set by `guard()` and read by
  the connection class mounted by `mount()`: each request thread has its own.
- each connect goes through the run's memo of dead endpoints (`dead_ends.py`, found through the
  deadline `guard()` is given): an endpoint the run already saw time out fails at once, as
  ProbeTimeout "timed out (filtered), already seen at HH:MM:SS by <first prober>"; concurrent
  first connects to one endpoint share the first one's wait.
- `mount()` puts on a `requests.Session` an adapter that reads each answer itself, capped at
  `max_body` bytes (decoded), instead of `requests` reading all of it into memory, and caps
  redirects.

`requests`' exceptions become `ProbeError`/`ProbeTimeout` naming the source.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3 import connection, connectionpool
from urllib3.exceptions import ConnectTimeoutError, InsecureRequestWarning, NewConnectionError

from xivo_doctor.foundation.deadline import Deadline
from xivo_doctor.foundation.errors import ProbeError, ProbeTimeout
from xivo_doctor.probes.transport import dead_ends, tls_context
from xivo_doctor.probes.transport.dead_ends import AlreadyDead, DeadEnds

# verify=False is the topology's own choice for XiVO's self-signed certificates (XIVO-FACTS §11): no
# warning per request on stderr. It was hidden by pytest's warning capture until the slow reads
# began to start before pytest (prefetch), where it reached the terminal and the cron mail.
urllib3.disable_warnings(InsecureRequestWarning)

MAX_BODY = 2_000_000  # bytes: more than any answer the checks read, far less than a hostile one
MAX_REDIRECTS = 5
_CHUNK = 65536


class BodyTooLarge(requests.RequestException):
    """An answer longer than the cap: reading stopped there."""


class SeenTimingOut(ProbeTimeout):
    """The connect was not attempted: the run saw this endpoint time out already (dead_ends.py).
    Said as such even when this request's own timer fired meanwhile (it waited for that news)."""


class _Watch:
    """The sockets of one request, shut down together when its time is up; and what its connects
    need to consult the run's memo of dead endpoints."""

    def __init__(self, source: str = "", memo: DeadEnds | None = None, *, budget: float = 0.0,
                 remember: bool = True) -> None:
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self.fired = False
        self.source = source
        self.memo = memo
        self.budget = budget
        self.remember = remember  # False when the deadline cut the budget: a timeout proves nothing

    def add(self, sock: socket.socket) -> None:
        # A duplicate descriptor of our own: shutting it down ends the connection even if urllib3
        # has meanwhile wrapped (TLS detaches the original object) or closed the original.
        dup = sock.dup()
        with self._lock:
            self._socks.append(dup)
            late = self.fired
        if late:
            _shutdown(dup)

    def fire(self) -> None:
        with self._lock:
            self.fired = True
            socks = list(self._socks)
        for sock in socks:
            _shutdown(sock)

    def close(self) -> None:
        with self._lock:
            socks, self._socks = self._socks, []
        for sock in socks:
            sock.close()


_WATCH: ContextVar[_Watch | None] = ContextVar("xivo_doctor_http_watch", default=None)
# A SOCKS5 proxy the connections go through: a XiVO's SSH connection (`ssh -D`, transport/ssh.py),
# so that the peer sees the request come from that XiVO.
_VIA: ContextVar[tuple[str, int] | None] = ContextVar("xivo_doctor_http_via", default=None)


@contextmanager
def via(proxy: tuple[str, int] | None) -> Iterator[None]:
    """Every connection opened inside goes through the SOCKS5 `proxy` (none: direct)."""
    token = _VIA.set(proxy)
    try:
        yield
    finally:
        _VIA.reset(token)


def socks5_connect(proxy: tuple[str, int], host: str, port: int, timeout: float | None) -> socket.socket:
    """A TCP connection to host:port opened by the SOCKS5 server at `proxy` (RFC 1928, no
    authentication; the name, if one, is resolved there). OpenSSH's -D closes the connection when it
    cannot connect: said as refused-or-unreachable from there."""
    sock = socket.create_connection(proxy, timeout=timeout)
    try:
        sock.sendall(b"\x05\x01\x00")
        if _recv_exact(sock, 2) != b"\x05\x00":
            raise OSError("the SOCKS proxy refused the handshake")
        name = host.encode("idna")
        sock.sendall(b"\x05\x01\x00\x03" + bytes([len(name)]) + name + port.to_bytes(2, "big"))
        head = _recv_exact(sock, 4)
        if head[1] != 0:
            raise ConnectionRefusedError(f"could not connect to {host}:{port} from there (SOCKS code {head[1]})")
        size = {1: 4, 4: 16}.get(head[3]) or _recv_exact(sock, 1)[0]
        _recv_exact(sock, size + 2)
    except BaseException:
        sock.close()
        raise
    return sock


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionRefusedError("the connection was refused or could not be made from there")
        data += chunk
    return data


def _shutdown(sock: socket.socket) -> None:
    with suppress(OSError):  # not connected yet, or already gone: nothing left to wake
        sock.shutdown(socket.SHUT_RDWR)


def _connect_timed_out(exc: BaseException) -> bool:
    # urllib3 raises NewConnectionError (a *subclass* of ConnectTimeoutError, for history's sake) for
    # a refused or unroutable connect: that is an answer, not a SYN left unanswered, and must not
    # mark the endpoint dead (a ctid listening on 127.0.0.1 would then read as "filtered").
    return isinstance(exc, ConnectTimeoutError) and not isinstance(exc, NewConnectionError)


class _WatchedMixin:
    host: str
    port: int
    timeout: float | None

    def _new_conn(self) -> socket.socket:
        watch, proxy = _WATCH.get(), _VIA.get()
        if proxy is not None:  # from a XiVO: no memo of dead ends (what is dead from here may not be from there)
            try:
                sock = socks5_connect(proxy, self.host, self.port, self.timeout)  # type: ignore[arg-type]
            except TimeoutError:
                raise ConnectTimeoutError(self, f"Connection to {self.host} timed out") from None
            except OSError as exc:
                raise NewConnectionError(self, f"Failed to establish a new connection: {exc}") from None
            if watch is not None:
                watch.add(sock)
            return sock
        if watch is None:
            return super()._new_conn()  # type: ignore[misc]
        memo = watch.memo
        if memo is None:
            sock = super()._new_conn()  # type: ignore[misc]
        else:
            try:
                sock = memo.connect(self.host, self.port, self._connect_within, by=watch.source,
                                    wait=watch.budget, timed_out=_connect_timed_out, remember=watch.remember)
            except TimeoutError:  # the budget went by while another request's first connect was under way
                raise ConnectTimeoutError(self, f"Connection to {self.host} timed out. "
                                                f"(connect timeout={watch.budget:g})") from None
        watch.add(sock)
        return sock

    def _connect_within(self, seconds: float) -> socket.socket:
        """urllib3's connect with what is left of the budget (part of it may have gone on waiting
        for another request's connect to the same endpoint); urllib3 sets `timeout` again itself
        before reading."""
        self.timeout = seconds
        return super()._new_conn()  # type: ignore[misc]


class _HTTPConnection(_WatchedMixin, connection.HTTPConnection):
    pass


class _HTTPSConnection(_WatchedMixin, connection.HTTPSConnection):
    pass


class _HTTPPool(connectionpool.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(connectionpool.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class BoundedAdapter(HTTPAdapter):
    """Watched connections, no retries, each answer read here with a size cap, from `source_address`."""

    def __init__(self, *, max_body: int = MAX_BODY, source_address: str | None = None) -> None:
        self.max_body = max_body
        self._source = (source_address, 0) if source_address else None
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        if self._source:
            kwargs["source_address"] = self._source
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    def build_connection_pool_key_attributes(self, request: requests.PreparedRequest, verify: Any,
                                             cert: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        if host_params["scheme"] == "https" and cert is None:
            # The process's context for this setting (tls_context.py): no CA store loaded per connection.
            pool_kwargs = {"ssl_context": tls_context.for_verify(verify), "cert_reqs": pool_kwargs["cert_reqs"]}
        return host_params, pool_kwargs

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        super().cert_verify(conn, url, verify, cert)
        if cert is None:  # the shared context holds the CA certificates already: do not load them again
            conn.ca_certs = conn.ca_cert_dir = None

    def send(self, request: requests.PreparedRequest, stream: bool = False, **kwargs: Any) -> requests.Response:
        response = super().send(request, stream=True, **kwargs)
        # Read it now, capped: `requests` would read all of it (a redirect's body too) into memory.
        body = bytearray()
        try:
            for chunk in response.raw.stream(_CHUNK, decode_content=True):
                body += chunk
                if len(body) > self.max_body:
                    raise BodyTooLarge(f"more than {self.max_body} bytes")
        except Exception:
            response.close()
            raise
        response._content = bytes(body)  # what `Response.content` returns from now on
        response._content_consumed = True
        return response


def mount(session: requests.Session, *, max_body: int = MAX_BODY, source_address: str | None = None) -> None:
    """Make every request of `session` watched and capped (size, redirects), with no proxy from the
    environment between the doctor and a XiVO."""
    adapter = BoundedAdapter(max_body=max_body, source_address=source_address)
    session.trust_env = False
    session.max_redirects = MAX_REDIRECTS
    session.mount("http://", adapter)
    session.mount("https://", adapter)


@contextmanager
def guard(source: str, deadline: Deadline, timeout: float, what: str = "") -> Iterator[float]:
    """Bound the requests made inside to `timeout` cut to the run's deadline, as a whole; yields that
    budget (for the socket timeouts). Errors come out as ProbeError/ProbeTimeout naming `source`."""
    budget = deadline.budget(timeout, source)
    doing = f"{what}: " if what else ""
    timed_out = ProbeTimeout(source, doing + (f"timed out after {budget:g} s" if budget >= timeout
                                               else deadline.describe_timeout()))
    watch = _Watch(source, dead_ends.find(deadline), budget=budget, remember=budget >= timeout)
    token = _WATCH.set(watch)
    timer = threading.Timer(budget, watch.fire)
    timer.daemon = True
    timer.start()
    try:
        with request_errors(source, budget, what):
            yield budget
    except SeenTimingOut:
        raise
    except Exception:
        if watch.fired:  # whatever the shut-down socket made `requests` say, the cause is the time
            raise timed_out from None
        raise
    finally:
        timer.cancel()
        _WATCH.reset(token)
        watch.close()
    if watch.fired:  # a read-until-close body ends "normally" when its socket is shut down
        raise timed_out


@contextmanager
def request_errors(source: str, budget: float, what: str = "") -> Iterator[None]:
    """`requests`' exceptions -> ProbeTimeout/ProbeError naming the source."""
    doing = f"{what}: " if what else ""
    try:
        yield
    except AlreadyDead as exc:  # the same kind of error as the first prober's, without its wait
        raise SeenTimingOut(source, f"{doing}{exc.dead.describe()}") from None
    except BodyTooLarge as exc:
        raise ProbeError(source, f"{doing}answer too large ({exc}); stopped reading") from None
    except (requests.Timeout, TimeoutError):
        raise ProbeTimeout(source, f"{doing}timed out after {budget:g} s") from None
    except requests.TooManyRedirects:
        raise ProbeError(source, f"{doing}too many redirects (more than {MAX_REDIRECTS})") from None
    except requests.exceptions.SSLError as exc:
        raise ProbeError(source, f"{doing}TLS failed: {_reason(exc)}") from None
    except requests.ConnectionError as exc:
        if "timed out" in str(exc):  # urllib3 wraps a TLS handshake's socket timeout this way
            raise ProbeTimeout(source, f"{doing}timed out after {budget:g} s") from None
        raise ProbeError(source, f"{doing}cannot connect: {_reason(exc)}") from None
    except requests.RequestException as exc:
        raise ProbeError(source, f"{doing}request failed: {_reason(exc)}") from None
    except OSError as exc:  # not wrapped by `requests`: the CA file or directory of `verify` is unreadable
        raise ProbeError(source, f"{doing}cannot load the CA certificates to verify with: "
                                 f"{exc.strerror or type(exc).__name__}") from None


def _reason(exc: Exception) -> str:
    """The innermost reason, without urllib3's object reprs (and never a credential)."""
    text = str(exc)
    for marker in ("Connection refused", "No route to host", "Name or service not known", "timed out",
                   "certificate verify failed", "Connection reset by peer", "Remote end closed connection"):
        if marker in text:
            return marker.lower() if marker != "Connection refused" else "connection refused"
    for marker in ("refused or could not be made from there", "from there (SOCKS code"):  # socks5_connect's
        if marker in text:
            return "connection refused or unreachable from the XiVO it was sent through"
    return type(exc).__name__
