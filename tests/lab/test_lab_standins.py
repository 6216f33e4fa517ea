"""The lab's PostgreSQL cluster and its xivo-ctid, xivo-confd and web-services stand-ins, as real processes.

Two nodes, 127.10.220.1 (XiVO 16.15) and 127.10.220.2 (XiVO 16.13), their databases in a lab cluster
on 127.10.220.254, each authorising the other by host as the manual's procedure leaves them.
Requests "from" an address bind it as their source (docs/lab.md "Fidelity limits").
"""

from __future__ import annotations

import subprocess
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from lab_node_fixture import (
    MANUAL_CTID,
    accepts,
    ctids,
    fake_consuls,
    make_root,
    postgres_cluster,
    start,
    stop,
)
from requests.adapters import HTTPAdapter
from requests.auth import HTTPBasicAuth, HTTPDigestAuth
from services import starts_services

from xivo_doctor.lab import postgres

A1, A2, PG = "127.10.220.1", "127.10.220.2", "127.10.220.254"
OTHER = "127.10.220.3"  # an address no row authorises
PHONEBOOK = "/service/ipbx/json.php/{}/pbx_services/phonebook"


class SourceAdapter(HTTPAdapter):
    def __init__(self, source: str) -> None:
        self.source = source
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.source, 0)
        super().init_poolmanager(*args, **kwargs)


def session(source: str | None) -> requests.Session:
    """Requests whose connections come from `source` (None: the kernel's choice, 127.0.0.1)."""
    s = requests.Session()
    if source:
        s.mount("http://", SourceAdapter(source))
        s.mount("https://", SourceAdapter(source))
    return s


@dataclass
class Node:
    address: str
    uuid: str
    root: Path
    dsn: str

    @property
    def cert(self) -> Path:
        return self.root / "usr/share/xivo-certs/server.crt"

    def get(self, source: str | None, url: str, **kwargs) -> requests.Response:
        # verify per request: a session's verify loses to $REQUESTS_CA_BUNDLE.
        return session(source).get(url, timeout=10, verify=str(self.cert), **kwargs)


@dataclass
class Lab:
    pgdir: Path
    nodes: dict[str, Node]


def run_psql(target: str, sql: str, **kwargs) -> str:
    argv, env = postgres.psql(target, sql, **kwargs)
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=True, timeout=20).stdout


def listening_on_test_addresses() -> list[str]:
    out = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "127.10.220." in line]


@pytest.fixture(scope="module")
@starts_services
def lab(tmp_path_factory):
    base = tmp_path_factory.mktemp("standins")
    with ExitStack() as stack:
        pgdir = postgres_cluster(stack, PG)
        nodes = {}
        for index, address, version in ((1, A1, "16.15"), (2, A2, "16.13")):
            node_uuid, peer = str(uuid.uuid4()), (f"xivo-{3 - index}", A2 if index == 1 else A1)
            dsn = postgres.create_node_database(pgdir, index)
            postgres.fill_node(dsn, uuid=node_uuid, node_address=address, peers=[peer], version=version)
            root = make_root(base / f"xivo-{index}" / "root", address=address, uuid=node_uuid, version=version,
                             dsn=dsn, ctid=MANUAL_CTID)
            nodes[f"xivo-{index}"] = Node(address, node_uuid, root, dsn)
        # What an admin could add on xivo-2 (docs/lab.md: faults are rows and files).
        run_psql(nodes["xivo-2"].dsn, """
            INSERT INTO accesswebservice (name, login, passwd, host, disable) VALUES
              ('dird-digest', 'dird', 'secret', NULL, 0),
              ('disabled-host', NULL, NULL, '127.10.220.4', 1),
              ('disabled-login', 'old', 'oldpw', NULL, 1),
              ('host-and-login', 'ws', 'wspw', '127.10.220.5', 0),
              ('a-subnet', NULL, NULL, '127.10.221.0/24', 0)""")
        for node in nodes.values():
            for service, port in (("confd", 9486), ("webservices", 443)):
                stack.callback(stop, start(service, node.root, wait_for=(node.address, port)))
        yield Lab(pgdir, nodes)
    assert listening_on_test_addresses() == []


