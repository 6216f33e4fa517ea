"""lab: real RabbitMQ nodes federated as the XiVO manual says (LAB-NOTES §A) — two real brokers.

xivo-1 / xivo-2 on 127.10.230.1 / .2, distribution 25801 / 25802, and their own epmd on 4371
so a lab running on this machine (epmd 4370, dist 257xx) is never disturbed. Timings are
printed (`pytest -s`).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pika
import pytest
from services import starts_services

from xivo_doctor.lab import rabbitmq as rmq
from xivo_doctor.lab.rabbitmq import federation

pytestmark = [
    pytest.mark.skipif(not (rmq.RABBITMQ_BIN / "rabbitmq-server").exists() or not shutil.which("epmd"),
                       reason="rabbitmq-server (Debian) and epmd are needed"),
]

EPMD_PORT = 4371  # not the lab's 4370
TIMINGS: dict[str, float] = {}


def _amqp_port(addresses: list[str]) -> int:
    """5672 as on XiVO, unless a broker the tests did not start holds it on 0.0.0.0 (LAB-NOTES §A.7)."""
    for port in (5672, 15673, 25673):
        try:
            for address in addresses:
                with socket.socket() as probe:
                    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    probe.bind((address, port))
            return port
        except OSError:
            continue
    pytest.skip("no free AMQP port on 127.10.230.x")


def _concurrently(function: Callable[[rmq.RabbitNode], object], nodes: list[rmq.RabbitNode]) -> list[object]:
    results: list[object] = [None] * len(nodes)

    def run(i: int) -> None:
        try:
            results[i] = function(nodes[i])
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(nodes))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def _lab_processes(lab: Path) -> list[str]:
    """Live (not zombie) processes whose command line names this lab's directory (beam.smp's -mnesia dir)."""
    out = subprocess.run(["ps", "-eo", "pid,stat,comm,args"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines()[1:] if str(lab) in line and line.split()[1][0] != "Z"]


def _wait_link(node: rmq.RabbitNode, lab: Path, upstream: str, state: str, timeout: float) -> tuple[float, str]:
    """Poll the manual's status command until the link to `upstream` is `state` (prefix); (seconds, raw)."""
    began = time.monotonic()
    while True:
        raw = rmq.federation_status(node, lab)
        if rmq.link_states(raw).get(upstream, "").startswith(state):
            return time.monotonic() - began, raw
        if time.monotonic() - began > timeout:
            pytest.fail(f"{node.name}: link to {upstream} not {state} after {timeout} s:\n{raw}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
@starts_services
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[rmq.RabbitNode]]]:
    lab_dir = tmp_path_factory.mktemp("rmqlab")
    addresses = ["127.10.230.1", "127.10.230.2"]
    port = _amqp_port(addresses)
    nodes = [rmq.RabbitNode(f"xivo-{i}", i, address, lab_dir / "nodes" / f"xivo-{i}" / "root", amqp_port=port,
                            dist_port=25800 + i, epmd_port=EPMD_PORT) for i, address in enumerate(addresses, 1)]
    try:
        rmq.start_epmd(lab_dir, EPMD_PORT)
        for node in nodes:
            rmq.write_config(node)
            rmq.write_ctl_wrappers(node, lab_dir)
        began = time.monotonic()
        for node in nodes:
            rmq.start(node, lab_dir)
        _concurrently(lambda node: rmq.wait_ready(node, 60), nodes)
        TIMINGS["start both (launch -> AMQP accepted)"] = time.monotonic() - began
        began = time.monotonic()
        _concurrently(lambda node: rmq.setup_federation(node, lab_dir, [p for p in nodes if p is not node]), nodes)
        TIMINGS["federation setup (both, concurrently)"] = time.monotonic() - began
        yield lab_dir, nodes
    finally:
        began = time.monotonic()
        _concurrently(lambda node: rmq.stop(node, lab_dir), nodes)
        TIMINGS["stop both (rabbitmqctl stop)"] = time.monotonic() - began
        rmq.stop_epmd(lab_dir)
        print("\nlab RabbitMQ timings:\n" + "".join(f"  {k}: {v * 1000:.0f} ms\n" for k, v in TIMINGS.items()))
        leftovers = _lab_processes(lab_dir)
        assert not leftovers, f"processes left behind: {leftovers}"


def _connect(node: rmq.RabbitNode, user: str = "xivo", password: str = "xivo") -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.ConnectionParameters(
        node.address, node.amqp_port, credentials=pika.PlainCredentials(user, password), socket_timeout=2))


