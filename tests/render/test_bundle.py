"""The support bundle: bounded, read-only collection on a XiVO's root, the archive's structure, no secret
in it, and one bundle of the live lab."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import tarfile
import tempfile
from pathlib import Path

import pytest
from render_samples import critical_report

from conftest import write_topology
from xivo_doctor.foundation.deadline import Deadline
from xivo_doctor.foundation.errors import DoctorError
from xivo_doctor.probes import troubleshoot
from xivo_doctor.probes.transport import commands
from xivo_doctor.render.bundle import write_bundle
from xivo_doctor.topology import load_topology
from xivo_doctor.topology.model import Topology
from xivo_doctor.topology.redaction import redactor_for

RABBIT_PW = "Canary-Rabbit-Pw-7731"  # inline in the topology file
ENV_TOKEN = "Canary-Env-Token-9917"  # the Consul token, from ${XD_BUNDLE_TOKEN}
UPSTREAM_PW = "Upstream-Uri-Pw-4242"  # known to no topology: only a URI's credentials betray it
HEADER_TOKEN = "hdr-7f3e9a1c55d0"
SECRETS = (RABBIT_PW, ENV_TOKEN, UPSTREAM_PW, HEADER_TOKEN)

# A stand-in for rabbitmqctl: the status (with credentials in the upstream URI, as an admin might
# have set it), list_parameters failing, list_policies hanging (it prints its pid, then sleeps).
FAKE_CTL = """\
#!/bin/sh
case "$1" in
  eval) echo "[[{exchange,<<\\"xivo\\">>},{upstream,<<\\"xivo-2\\">>},{status,running},"
        echo " {uri,<<\\"amqp://xivo:{upw}@203.0.113.2\\">>}]]"
        echo "token={tok} caf\\351" ;;
  list_parameters) echo "Error: unable to perform an operation on node 'rabbit@xivo-1'" >&2; exit 1 ;;
  list_policies) echo "Listing policies"; echo $$ > "{pids}/group.pid"
        sleep 60 & echo $! > "{pids}/sleep.pid"; wait ;;