@pytest.fixture
def consul():
    with fake_consuls(A1, A2) as fakes:
        yield fakes


@pytest.fixture
def ctid(tmp_path, lab):
    """Start a ctid on a fresh node root (made by make_root's keywords); stopped at the end."""
    with ctids(tmp_path, lab.nodes["xivo-1"].root, default_address=A1) as run:
        yield run


def log_of(root: Path, name: str) -> str:
    path = root / "var/log" / name
    return path.read_text() if path.exists() else ""


def uuid_of(root: Path) -> str:
    return (root / "etc/profile.d/xivo_uuid.sh").read_text().strip().split("=", 1)[1]


# --- xivo-ctid -------------------------------------------------------------------------------------

def test_ctid_manual_config_listens_on_node_registers_it_passes_ttl_and_deregisters(ctid, consul):
    config = {**MANUAL_CTID, "service_discovery": {**MANUAL_CTID["service_discovery"], "refresh_interval": 0.3}}
    proc, root = ctid(A1, ctid=config, wait_for=(A1, 9495))
    infos = requests.get(f"http://{A1}:9495/0.1/infos", timeout=5)
    assert infos.json() == {"uuid": uuid_of(root), "cti_protocol_version": "2.2"}
    assert requests.get(f"http://{A1}:9495/0.1/api/api.yml", timeout=5).text.startswith("swagger")
    assert requests.get(f"http://{A1}:9495/0.1/nothing", timeout=5).status_code == 404
    agent = consul[A1]  # consul client_addr 0.0.0.0 -> the node: `localhost:8500` lands here
    assert agent.wait(lambda c: c.paths().count(f"/v1/agent/check/pass/service:{next(iter(c.services), '')}") >= 2)
    (service_id, service), = agent.services.items()
    assert service == {"ID": service_id, "Name": "xivo-ctid", "Address": A1, "Port": 9495,
                       "Tags": [uuid_of(root), "xivo-ctid"], "Check": {"TTL": "30s"}}
    assert agent.calls[0][2] == {"token": "t0k3n"}
    assert f"Registering xivo-ctid on Consul as {service_id} with {A1}:9495" in log_of(root, "xivo-ctid.log")
    agent.services.clear()  # the admin wipes consul's services: the pass fails, the ctid registers again
    assert agent.wait(lambda c: service_id in c.services)
    assert "ttl pass failed" in log_of(root, "xivo-ctid.log")
    assert stop(proc) == 0
    assert agent.paths()[-1] == f"/v1/agent/service/deregister/{service_id}"
    assert f"Deregistering xivo-ctid from Consul services: {service_id}" in log_of(root, "xivo-ctid.log")


def test_ctid_defaults_listen_on_loopback_only_and_advertise_localhost(ctid, consul):
    if accepts("127.0.0.1", 9495):
        pytest.skip("127.0.0.1:9495 is taken by something else")
    _proc, _root = ctid(A2, ctid=None, wait_for=("127.0.0.1", 9495))
    assert not accepts(A2, 9495)
    assert consul[A2].wait(lambda c: len(c.services) == 1)
    (service,) = consul[A2].services.values()
    assert service["Address"] == "localhost"


def test_ctid_missing_interface_is_logged_and_falls_back(ctid, consul):
    config = {**MANUAL_CTID, "service_discovery": {"advertise_address": "auto", "advertise_address_interface": "eth1"}}
    _proc, root = ctid(A1, ctid=config, wait_for=(A1, 9495))
    assert consul[A1].wait(lambda c: len(c.services) == 1)
    assert next(iter(consul[A1].services.values()))["Address"] == A1  # eth0, the first other eth*
    assert "The configured interface does not exists: eth1" in log_of(root, "xivo-ctid.log")


