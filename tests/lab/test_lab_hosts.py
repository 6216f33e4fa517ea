"""Lab nodes as hosts (`lab up --netns`, issue 14), live: each node has its own network namespace on
the lab's bridge, its own loopback and iptables, its own PostgreSQL on its 127.0.0.1:5432, its own
files at the XiVO paths and an SSH server. Shown with the real tools: RabbitMQ's connection list, curl
in the node, the doctor's port-reachable against real DROP and REJECT rules, OpenSSH's client, and
`ip`, `ss`, `findmnt` and /proc after `lab down`, including after a kill -9 of `lab up` halfway."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from lab_fixture import eventually, free_base, own_lab, run_doctor, tcp_state, traces_of
from services import starts_services

from xivo_doctor.lab import faults, healing, hosts, lifecycle, mountns, netns, rabbitmq

BASE = os.environ.get("XIVO_TEST_HOSTS_LAB_BASE", "198.18.101.0")
KILLED_BASE = os.environ.get("XIVO_TEST_HOSTS_KILLED_BASE", "198.18.102.0")


def _new_dir(prefix: str) -> Path:
    lab_dir = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    lab_dir.chmod(0o711)
    return lab_dir


@pytest.fixture(scope="module")
@starts_services
def hosts_lab():
    # three: a port filtered for one peer must show on that pair and not on the other
    with own_lab("xivo-doctor-test-hosts-", count=3, base=BASE, own_network=True) as state:
        yield state


def on(state, node, command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`xivo-doctor lab exec NODE -- COMMAND`, as an admin types it."""
    return subprocess.run(["xivo-doctor", "lab", "exec", "--dir", str(state.dir), node.name, "--", command],
                          capture_output=True, text=True, timeout=timeout)


def ssh(state, node, command: str) -> subprocess.CompletedProcess[str]:
    """The issue's command: `ssh -i DIR/ssh/id root@<node> ...`, with the known_hosts the lab wrote."""
    return subprocess.run(["ssh", "-i", str(state.dir / "ssh/id"), "-o",
                           f"UserKnownHostsFile={state.dir}/ssh/known_hosts", "-o", "BatchMode=yes",
                           "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=5",
                           f"root@{node.address}", command], capture_output=True, text=True, timeout=30)


def doctor(state) -> dict:
    return run_doctor(state.dir / "topology.yml")


def item(data: dict, name: str) -> dict:
    return next(r for r in data["results"] if r["item"] == name)


def test_the_healthy_hosts_lab_passes_every_item_over_ssh_alone(hosts_lab):
    """The lab's topology reaches its hosts only by SSH (no on_box): every item passes, none skips,
    and what only the XiVO can tell was read on it (over SSH), requests "from" a XiVO sent by it."""
    topology = yaml.safe_load((hosts_lab.dir / "topology.yml").read_text())
    assert all("on_box" not in x for x in topology["xivos"]) and "ssh" in topology["defaults"]
    data = doctor(hosts_lab)
    assert not [r for r in data["results"] if r["status"] != "pass"], \
        {r["item"]: (r["status"], r["message"]) for r in data["results"] if r["status"] != "pass"}
    # 7 checks per XiVO, 2 per ordered pair (federation, directory-lookup), 6 pairs
    assert len(data["results"]) == 7 * 3 + 2 * 6 and data["verdict"] == "OK"
    text = json.dumps(data)
    assert "rabbitmqctl on xivo-1 (over SSH)" in text and "xivo-2 over SSH" in text


def test_a_federation_link_arrives_from_the_peers_address(hosts_lab):
    one, two = hosts_lab.nodes[:2]
    argv = rabbitmq.ctl_argv(lifecycle.rabbit(hosts_lab, one), hosts_lab.dir)
    listed = subprocess.run([*argv, "list_connections", "peer_host", "user", "-q"], capture_output=True, text=True,
                            timeout=60).stdout
    assert f"{two.address}\txivo" in listed.splitlines(), listed
    assert "127.0.0.1" not in listed


