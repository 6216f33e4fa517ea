"""Proof under a real Nagios Core (issue 6): `xivo-doctor nagios` run by Debian's `nagios4`.

One Nagios (tests/nagios_core.py), started by this module as its child process, holds a service per
check id plus one for the whole run, each calling the installed plugin against the session's lab.
The test forces checks through the external command file and reads what Nagios recorded in
status.dat: healthy lab -> every service OK with the perfdata Nagios split off; a wrong password in
xivo-2's federation upstream -> the federation service CRITICAL naming rabbitmq-federation; xivo-2's
Consul stopped as an admin would -> the consul-wan service not OK. Run with `-s` to see the
status.dat lines and the check execution times Nagios measured (the issue's note quotes them).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from nagios_core import INSTALL_HINT, NAGIOS, NagiosCore, status_lines
from services import starts_services

from xivo_doctor.engine import registry
from xivo_doctor.lab import faults, healing, lifecycle
from xivo_doctor.topology import load_topology

# The plugin's -t; Nagios's own service_check_timeout is above it (+5 s). 30: the forced checks run all
# at once, ten doctors each with its SSH connections to every XiVO, and the lab's XiVOs themselves (sshd,
# rabbitmqctl, the stand-ins), all on 2 vCPUs: 27.5 s of CPU, 12-14.5 s each side by side (1.2-3.9 s
# alone), on a machine the CI may run up to twice slower, where 20 s would leave no margin. A Nagios
# host that does not share its CPUs with the XiVOs it checks needs far less.
PLUGIN_TIMEOUT = 30
WHOLE_RUN = "xivo-interconnection"
FEDERATION = "rabbitmq-federation"
CONSUL_WAN = "consul-wan"
STATES = {"0": "OK", "1": "WARNING", "2": "CRITICAL", "3": "UNKNOWN"}
# One perfdata item per the Monitoring Plugins guidelines: 'label'=value[UOM];[warn];[crit];[min];[max]
PERFDATA = re.compile(r"('(?:[^']|'')+'|[^\s=']+)=(-?[\d.]+|U)([a-zA-Z%]*)((?:;[^;\s]*){0,4})")


def console_script() -> str:
    # The script pip installed beside this interpreter (a pyenv shim would need pyenv's environment,
    # which a Nagios daemon does not have), else whatever PATH offers.
    found = shutil.which("xivo-doctor", path=str(Path(sys.executable).parent)) or shutil.which("xivo-doctor")
    if not found:
        pytest.fail("the xivo-doctor console script is not installed: run ./install-deps.sh --tests")
    return str(Path(found).resolve())


@pytest.fixture(scope="session")
@starts_services
def nagios_binary() -> Path:
    # Session-scoped and asked for first, so a missing Nagios fails before the lab is started.
    if not NAGIOS.exists():
        pytest.fail(INSTALL_HINT)
    return NAGIOS


@pytest.fixture(scope="module")
def nagios(nagios_binary, lab, tmp_path_factory):
    script = console_script()
    topology = lab.dir / "topology.yml"
    base = f"{script} nagios -T {topology}"
    services = {spec.id: f"{base} --check {spec.id} -t {PLUGIN_TIMEOUT}" for spec in registry.discover()}
    services[WHOLE_RUN] = f"{base} -t {PLUGIN_TIMEOUT}"
    core = NagiosCore(tmp_path_factory.mktemp("nagios"), services, check_timeout=PLUGIN_TIMEOUT + 5)
    with core:
        yield core
    assert core.process.returncode is not None and not core.our_processes()


def perfdata(block: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Nagios's `performance_data` field as {label: (value, unit)}; the whole field must parse."""
    text = block.get("performance_data", "").strip()
    items = {m.group(1).strip("'"): (m.group(2), m.group(3)) for m in PERFDATA.finditer(text)}
    assert PERFDATA.sub("", text).strip() == "", f"perfdata not in the guidelines' syntax: {text!r}"
    return items


def show(title: str, status: dict[str, dict[str, str]], services) -> None:
    print(f"\n== {title} ==")
    for name in services:
        print("servicestatus {\n" + status_lines(status[name]) + "\n\t}")


def show_times(status: dict[str, dict[str, str]], alone: dict[str, dict[str, str]] | None = None) -> None:
    print("\ncheck execution time as Nagios recorded it (s)" + (": all at once, each alone" if alone else ""))
    for name, block in status.items():
        also = f" {alone[name]['check_execution_time']:>7}" if alone else ""
        print(f"  {name:24} {block['check_execution_time']:>7}{also}  {STATES[block['current_state']]}")


def secrets(lab) -> list[str]:
    # Short secrets may equal a name shown on purpose (`xivo`); see redact.Redactor.for_topology.
    return [s for s in load_topology(lab.dir / "topology.yml").secrets() if len(s) >= 8]


def assert_no_secret(nagios: NagiosCore, values: list[str]) -> None:
    recorded = (nagios.folder / "status.dat").read_text() + nagios.log()
    leaked = [v for v in values if v in recorded]
    assert not leaked, "a secret reached Nagios's status.dat or log"


def force_until(nagios: NagiosCore, services: list[str], done, timeout: float, what: str) -> dict:
    """Force checks of `services` again and again until `done(status)`, within `timeout`."""
    end = time.monotonic() + timeout
    while True:
        status = nagios.check(services)
        if done(status):
            return status
        if time.monotonic() > end:
            show(f"{what}: not reached", status, services)
            pytest.fail(f"{what}: not reached within {timeout:g} s")