def test_ctid_retries_while_consul_refuses(ctid):
    _proc, root = ctid(A1, ctid=MANUAL_CTID, wait_for=(A1, 9495))  # no Consul on the node
    for _ in range(100):
        if "registration failed, retrying in 2 seconds" in log_of(root, "xivo-ctid.log"):
            break
        subprocess.run(["sleep", "0.05"])
    assert "registration failed, retrying in 2 seconds" in log_of(root, "xivo-ctid.log")


def test_ctid_without_xivo_uuid_exits_1(ctid):
    proc, root = ctid(A1, uuid=None)
    assert proc.wait(10) == 1
    assert "undefined environment variable XIVO_UUID" in log_of(root, "xivo-ctid.log")


# --- xivo-confd -------------------------------------------------------------------------------------

def test_confd_allows_a_host_row_exactly_and_answers_its_own_uuid(lab):
    node = lab.nodes["xivo-2"]
    response = node.get(A1, f"https://{A2}:9486/1.1/infos")
    assert response.status_code == 200 and response.json() == {"uuid": node.uuid}
    assert node.get(OTHER, f"https://{A2}:9486/1.1/infos").status_code == 401
    assert node.get(None, f"https://{A2}:9486/1.1/infos").status_code == 401  # 127.0.0.1 is no exception on 9486
    assert node.get("127.10.220.4", f"https://{A2}:9486/1.1/infos").status_code == 401  # its row is disabled
    assert f"{A1} - - \"GET /1.1/infos\" 200" in log_of(node.root, "xivo-confd.log")


def test_confd_digest(lab):
    node, url = lab.nodes["xivo-2"], f"https://{A2}:9486/1.1/infos"
    refused = node.get(OTHER, url)
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith('Digest realm="XIVO-CONFD"')
    assert node.get(OTHER, url, auth=HTTPDigestAuth("dird", "secret")).json() == {"uuid": node.uuid}
    assert node.get(OTHER, url, auth=HTTPDigestAuth("dird", "wrong")).status_code == 401
    assert node.get(OTHER, url, auth=HTTPDigestAuth("old", "oldpw")).status_code == 401  # disabled row


def test_confd_users_directory_view_and_search(lab):
    node = lab.nodes["xivo-2"]
    everyone = node.get(A1, f"https://{A2}:9486/1.1/users", params={"view": "directory"}).json()
    assert everyone["total"] == 3 == len(everyone["items"])
    found = node.get(A1, f"https://{A2}:9486/1.1/users", params={"view": "directory", "search": "ALI"}).json()
    assert found["total"] == 1
    (alice,) = found["items"]
    assert alice["firstname"] == "Alice" and alice["lastname"] == "Lab2" and alice["exten"] == "2001"
    assert set(alice) == {"id", "uuid", "firstname", "lastname", "exten", "email", "mobile_phone_number",
                          "userfield", "description", "line_id", "agent_id", "voicemail_number", "context"}
    by_exten = node.get(A1, f"https://{A2}:9486/1.1/users", params={"view": "directory", "search": "2002"}).json()
    assert [u["firstname"] for u in by_exten["items"]] == ["Bob"]


# --- web services -----------------------------------------------------------------------------------

def test_http_redirects_to_https_unless_host_is_local(lab):
    node = lab.nodes["xivo-2"]
    path = PHONEBOOK.format("restricted") + "?act=search&search=dave"
    redirect = node.get(A1, f"http://{A2}{path}", allow_redirects=False)
    assert redirect.status_code == 302 and redirect.headers["Location"] == f"https://{A2}{path}"
    followed = node.get(A1, f"http://{A2}{path}")
    assert followed.status_code == 200 and followed.history[0].status_code == 302
    direct = node.get(A1, f"http://{A2}{path}", headers={"Host": "localhost"}, allow_redirects=False)
    assert direct.status_code == 200


