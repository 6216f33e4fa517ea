"""Every check proven on live labs of three XiVO releases, each node behaving as its release's
daemons do (docs/lab.md "Releases"): a 15.19 lab (Consul 0.5.2, xivo-ctid's UUID from the database
and its HTTP check_url, json.php's web services ACL), a 16.13 lab (the lab's default: Consul 0.7.0,
the uri-to-directory_id join, json.php phonebook sharing) and a 16.15 lab (Consul's anonymous token
customised, xivo-ctid's health lookup, no json.php). On each: healthy -> all pass, runs in a row;
each fault -> exactly its root cause fails (with the symptoms a second check sees, where listed), its
dependents are blocked by it, nothing else fails, and the doctor's own fix, applied as printed from
that very run, makes the run green again; and a run changes nothing on the XiVOs it inspects. A
fault that makes no sense on a release (the lab refuses it in one line) is skipped there."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
import requests
from lab_fixture import own_lab, run_doctor
from services import starts_services

from xivo_doctor.lab import faults, healing, lifecycle, postgres, rabbitmq

# The releases the matrix runs on, each on a lab of hosts (`lab up`'s default), each seen from another
# place: 16.13 is the session's lab (tests/support/lab_fixture.py), checked from this machine over SSH;
# 15.19 and 16.15 come up one after the other, the doctor installed on one of their XiVOs (on-box
# access to it, SSH to its peer, DIR/topology-on-<node>.yml): on 15.19 the broken node's peer, on
# 16.15 the broken node itself. A verdict must not depend on where the doctor runs.
# XIVO_TEST_VERSION_LAB_NETNS=0: 15.19 and 16.15 as nodes sharing this host, all on-box from here.
VERSIONS = ("15.19", "16.13", "16.15")
VERSION_NETNS = os.environ.get("XIVO_TEST_VERSION_LAB_NETNS", "1") == "1"
VANTAGE = {"15.19": "xivo-1", "16.15": "xivo-2"} if VERSION_NETNS else {}
OTHER_BASE = os.environ.get("XIVO_TEST_VERSION_LAB_BASE", "198.18.120.0" if VERSION_NETNS else "127.10.120.0")
OTHER_EPMD = int(os.environ.get("XIVO_TEST_VERSION_LAB_EPMD", "4391"))
OTHER_DIST = int(os.environ.get("XIVO_TEST_VERSION_LAB_DIST", "27800"))

# fault -> the (check, target) that must fail, its root cause first, then the symptoms another check
# rightly sees too (lab default: broken node xivo-2, its peer xivo-1)
MATRIX = {
    "duplicate-uuid": [("uuid-unique", "xivo-2")],
    # xivo-ctid >= 16.02 does not start without XIVO_UUID: its port is closed too (a true symptom)
    "uuid-not-configured": [("uuid-unique", "xivo-2"), ("port-reachable", "xivo-2")],
    "ctid-advertise-localhost": [("ctid-advertise", "xivo-2")],
    "ctid-listen-loopback": [("port-reachable", "xivo-2")],
    "consul-not-joined": [("consul-wan", "xivo-2")],
    "consul-peer-down": [("port-reachable", "xivo-2")],
    "port-closed": [("port-reachable", "xivo-2")],
    "federation-upstream-missing": [("rabbitmq-federation", "xivo-2->xivo-1")],
    "federation-wrong-password": [("rabbitmq-federation", "xivo-2->xivo-1")],
    "federation-policy-missing": [("rabbitmq-federation", "xivo-2->xivo-1")],
    "federation-plugin-disabled": [("rabbitmq-federation", "xivo-2->xivo-1")],
    "phonebook-private-url": [("phonebook-restricted", "xivo-2")],
    "version-mismatch": [("xivo-version", "xivo-2")],
    "directory-uri-trailing-slash": [("directory-source", "xivo-2")],
    # 16.15: its peer's xivo-ctid no longer finds xivo-2's (refused before 16.15, where that is the norm)
    "anonymous-token-not-customised": [("ctid-advertise", "xivo-2")],
    # dird itself: the tables are right (directory-source passes), only the lookup sees these
    "dird-stopped": [("directory-lookup", "xivo-2->xivo-1")],
    "dird-not-restarted": [("directory-lookup", "xivo-2->xivo-1")],
}
# Faults of the doctor's own access, not of the interconnection: the item cannot check (`error`)
# and says what its credentials lack; nothing fails.
ACCESS_FAULTS = {"lookup-acl-missing": ("directory-lookup[xivo-2->xivo-1]", "dird.directories.lookup.")}

# The RabbitMQ steps of the manual, XiVO's rabbitmq.config and the lab's RabbitMQ are the same on every
# release (contact_and_presence_sharing.rst and xivo-config etc/rabbitmq/ unchanged 15.19-16.15,
# docs/xivo-behaviour.md "rabbitmq-federation"), and so are the federation fixes: one is applied on
# every release, the others on the default one only (each costs a RabbitMQ restart or more).
SAME_ON_EVERY_RELEASE = {"federation-upstream-missing", "federation-policy-missing", "federation-plugin-disabled"}

# Faults whose fix is commands to run on the failing XiVO (the others are a web-UI edit or an upgrade).
FIXED_BY_COMMANDS = [
    "ctid-advertise-localhost", "ctid-listen-loopback", "consul-not-joined", "consul-peer-down",
    "federation-upstream-missing", "federation-wrong-password", "federation-policy-missing",
    "federation-plugin-disabled", "duplicate-uuid", "uuid-not-configured", "anonymous-token-not-customised",
    "dird-stopped", "dird-not-restarted",
]


@pytest.fixture(scope="module", params=VERSIONS)
@starts_services
def lab(request, lab):
    """A healthy two-node lab whose nodes run `request.param` (16.13: the session's lab, `lab` here)."""
    if request.param == "16.13":
        yield lab
        return
    with own_lab(f"xivo-doctor-test-lab-{request.param}-", count=2, version=request.param, base=OTHER_BASE,
                 epmd_port=OTHER_EPMD, dist_base=OTHER_DIST, own_network=VERSION_NETNS) as state:
        state.vantage = VANTAGE.get(request.param)  # type: ignore[attr-defined]
        yield state


def _break(lab, fault: str) -> None:
    """Make the fault on xivo-2, or skip where it makes no sense on the lab's release (the lab says why)."""
    node, peer = lab.node("xivo-2"), lab.node("xivo-1")
    why = faults.FAULTS[fault].refused(node, peer)
    if why:
        pytest.skip(why)
    faults.break_(lab.dir, fault, None, say=lambda _: None)


def doctor(lab, *args: str) -> dict:
    """`xivo-doctor run` from where the lab is seen (`VANTAGE`): here, or on one of its XiVOs."""
    vantage = getattr(lab, "vantage", None)
    topology = lab.dir / (f"topology-on-{vantage}.yml" if vantage else "topology.yml")
    return run_doctor(topology, *args, on=lab.enter(lab.node(vantage)) if vantage else None)


def by_status(data, *statuses):
    return {r["item"]: r for r in data["results"] if r["status"] in statuses}


def test_every_fault_has_a_row():
    assert set(MATRIX) | set(ACCESS_FAULTS) == set(faults.FAULTS)
    assert not set(MATRIX) & set(ACCESS_FAULTS)


# Healthy runs in a row, against flaky verdicts: 10 on the session's lab, 5 on the others, whose every
# fault test runs the doctor again on a lab healthy but for one fault (about 4 s a run)
RUNS_IN_A_ROW = {"16.13": 10}


def test_the_healthy_lab_passes_everything_runs_in_a_row(lab):
    for _ in range(RUNS_IN_A_ROW.get(lab.nodes[0].version, 5)):
        data = doctor(lab)
        bad = {item: (r["status"], r["message"]) for item, r in by_status(data, "fail", "warn", "error").items()}
        blocked = [r["item"] for r in data["results"] if r["blocked_by"]]
        assert not bad and not blocked, bad
        assert data["verdict"] == "OK"
    checks = {r["check"] for r in data["results"]}
    assert checks == {"xivo-version", "uuid-unique", "port-reachable", "consul-wan", "ctid-advertise",
                      "rabbitmq-federation", "directory-source", "phonebook-restricted", "directory-lookup"}


def _items(fault: str) -> list[str]:
    return [f"{check}[{target}]" for check, target in MATRIX[fault]]


@pytest.mark.parametrize("fault", list(MATRIX))
def test_each_fault_is_reported_once_where_it_is_and_the_printed_fix_makes_the_run_green(lab, fault):
    # One break for both halves: the run that reports the fault is the one whose fix is applied (a
    # second break, run and heal for the fix alone cost the matrix about 10 s a fault and release)
    expected = _items(fault)
    _break(lab, fault)
    try:
        data = _settled(lab, expected)
        _assert_reported_once(data, expected)
        if _fixed_by_commands_here(lab, fault):
            _apply_fix_as_printed(lab, fault, data)
    finally:
        healing.heal(lab.dir, say=lambda _: None)


def _assert_reported_once(data: dict, expected: list[str]) -> None:
    failed = by_status(data, "fail", "warn")
    assert sorted(failed) == sorted(expected), {i: r["message"] for i, r in
                                                by_status(data, "fail", "warn", "error").items()}
    assert not by_status(data, "error"), {i: r["message"] for i, r in by_status(data, "error").items()}
    for result in data["results"]:
        if result["blocked_by"]:
            assert set(result["blocked_by"]) <= set(expected), result
    root = failed[expected[0]]
    assert root["fix"]["summary"] and root["fix"]["doc"]
    assert data["verdict"] == "CRITICAL"


def _settled(lab, expected: list[str], attempts: int = 20) -> dict:
    """Run until the expected items fail (a restarted daemon may take a moment to register)."""
    import time

    data = {}
    for _ in range(attempts):
        data = doctor(lab)
        if set(expected) <= set(by_status(data, "fail")):
            return data
        time.sleep(0.5)
    return data


@pytest.mark.parametrize("fault", list(ACCESS_FAULTS))
def test_the_doctors_own_access_missing_is_an_error_not_a_fault(lab, fault):
    item, words = ACCESS_FAULTS[fault]
    _break(lab, fault)
    try:
        data = doctor(lab)
    finally:
        healing.heal(lab.dir, say=lambda _: None)
    assert not by_status(data, "fail", "warn"), {i: r["message"] for i, r in by_status(data, "fail", "warn").items()}
    assert set(by_status(data, "error")) == {item}
    assert words in by_status(data, "error")[item]["message"]


PLACEHOLDER = re.compile(r"<password of the xivo user on [^>]+>")


def _fixed_by_commands_here(lab, fault: str) -> bool:
    node = MATRIX[fault][0][1].split("->")[0]
    # the same fix on every release: applied on the 16.13 lab only
    return fault in FIXED_BY_COMMANDS and not (fault in SAME_ON_EVERY_RELEASE and lab.node(node).version != "16.13")


def _apply_fix_as_printed(lab, fault: str, data: dict) -> None:
    root = _items(fault)[0]  # the root cause's fix repairs the symptoms too
    node = MATRIX[fault][0][1].split("->")[0]
    fix = by_status(data, "fail")[root]["fix"]
    # A fix may span XiVOs: a command ending in `# on xivo-N` runs there, the others on the
    # failing XiVO; consecutive commands for one XiVO run as one script (they may share variables).
    # The only thing the test adds is the password the doctor rightly never prints.
    for where, script in _scripts(fix["commands"], node):
        done = subprocess.run(["xivo-doctor", "lab", "exec", "--dir", str(lab.dir), where, "--", script],
                              capture_output=True, text=True, timeout=180)
        assert "Traceback" not in done.stderr, done.stderr
    lifecycle.wait_healthy(lab, lambda _: None, timeout=60)
    after = _green(lab)
    assert after["verdict"] == "OK", {i: r["message"] for i, r in by_status(after, "fail", "error").items()}


def test_every_fault_fixed_by_commands_has_a_row():  # and so its fix applied, on 16.13 at least
    assert set(FIXED_BY_COMMANDS) <= set(MATRIX)


ON_NODE = re.compile(r"#\s*on (xivo-\d+)\s*$")


def _scripts(commands: list[str], default: str) -> list[tuple[str, str]]:
    groups: list[tuple[str, list[str]]] = []
    for command in commands:
        found = ON_NODE.search(command)
        where = found.group(1) if found else default
        if not groups or groups[-1][0] != where:
            groups.append((where, []))
        groups[-1][1].append(PLACEHOLDER.sub("xivo", command))
    return [(where, "\n".join(lines)) for where, lines in groups]


def _green(lab, attempts: int = 30) -> dict:
    import time

    data = {}
    for _ in range(attempts):
        data = doctor(lab)
        if data["verdict"] == "OK":
            return data
        time.sleep(1)
    return data


def _snapshot(lab) -> dict:
    """What a run must not change: RabbitMQ definitions, Consul services, database rows."""
    shot = {}
    for node in lab.nodes:
        argv = rabbitmq.ctl_argv(lifecycle.rabbit(lab, node), lab.dir)
        out = subprocess.run([*argv, "export_definitions", "-", "--format", "json"], capture_output=True,
                             text=True, timeout=60).stdout
        definitions = json.loads(out[out.index("{"):])
        definitions.pop("rabbitmq_version", None)
        shot[f"{node.name} rabbitmq"] = definitions
        services = requests.get(f"https://{node.address}:8500/v1/agent/services", verify=False, timeout=5,
                                headers={"X-Consul-Token": node.master_token}).json()
        shot[f"{node.name} consul"] = {k: (v["Service"], v["Address"], v["Port"], v["Tags"])
                                       for k, v in services.items()}
        argv, env = postgres.psql(lifecycle.dsn(lab, node), "SELECT * FROM infos; SELECT * FROM directories; "
                                  "SELECT * FROM accesswebservice; SELECT * FROM cticontexts")
        shot[f"{node.name} db"] = subprocess.run(argv, env=env, capture_output=True, text=True).stdout
    return shot


def test_a_run_changes_nothing_on_the_xivos(lab):
    before = _snapshot(lab)
    data = doctor(lab)
    assert data["verdict"] == "OK"
    assert _snapshot(lab) == before
