"""The canary: distinctive secrets in every place the topology and the lab can hold one, every
output produced from a real run on the lab, all grepped: zero hits.

Places: the topology (a `${ENV}` Consul token, a `*_file` RabbitMQ password, an inline confd
password, the database DSN from a file), the inspected systems (a federation upstream URI with a
password the topology never knew, a directory's xivo_password, a web services user's passwd, the
Consul master token on disk), and the logs the bundle collects (lines quoting the token and a URI
with credentials). Outputs: the terminal (normal, -v, -q), stderr, JSON, JUnit, HTML, every
file of the support bundle, and the Nagios plugin's output (normal and -v). The lab is changed
the way an admin would and put back at the end.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from xivo_doctor.cli.main import main
from xivo_doctor.lab import faults, healing, lifecycle
from xivo_doctor.lab.state import LabState

CANARY_USER = "doctor-canary"


def _canaries() -> dict[str, str]:
    tag = secrets.token_hex(4)
    return {name: f"Canary{name.title().replace('_', '')}{tag}" for name in
            ("amqp_password", "confd_password", "upstream_password", "directory_password", "ws_password",
             "auth_password")}


@pytest.fixture
def planted(lab, tmp_path, monkeypatch):
    """The lab with canaries planted everywhere, and a topology that reads its secrets every way."""
    state = LabState.load(lab.dir)
    one, two = state.nodes[0], state.nodes[1]
    canary = _canaries()
    tokens = {n.name: (state.root(n) / "var/lib/consul/master_token").read_text().strip() for n in state.nodes}
    dsn = (lab.dir / "nodes" / one.name / "database.dsn").read_text().strip()
    canary["consul_token"], canary["dsn_password"] = tokens[one.name], re.search(r"//[^:]+:([^@]+)@", dsn).group(1)
    # xivo-2's token: from a file the topology names (on-box), or read by the doctor over SSH
    canary["consul_token_2"] = tokens[two.name]

    # A monitoring user of its own on both RabbitMQs (what an admin gives a Nagios check).
    for node in state.nodes:
        faults.ctl(state, node, "add_user", CANARY_USER, canary["amqp_password"])
        faults.ctl(state, node, "set_permissions", CANARY_USER, ".*", ".*", ".*")
    # xivo-1's upstream to xivo-2 with a password nobody declared (the federation-wrong-password fault, by hand)
    faults.ctl(state, one, "set_parameter", "federation-upstream", two.name,
               f'{{"uri":"amqp://xivo:{canary["upstream_password"]}@{two.address}","max-hops":1}}')
    faults.sql(state, one, f"UPDATE directories SET xivo_username = 'canary', "
                           f"xivo_password = '{canary['directory_password']}' WHERE dirtype = 'xivo'")
    faults.sql(state, two, f"UPDATE accesswebservice SET login = 'canary', passwd = '{canary['ws_password']}' "
                           "WHERE host IS NOT NULL")
    for node in state.nodes:  # directory-lookup's own web services user: its token comes from this password
        faults.sql(state, node, f"UPDATE accesswebservice SET passwd = '{canary['auth_password']}' "
                                "WHERE login = 'xivo-doctor'")
    for node in state.nodes:
        log = state.root(node) / "var/log/xivo-ctid.log"
        with log.open("a") as fh:
            fh.write(f"2026-11-25 10:00:00 INFO X-Consul-Token: {tokens[node.name]}\n"
                     f"2026-11-25 10:00:01 ERROR connecting amqp://xivo:{canary['upstream_password']}@{two.address}\n"
                     # bare, as no pattern finds it: masked only as a secret the run knows
                     f"2026-11-25 10:00:02 WARN acl {tokens[node.name]} refused\n")

    topology = yaml.safe_load((lab.dir / "topology.yml").read_text())
    topology["defaults"]["rabbitmq"].update(user=CANARY_USER, password_file=str(tmp_path / "amqp.secret"))
    topology["defaults"]["confd"].update(username="canary", password=canary["confd_password"])
    topology["defaults"]["auth"] = {**topology["defaults"]["auth"], "password": canary["auth_password"]}
    topology["defaults"]["auth"].pop("password_file")
    (tmp_path / "amqp.secret").write_text(canary["amqp_password"] + "\n")
    monkeypatch.setenv("CANARY_CONSUL_TOKEN", tokens[one.name])
    for i, x in enumerate(topology["xivos"]):  # paths in the lab's topology are relative to the lab directory
        if i == 0:
            x["consul"] = {"token": "${CANARY_CONSUL_TOKEN}"}
        elif "on_box" in x:
            x["consul"] = {"token_file": str(lab.dir / x["consul"]["token_file"])}
        # else (a lab of hosts, reached over SSH): the doctor reads the master token on the node
        if "on_box" in x:
            x["on_box"].update(root=str(lab.dir / x["on_box"]["root"]),
                               database_file=str(lab.dir / x["on_box"]["database_file"]))
    if "ssh" in topology["defaults"]:
        topology["defaults"]["ssh"] = {key: str(lab.dir / value) for key, value in topology["defaults"]["ssh"].items()}
    path = tmp_path / "canary.yml"
    path.write_text(yaml.safe_dump(topology))
    try:
        yield path, canary
    finally:
        for node in state.nodes:
            faults.ctl(state, node, "delete_user", CANARY_USER)
        healing.heal(lab.dir, say=lambda _: None)
        lifecycle.wait_healthy(state, lambda _: None, timeout=60)


def _outputs(topology: Path, out: Path, capsys, *extra: str) -> dict[str, str]:
    """Every output of one run, by name: what a human, a script or a support engineer gets."""
    texts: dict[str, str] = {}
    files = {"json": out / "r.json", "junit": out / "r.xml", "html": out / "r.html", "bundle": out / "b.tar.gz"}
    code = main(["run", "-T", str(topology), "--json", str(files["json"]), "--junit", str(files["junit"]),
                 "--html", str(files["html"]), "--bundle", str(files["bundle"]), *extra])
    captured = capsys.readouterr()
    texts["terminal"], texts["stderr"] = captured.out, captured.err
    assert code == 2, captured.out[-2000:] + captured.err  # the planted faults are found
    for mode in ("-v", "-q"):
        main(["run", "-T", str(topology), mode, *extra])
        captured = capsys.readouterr()
        texts[f"terminal {mode}"], texts[f"stderr {mode}"] = captured.out, captured.err
    # The Nagios plugin, as Nagios runs it: its own process, stdout is what Nagios records. (It
    # has no --redact-addresses: its output stays in the admin's own monitoring.)
    for mode in ((), ("-v",)) if not extra else ():
        plugin = subprocess.run(["xivo-doctor", "nagios", "-T", str(topology), "-t", "20", *mode],
                                capture_output=True, text=True, timeout=60, env={**os.environ})
        assert plugin.stdout.startswith("XIVO-DOCTOR CRITICAL"), plugin.stdout + plugin.stderr
        texts[f"nagios {mode}"], texts[f"nagios stderr {mode}"] = plugin.stdout, plugin.stderr
    for name in ("json", "junit", "html"):
        texts[name] = files[name].read_text()
    with tarfile.open(files["bundle"]) as tar:
        members = [m for m in tar.getmembers() if m.isfile()]
        assert len(members) >= 6, [m.name for m in members]
        for member in members:
            texts[f"bundle:{member.name}"] = tar.extractfile(member).read().decode("utf-8", "replace")
    return texts


def _hits(texts: dict[str, str], needles: dict[str, str]) -> list[str]:
    return [f"{what} in {where}" for where, text in texts.items() for what, needle in needles.items()
            if needle in text]


def test_no_secret_reaches_any_output(planted, tmp_path, capsys):
    topology, canary = planted
    texts = _outputs(topology, tmp_path / "out", capsys)
    assert not _hits(texts, canary)
    # The outputs did see the places the canaries were: proof the grep looked where it matters.
    bundle = "\n".join(t for name, t in texts.items() if name.startswith("bundle:"))
    assert "X-Consul-Token: ********" in bundle and "amqp://xivo:********@" in bundle
    assert "amqp://xivo:********@" in texts["json"]
    print(f"canary: {len(texts)} outputs x {len(canary)} secrets, 0 hits")


def test_redact_addresses_leaves_no_address_or_lab_host_name(lab, planted, tmp_path, capsys):
    topology, canary = planted
    texts = _outputs(topology, tmp_path / "out", capsys, "--redact-addresses")
    raw = yaml.safe_load(topology.read_text())
    addresses = {x["address"] for x in raw["xivos"]}
    hostnames = {(lab.root(n) / "etc/hostname").read_text().strip() for n in lab.nodes}
    assert not _hits(texts, {**canary, **{a: a for a in addresses}, **{h: h for h in hostnames}})
    assert "10.0.0.1" in texts["json"] and "10.0.0.2" in texts["json"]
