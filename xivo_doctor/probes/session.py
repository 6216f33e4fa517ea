"""The per-run probe session: one deadline and one cache shared by every check of a run.

Place in the pipeline: acquisition. The plugin creates one `Probes` per run and hands it to the
checks as the `probes` fixture. Caching here means two checks that need the same data, or the
items of one check across XiVOs, cost one query; batching means a check asks for every
XiVO's data at once and the probes run concurrently. The run's memo of dead endpoints
(`dead_ends.py`, shared by the TCP and HTTP probes through the run's deadline) means a
black-holed XiVO costs one connect timeout per endpoint and run, not one per probe.
"""

from __future__ import annotations

import importlib
import socket
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from xivo_doctor.foundation.deadline import Deadline
from xivo_doctor.foundation.errors import ProbeError, ProbeTimeout
from xivo_doctor.foundation.netaddr import is_ip_address
from xivo_doctor.probes.transport import dead_ends, tcp
from xivo_doctor.topology.model import Topology, Xivo

# Each kind of data source by name, loaded on first use, with its libraries (python-consul2,
# psycopg, pika): a run that needs none of them imports none. Each takes this session.
SOURCES = {
    "consul": "xivo_doctor.probes.consul.agent:ConsulProbe",
    "ctid": "xivo_doctor.probes.ctid:CtidProbe",
    "rabbitmq": "xivo_doctor.probes.rabbitmq.broker:RabbitProbe",
    "onbox": "xivo_doctor.probes.onbox:OnBoxProbe",
    "web": "xivo_doctor.probes.web:WebProbe",
    "version": "xivo_doctor.probes.version:VersionProbe",
    "dird": "xivo_doctor.probes.dird:DirdProbe",
}