def test_config_files_are_the_manuals(lab):
    lab_dir, (one, _) = lab
    etc = one.root / "etc/rabbitmq"
    assert (etc / "rabbitmq.conf").read_text().splitlines()[-1] == f"listeners.tcp.1 = 127.10.230.1:{one.amqp_port}"
    assert "loopback_users" not in (etc / "rabbitmq.conf").read_text()  # RabbitMQ's default, as on XiVO
    assert (etc / "enabled_plugins").read_text().strip() == "[rabbitmq_federation]."
    assert "{inet_dist_use_interface, {127,0,0,1}}" in (etc / "advanced.config").read_text()
    assert (etc / "rabbitmq-env.conf").read_text() == ""
    cookie = rmq.rabbitmq_home(lab_dir) / ".erlang.cookie"
    assert cookie.stat().st_mode & 0o777 == 0o400
    assert (one.root / "var/lib/rabbitmq/mnesia/xivo-1@localhost").is_dir()
    assert (one.root / "var/log/rabbitmq/xivo-1@localhost.log").exists()
    assert rmq.is_running(one)


def test_both_accept_amqp(lab):
    _, nodes = lab
    for node in nodes:
        for user in ("xivo", "guest"):  # guest: every lab address is loopback (LAB-NOTES §A.7)
            connection = _connect(node, user, user)
            assert connection.is_open
            connection.close()


def test_links_running_both_ways(lab):
    lab_dir, (one, two) = lab
    _, raw = _wait_link(one, lab_dir, "xivo-2", "running", 10)
    assert "{status,running}" in raw and '{upstream,<<"xivo-2">>}' in raw
    assert f'{{uri,<<"amqp://{two.address}' in raw  # credentials stripped (§A.5)
    _, raw = _wait_link(two, lab_dir, "xivo-1", "running", 10)
    assert "{status,running}" in raw and '{upstream,<<"xivo-1">>}' in raw


def _first_delivery(consumer: rmq.RabbitNode, publisher: rmq.RabbitNode,
                    timeout: float = 3) -> tuple[float, int, dict]:
    """LAB-NOTES §A.6: bind on the consumer's `xivo`, republish on the publisher every 20 ms until one arrives."""
    key = f"diag.probe.{uuid.uuid4()}"
    received: list[pika.BasicProperties] = []
    inbound, outbound = _connect(consumer), _connect(publisher)
    try:
        channel = inbound.channel()
        queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
        channel.basic_consume(queue, lambda ch, method, props, body: received.append(props), auto_ack=True)
        channel.queue_bind(queue, rmq.EXCHANGE, routing_key=key)
        began = time.monotonic()
        out = outbound.channel()
        sent = 0
        while not received:
            if time.monotonic() - began > timeout:
                pytest.fail(f"nothing from {publisher.name} reached {consumer.name} in {timeout} s ({sent} sent)")
            out.basic_publish(rmq.EXCHANGE, key, f"probe {sent}".encode())
            sent += 1
            inbound.process_data_events(time_limit=0.02)
        return time.monotonic() - began, sent, received[0].headers or {}
    finally:
        inbound.close()
        outbound.close()


@pytest.mark.parametrize("direction", ["xivo-2 -> xivo-1", "xivo-1 -> xivo-2"])
def test_end_to_end_delivery(lab, direction):
    _, (one, two) = lab
    publisher, consumer = (two, one) if direction.startswith("xivo-2") else (one, two)
    latency, sent, headers = _first_delivery(consumer, publisher)
    TIMINGS[f"first delivery {direction} (after queue_bind; {sent} published)"] = latency
    assert latency < 3
    assert headers["x-received-from"][0]["uri"] == f"amqp://{publisher.address}"  # came through the link


def test_wrong_password_shows_auth_failure_then_recovers(lab):
    lab_dir, (one, two) = lab
    rmq.set_upstream(one, lab_dir, two, password="WRONG")
    try:
        seconds, raw = _wait_link(one, lab_dir, "xivo-2", "error:auth_failure", 6)
        assert "ACCESS_REFUSED" in raw
        TIMINGS["wrong password -> auth_failure shown"] = seconds
    finally:
        rmq.set_upstream(one, lab_dir, two)
    seconds, _ = _wait_link(one, lab_dir, "xivo-2", "running", 10)
    TIMINGS["password restored -> running"] = seconds


def test_ctl_argv_lists_the_policy(lab):
    lab_dir, (one, _) = lab
    argv = rmq.ctl_argv(one, lab_dir)
    assert argv[:2] == ["env", "-i"] and argv[-1] == "/usr/lib/rabbitmq/bin/rabbitmqctl"
    assert f"ERL_EPMD_PORT={EPMD_PORT}" in argv and "RABBITMQ_NODENAME=xivo-1@localhost" in argv
    out = subprocess.run([*argv, "list_policies"], capture_output=True, text=True, timeout=30, check=True).stdout
    assert "federate-xivo\txivo\texchanges\t{\"federation-upstream-set\":\"all\"}\t1" in out


