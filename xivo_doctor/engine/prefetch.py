"""Warm the run's cache in the background as soon as the run starts.

Place in the pipeline: acquisition. Pytest runs the items one after another; without this, what a
check asks per pair or per peer is waited for item by item. Two kinds of background reads:
- chains, one thread per XiVO and source: the slow reads of one XiVO (rabbitmqctl: an Erlang VM
  boot per call, LAB-NOTES §A.3; Consul's HTTPS API: a TLS handshake per call; the on-box
  database), started while pytest starts, collects and runs the fast checks;
- a bounded pool (POOL_SIZE workers) for the many small requests, each ready to be sent once what
  decides it is read: the federation probe of each pair (LAB-NOTES §A.6) once both ends' states
  are, and directory-source's / phonebook-restricted's request to each peer once the XiVO's
  `directories` table is.
Every read goes through the same probe method, hence `Probes.cached` with the same key, as the
check: a check then finds the answer or waits for the read under way (one lock per key), nothing
is asked twice, and the checks conclude exactly what they would without this. A request is sent
here only where the check would send it (same conditions, mirrored below; the lab test
tests/test_prefetch.py proves the keys meet), so a run writes nothing more than before:
`--passive` sends no probe message, a pair whose link is not running gets none. Failures are left
in the cache (ProbeError) or dropped (any other error: the check asks again and reports it).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence

from xivo_doctor.foundation.netaddr import is_ip_address
from xivo_doctor.probes.session import Probes
from xivo_doctor.topology.model import Pair, Xivo
from xivo_doctor.xivo.directories import by_peer, parse_uri
from xivo_doctor.xivo.versions import phonebook_sharing_applies

Task = Callable[[], object]
POOL_SIZE = 16  # concurrent small requests: enough to overlap 90 pairs' round trips, few enough for 2 CPUs
# What the checks send, mirrored (checks/directory_source.py, checks/phonebook_restricted.py).
CONFD_CLIENT_PORT = 9486  # xivo_confd_client's default when a directory URI has no port (XIVO-FACTS §6.2)
PHONEBOOK_TERM = "xivo-doctor"  # phonebook-restricted's SEARCH_TERM: part of the cache key
EXCHANGE = "xivo"  # the federated exchange (XIVO-FACTS §5)
SERF_ALIVE = 1  # serf's MemberStatus of an alive WAN member (checks/consul_wan.py ALIVE)


class Prefetch:
    """The background reads of one run. Every thread is a daemon: a read still hanging at the
    deadline never delays the exit."""

    def __init__(self, workers: int = POOL_SIZE) -> None:
        self._tasks: queue.SimpleQueue[Task | None] = queue.SimpleQueue()
        self._workers = workers
        self._pending = 0
        self._pool_started = False
        self._idle = threading.Condition()
        self.threads: list[threading.Thread] = []

    def chain(self, tasks: list[Task]) -> None:
        """Run `tasks` one after another in a thread of their own."""
        self._started()
        self._spawn(lambda: self._run(tasks), "prefetch")

    def submit(self, task: Task) -> None:
        """Run `task` in the pool (started on first use)."""
        with self._idle:  # chains submit concurrently: the pool is started once
            self._pending += 1
            first, self._pool_started = not self._pool_started, True
        if first:
            for _ in range(self._workers):
                self._spawn(self._work, "prefetch-pool")
        self._tasks.put(task)

    def join(self, timeout: float) -> bool:
        """Wait until every chain and pooled task is done (tests, benchmarks); False at `timeout`."""
        end = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self.threads.append(thread)
        thread.start()

    def _started(self) -> None:
        with self._idle:
            self._pending += 1

    def _done(self) -> None:
        with self._idle:
            self._pending -= 1
            self._idle.notify_all()

    def _work(self) -> None:
        while True:
            task = self._tasks.get()
            if task is not None:
                self._run([task])

    def _run(self, tasks: list[Task]) -> None:
        try:
            for task in tasks:
                try:
                    task()
                except Exception:  # cached (ProbeError) or asked again by the check, which reports it
                    continue
        finally:
            self._done()


def start(probes: Probes, checks: Iterable[str], xivos: Sequence[Xivo]) -> Prefetch:
    """Start the background reads the checks `checks` (all when empty) will need for `xivos`."""
    wanted = set(checks)

    def on(check: str) -> bool:
        return not wanted or check in wanted

    topology = probes.topology
    names = {x.name for x in xivos}
    run = Prefetch()
    if on("rabbitmq-federation"):
        pairs = [p for p in topology.pairs if p.xivo.name in names or p.peer.name in names]
        run.chain([lambda: _federation(probes, pairs, run)])
        if not probes.passive and pairs:
            run.chain([_load_pika])  # while rabbitmqctl runs, not after it, when the probes are sent
    if on("consul-wan") or on("ctid-advertise"):
        # `probes.consul` is read in the chains, not here: its import (python-consul2, requests)
        # would otherwise hold this thread, and the chains started after it, for ~70 ms.
        for x in xivos:
            chain = [_ask(probes, "consul", "agent_self", x)]
            if on("consul-wan"):
                chain += [_ask(probes, "consul", m, x) for m in ("leader", "wan_members", "datacenters")]
            if on("ctid-advertise"):
                chain += [_ask(probes, "ctid", "infos", x), _ask(probes, "consul", "agent_services", x),
                          _ask(probes, "consul", "agent_checks", x)]
            if on("consul-wan"):
                chain.append(lambda x=x: _dc_queries(probes, x, run))
            run.chain(chain)
    if on("uuid-unique") or on("directory-source"):
        onbox = probes.onbox
        for x in (x for x in topology.xivos if onbox.has_database(x)):
            run.chain([_bind(onbox.uuid_readings, x)])
    for x in xivos:
        if on("directory-source"):
            run.chain([lambda x=x: _directory_requests(probes, x, run)])
        if on("phonebook-restricted"):
            run.chain([lambda x=x: _phonebook_requests(probes, x, run)])
    return run


def _load_pika() -> None:
    from xivo_doctor.probes import amqp_probe  # noqa: F401  (pika: ~0.1 s of imports)


def _ask(probes: Probes, source: str, method: str, xivo: Xivo) -> Task:
    """`probes.<source>.<method>(xivo)`, the source looked up when the task runs (in its thread)."""
    return lambda: getattr(getattr(probes, source), method)(xivo)


def _bind(method: Callable[[Xivo], object], xivo: Xivo) -> Task:
    return lambda: method(xivo)


# -- rabbitmq-federation: the probe message of each pair -------------------------------------------

def _federation(probes: Probes, pairs: Sequence[Pair], run: Prefetch) -> None:
    """Read every downstream's state at once (rabbitmqctl per XiVO, concurrently), then send the
    probe of each pair the check would probe."""
    rabbit = probes.rabbitmq
    downstreams = {p.downstream.name for p in probes.topology.pairs}
    # The states that decide: each pair's downstream, and its upstream's when it is a downstream too.
    states = {x.name: x for p in pairs for x in (p.downstream, p.upstream) if x.name in downstreams}
    for x in states.values():
        run.chain([_bind(rabbit.federation_running, x)])
    for pair in pairs:  # in order: a downstream's probes leave as soon as the states they need are read
        if _would_probe(probes, pair, pair.upstream.name in downstreams):
            run.submit(lambda pair=pair: rabbit.probe_delivery(pair.downstream, pair.upstream))


def _would_probe(probes: Probes, pair: Pair, upstream_reports: bool) -> bool:
    """As test_rabbitmq_federation decides to send the probe (checks/rabbitmq_federation.py): not
    passive, both passwords known, the downstream's configuration not failed (approximated: its
    plugin runs and a link on `xivo` from an upstream at the peer's address is running) and the
    upstream's plugin not known off."""
    down, up, rabbit = pair.downstream, pair.upstream, probes.rabbitmq
    if probes.passive or not (down.rabbitmq.password and up.rabbitmq.password):
        return False
    if rabbit.source(down) is not None and not _link_may_run(rabbit, down, up):
        return False
    return not (upstream_reports and rabbit.federation_running(up) is False)


