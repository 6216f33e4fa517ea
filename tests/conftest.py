"""Shared fixtures for the project's own tests."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest
from services import needs_services, starts_services

pytest_plugins = ["pytester", "lab_fixture"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that uses a fixture starting the lab or a real service is marked `lab`
    (tests/support/services.py): `pytest -m "not lab"` is the fast lane."""
    for item in items:
        if needs_services(item):
            item.add_marker(pytest.mark.lab)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _no_consul_env(monkeypatch):
    # python-consul2 silently obeys these (LAB-NOTES §C.3); tests must not inherit them.
    for name in ("CONSUL_HTTP_ADDR", "CONSUL_HTTP_SSL", "CONSUL_HTTP_SSL_VERIFY", "CONSUL_HTTP_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def write_topology(folder: Path, body: str, name: str = "topology.yml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(body))
    return path


# Ports for engine tests: high numbers so no system service (a broker on [::]:5672, say) collides.
TEST_PORTS = {"amqp": 15672, "consul-rpc": 18300, "serf-wan": 18302, "confd": 19486, "ctid": 19495}


def loopback_topology(folder: Path, addresses: list[str], *, probe_timeout: float = 1.0,
                      phonebook: bool = False) -> Path:
    """A topology of XiVOs on loopback addresses, listening (if at all) on the TEST_PORTS."""
    xivos = "".join(f"  - name: xivo-{i}\n    address: {a}\n" for i, a in enumerate(addresses, 1))
    text = (
        "name: test-loopback\n"
        f"probe_timeout: {probe_timeout}\n"
        "defaults:\n"
        '  version: "16.15"\n'
        f"  rabbitmq: {{port: {TEST_PORTS['amqp']}}}\n"
        f"  consul: {{rpc_port: {TEST_PORTS['consul-rpc']}, serf_wan_port: {TEST_PORTS['serf-wan']}}}\n"
        f"  confd: {{port: {TEST_PORTS['confd']}}}\n"
        f"  ctid: {{port: {TEST_PORTS['ctid']}}}\n"
        f"  webservices: {{phonebook_sharing: {str(phonebook).lower()}}}\n"
        "xivos:\n" + xivos
    )
    return write_topology(folder, text)


@pytest.fixture
def doctor_env():
    """Environment for running the installed `xivo-doctor` in a subprocess."""
    env = dict(os.environ)
    env.pop("CONSUL_HTTP_TOKEN", None)
    return env


@pytest.fixture
def runtime_dir(tmp_path, monkeypatch) -> Path:
    """Lock files under the test's own directory, as a user session's XDG_RUNTIME_DIR."""
    directory = tmp_path / "runtime"
    directory.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(directory))
    return directory


@pytest.fixture
@starts_services
def own_peers() -> None:
    """Taken by a test that starts, inside its body, servers playing a XiVO's part or the doctor
    (or pip) as a process: it waits on real timeouts and processes, so it is not in the fast lane."""