def test_confd_http_answers_on_the_nodes_own_localhost_only(hosts_lab):
    one, two = hosts_lab.nodes[:2]
    inside = on(hosts_lab, one, "curl -s http://127.0.0.1:9487/1.1/infos")
    assert json.loads(inside.stdout) == {"uuid": one.uuid}, inside.stderr
    assert tcp_state(one.address, 9487) == "refused"  # from this machine
    from_peer = on(hosts_lab, two, f"curl -s -m 3 -o /dev/null -w '%{{http_code}}' http://{one.address}:9487/1.1/infos")
    assert from_peer.returncode == 7 and from_peer.stdout == "000"  # curl: couldn't connect
    # 127.0.0.1 on the HTTPS port is not exempt (16.05+): 401, as on a XiVO
    https = on(hosts_lab, one, "curl -sk -o /dev/null -w '%{http_code}' https://127.0.0.1:9486/1.1/infos")
    assert https.stdout == "401"


def test_each_node_has_its_own_postgresql_on_its_localhost(hosts_lab):
    for node in hosts_lab.nodes:
        done = on(hosts_lab, node, "sudo -u postgres psql asterisk -At -c 'SELECT uuid FROM infos'; ss -Hltn")
        assert done.stdout.splitlines()[0] == node.uuid, done.stderr
        assert "127.0.0.1:5432" in done.stdout
    assert tcp_state(hosts_lab.nodes[0].address, 5432) == "refused"


def test_a_drop_rule_is_filtered_and_a_reject_rule_refused_in_port_reachable(hosts_lab):
    for fault, words in (("firewall-drop", "timed out (filtered"), ("firewall-reject", "refused")):
        faults.break_(hosts_lab.dir, fault, "xivo-2", say=lambda _: None, port=9486)
        try:
            assert "--dport 9486" in on(hosts_lab, hosts_lab.nodes[1], "iptables -S INPUT").stdout
            result = item(doctor(hosts_lab), "port-reachable[xivo-2]")
            assert result["status"] == "fail" and words in result["message"], result["message"]
            assert "9486" in result["message"]
        finally:
            healing.heal(hosts_lab.dir, say=lambda _: None)
    assert item(doctor(hosts_lab), "port-reachable[xivo-2]")["status"] == "pass"


def test_a_rule_for_one_peer_filters_that_peer_only(hosts_lab):
    one, two = hosts_lab.nodes[:2]
    faults.break_(hosts_lab.dir, "firewall-drop", "xivo-2", say=lambda _: None, port=9486, from_node="xivo-1")
    try:
        url = f"https://{two.address}:9486/1.1/infos"
        assert on(hosts_lab, one, f"curl -sk -m 2 {url}").returncode == 28  # timed out
        assert tcp_state(two.address, 9486) == "open"  # this machine is not filtered
    finally:
        healing.heal(hosts_lab.dir, say=lambda _: None)
    assert on(hosts_lab, one, f"curl -sk -m 2 -o /dev/null {url}").returncode == 0


def test_a_port_dropped_for_one_peer_is_reported_on_that_pair_and_not_on_the_others(hosts_lab):
    """5672 of xivo-1 dropped for xivo-2 only: open from this machine and from xivo-3. Tried from each
    XiVO over SSH, port-reachable fails on xivo-1 for xivo-2 alone, its fix opens the port to xivo-2
    alone, and blocks xivo-2's federation from xivo-1, not xivo-3's."""
    one, two, three = hosts_lab.nodes
    faults.break_(hosts_lab.dir, "firewall-drop", "xivo-1", say=lambda _: None, port=5672, from_node="xivo-2")
    try:
        assert tcp_state(one.address, 5672) == "open"
        data = doctor(hosts_lab)
    finally:
        healing.heal(hosts_lab.dir, say=lambda _: None)
        lifecycle.wait_healthy(hosts_lab, lambda _: None, timeout=60)
    ports = item(data, "port-reachable[xivo-1]")
    assert ports["status"] == "fail", ports
    assert "timed out (filtered: no answer to the SYN): 5672 (RabbitMQ AMQP) from xivo-2" in ports["message"]
    assert "xivo-3" not in ports["message"]
    seen = ports["evidence"]["ports"]["5672/tcp"]["from"]
    assert seen["xivo-2"] == "timeout" and seen["xivo-3"] == "open"
    assert ports["facets"] == ["amqp@xivo-2"]
    commands = ports["fix"]["commands"]
    assert f"iptables -I INPUT -p tcp -s {two.address} --dport 5672 -j ACCEPT" in commands, ports["fix"]
    assert not [c for c in commands if three.address in c], commands
    assert item(data, "port-reachable[xivo-2]")["status"] == "pass"
    assert item(data, "port-reachable[xivo-3]")["status"] == "pass"
    cut = item(data, "rabbitmq-federation[xivo-2->xivo-1]")
    assert cut["status"] == "skip" and cut["blocked_by"] == ["port-reachable[xivo-1]"], cut
    assert item(data, "rabbitmq-federation[xivo-3->xivo-1]")["status"] == "pass"