def _link_may_run(rabbit, down: Xivo, up: Xivo) -> bool:
    """False when the downstream's state says no probe will be sent: unreadable, plugin off, or the
    link from each upstream at `up`'s address is not running. An upstream URI naming a host (the
    check resolves it) is given the benefit of the doubt."""
    if not rabbit.federation_running(down):
        return False
    upstreams = rabbit.upstreams(down)
    hosts = {name: {(u["host"] or "").lower() for u in value["uris"]} for name, value in upstreams.items()}
    if any(not is_ip_address(h) for hs in hosts.values() for h in hs):
        return True
    aimed = {name for name, hs in hosts.items() if up.address.lower() in hs}
    return any(link["upstream"] in aimed and link["exchange"] == EXCHANGE and link["status"] == "running"
               for link in rabbit.federation_links(down) or [])


# -- consul-wan: the cross-datacenter query for each peer ------------------------------------------

def _dc_queries(probes: Probes, xivo: Xivo, run: Prefetch) -> None:
    """The `?dc=` query test_consul_wan sends through `xivo`'s Consul for each alive peer's
    datacenter (checks/consul_wan.py), when the pool is healthy: a leader, every peer alive at its
    address, distinct datacenters. Otherwise the check asks what it needs itself."""
    consul = probes.consul
    if not consul.leader(xivo):
        return
    dc = str(consul.agent_self(xivo)["Config"].get("Datacenter", ""))
    members = consul.wan_members(xivo)
    peers = [p for p in probes.topology.xivos if p.name != xivo.name]
    alive = {p.name: [m for m in members if m.get("Addr") == p.address and m.get("Status") == SERF_ALIVE]
             for p in peers}
    if not all(alive.values()):
        return
    dcs = [str((m.get("Tags") or {}).get("dc") or str(m.get("Name", "")).partition(".")[2])
           for m in (found[0] for found in alive.values())]
    known = consul.datacenters(xivo)
    if len(set(dcs)) < len(dcs) or dc in dcs:
        return
    for peer_dc in (d for d in dcs if d and d in known):
        run.submit(lambda peer_dc=peer_dc: consul.dc_query(xivo, peer_dc))


