"""probes/prefetch.py: the background reads meet the checks' own reads (same cache keys), nothing
is asked twice, and --passive sends no probe message.

Concurrency contract on hand-made XiVOs (the probe itself replaced by a recorder: it is the
scheduling under test); the keys against the live lab, where the checks are run after the prefetch
and must find every per-pair and per-peer answer already there.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from xivo_doctor.check import Evidence
from xivo_doctor.checks import consul_wan, directory_source, phonebook_restricted, rabbitmq_federation
from xivo_doctor.engine import prefetch, registry
from xivo_doctor.foundation.deadline import Deadline
from xivo_doctor.probes.rabbitmq import amqp_probe
from xivo_doctor.probes.session import Probes
from xivo_doctor.topology import load_topology
from xivo_doctor.topology.model import Pair, RabbitMQAccess, Secret, Topology, Xivo


def start(probes: Probes, checks: list[str], xivos: tuple[Xivo, ...]) -> prefetch.Prefetch:
    """The warm-ups of `checks` (every check when empty) for `xivos` and the pairs that contain them."""
    specs = [s for s in registry.discover() if not checks or s.id in checks]
    names = {x.name for x in xivos}
    pairs = [p for p in probes.topology.pairs if p.xivo.name in names or p.peer.name in names]
    return prefetch.start(probes, specs, xivos, pairs)


# Which cache keys are per pair or per (XiVO, peer): what the prefetch must have asked already.
PER_PAIR = ("rabbitmq-probe", "confd-infos", "phonebook")


def xivos(count: int, password: str | None = "pw") -> tuple[Xivo, ...]:
    access = RabbitMQAccess(password=Secret(password) if password else None)
    return tuple(Xivo(name=f"xivo-{n}", address=f"127.10.4.{n}", rabbitmq=access) for n in range(1, count + 1))


def mesh(nodes: tuple[Xivo, ...]) -> Topology:
    pairs = tuple(Pair(a, b) for a in nodes for b in nodes if a is not b)
    return Topology(name="t", source=Path("t.yml"), xivos=nodes, pairs=pairs)


@pytest.fixture
def sent(monkeypatch):
    """The probe messages sent, by pair (no XiVO here: no rabbitmqctl, the probe alone decides)."""
    calls: list[tuple[str, str]] = []
    lock = threading.Lock()

    def probe(probes, down, up):
        with lock:
            calls.append((down.name, up.name))
        time.sleep(0.02)  # long enough for a check to ask while it is under way
        return {"delivered": True, "published": 1, "waited_s": 0.02, "latency_ms": 1.0}

    monkeypatch.setattr(amqp_probe, "probe_delivery", probe)
    return calls


def test_every_pair_is_probed_once_even_when_the_check_asks_meanwhile(sent):
    topology = mesh(xivos(4))
    probes = Probes(topology, Deadline(30))
    run = start(probes, ["rabbitmq-federation"], topology.xivos)
    answers = [probes.rabbitmq.probe_delivery(p.downstream, p.upstream) for p in topology.pairs]
    assert run.join(10)
    assert all(a["delivered"] for a in answers)
    assert sorted(sent) == sorted((p.downstream.name, p.upstream.name) for p in topology.pairs)


def test_passive_sends_no_probe_message(sent):
    topology = mesh(xivos(3))
    run = start(Probes(topology, Deadline(30), passive=True), [], topology.xivos)
    assert run.join(10)
    assert sent == []


def test_no_probe_without_the_passwords_to_send_it(sent):
    topology = mesh(xivos(3, password=None))
    assert start(Probes(topology, Deadline(30)), ["rabbitmq-federation"], topology.xivos).join(10)
    assert sent == []


def test_only_the_selected_xivos_pairs_are_probed(sent):
    topology = mesh(xivos(4))
    assert start(Probes(topology, Deadline(30)), [], topology.xivos[:1]).join(10)
    assert sorted(sent) == sorted((p.downstream.name, p.upstream.name) for p in topology.pairs
                                  if "xivo-1" in (p.downstream.name, p.upstream.name))


def recording(probes: Probes) -> list[tuple]:
    """The keys `probes` computes from now on (a cache miss), in order."""
    computed: list[tuple] = []
    outcome = probes.outcome

    def spy(key, compute):
        def counted():
            computed.append(key)
            return compute()
        return outcome(key, counted)

    probes.outcome = spy  # type: ignore[method-assign]
    return computed


def test_on_the_lab_the_checks_find_every_per_peer_answer_already_read(lab):
    topology = load_topology(lab.dir / "topology.yml")
    probes = Probes(topology, Deadline(60))
    before = recording(probes)
    assert start(probes, [], topology.xivos).join(30)
    asked = [k for k in before if k[0] in PER_PAIR or k[2:3] == ("health-service",)]
    assert len(asked) == len(set(asked)) and asked, before
    after = recording(probes)
    for x in topology.xivos:
        for check in (directory_source.test_directory_source, phonebook_restricted.test_phonebook_restricted,
                      consul_wan.test_consul_wan):
            check(xivo=x, topology=topology, probes=probes, evidence=Evidence())
    for pair in topology.pairs:
        rabbitmq_federation.test_rabbitmq_federation(pair=pair, topology=topology, xivos=topology.xivos,
                                                     probes=probes, evidence=Evidence())
    # every per-peer answer the checks needed was read by the prefetch, under the same key
    assert [k for k in after if k[0] in PER_PAIR or k[2:3] == ("health-service",)] == []
    assert {k[0] for k in asked} == set(PER_PAIR) | {"consul"}


def test_on_the_lab_passive_prefetch_sends_no_probe(lab):
    topology = load_topology(lab.dir / "topology.yml")
    probes = Probes(topology, Deadline(60), passive=True)
    computed = recording(probes)
    assert start(probes, [], topology.xivos).join(30)
    assert ("rabbitmq-federation", "xivo-1") in computed
    assert not [k for k in computed if k[0] == "rabbitmq-probe"]


def test_the_pool_ends_with_the_run():
    """A run's warm-up pool ends when the run closes (before, its 16 workers waited for good: a process
    making runs one after another, as the tests do, gathered hundreds of threads and slowed down run by
    run, from 0.3 s to 2 s a run over 110 runs)."""
    run = prefetch.Prefetch(workers=4)
    done = []
    for n in range(6):
        run.submit(lambda n=n: done.append(n))
    assert run.join(10) and sorted(done) == list(range(6))
    workers = [t for t in run.threads if t.name == "prefetch-pool"]
    assert len(workers) == 4 and all(t.is_alive() for t in workers)
    run.close()
    for thread in workers:
        thread.join(5)
    assert not [t for t in workers if t.is_alive()]
    run.close()  # twice is harmless


def test_a_run_closes_its_warm_up(monkeypatch, tmp_path):
    from xivo_doctor.engine.options import RunOptions
    from xivo_doctor.engine.plugin import run_checks
    from xivo_doctor.engine.run import Run

    closed = []
    monkeypatch.setattr(prefetch.Prefetch, "close", lambda self: closed.append(self))
    path = tmp_path / "t.yml"
    # nothing listens on these loopback addresses: every read is refused at once
    path.write_text("name: t\nprobe_timeout: 1\ndefaults:\n  version: '16.13'\nxivos:\n"
                    "- {name: xivo-1, address: 127.10.4.1}\n- {name: xivo-2, address: 127.10.4.2}\n")
    run_checks(Run(RunOptions(topology=load_topology(path), timeout=30)))
    assert len(closed) == 1