def test_firewall_faults_need_a_port_and_a_real_peer(hosts_lab):
    from xivo_doctor.lab.state import LabError

    with pytest.raises(LabError, match="needs a TCP port"):
        faults.break_(hosts_lab.dir, "firewall-reject", "xivo-2", say=lambda _: None)
    with pytest.raises(LabError, match="not the node itself"):
        faults.break_(hosts_lab.dir, "firewall-reject", "xivo-2", say=lambda _: None, port=22, from_node="xivo-2")
    with pytest.raises(LabError, match="takes no port"):
        faults.break_(hosts_lab.dir, "port-closed", "xivo-2", say=lambda _: None, port=22)


def test_ssh_gives_a_shell_on_the_node_with_its_own_files(hosts_lab):
    one, two = hosts_lab.nodes[:2]
    path = "/etc/xivo-ctid/conf.d/interconnection.yml"
    mark = "# edited by hand on xivo-2\n"
    own = hosts_lab.root(two) / path.lstrip("/")
    healthy = own.read_text()
    own.write_text(mark + healthy)  # as an admin would, on xivo-2 only
    try:
        shown = ssh(hosts_lab, two, f"cat {path}")
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout == mark + healthy
        assert ssh(hosts_lab, one, f"cat {path}").stdout == healthy
    finally:
        own.write_text(healthy)
    done = ssh(hosts_lab, two, "hostname; cat /etc/profile.d/xivo_uuid.sh; command -v rabbitmqctl psql consul service")
    lines = done.stdout.splitlines()
    assert lines[0] == two.hostname and lines[1] == f"export XIVO_UUID={two.uuid}"
    assert lines[2:6] == [f"/usr/local/sbin/{tool}" for tool in ("rabbitmqctl", "psql", "consul", "service")]
    assert "/\tfederate-xivo\txivo" in ssh(hosts_lab, two, "rabbitmqctl list_policies -q").stdout
    # root's shell start files are a fresh Debian's, whatever this machine's own run (a pyenv init)
    debian = Path("/usr/share/base-files/dot.bashrc")
    if Path("/root/.bashrc").is_file() and debian.is_file():
        assert ssh(hosts_lab, two, "cat /root/.bashrc").stdout == debian.read_text()