esac
"""


def xivo_root(base: Path, name: str) -> Path:
    root = base / name / "root"
    log = root / "var/log"
    (log / "nginx").mkdir(parents=True)
    (log / "rabbitmq").mkdir()
    (log / "xivo-ctid.log").write_text(
        f"2026-11-25 10:00:00 Registering xivo-ctid on Consul as 203.0.113.1:9495 token={ENV_TOKEN}\n"
        f"X-Consul-Token: {HEADER_TOKEN}\n")
    (log / "xivo-confd.log").write_bytes(b"confd caf\xe9 \xff\xfe started\n")
    (log / "nginx/xivo.access.log").write_text("GET /service/ipbx/json.php/restricted/pbx_services/phonebook 200\n")
    old = log / "rabbitmq/rabbit@xivo.log"
    old.write_text("old\n")
    os.utime(old, (1_000_000, 1_000_000))
    (log / "rabbitmq/rabbit@xivo-sasl.log").write_text(
        f"{{failed_to_connect_using_provided_uris, amqp://xivo:{UPSTREAM_PW}@203.0.113.2}} pw {RABBIT_PW}\n")
    (log / "syslog").write_text("cron: ran\nconsul[812]: [ERR] agent: failed to sync remote state\nkernel: x\n")
    return root


@pytest.fixture
def site(tmp_path, monkeypatch) -> Topology:
    """Two XiVOs at TEST-NET addresses (not this host) with on-box roots and tools under tmp_path."""
    monkeypatch.setenv("XD_BUNDLE_TOKEN", ENV_TOKEN)
    pids = tmp_path / "pids"
    pids.mkdir()
    ctl = tmp_path / "bin/rabbitmqctl"
    ctl.parent.mkdir()
    ctl.write_text(FAKE_CTL.replace("{upw}", UPSTREAM_PW).replace("{tok}", ENV_TOKEN).replace("{pids}", str(pids)))
    ctl.chmod(0o755)
    for name in ("xivo-1", "xivo-2"):
        xivo_root(tmp_path, name)
    path = write_topology(tmp_path, f"""\
        name: site
        defaults:
          rabbitmq: {{password: "{RABBIT_PW}"}}
          consul: {{token: "${{XD_BUNDLE_TOKEN}}"}}
          confd: {{password_file: confd.secret}}
        xivos:
          - name: xivo-1
            address: 203.0.113.1
            on_box: {{root: xivo-1/root, rabbitmqctl: [{ctl}], consul: [{tmp_path}/bin/no-consul]}}
          - name: xivo-2
            address: 203.0.113.2
            on_box: {{root: xivo-2/root, consul: [xd-no-such-consul-on-path, members]}}
        """)
    (tmp_path / "confd.secret").write_text("confd-file-secret-1\n")
    return load_topology(path)


def by_name(found: troubleshoot.Troubleshooting, xivo: str, name: str) -> troubleshoot.Collected:
    return next(c for c in found.items if c.xivo == xivo and c.name == name)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


# -- collection --------------------------------------------------------------------------------------
def test_collection_reads_logs_and_commands_and_says_what_is_missing(site, tmp_path, own_peers):
    shutil.rmtree(tmp_path / "xivo-2/root/var/log/rabbitmq")
    found = troubleshoot.collect(site, redactor_for(site), timeout=1.0)
    ctid = by_name(found, "xivo-1", "xivo-ctid.log")
    assert "Registering xivo-ctid on Consul as 203.0.113.1:9495" in ctid.text and ctid.problem is None
    assert ENV_TOKEN not in ctid.text and HEADER_TOKEN not in ctid.text and "token=********" in ctid.text
    assert by_name(found, "xivo-1", "xivo-confd.log").text == "confd caf\ufffd \ufffd\ufffd started\n"
    assert by_name(found, "xivo-1", "xivo-dird.log").problem == "not found"
    newest = by_name(found, "xivo-1", "rabbitmq-rabbit@xivo-sasl.log")  # the newest of the two
    assert "failed_to_connect_using_provided_uris" in newest.text and UPSTREAM_PW not in newest.text
    assert RABBIT_PW not in newest.text
    assert by_name(found, "xivo-2", "rabbitmq.log").problem == "not found"
    consul = by_name(found, "xivo-1", "consul-syslog.log")
    assert consul.text == "consul[812]: [ERR] agent: failed to sync remote state\n"
    assert not [c for c in found.items if c.name == "consul.log"]  # the lab's file only when present

    status = by_name(found, "xivo-1", "rabbitmqctl-federation-status.txt")
    assert status.problem is None and "{status,running}" in status.text
    assert UPSTREAM_PW not in status.text and ENV_TOKEN not in status.text and "caf\ufffd" in status.text
    assert status.source.endswith("rabbitmqctl eval 'rabbit_federation_status:status().'")
    params = by_name(found, "xivo-1", "rabbitmqctl-list-parameters.txt")
    assert params.problem == "exit code 1" and "unable to perform an operation" in params.text
    assert by_name(found, "xivo-1", "consul-members-wan.txt").problem == f"{tmp_path}/bin/no-consul: not found"
    assert by_name(found, "xivo-2", "consul-members-wan.txt").problem == \
        "xd-no-such-consul-on-path: not found on PATH"
    # Not given by the topology and this host is not xivo-2: it would describe this host instead.
    assert by_name(found, "xivo-2", "rabbitmqctl-federation-status.txt").problem == \
        "not run: no on_box.rabbitmqctl in the topology, and this host is not xivo-2"
    assert by_name(found, "xivo-2", "consul-cli-agent-services.txt").problem.startswith("not run: consul-cli")


def test_a_hanging_command_is_killed_with_its_process_group(site, tmp_path, own_peers):
    found = troubleshoot.collect(site, redactor_for(site), timeout=1.0)
    policies = by_name(found, "xivo-1", "rabbitmqctl-list-policies.txt")
    assert policies.problem == "timed out after 1 s"
    assert policies.text == "Listing policies\n"  # what it printed before it hung is kept
    for pid_file in ("group.pid", "sleep.pid"):
        assert not alive(int((tmp_path / "pids" / pid_file).read_text())), pid_file


def test_a_xivo_without_a_readable_root_is_not_collected(site, tmp_path, own_peers):
    shutil.rmtree(tmp_path / "xivo-2/root")
    found = troubleshoot.collect(site, redactor_for(site), timeout=1.0)
    assert found.not_collected == (("xivo-2", f"on_box.root {tmp_path}/xivo-2/root is not a directory here"),)
    assert {c.xivo for c in found.items} == {"xivo-1"}


def test_the_runs_deadline_bounds_the_commands(site):
    found = troubleshoot.collect(site, redactor_for(site), deadline=Deadline(0))
    status = by_name(found, "xivo-1", "rabbitmqctl-federation-status.txt")
    assert status.text is None and status.problem == "not run: the run's deadline (0 s, -t) had passed"


def test_a_command_output_is_capped_and_still_drained():
    ran = commands.run_bounded(["sh", "-c", "yes 0123456789abcdef | head -c 3000000; echo done >&2"], 5)
    assert ran.exit_code == 0 and ran.problem is None and ran.truncated
    assert len(ran.output.encode()) == commands.MAX_BYTES and set(ran.output) <= set("0123456789abcdef\n")


def test_a_command_that_leaves_a_child_holding_its_output_is_not_a_timeout(tmp_path):
    pid = tmp_path / "child.pid"
    ran = commands.run_bounded(["sh", "-c", f"echo hi; sleep 60 & echo $! > {pid}; exit 3"], 5)
    try:
        assert (ran.output, ran.exit_code, ran.problem) == ("hi\n", 3, "exit code 3")
    finally:
        os.kill(int(pid.read_text()), 9)


def test_an_unknown_command_is_not_found():
    assert commands.run_bounded(["xd-no-such-tool"], 1).problem == "xd-no-such-tool: not found on PATH"
    assert commands.run_bounded(["/nonexistent/tool"], 1).problem == "/nonexistent/tool: not found"


def test_a_huge_log_is_read_from_its_end_only(tmp_path):
    # 4 GiB, sparse: reading it whole would exhaust memory, not merely be slow.
    huge = tmp_path / "huge.log"
    with open(huge, "wb") as file:
        file.seek(4 << 30)
        file.write(b"".join(b"line %d\n" % n for n in range(1000)))
    text, truncated = troubleshoot.tail(huge)
    assert truncated and text.splitlines() == [f"line {n}" for n in range(800, 1000)]


def test_a_log_of_long_lines_is_bounded_in_bytes_and_keeps_whole_lines(tmp_path):
    log = tmp_path / "long.log"
    log.write_text("".join(f"{n:04d} " + "x" * 2000 + "\n" for n in range(300)))
    text, truncated = troubleshoot.tail(log)
    lines = text.splitlines()
    assert truncated and len(text.encode()) <= commands.MAX_BYTES and lines[-1].startswith("0299 ")
    assert all(len(line) == 2005 for line in lines)  # the cut partial first line is dropped


def test_a_log_that_is_a_directory_or_a_fifo_is_missing_with_the_reason(tmp_path):
    (tmp_path / "dir.log").mkdir()
    os.mkfifo(tmp_path / "fifo.log")  # opening it blocking would wait for a writer forever
    for name, reason in (("dir.log", "a directory, not a file"), ("fifo.log", "not a regular file")):
        with pytest.raises(OSError) as caught:
            troubleshoot.tail(tmp_path / name)
        assert commands.os_reason(caught.value) == reason


def test_an_unreadable_log_is_permission_denied():
    folder = Path(tempfile.mkdtemp(prefix="xd-bundle-"))
    try:
        folder.chmod(0o755)
        log = folder / "secret.log"
        log.write_text("root only\n")
        log.chmod(0o000)
        assert _reason_as_nobody(log) == "permission denied"
    finally:
        log.unlink()
        folder.rmdir()


def _reason_as_nobody(path: Path) -> str:
    """troubleshoot.tail's failure as an unprivileged user (root reads any file)."""
    if os.geteuid() != 0:
        with pytest.raises(OSError) as caught:
            troubleshoot.tail(path)
        return commands.os_reason(caught.value)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        try:
            os.setgid(65534)
            os.setuid(65534)
            troubleshoot.tail(path)
            answer = "read it"
        except OSError as exc:
            answer = commands.os_reason(exc)
        os.write(write, answer.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        answer = pipe.read()
    os.waitpid(pid, 0)
    return answer


# -- the archive -------------------------------------------------------------------------------------
def read_bundle(path: Path) -> tuple[list[tarfile.TarInfo], dict[str, bytes]]:
    with tarfile.open(path, "r:gz") as tar:
        members = tar.getmembers()
        return members, {m.name: tar.extractfile(m).read() for m in members}


def test_the_bundle_is_safe_complete_and_holds_no_secret(site, tmp_path, own_peers):
    dest = tmp_path / "out/deeper/support.tar.gz"
    argv = ["xivo-doctor", "run", "--bundle", str(dest), f"--token={ENV_TOKEN}"]
    summary = write_bundle(critical_report(), dest, topology=site, redactor=redactor_for(site), argv=argv,
                           deadline=Deadline(2))  # each command: min(5 s, the run's time left)
    members, files = read_bundle(dest)
    top = "xivo-doctor-20240502-081112/"  # the run's start (10:11:12+02:00) in UTC
    assert summary.path == dest and summary.size == dest.stat().st_size and summary.top + "/" == top
    for m in members:
        assert m.isreg() and m.mode == 0o644 and (m.uid, m.gid) == (0, 0), m.name
        assert m.name.startswith(top) and ".." not in m.name.split("/") and not m.name.startswith("/")
    names = {m.name.removeprefix(top) for m in members}
    assert {"report.html", "result.json", "junit.xml", "topology.yml", "MISSING.txt", "manifest.json",
            "logs/xivo-1/xivo-ctid.log", "logs/xivo-2/consul-syslog.log",
            "commands/xivo-1/rabbitmqctl-federation-status.txt"} <= names
    assert set(summary.files) == names and dest.stat().st_mode & 0o777 == 0o600
    assert not list(dest.parent.glob(".*tmp"))  # the temporary file became the bundle

    manifest = json.loads(files[top + "manifest.json"])
    assert manifest["schema"] == "xivo-doctor-bundle/1" and manifest["verdict"] == "CRITICAL"
    assert manifest["command_line"].endswith("--token=********")
    listed = {f["path"]: f for f in manifest["files"]}
    assert set(listed) == names - {"manifest.json"}
    for name, entry in listed.items():
        data = files[top + name]
        assert (entry["size"], entry["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())

    status = files[top + "commands/xivo-1/rabbitmqctl-federation-status.txt"].decode()
    assert status.startswith("$ ") and status.splitlines()[0].endswith("eval 'rabbit_federation_status:status().'")
    policies = files[top + "commands/xivo-1/rabbitmqctl-list-policies.txt"].decode()
    assert re.fullmatch(r"\$ .*\nListing policies\n# xivo-doctor: timed out after (1\.\d|2) s\n", policies)
    missing = files[top + "MISSING.txt"].decode()
    assert "xivo-1: log /var/log/xivo-dird.log: not found" in missing
    assert "xivo-1: command rabbitmqctl-list-parameters" not in missing  # named by its command line
    assert "rabbitmqctl list_parameters -p /: exit code 1" in missing

    topology_yml = files[top + "topology.yml"].decode()
    assert "password: \"********\"" in topology_yml  # inline secret masked
    assert "${XD_BUNDLE_TOKEN}" in topology_yml and "password_file: confd.secret" in topology_yml
    leaks = {(name, s) for name, data in files.items() for s in (*SECRETS, "confd-file-secret-1")
             if s.encode() in data}
    assert not leaks


def test_without_collection_the_bundle_says_so(site, tmp_path):
    summary = write_bundle(critical_report(), tmp_path / "b.tar.gz", topology=site,
                           redactor=redactor_for(site), argv=["xivo-doctor"], collect=False)
    assert not [f for f in summary.files if f.startswith(("logs/", "commands/"))]
    assert summary.missing == ("logs and commands: not collected (collection was turned off)",)


def test_a_bundle_that_cannot_be_written_is_one_doctor_error_naming_the_path(site, tmp_path):
    (tmp_path / "file").write_text("")
    redactor = redactor_for(site)
    for dest in (tmp_path / "file/b.tar.gz", tmp_path):
        with pytest.raises(DoctorError) as caught:
            write_bundle(critical_report(), dest, topology=site, redactor=redactor, argv=[], collect=False)
        assert str(dest) in str(caught.value) and "\n" not in str(caught.value)
    assert not list(tmp_path.glob(".*tmp"))
    with pytest.raises(DoctorError, match="give a file name"):
        write_bundle(critical_report(), "-", topology=site, redactor=redactor, argv=[], collect=False)


def test_a_bundle_to_a_device_is_written_into_not_renamed_over(site, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mknod needs root")
    device = tmp_path / "null"  # like /dev/null: renamed over, the test loses its own copy only
    os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    write_bundle(critical_report(), device, topology=site, redactor=redactor_for(site), argv=[], collect=False)
    assert stat.S_ISCHR(device.stat().st_mode) and not list(tmp_path.glob(".null.*"))  # no temporary file


# -- the live lab --------------------------------------------------------------------------------------
def test_a_bundle_of_the_live_lab(lab, tmp_path):
    from xivo_doctor.engine.options import RunOptions
    from xivo_doctor.engine.plugin import run_checks
    from xivo_doctor.engine.run import Run

    topology = load_topology(lab.dir / "topology.yml")
    report = run_checks(Run(RunOptions(topology=topology, timeout=30)))
    dest = tmp_path / "lab.tar.gz"
    summary = write_bundle(report, dest, topology=topology, redactor=redactor_for(topology),
                           argv=["xivo-doctor", "run", "--bundle", str(dest)])
    _, files = read_bundle(dest)
    top = summary.top + "/"
    over_ssh = topology.xivos[0].on_box is None  # a lab of hosts: everything read on the nodes over SSH
    said = " (over SSH)" if over_ssh else ""
    for xivo, peer in (("xivo-1", "xivo-2"), ("xivo-2", "xivo-1")):
        status = files[f"{top}commands/{xivo}/rabbitmqctl-federation-status.txt"].decode()
        assert "{status,running}" in status and f"<<\"{peer}\">>" in status, status
        members = files[f"{top}commands/{xivo}/consul-members-wan.txt"].decode()
        assert members.splitlines()[0].endswith("consul members -wan" + said) and "alive" in members
        assert all(f"{node.address}:8302  alive" in members for node in lab.nodes), members
        assert files[f"{top}logs/{xivo}/xivo-ctid.log"] and files[f"{top}logs/{xivo}/xivo-confd.log"]
        assert b"federate-xivo" in files[f"{top}commands/{xivo}/rabbitmqctl-list-policies.txt"]
        parameters = files[f"{top}commands/{xivo}/rabbitmqctl-list-parameters.txt"].decode()
        assert f"amqp://xivo:********@{lab.node(peer).address}" in parameters, parameters
    missing = files[top + "MISSING.txt"].decode()
    # the lab has no consul-cli: here, or on the node over SSH
    assert ("consul-cli agent services --ssl --ssl-verify=false (over SSH): consul-cli: not found on xivo-1"
            if over_ssh else "consul-cli agent services --ssl --ssl-verify=false: consul-cli: not found on PATH") \
        in missing, missing
    assert "xivo-dird.log" not in missing and b"successfully loaded" in files[f"{top}logs/xivo-1/xivo-dird.log"]
    assert json.loads(files[top + "result.json"])["verdict"] == "OK"
    assert b"<html" in files[top + "report.html"].lower()