def test_private_is_local_only(lab):
    node = lab.nodes["xivo-2"]
    assert node.get(A1, f"https://{A2}{PHONEBOOK.format('private')}").status_code == 403
    assert node.get(None, f"https://{A2}{PHONEBOOK.format('private')}").status_code == 200  # from 127.0.0.1


def test_restricted_phonebook_by_host(lab):
    node, url = lab.nodes["xivo-2"], f"https://{A2}{PHONEBOOK.format('restricted')}"
    found = node.get(A1, url, params={"act": "search", "search": "dave"})
    assert found.status_code == 200 and found.headers["X-XIVO-WS-VERSION"] == "1.0"
    (entry,) = found.json()
    assert entry["phonebook"]["firstname"] == "Dave" and entry["phonebook"]["society"] == "Acme 2"
    assert entry["phonebooknumber"]["office"] == {"number": "0100020001"}
    assert entry["phonebookaddress"]["office"]["city"] == "Quebec"
    assert node.get(A1, url, params={"act": "search", "search": "nobody"}).status_code == 204
    assert len(node.get(A1, url).json()) == 2  # act=list is the default
    assert node.get("127.10.221.7", url).status_code == 200  # host 127.10.221.0/24
    refused = node.get(OTHER, url)
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == 'Basic realm="Access Restricted"'
    access = log_of(node.root, "nginx/xivo.access.log")
    assert f'{A1} - - [' in access and f'"GET {PHONEBOOK.format("restricted")}?act=search&search=dave HTTP/1.1" 200 ' \
        in access


def test_restricted_host_row_with_login_needs_the_login(lab):
    node, url = lab.nodes["xivo-2"], f"https://{A2}{PHONEBOOK.format('restricted')}"
    assert node.get("127.10.220.5", url).status_code == 401  # the row has login/passwd: no access by host
    assert node.get("127.10.220.5", url, auth=HTTPBasicAuth("ws", "wspw")).status_code == 200
    assert node.get("127.10.220.6", url, auth=HTTPBasicAuth("ws", "wspw")).status_code == 401  # host mismatch
    assert node.get("127.10.220.5", url, auth=HTTPBasicAuth("ws", "bad")).status_code == 401


def test_json_php_phonebook_is_gone_on_16_14_and_later(lab):
    node = lab.nodes["xivo-1"]  # 16.15
    assert node.get(A2, f"https://{A1}{PHONEBOOK.format('restricted')}").status_code == 404
    assert "phonebook" not in run_psql(node.dsn, "SELECT dirtype FROM directories")


# --- PostgreSQL -------------------------------------------------------------------------------------

def test_cluster_stop_start_and_psql_helper(lab):
    node = lab.nodes["xivo-2"]
    assert node.uuid in run_psql(node.dsn, "SELECT uuid FROM infos")
    assert node.uuid in run_psql("asterisk_2", "SELECT uuid FROM infos", cluster=lab.pgdir)
    argv, env = postgres.psql(node.dsn, "SELECT 1")
    assert postgres.password(lab.pgdir) not in " ".join(argv) and env["PGPASSWORD"]
    running = postgres.pid(lab.pgdir)
    assert running and postgres.is_running(lab.pgdir)
    postgres.stop(lab.pgdir)
    assert not postgres.is_running(lab.pgdir) and not accepts(PG, 5432)
    down = node.get(A1, f"https://{A2}:9486/1.1/infos")
    assert down.status_code == 500 and down.headers["Content-Type"] == "application/json"
    postgres.start(lab.pgdir)
    assert postgres.pid(lab.pgdir) != running
    assert node.get(A1, f"https://{A2}:9486/1.1/infos").json() == {"uuid": node.uuid}


def test_fill_node_rows(lab):
    out = run_psql(lab.nodes["xivo-2"].dsn, "SELECT name, login, passwd, host, disable FROM accesswebservice"
                                             " WHERE name = 'xivo-doctor-peer-1'; SELECT directories FROM cticontexts")
    assert f"xivo-doctor-peer-1 |       |        | {A1} |       0" in out
    assert "internal,xivo-1,phonebook-1" in out