def test_ssh_refuses_a_key_that_is_not_the_labs(hosts_lab, tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    done = subprocess.run(["ssh", "-i", str(tmp_path / "other"), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                           "-o", f"UserKnownHostsFile={hosts_lab.dir}/ssh/known_hosts",
                           f"root@{hosts_lab.nodes[0].address}", "true"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 255 and "Permission denied" in done.stderr


def test_two_labs_side_by_side(hosts_lab, lab):
    """The session's lab (nodes sharing this host) and this one (nodes with their own network) at once."""
    assert doctor(lab)["verdict"] == "OK"
    assert doctor(hosts_lab)["verdict"] == "OK"


def test_a_routed_range_and_a_base_outside_the_lab_range_are_refused_in_one_line(tmp_path):
    route = "198.18.222.0/24"
    subprocess.run(["ip", "route", "add", "blackhole", route], check=True)
    try:
        done = subprocess.run(["xivo-doctor", "lab", "up", "--netns", "--dir", str(tmp_path / "lab"),
                               "--base", "198.18.222.0"], capture_output=True, text=True, timeout=60)
    finally:
        subprocess.run(["ip", "route", "del", "blackhole", route], check=True)
    assert done.returncode == 3 and done.stderr.count("\n") == 1 and "already routed" in done.stderr
    assert not (tmp_path / "lab" / "lab.json").exists()
    done = subprocess.run(["xivo-doctor", "lab", "up", "--dir", str(tmp_path / "lab"), "--base", "10.1.2.0"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 3 and done.stderr.count("\n") == 1 and "198.18.0.0/15" in done.stderr


def test_a_range_held_by_a_lab_left_behind_names_that_lab_and_how_to_take_it_down(tmp_path):
    """A killed run leaves its bridge: `lab up` on that /24 names the lab's folder and `lab down --dir`."""
    left = tmp_path / "left-behind"
    net_id = netns.lab_id(left)
    base = free_base("198.18.223.0")
    netns.create(net_id, base, [], left)  # the bridge alone, as a killed `lab up` leaves it
    try:
        done = subprocess.run(["xivo-doctor", "lab", "up", "--dir", str(tmp_path / "lab"), "--base", base],
                              capture_output=True, text=True, timeout=60)
    finally:
        netns.destroy(net_id)
    assert done.returncode == 3 and done.stderr.count("\n") == 1, done.stderr
    assert f"the xivo-doctor lab in {left}" in done.stderr
    assert f"`xivo-doctor lab down --dir {left}` removes that lab" in done.stderr
    assert netns.bridge_name(net_id) not in subprocess.run(["ip", "link"], capture_output=True, text=True).stdout


def test_the_suite_moves_its_lab_off_a_range_taken_on_this_machine():
    """What keeps a lab left by a killed run (or a second run of the suite) from failing the whole suite."""
    route = "198.18.224.0/24"
    subprocess.run(["ip", "route", "add", "blackhole", route], check=True)
    try:
        moved = free_base("198.18.224.0")
    finally:
        subprocess.run(["ip", "route", "del", "blackhole", route], check=True)
    assert moved != "198.18.224.0" and moved.startswith("198.18.") and not netns.routed_elsewhere(moved)
    assert free_base("198.18.224.0") == "198.18.224.0"


def test_without_the_capability_to_make_namespaces_lab_up_says_so_in_one_line(tmp_path):
    done = subprocess.run(["setpriv", "--bounding-set", "-sys_admin,-net_admin", "--inh-caps", "-sys_admin,-net_admin",
                           "--", "xivo-doctor", "lab", "up", "--dir", str(tmp_path / "lab")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stderr
    assert done.stderr.count("\n") == 1 and "cannot create network namespaces" in done.stderr
    assert "`lab up --no-netns`" in done.stderr  # what works without the capability
    assert not (tmp_path / "lab" / "lab.json").exists()


def _traces(lab_dir: Path, net_id: str, prefix: str, but: int | None = None) -> list[str]:
    """Everything of the lab the machine still holds: processes naming its folder, namespaces, links,
    mounts and listeners on its addresses."""
    found = [f"netns {n}" for n in netns.namespaces() if n.startswith(netns.bridge_name(net_id))]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    found += [f"link {line.split(':')[1].strip()}" for line in links.splitlines() if netns.bridge_name(net_id) in line]
    mounts = subprocess.run(["findmnt", "-rn", "-o", "TARGET"], capture_output=True, text=True).stdout
    found += [f"mount {m}" for m in mounts.splitlines() if str(mountns.ns_dir(net_id)) in m or str(lab_dir) in m]
    return found + traces_of(lab_dir, prefix, but)


@pytest.fixture
@starts_services
def killed_dir():
    lab_dir = _new_dir("xivo-doctor-test-hosts-killed-")
    yield lab_dir
    if (lab_dir / "lab.json").exists():
        lifecycle.down(lab_dir, say=lambda _: None)
    shutil.rmtree(lab_dir, ignore_errors=True)


def test_lab_down_after_lab_up_killed_halfway_leaves_nothing(killed_dir):
    """`kill -9` of `lab up --netns` once every node's daemons run, then `lab down`: no namespace,
    veth, bridge, mount, process or listener of that lab is left (ip netns, ip link, findmnt, /proc, ss)."""
    base = free_base(KILLED_BASE)
    prefix = base.rsplit(".", 1)[0] + "."
    script = (f"from pathlib import Path; from xivo_doctor.lab import lifecycle; "
              f"lifecycle.up(Path({str(killed_dir)!r}), base={base!r}, own_network=True, "
              f"say=lambda line: print(line, flush=True))")
    up = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    net_id = netns.lab_id(killed_dir)
    try:
        for line in up.stdout:
            if "xivo-ctid: started" in line:
                break
        assert len(_traces(killed_dir, net_id, prefix, but=up.pid)) > 10, "the lab did not start"
        assert any(t.startswith("netns") for t in _traces(killed_dir, net_id, prefix, but=up.pid))
        up.kill()
        up.wait(timeout=10)
        subprocess.run(["xivo-doctor", "lab", "down", "--dir", str(killed_dir)], check=True, capture_output=True,
                       timeout=120)
        eventually(lambda: not _traces(killed_dir, net_id, prefix), timeout=10, what="nothing of the lab left")
    finally:
        if up.poll() is None:
            up.kill()
            up.wait(timeout=10)
    assert _traces(killed_dir, net_id, prefix) == []
    assert (killed_dir / "lab.json").exists() and hosts.key_file(lifecycle.LabState.load(killed_dir)).exists()


# Without a lab: the names, addresses, rules and mounts the lab would make.

def test_names_fit_a_linux_interface_name_and_derive_from_the_folder():
    net_id = netns.lab_id(Path("/var/tmp/xivo-doctor-lab"))
    assert len(net_id) == 6 and net_id == netns.lab_id(Path("/var/tmp/./xivo-doctor-lab"))
    assert all(len(name) <= 15 for name in (netns.bridge_name(net_id), netns.ns_name(net_id, 50),
                                            netns.veth_name(net_id, 50)))
    assert netns.lab_id(Path("/var/tmp/other-lab")) != net_id


def test_the_lab_range_is_a_slash_24_of_rfc_2544():
    assert str(netns.network_of("198.19.255.0")) == "198.19.255.0/24"
    assert netns.host_address("198.18.7.0") == "198.18.7.254"
    for bad in ("10.0.0.0", "127.10.0.0", "198.20.0.0", "198.18.0.7", "nonsense"):
        with pytest.raises(lifecycle.LabError, match=r"198\.18\.0\.0/15"):
            netns.network_of(bad)


def test_a_firewall_fault_is_the_rule_an_admin_types():
    from xivo_doctor.lab import firewall

    assert firewall.rule(9486, "DROP", None) == ["-I", "INPUT", "-p", "tcp", "--dport", "9486", "-j", "DROP"]
    assert firewall.rule(5672, "REJECT", "198.18.0.1")[-4:] == ["-s", "198.18.0.1", "-j", "REJECT"]


def test_the_mount_script_binds_each_entry_of_the_root_over_the_xivo_path(tmp_path):
    root = tmp_path / "root"
    for folder in ("etc/xivo-ctid/conf.d", "etc/profile.d", "var/lib/consul", "usr/share/xivo", "var/log"):
        (root / folder).mkdir(parents=True)
    (root / "etc/hostname").write_text("xivo-lab-1\n")
    script = mountns.script(root, tmp_path / "mnt", tmp_path / "bin")
    assert f"mount --bind {root}/etc/xivo-ctid /etc/xivo-ctid" in script
    assert f"mount --bind {root}/etc/hostname /etc/hostname" in script
    assert f"mount --bind {root}/var/log /var/log" in script
    assert f"mount --bind {tmp_path}/bin /usr/local/sbin" in script
    # /etc/xivo-ctid is missing on this machine: its mount point comes from an overlay of /etc
    assert (tmp_path / "mnt/upper/etc/xivo-ctid").is_dir() and "lowerdir=/etc," in script
    assert not (tmp_path / "mnt/upper/etc/hostname").exists()  # /etc/hostname exists already
    (root / "root").mkdir()
    (root / "root/.bashrc").write_text("# Debian's\n")
    script = mountns.script(root, tmp_path / "mnt", tmp_path / "bin")
    # root's start file alone, where this machine has one (not /root whole: it may hold the lab's Python)
    assert (f"mount --bind {root}/root/.bashrc /root/.bashrc" in script) == Path("/root/.bashrc").is_file()
    assert f"{root}/root /root\n" not in script


def test_lab_faults_lists_the_firewall_faults():
    done = subprocess.run(["xivo-doctor", "lab", "faults"], capture_output=True, text=True, timeout=60)
    assert "firewall-drop PORT" in done.stdout and "firewall-reject PORT" in done.stdout


# SSH that goes wrong: each a one-line error item naming SSH and why, the run ends in time, and the
# checks that need no SSH still judge that XiVO.

def _ssh_topology(state, tmp_path: Path, **ssh) -> Path:
    topology = yaml.safe_load((state.dir / "topology.yml").read_text())
    topology["defaults"]["ssh"] = {"identity_file": str(state.dir / "ssh/id"),
                                   "known_hosts_file": str(state.dir / "ssh/known_hosts"), **ssh}
    for section in ("rabbitmq", "auth"):
        topology["defaults"][section]["password_file"] = str(state.dir / topology["defaults"][section]["password_file"])
    path = tmp_path / "topology.yml"
    path.write_text(yaml.safe_dump(topology))
    return path


def _run(topology: Path, as_plain_user: bool = False) -> tuple[dict, float]:
    import time

    # root reads any file (CAP_DAC_OVERRIDE): without it, it reads what its modes allow, as an admin's account
    plain = ["setpriv", "--inh-caps", "-dac_override,-dac_read_search",
             "--bounding-set", "-dac_override,-dac_read_search", "--"] if as_plain_user else []
    began = time.monotonic()
    done = subprocess.run([*plain, "xivo-doctor", "run", "-T", str(topology), "--json", "-", "-t", "20"],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout, done.stderr
    return json.loads(done.stdout), time.monotonic() - began


@pytest.mark.parametrize("case", ["missing key", "unreadable key", "wrong user", "sudo asks a password",
                                  "changed host key", "unknown host key", "silent server"])
def test_ssh_that_fails_gives_one_clear_error_per_item_and_the_rest_runs(hosts_lab, tmp_path, case):
    from servers import Hostile, silent

    ssh: dict = {}
    expected = ""
    server = None
    if case == "missing key":
        ssh = {"identity_file": str(tmp_path / "no-such-key")}
        expected = f"identity file {tmp_path}/no-such-key: not found"
    elif case == "unreadable key":
        key = tmp_path / "id"
        key.write_bytes((hosts_lab.dir / "ssh/id").read_bytes())
        key.chmod(0)  # unreadable for the doctor, which runs without root's power to read anything (_run)
        ssh, expected = {"identity_file": str(key)}, f"identity file {key}: not readable"
    elif case == "sudo asks a password":  # an admin's own account, not in sudoers (lab.accounts)
        ssh, expected = {"user": "xivo-admin", "sudo": True}, "sudo needs a password for xivo-admin"
    elif case == "wrong user":
        ssh, expected = {"user": "nobody"}, "authentication refused for user nobody"
    elif case in ("changed host key", "unknown host key"):
        other = tmp_path / "other"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
        key = (other.with_suffix(".pub")).read_text().split()
        lines = [f"{n.address} {key[0]} {key[1]}" for n in hosts_lab.nodes] if case == "changed host key" else []
        (tmp_path / "known_hosts").write_text("\n".join(lines) + "\n")
        ssh = {"known_hosts_file": str(tmp_path / "known_hosts")}
        expected = "host key changed" if case == "changed host key" else "host key not known"
    else:
        server = Hostile("127.0.0.1", 0, silent)
        # ssh's own connect timeout or the doctor's budget, whichever ends first: both say it
        ssh, expected = {"host": "127.0.0.1", "port": server.sock.getsockname()[1]}, "no SSH answer"
    try:
        data, took = _run(_ssh_topology(hosts_lab, tmp_path, **ssh), as_plain_user=case == "unreadable key")
    finally:
        if server is not None:
            server.close()
    by_item = {r["item"]: r for r in data["results"]}
    version = by_item["xivo-version[xivo-1]"]
    assert version["status"] == "error" and f"SSH to xivo-1: {expected}" in version["message"], version["message"]
    assert "\n" not in version["message"] and "Traceback" not in json.dumps(data)
    # a file out of reach is not a file absent: uuid-unique says it compared what the network alone gives
    assert "in 2 sources" in by_item["uuid-unique[xivo-1]"]["message"]
    # what the network alone tells still runs for that XiVO
    assert by_item["port-reachable[xivo-1]"]["status"] == "pass"
    assert by_item["consul-wan[xivo-1]"]["status"] == "pass"
    assert took < 25