# -- directory-source and phonebook-restricted: one request per directory to a peer ----------------

def _directory_requests(probes: Probes, xivo: Xivo, run: Prefetch) -> None:
    """The `GET /1.1/infos` test_directory_source sends for each remote `xivo` directory whose URI
    is the peer's confd (checks/directory_source.py `_request_problems`)."""
    onbox = probes.onbox
    if not onbox.has_database(xivo):
        return
    sender = xivo.on_box.source_address if xivo.on_box else None
    for row, peer in by_peer(onbox.directories(xivo), "xivo", xivo, probes.topology)[0]:
        scheme, _, port = parse_uri(row["uri"])
        if scheme != "https" or (port or CONFD_CLIENT_PORT) != peer.confd.port:
            continue
        credentials = bool(row["xivo_username"] and row["xivo_password"])
        if not credentials and not sender:
            continue
        run.submit(lambda row=row, peer=peer, credentials=credentials: probes.web.confd_infos(
            peer, from_xivo=xivo, verify=peer.confd.verify,
            username=row["xivo_username"] if credentials else None,
            password=row["xivo_password"] if credentials else None))


def _phonebook_requests(probes: Probes, xivo: Xivo, run: Prefetch) -> None:
    """The json.php search test_phonebook_restricted sends for each restricted phonebook directory
    (checks/phonebook_restricted.py `_judge`), where the check applies (≤ 16.13, XIVO-FACTS §0)."""
    onbox = probes.onbox
    if not (xivo.webservices.phonebook_sharing and onbox.has_database(xivo) and xivo.on_box
            and xivo.on_box.source_address):
        return
    version = onbox.version_file(xivo) if onbox.has_root(xivo) else None
    if not phonebook_sharing_applies(version if version is not None else xivo.version):
        return
    for row, peer in by_peer(onbox.directories(xivo), "phonebook", xivo, probes.topology)[0]:
        url = row["uri"] or ""
        if "/json.php/private/" in url or "/json.php/restricted/" not in url:
            continue
        run.submit(lambda url=url, peer=peer: probes.web.phonebook(
            url, from_xivo=xivo, term=PHONEBOOK_TERM, verify=peer.webservices.verify))