class Probes:
    def __init__(self, topology: Topology, deadline: Deadline, *, passive: bool = False) -> None:
        self.topology = topology
        self.deadline = deadline
        self.passive = passive  # no write at all: the federation probe message is not sent
        self._lock = threading.Lock()
        # Its own lock: a scan holds it for up to a connect timeout, and must not hold back the
        # other sources (`_probe`, `cached` take `_lock`) meanwhile.
        self._tcp_lock = threading.Lock()
        self._tcp: dict[tcp.Target, tcp.PortProbe] = {}
        self._tcp_from: dict[str, dict[tcp.Target, tcp.PortProbe]] = {}  # by the XiVO they were tried from
        self._on_a_xivo: bool | None = None
        self._sources: dict[str, object] = {}
        self._ssh = None  # transport.ssh.SshLinks, made on first use
        self._cache: dict[tuple, object] = {}
        # Secrets read on the XiVOs (a Consul master token over SSH): the run's redactors learn them.
        self._learned: set[str] = set()
        self._key_locks: dict[tuple, threading.Lock] = {}
        # Found by the HTTP transport through the deadline (bounded.guard): one memo per run.
        self.dead_ends = dead_ends.of_run(deadline)

    @property
    def timeout(self) -> float:
        """Seconds one network operation may take (the topology's probe_timeout)."""
        return self.topology.probe_timeout

    def tcp_states(
        self, targets: Iterable[tcp.Target], *, prefetch: Iterable[tcp.Target] = ()
    ) -> dict[tcp.Target, tcp.PortProbe]:
        """TCP connect results for `targets`.

        Everything in `targets` and `prefetch` not yet probed this run is probed at once, so the
        first item of a check can scan every XiVO concurrently and the others read the cache.
        A target the run's deadline cut short raises ProbeTimeout: nothing was learnt about it.
        """
        wanted = list(dict.fromkeys(targets))
        with self._tcp_lock:
            missing = [t for t in dict.fromkeys([*wanted, *prefetch]) if t not in self._tcp]
            if missing:
                self._tcp.update(tcp.scan(missing, self.timeout, self.deadline, memo=self.dead_ends))
            found = {t: self._tcp[t] for t in wanted}
        cut = [f"{a}:{p}" for (a, p), probe in found.items() if probe.state == tcp.CUT]
        if cut:
            raise ProbeTimeout(f"tcp connect to {', '.join(cut)}", self.deadline.describe_timeout())
        unresolved = [probe for probe in found.values() if probe.state == tcp.UNRESOLVED]
        if unresolved:
            raise ProbeError("DNS", unresolved[0].detail)
        return found

    def tcp_states_from(self, xivo: Xivo, targets: Iterable[tcp.Target], *,
                        prefetch: Iterable[tcp.Target] = ()) -> dict[tcp.Target, tcp.PortProbe]:
        """TCP connect results for `targets` as `xivo` sees them: tried on it over SSH
        (transport/tcp_over_ssh.py), every target not yet tried from it at once. Raises ProbeError
        when SSH to it fails (the caller then tries from here)."""
        from xivo_doctor.probes.transport.tcp_over_ssh import scan_from

        wanted = list(dict.fromkeys(targets))
        with self._lock:
            lock = self._key_locks.setdefault(("tcp-from", xivo.name), threading.Lock())
        with lock:
            seen = self._tcp_from.setdefault(xivo.name, {})
            missing = [t for t in dict.fromkeys([*wanted, *prefetch]) if t not in seen]
            if missing:
                seen.update(scan_from(self.ssh, xivo, missing, self.deadline.budget(self.timeout, "tcp connect")))
            return {t: seen[t] for t in wanted}

    def learn_secret(self, value: str) -> None:
        """A secret read on a XiVO, which every output of the run must mask (engine/run.py)."""
        with self._lock:
            self._learned.add(value)

    def learned_secrets(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._learned)

    # -- one probe object per kind of data source, created on first use, cached for the run ------
    def _probe(self, name: str):
        with self._lock:
            if name not in self._sources:
                module, _, cls = SOURCES[name].partition(":")
                self._sources[name] = getattr(importlib.import_module(module), cls)(self)
            return self._sources[name]

    @property
    def consul(self):
        """Consul's HTTP API of each XiVO (probes/consul/agent.py)."""
        return self._probe("consul")

    @property
    def ctid(self):
        """xivo-ctid's REST API `/0.1/infos` (probes/ctid.py)."""
        return self._probe("ctid")

    @property
    def rabbitmq(self):
        """RabbitMQ: rabbitmqctl on-box, AMQP and the federation probe (probes/rabbitmq/broker.py)."""
        return self._probe("rabbitmq")

    @property
    def onbox(self):
        """On-box sources: the `asterisk` database, config files, XIVO_UUID files (probes/onbox.py)."""
        return self._probe("onbox")

    @property
    def web(self):
        """HTTP services: xivo-ctid, xivo-confd, json.php (probes/web.py)."""
        return self._probe("web")

    @property
    def version(self):
        """A XiVO's version as it says it: its version file, or its web interface (probes/version.py)."""
        return self._probe("version")

    @property
    def dird(self):
        """xivo-auth's token and xivo-dird's lookup (probes/dird.py)."""
        return self._probe("dird")

    @property
    def ssh(self):
        """The run's SSH connections to the XiVOs that have an `ssh` section (probes/transport/ssh.py)."""
        with self._lock:
            if self._ssh is None:
                from xivo_doctor.probes.transport.ssh import SshLinks

                self._ssh = SshLinks(self.deadline, self.timeout)
            return self._ssh

    def open(self) -> None:
        """Start, in the background, what the run keeps open beyond a probe: the SSH connection of
        every XiVO reached by SSH (its authentication takes a few hundred ms), while the caller
        imports and loads what the checks need."""
        for xivo in self.topology.xivos:
            if xivo.over_ssh:
                threading.Thread(target=self.ssh.connect, args=(xivo,), name=f"ssh-{xivo.name}", daemon=True).start()

    def close(self) -> None:
        """End what the run keeps open beyond a probe: its xivo-auth tokens (revoked through the SSH
        connections they were asked through, so first), then the SSH connections."""
        if "dird" in self._sources:
            self._sources["dird"].revoke()
        if self._ssh is not None:
            self._ssh.close()

    def cached(self, key: tuple, compute):
        """Compute once per run (per key); concurrent callers wait for the first. A ProbeError is
        remembered and raised again: an unreachable source costs one attempt per run, not one per item."""
        found = self.outcome(key, compute)
        if isinstance(found, ProbeError):
            raise found
        return found

    def outcome(self, key: tuple, compute):
        """As `cached`, but a ProbeError comes back as a value, for callers that report it as data."""
        with self._lock:
            lock = self._key_locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._cache:
                try:
                    self._cache[key] = compute()
                except ProbeError as exc:
                    self._cache[key] = exc
            return self._cache[key]

    def addresses(self, host: str) -> tuple[str, ...]:
        """The IP addresses `host` stands for from here: itself when it is one, what it resolves to
        otherwise (() when it does not), within the probe timeout and the run's deadline; once per run."""
        if is_ip_address(host):
            return (host,)

        def lookup() -> tuple[str, ...]:
            budget = self.deadline.budget(self.timeout, f"DNS {host}")
            pool = ThreadPoolExecutor(max_workers=1)
            try:
                infos = pool.submit(socket.getaddrinfo, host, None, type=socket.SOCK_STREAM).result(budget)
            except socket.gaierror:
                return ()
            except FutureTimeout:
                raise ProbeTimeout(f"DNS {host}", f"no answer within {budget:g} s") from None
            finally:
                pool.shutdown(wait=False)
            return tuple(sorted({i[4][0] for i in infos}))

        return self.cached(("dns", host.lower()), lookup)

    @property
    def vantage(self) -> str:
        """Where the probes come from, as shown in evidence."""
        return socket.gethostname()

    def runs_on_a_xivo(self) -> bool:
        """True when this host holds one of the XiVOs' addresses (it can bind to it)."""
        if self._on_a_xivo is None:
            self._on_a_xivo = any(is_local(x.address) for x in self.topology.xivos)
        return self._on_a_xivo


def is_local(address: str) -> bool:
    """True when this host can bind to `address`: it is this machine's (a XiVO's own, or the lab's)."""
    try:
        infos = socket.getaddrinfo(address, 0, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return False
    family, socktype, proto, _, sockaddr = infos[0]
    with socket.socket(family, socktype, proto) as sock:
        try:
            sock.bind(sockaddr)
        except OSError:
            return False
    return True
