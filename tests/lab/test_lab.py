"""The lab, live: it comes up healthy, each fault shows its real symptom through the real tool, heal
restores health. One lab for the session (tests/lab_fixture.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pika
import pytest
import requests
import yaml
from lab_fixture import eventually, tcp_state, traces_of
from services import starts_services

from xivo_doctor.lab import faults, healing, lifecycle, postgres, rabbitmq
from xivo_doctor.lab.state import LabError
from xivo_doctor.topology import load_topology


def consul(state, node, path, token=True, **params):
    headers = {"X-Consul-Token": node.master_token} if token else {}
    return requests.get(f"https://{node.address}:8500{path}", params=params, headers=headers, verify=False, timeout=5)


def ctl(state, node, *args, tool="rabbitmqctl"):
    argv = rabbitmq.ctl_argv(lifecycle.rabbit(state, node), state.dir, tool=tool)
    return subprocess.run([*argv, *args], capture_output=True, text=True, timeout=60).stdout


def psql(state, node, statement):
    argv, env = postgres.psql(lifecycle.dsn(state, node), statement)
    done = subprocess.run([*argv, "-A", "-t"], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def federation(state, node):
    return rabbitmq.federation_status(lifecycle.rabbit(state, node), state.dir)


def message_crosses(state, upstream, downstream, timeout=5.0) -> float | None:
    """Publish on the upstream's `xivo` exchange until a message arrives on the downstream's."""
    import time

    password = "xivo"
    creds = pika.PlainCredentials("xivo", password)
    down = pika.BlockingConnection(pika.ConnectionParameters(downstream.address, downstream.amqp_port,
                                                             credentials=creds, socket_timeout=3))
    up = pika.BlockingConnection(pika.ConnectionParameters(upstream.address, upstream.amqp_port,
                                                           credentials=creds, socket_timeout=3))
    try:
        channel = down.channel()
        queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
        key = f"xivo_doctor.probe.{uuid.uuid4()}"
        channel.queue_bind(queue, "xivo", routing_key=key)
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            up.channel().basic_publish("xivo", key, b"probe")
            method, _, _ = channel.basic_get(queue, auto_ack=True)
            if method is not None:
                return time.monotonic() - started
            down.sleep(0.02)
        return None
    finally:
        down.close()
        up.close()


def test_the_lab_comes_up_healthy(lab):
    one, two = lab.nodes
    assert all(row[4] == "up" for row in lifecycle.status(lab.dir)), lifecycle.status(lab.dir)
    for node in lab.nodes:
        assert federation(lab, node).count("{status,running}") == 1
        members = consul(lab, node, "/v1/agent/members", wan="1").json()
        assert sorted((m["Name"], m["Status"]) for m in members) == [("xivo-lab-1.xivo-lab-1", 1),
                                                                      ("xivo-lab-2.xivo-lab-2", 1)]
        services = consul(lab, node, "/v1/agent/services").json()
        ctid = [s for s in services.values() if s["Service"] == "xivo-ctid"]
        assert [(s["Address"], s["Port"], s["Tags"]) for s in ctid] == [(node.address, 9495, [node.uuid, "xivo-ctid"])]
        assert requests.get(f"http://{node.address}:9495/0.1/infos", timeout=3).json()["uuid"] == node.uuid
        assert psql(lab, node, "SELECT uuid FROM infos") == node.uuid
    assert message_crosses(lab, one, two) is not None
    assert message_crosses(lab, two, one) is not None
    # what a peer's xivo-ctid 16.13 asks through ?dc= (R1 §5: the catalog, token-less). Consul 0.7.0
    # filters discovery by the token's rights and 16.13's anonymous token has none (R1 §4): the other
    # datacenter answers, with nothing in it for anonymous; with its own master token, its ctid
    seen = consul(lab, one, "/v1/catalog/service/xivo-ctid", token=False, dc="xivo-lab-2")
    assert (seen.status_code, seen.json()) == (200, [])
    own = consul(lab, two, "/v1/catalog/service/xivo-ctid").json()
    assert [e["ServiceTags"][0] for e in own] == [two.uuid]


def test_the_topology_it_writes_loads_with_on_box_access(lab):
    """On-box access to nodes sharing this host; SSH only to nodes that are hosts of their own."""
    topology = load_topology(lab.dir / "topology.yml")
    assert [(x.name, x.address) for x in topology.xivos] == [(n.name, n.address) for n in lab.nodes]
    first = topology.xivos[0]
    if lab.net_id:
        assert first.on_box is None and first.ssh.identity_file == lab.dir / "ssh/id"
        assert first.ssh.known_hosts_file == lab.dir / "ssh/known_hosts" and first.ssh.user == "root"
        assert first.consul.token is None  # over SSH the doctor reads the node's master token
        # the doctor installed on xivo-2: that node on the box, from inside it (its paths are its own)
        on_two = yaml.safe_load((lab.dir / "topology-on-xivo-2.yml").read_text())
        assert [("on_box" in x, x["name"]) for x in on_two["xivos"]] == [(False, "xivo-1"), (True, "xivo-2")]
        assert on_two["xivos"][1]["on_box"]["root"] == "/"
        assert on_two["xivos"][1]["on_box"]["source_address"] == lab.nodes[1].address
        assert on_two["xivos"][1]["consul"]["token_file"] == "/var/lib/consul/master_token"
    else:
        assert first.on_box.root == lab.dir / "nodes/xivo-1/root" and first.ssh is None
        assert first.on_box.source_address == lab.nodes[0].address
        assert first.consul.token.reveal() == lab.nodes[0].master_token
    assert first.rabbitmq.password.reveal() == "xivo"
    assert [p.id for p in topology.pairs] == ["xivo-1->xivo-2", "xivo-2->xivo-1"]
    # each node declares its own release; two 16.13 nodes share their phonebooks (16.03-16.13)
    assert [(x.version, x.webservices.phonebook_sharing) for x in topology.xivos] == [("16.13", True)] * 2


def test_lab_up_again_is_idempotent(lab):
    pids = {(r[0], r[1]): r[2] for r in lifecycle.status(lab.dir)}
    lifecycle.up(lab.dir, count=2, say=lambda _: None)
    assert {(r[0], r[1]): r[2] for r in lifecycle.status(lab.dir)} == pids


def test_lab_up_again_adds_the_doctors_web_services_user_a_lab_made_before_it_lacks(lab):
    node, other = lab.nodes[1], lab.nodes[0]
    login = postgres.LOOKUP_USER["login"]
    row = f"SELECT name, acl FROM accesswebservice WHERE login = '{login}'"
    before = psql(lab, node, row)
    # as on a lab made before the row was part of it; on the other node, a row a fault emptied stays empty
    psql(lab, node, f"DELETE FROM accesswebservice WHERE login = '{login}'")
    psql(lab, other, f"UPDATE accesswebservice SET acl = '{{}}' WHERE login = '{login}'")
    try:
        said: list[str] = []
        lifecycle.up(lab.dir, count=2, say=said.append)
        assert psql(lab, node, row) == before
        assert psql(lab, other, row).endswith("|{}")
        assert [line for line in said if login in line] and not [line for line in said if other.name + ":" in line]
    finally:
        healing.heal(lab.dir, say=lambda _: None)


def test_doctor_run_on_the_healthy_lab_is_ok(lab):
    done = subprocess.run(["xivo-doctor", "run", "-T", str(lab.dir / "topology.yml"), "--json", "-"],
                          capture_output=True, text=True, timeout=60)
    data = json.loads(done.stdout)
    assert done.returncode == 0 and data["verdict"] == "OK", done.stdout


# Each fault: the symptom an admin would observe with the real tool, on xivo-2 (peer xivo-1).
def _dup_uuid(lab, node, peer):
    return (psql(lab, node, "SELECT uuid FROM infos") == peer.uuid
            and requests.get(f"http://{node.address}:9495/0.1/infos", timeout=3).json()["uuid"] == peer.uuid)


def _uuid_not_configured(lab, node, peer):
    root = lab.root(node)
    return (not (root / "etc/profile.d/xivo_uuid.sh").exists()
            and "undefined environment variable XIVO_UUID" in (root / "var/log/xivo-ctid.log").read_text()
            and tcp_state(node.address, 9495) == "refused")


def _advertise_localhost(lab, node, peer):
    services = consul(lab, node, "/v1/agent/services").json().values()
    return [s["Address"] for s in services if s["Service"] == "xivo-ctid"] == ["localhost"]


def _listen_loopback(lab, node, peer):
    if lab.net_id:  # the node's own 127.0.0.1, tried on the node
        inside = subprocess.run([*lab.enter(node), "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9495"],
                                capture_output=True, timeout=10)
        return tcp_state(node.address, 9495) == "refused" and inside.returncode == 0
    return tcp_state(node.address, 9495) == "refused" and tcp_state("127.0.0.1", 9495) == "open"


def _not_joined(lab, node, peer):
    names = {m["Name"]: m["Status"] for m in consul(lab, peer, "/v1/agent/members", wan="1").json()}
    return names.get(f"{node.hostname}.{node.hostname}") != 1 and len(consul(
        lab, node, "/v1/agent/members", wan="1").json()) == 1


def _peer_down(lab, node, peer):
    answer = consul(lab, peer, "/v1/health/service/xivo-ctid", dc=node.hostname)
    return tcp_state(node.address, 8500) == "refused" and (answer.status_code, answer.text) == (
        500, "No path to datacenter")


SYMPTOMS = {
    "duplicate-uuid": _dup_uuid,
    "uuid-not-configured": _uuid_not_configured,
    "ctid-advertise-localhost": _advertise_localhost,
    "ctid-listen-loopback": _listen_loopback,
    "consul-not-joined": _not_joined,
    "consul-peer-down": _peer_down,
    "port-closed": lambda lab, node, peer: tcp_state(node.address, 9486) == "refused",
    "federation-upstream-missing": lambda lab, node, peer: peer.name not in ctl(lab, node, "list_parameters")
    and "{status,running}" not in federation(lab, node),
    "federation-wrong-password": lambda lab, node, peer: "auth_failure" in federation(lab, node),
    "federation-policy-missing": lambda lab, node, peer: "federate-xivo" not in ctl(lab, node, "list_policies")
    and federation(lab, node).strip().endswith("[]"),
    "federation-plugin-disabled": lambda lab, node, peer: "{status,running}" not in federation(lab, node)
    and "rabbitmq_federation" not in ctl(lab, node, "list", "-e", tool="rabbitmq-plugins"),
    "phonebook-private-url": lambda lab, node, peer: "/json.php/private/" in psql(
        lab, node, f"SELECT uri FROM directories WHERE dirtype = 'phonebook' AND uri LIKE '%{peer.address}%'"),
    "version-mismatch": lambda lab, node, peer: (
        lab.root(node) / "usr/share/xivo/XIVO-VERSION").read_text().strip() == "16.12",
    "directory-uri-trailing-slash": lambda lab, node, peer: psql(
        lab, node, f"SELECT uri FROM directories WHERE dirtype = 'xivo' AND uri LIKE '%{peer.address}%'")
    == f"https://{peer.address}:9486/",
    # 16.15 only: shown on a 16.15 lab (tests/lab/test_lab_versions.py), refused here
    "anonymous-token-not-customised": None,
    # xivo-dird's: their symptom is a lookup's answer, shown in tests/lab/test_lab_auth.py
    "dird-stopped": None,
    "dird-not-restarted": None,
    "lookup-acl-missing": None,
}


def test_every_fault_in_the_catalogue_has_a_symptom_test():
    assert set(SYMPTOMS) == set(faults.FAULTS)


@pytest.mark.parametrize("fault", [fault for fault, symptom in SYMPTOMS.items() if symptom is not None])
def test_each_fault_shows_its_real_symptom_and_heal_restores_health(lab, fault):
    why = faults.FAULTS[fault].refused(lab.node("xivo-2"), lab.node("xivo-1"))
    if why:
        pytest.skip(why)
    node, peer = faults.break_(lab.dir, fault, None, say=lambda _: None)
    try:
        eventually(lambda: SYMPTOMS[fault](lab, node, peer), timeout=20, what=f"{fault}'s symptom")
    finally:
        healing.heal(lab.dir, say=lambda _: None)
    assert not SYMPTOMS[fault](lab, node, peer)
    assert all(row[4] == "up" for row in lifecycle.status(lab.dir))
    assert message_crosses(lab, peer, node) is not None


def test_lab_files_are_what_an_admin_edits(lab):
    root = lab.root(lab.nodes[1])
    interconnection = json.loads((root / "etc/consul/xivo/interconnection.json").read_text())
    # the manual's bind_addr 0.0.0.0 on a node with its own network; its own address when nodes share this host
    assert interconnection == {"client_addr": "0.0.0.0", "bind_addr": "0.0.0.0" if lab.net_id else lab.nodes[1].address,
                               "advertise_addr": lab.nodes[1].address}
    ctid = yaml.safe_load((root / "etc/xivo-ctid/conf.d/interconnection.yml").read_text())
    assert ctid["rest_api"]["http"]["listen"] == "0.0.0.0"
    assert ctid["service_discovery"]["advertise_address"] == "auto"
    assert (root / "etc/profile.d/xivo_uuid.sh").read_text() == f"export XIVO_UUID={lab.nodes[1].uuid}\n"
    # xivo-configure-uuid (16.02+, the lab's default 16.13) appends to /etc/default/xivo (R1 §2)
    assert (root / "etc/default/xivo").read_text() == f"export XIVO_UUID={lab.nodes[1].uuid}\n"
    # the daemons' database: the node's own localhost on its own network, the lab's cluster otherwise
    assert yaml.safe_load((root / "etc/xivo-dao/config.yml").read_text())["db_uri"] == lifecycle.daemon_dsn(
        lab, lab.nodes[1])


def test_heal_restores_federation_definitions_changed_by_hand(lab):
    """`heal` skips the manual's slow RabbitMQ commands only where nothing changed since they last
    ran: a permission and a user tag changed by hand (no fault of the catalogue does that) must
    still come back, and the link with them."""
    node = lab.node("xivo-2")
    healing.heal(lab.dir, say=lambda _: None)  # the reference state is the one heal itself leaves
    ctl(lab, node, "set_permissions", "-p", "/", "xivo", "", "", "")
    ctl(lab, node, "set_user_tags", "xivo", "monitoring")
    try:
        assert "[{configure,<<>>}" in rabbitmq.federation_state(lifecycle.rabbit(lab, node), lab.dir).replace(" ", "")
    finally:
        healing.heal(lab.dir, say=lambda _: None)
    listed = ctl(lab, node, "list_user_permissions", "xivo")
    assert ".*\t.*\t.*" in listed, listed
    assert "administrator" in ctl(lab, node, "list_users"), ctl(lab, node, "list_users")
    assert message_crosses(lab, lab.node("xivo-1"), node) is not None


def test_a_lab_left_broken_says_which_node_which_service_and_what(lab):
    """`lab up` on a lab an admin broke by hand ends in the wait for health: it names the node, the
    service and what is wrong, and points at `lab heal` (it said only "not healthy: xivo-2")."""
    faults.break_(lab.dir, "federation-wrong-password", None, say=lambda _: None)
    faults.break_(lab.dir, "ctid-advertise-localhost", None, say=lambda _: None)
    try:
        with pytest.raises(LabError) as raised:
            lifecycle.wait_healthy(lab, lambda _: None, timeout=3)
    finally:
        healing.heal(lab.dir, say=lambda _: None)
    said = str(raised.value)
    two = lab.node("xivo-2")
    assert said.startswith("not healthy after 3 s: xivo-2: "), said
    assert f"xivo-ctid is not registered in its Consul at {two.address} (registered at localhost:9495)" in said
    assert "RabbitMQ federation link from xivo-1 error:" in said and "auth_failure" in said, said
    assert "xivo-1:" not in said and "`xivo-doctor lab heal` restores" in said and "\n" not in said, said


KILLED_BASE, KILLED_EPMD, KILLED_DIST = "127.10.165.0", 4393, 28000  # a lab of its own, beside the session's


@pytest.fixture
@starts_services
def other_lab_dir():
    """A folder for a lab of its own (KILLED_*), stopped and removed at the end whatever happened."""
    lab_dir = Path(tempfile.mkdtemp(prefix="xivo-doctor-test-killed-", dir="/var/tmp"))
    lab_dir.chmod(0o711)
    yield lab_dir
    if (lab_dir / "lab.json").exists():
        lifecycle.down(lab_dir, say=lambda _: None)
    shutil.rmtree(lab_dir, ignore_errors=True)


def test_lab_down_after_lab_up_killed_halfway_leaves_nothing(other_lab_dir):
    """`kill -9` of `lab up` once RabbitMQ, serf and the stand-ins run (no `down` of its own ran),
    then `lab down`: no process, no listener of that lab is left."""
    lab_dir = other_lab_dir
    prefix = KILLED_BASE.rsplit(".", 1)[0] + "."
    script = (f"from pathlib import Path; from xivo_doctor.lab import lifecycle; "
              f"lifecycle.up(Path({str(lab_dir)!r}), base={KILLED_BASE!r}, epmd_port={KILLED_EPMD}, "
              f"dist_base={KILLED_DIST}, say=lambda line: print(line, flush=True))")
    up = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        for line in up.stdout:
            if "xivo-ctid: started" in line:  # everything runs; only the wait for health is left
                break
        assert traces_of(lab_dir, prefix, but=up.pid), "the lab did not start"
        up.kill()
        up.wait(timeout=10)
        lifecycle.down(lab_dir, say=lambda _: None)
        eventually(lambda: not traces_of(lab_dir, prefix), timeout=10, what="nothing of the lab left")
    finally:
        if up.poll() is None:
            up.kill()
            up.wait(timeout=10)
    assert traces_of(lab_dir, prefix) == []
