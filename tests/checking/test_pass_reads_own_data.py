"""A pass means the XiVO's own data was read and judged: with a data source taken away, no check
passes on what it could no longer read.

Two walks. Fast: every check alone against XiVOs where nothing answers (no on-box access, every
port closed): not one item may pass, whatever the topology declares. On the lab: each fault of the
catalogue is made, then the check that finds it runs alone (so nothing blocks it) with each data
source taken out of the topology in turn; the item may fail (another source still shows the fault),
skip or error, never pass: a pass there would be a pass on data the check did not read.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from lab_fixture import run_doctor

from xivo_doctor.engine import registry

CHECKS = [spec.id for spec in registry.discover()]


def doctor(topology: Path, check: str | None = None, on: list[str] | None = None) -> dict:
    return run_doctor(topology, *(["--check", check] if check else []), on=on)


# -- fast: nothing answers ---------------------------------------------------------------------------

BLIND = """\
name: blind
probe_timeout: 1
defaults:
  version: '16.13'
xivos:
- name: xivo-1
  address: 127.10.251.1
- name: xivo-2
  address: 127.10.251.2
"""


@pytest.mark.parametrize("check", CHECKS)
def test_no_check_passes_when_nothing_of_the_xivos_can_be_read(tmp_path, check):
    """The topology declares a version and every address; nothing listens there (connections are
    refused at once on these loopback addresses) and there is no on-box access."""
    topology = tmp_path / "blind.yml"
    topology.write_text(BLIND)
    results = doctor(topology, check)["results"]
    assert results
    passed = {r["item"]: r["message"] for r in results if r["status"] == "pass"}
    assert not passed, passed


# -- on the lab: each source taken away in turn --------------------------------------------------------

def _without(data: dict, *path: str) -> dict:
    """The topology with key `path` removed from every XiVO (on_box.database_file, consul.token_file...)."""
    for xivo in data["xivos"]:
        node = xivo
        for key in path[:-1]:
            node = node.get(key) or {}
        node.pop(path[-1], None)
    return data


def _afar(data: dict) -> dict:
    """Neither on-box access nor SSH: what the network alone shows."""
    data.get("defaults", {}).pop("ssh", None)
    return _without(_without(data, "on_box"), "ssh")


def _closed_web(data: dict) -> dict:
    data.setdefault("defaults", {}).setdefault("webservices", {})["https_port"] = 9
    return data


VARIANTS = {
    "from afar (no on_box)": _afar,
    "from afar, login page unreachable": lambda d: _closed_web(_afar(d)),
    "no consul token": lambda d: _without(d, "consul", "token_file"),
    "no source address": lambda d: _without(d, "on_box", "source_address"),
    "no database": lambda d: _without(d, "on_box", "database_file"),
    "no rabbitmqctl": lambda d: _without(d, "on_box", "rabbitmqctl"),
}


# The vantage of the walk on the lab: on a lab of hosts, the doctor installed on the broken node, xivo-2
# (lab/labtopology.py: on-box access to it from inside it, SSH to xivo-1), so that taking an on-box source
# away means something; on a lab sharing this host, this machine with on-box access to every node.
VANTAGE = "xivo-2"


def _on(lab) -> list[str] | None:
    return lab.enter(lab.node(VANTAGE)) if lab.net_id else None


@pytest.fixture(scope="module")
def variants(lab) -> dict[str, Path]:
    """The lab's topology with each data source taken away, written beside it (relative paths hold)."""
    base = yaml.safe_load((lab.dir / (f"topology-on-{VANTAGE}.yml" if lab.net_id else "topology.yml")).read_text())
    out = {}
    for i, (name, change) in enumerate(VARIANTS.items()):
        path = lab.dir / f"topology-variant-{i}.yml"
        path.write_text(yaml.safe_dump(change(json.loads(json.dumps(base)))))
        out[name] = path
    return out


def test_a_source_taken_away_is_no_false_alarm(lab, variants):
    """The healthy lab seen with less access: items skip or still pass (reading another source),
    none fails. In particular nothing depends on the Consul token where XiVO's Consul (<= 0.7) asks
    none (/v1/agent/*), nor on the database where the network shows the same thing."""
    for name, topology in variants.items():
        if "unreachable" in name:
            continue  # a closed port fails port-reachable: that is not less access
        results = doctor(topology, on=_on(lab))["results"]
        bad = {r["item"]: (r["status"], r["message"]) for r in results if r["status"] in ("fail", "warn")}
        assert not bad, (name, bad)


# One fault per check that has more than one way to read what it judges (port-reachable has one: a
# TCP connect), and the variants that take away the sources those ways use: everything on-box (the
# admin's host), that and the login page, the Consul token, the address requests leave from. Every
# fault x every variant would cost minutes of lab time for little more.
FAULT_PER_CHECK = {
    "version-mismatch": ("xivo-version", "xivo-2"),
    "duplicate-uuid": ("uuid-unique", "xivo-2"),
    "consul-not-joined": ("consul-wan", "xivo-2"),
    "ctid-advertise-localhost": ("ctid-advertise", "xivo-2"),
    "federation-policy-missing": ("rabbitmq-federation", "xivo-2->xivo-1"),
    "directory-uri-trailing-slash": ("directory-source", "xivo-2"),
    "phonebook-private-url": ("phonebook-restricted", "xivo-2"),
    "dird-not-restarted": ("directory-lookup", "xivo-2->xivo-1"),
}
FAULT_VARIANTS = ("from afar (no on_box)", "from afar, login page unreachable", "no consul token",
                  "no source address")


def test_the_walk_covers_every_check_but_the_tcp_one():
    assert {check for check, _ in FAULT_PER_CHECK.values()} == set(CHECKS) - {"port-reachable"}


def _root_items() -> dict[str, tuple[str, str]]:
    return FAULT_PER_CHECK


@pytest.mark.parametrize("fault", list(_root_items()))
def test_no_item_passes_on_a_source_taken_away(lab, variants, fault):
    from xivo_doctor.lab import faults, healing

    check, target = _root_items()[fault]
    node, peer = lab.node("xivo-2"), lab.node("xivo-1")
    why = faults.FAULTS[fault].refused(node, peer)
    if why:
        pytest.skip(why)
    faults.break_(lab.dir, fault, None, say=lambda _: None)
    try:
        seen = {}
        for name in FAULT_VARIANTS:
            topology = variants[name]
            item = next(r for r in doctor(topology, check, on=_on(lab))["results"] if r["item"] == f"{check}[{target}]")
            seen[name] = (item["status"], item["message"])
    finally:
        healing.heal(lab.dir, say=lambda _: None)
    passed = {name: message for name, (status, message) in seen.items() if status == "pass"}
    assert not passed, passed