def lab_exec(lab, node: str, *command: str) -> None:
    done = subprocess.run([console_script(), "lab", "exec", "--dir", str(lab.dir), node, "--", *command],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_harness_reads_what_nagios_recorded(nagios_binary, tmp_path):
    """Without the lab: a shell plugin per state, so the scenarios below can tell OK from the rest."""
    plugin = tmp_path / "plugin.sh"
    plugin.write_text("#!/bin/sh\necho \"T $1 - said | 'a b'=1.5ms;2;3;0; n=$2\"\necho 'second line'\nexit $2\n")
    plugin.chmod(0o755)
    services = {name: f"{plugin} {name} {code}" for code, name in STATES.items()}
    core = NagiosCore(tmp_path / "nagios", services)
    with core:
        status = core.check(services)
    assert not core.our_processes()
    for code, name in STATES.items():
        assert status[name]["current_state"] == code
        assert status[name]["plugin_output"] == f"T {name} - said"
        assert status[name]["long_plugin_output"] == "second line"
        assert perfdata(status[name]) == {"a b": ("1.5", "ms"), "n": (code, "")}


def test_healthy_lab_every_service_ok_with_perfdata(nagios, lab):
    services = list(nagios.services)
    status = nagios.check(services)
    show("healthy lab", status, services)
    # Nagios runs the forced checks side by side; each one alone is the plugin's own wall time.
    alone = {name: nagios.check([name])[name] for name in services}
    show_times(status, alone)
    for name in services:
        block = status[name]
        assert block["current_state"] == "0", (name, block["plugin_output"], block["long_plugin_output"])
        assert block["plugin_output"].startswith("XIVO-DOCTOR OK - "), block["plugin_output"]
        assert perfdata(block), f"{name}: Nagios recorded no performance data"
        assert alone[name]["current_state"] == "0", (name, alone[name]["plugin_output"])
    # the federation probe's latency, a measured figure in ms per link: both directions of the full
    # mesh (whatever the label's wording, each ordered pair of XiVOs is named in one label)
    names = [node.name for node in lab.nodes]
    federation = perfdata(status[FEDERATION])
    for a, b in ((a, b) for a in names for b in names if a != b):
        latency = [(label, value) for label, (value, unit) in federation.items()
                   if unit == "ms" and a in label and b in label.split(a, 1)[1]]
        assert len(latency) == 1 and latency[0][1] != "U", \
            f"no single latency in ms for {a}/{b} in {status[FEDERATION]['performance_data']!r}"
    # and each XiVO's count of Consul WAN members alive
    wan = perfdata(status[CONSUL_WAN])
    for name in names:
        assert [label for label in wan if name in label], f"no WAN figure for {name}: {wan}"
    assert_no_secret(nagios, secrets(lab))


def test_federation_wrong_password_is_critical(nagios, lab):
    # on xivo-2 (the fault's default node): its upstream to xivo-1 carries a wrong password
    node, peer = faults.break_(lab.dir, "federation-wrong-password", None, say=lambda _: None)
    try:
        # RabbitMQ retries the link with the new URI after a moment: ask until Nagios sees it
        status = force_until(nagios, [FEDERATION, WHOLE_RUN],
                             lambda s: s[FEDERATION]["current_state"] == "2", 60, "federation service CRITICAL")
    finally:
        healing.heal(lab.dir, say=lambda _: None)
    show("federation-wrong-password on xivo-2", status, [FEDERATION, WHOLE_RUN])
    show_times({name: status[name] for name in (FEDERATION, WHOLE_RUN)})
    federation = status[FEDERATION]
    assert federation["plugin_output"].startswith(f"XIVO-DOCTOR CRITICAL - {FEDERATION}"), federation["plugin_output"]
    assert f"{node.name}->{peer.name}" in federation["plugin_output"] + federation["long_plugin_output"]
    assert status[WHOLE_RUN]["current_state"] == "2", status[WHOLE_RUN]["plugin_output"]
    assert perfdata(federation), "a CRITICAL result keeps its perfdata"
    # the wrong password is in the upstream URI RabbitMQ reports: it must be masked before Nagios
    assert_no_secret(nagios, [*secrets(lab), "wrong-password"])


def test_consul_stopped_on_one_node_makes_consul_wan_not_ok(nagios, lab):
    lab_exec(lab, "xivo-2", "service", "consul", "stop")
    try:
        status = force_until(nagios, [CONSUL_WAN, WHOLE_RUN],
                             lambda s: s[CONSUL_WAN]["current_state"] != "0", 30, "consul-wan service not OK")
    finally:
        lab_exec(lab, "xivo-2", "service", "consul", "start")
        lifecycle.wait_healthy(lab, lambda _: None)
    show("consul stopped on xivo-2 (`service consul stop`)", status, [CONSUL_WAN, WHOLE_RUN])
    show_times({name: status[name] for name in (CONSUL_WAN, WHOLE_RUN)})
    wan = status[CONSUL_WAN]
    assert wan["plugin_output"].startswith(f"XIVO-DOCTOR {STATES[wan['current_state']]} - "), wan["plugin_output"]
    assert "xivo-2" in wan["plugin_output"] + wan["long_plugin_output"]
    assert status[WHOLE_RUN]["current_state"] != "0"
    # and back: the admin's `service consul start` makes the service OK again
    back = force_until(nagios, [CONSUL_WAN], lambda s: s[CONSUL_WAN]["current_state"] == "0", 30,
                       "consul-wan service OK again")
    show("consul started again on xivo-2", back, [CONSUL_WAN])