def test_wrapper_scripts(lab):
    _, (one, two) = lab
    bin_dir = one.root.parent / "bin"
    out = subprocess.run([bin_dir / "rabbitmqctl", "list_parameters"], capture_output=True, text=True, timeout=30,
                         check=True).stdout
    assert f'federation-upstream\txivo-2\t{{"max-hops":1,"uri":"amqp://xivo:xivo@{two.address}' in out
    plugins = subprocess.run([bin_dir / "rabbitmq-plugins", "list", "-e"], capture_output=True, text=True,
                             timeout=30, check=True).stdout
    assert "[E*] rabbitmq_federation" in plugins and "management" not in plugins


def test_setup_is_idempotent(lab):
    lab_dir, (one, two) = lab
    rmq.setup_federation(one, lab_dir, [two])  # the user exists: password changed, nothing fails
    _wait_link(one, lab_dir, "xivo-2", "running", 10)


def test_restore_imports_the_saved_definitions_back_in_one_command(lab, monkeypatch):
    lab_dir, (one, two) = lab
    healthy = lab_dir / "xivo-1.federation.healthy"
    rmq.restore_federation(one, lab_dir, [two], healthy)  # nothing saved yet: the manual's commands, then saved
    assert healthy.is_file() and healthy.with_suffix(".json").is_file()
    rmq.set_upstream(one, lab_dir, two, password="WRONG")
    rmq.ctl(one, lab_dir, "clear_policy", "federate-xivo")
    asked: list[str] = []
    real = federation.ctl
    monkeypatch.setattr(federation, "ctl", lambda node, where, *args, **kw: asked.append(args[0]) or real(
        node, where, *args, **kw))
    rmq.restore_federation(one, lab_dir, [two], healthy)
    assert asked == ["eval", "import_definitions", "eval"]  # read, import, read again: no `set_*` command
    assert rmq.federation_state(one, lab_dir) == healthy.read_text()
    _wait_link(one, lab_dir, "xivo-2", "running", 10)


def test_restore_leaves_a_node_alone_and_says_its_links_run_and_enables_a_disabled_plugin_only(lab, monkeypatch):
    lab_dir, (one, two) = lab
    healthy = lab_dir / "xivo-1.federation.healthy"
    rmq.save_healthy(one, lab_dir, healthy)  # as `lab up` does after the manual's commands
    _wait_link(one, lab_dir, "xivo-2", "running", 10)
    asked: list[str] = []
    real = federation.ctl
    monkeypatch.setattr(federation, "ctl", lambda node, where, *args, **kw: asked.append(args[0]) or real(
        node, where, *args, **kw))
    # nothing changed: one eval, which also saw the link running (heal then asks no second rabbitmqctl)
    assert rmq.restore_federation(one, lab_dir, [two], healthy) is True
    assert asked == ["eval"]
    # the plugin disabled (`rabbitmq-plugins disable`): enabling it gives every definition back
    real(one, lab_dir, "disable", "rabbitmq_federation", tool="rabbitmq-plugins")
    asked.clear()
    assert rmq.restore_federation(one, lab_dir, [two], healthy) is False  # changed: heal asks for the links
    assert asked == ["eval", "enable", "eval"]
    assert rmq.federation_state(one, lab_dir) == healthy.read_text()
    _wait_link(one, lab_dir, "xivo-2", "running", 10)


def test_restart_one_node_relinks(lab):
    lab_dir, (one, two) = lab
    began = time.monotonic()
    rmq.stop(two, lab_dir)
    TIMINGS["stop one node"] = time.monotonic() - began
    assert not rmq.is_running(two) and not two.pid_file.exists()
    assert not [line for line in _lab_processes(lab_dir) if "xivo-2@localhost" in line]
    _wait_link(one, lab_dir, "xivo-2", "error:econnrefused", 6)  # upstream down (§A.5)
    began = time.monotonic()
    rmq.start(two, lab_dir)
    rmq.wait_ready(two, 60)
    TIMINGS["restart one node -> AMQP accepted"] = time.monotonic() - began
    seconds, _ = _wait_link(one, lab_dir, "xivo-2", "running", 10)  # the link retries every 5 s (§A.5)
    TIMINGS["node back -> link running again"] = seconds
    _wait_link(two, lab_dir, "xivo-1", "running", 10)
    _first_delivery(one, two)
