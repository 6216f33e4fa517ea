"""A lab node behaves as its XiVO release's daemons do (15.19 to 16.15; research R1 §2-§3, R2 §5, R3 §4).

Two parts, on addresses of their own:
- the xivo-ctid and web-services stand-ins alone, on 127.10.131.x, each node root written by hand
  for one release (tests/support/lab_node_fixture.py), xivo-ctid registering with a fake Consul that
  records every call, their databases in a cluster on 127.10.131.254;
- two whole labs, one after the other: `lab up --version 15.19,16.01` on 127.10.130.x and
  `--version 16.13,16.15` on 127.10.132.x (own epmd and Erlang distribution ports), read through
  the Consul stand-in's own API (/v1/agent/services, /v1/agent/checks), xivo-ctid's /0.1/infos, the
  web interface's login page and the node's files, as an admin would.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

import pytest
import requests
import urllib3
import yaml
from lab_fixture import eventually, listeners, tcp_state
from lab_node_fixture import (
    MANUAL_CTID,
    accepts,
    ctids,
    fake_consuls,
    make_root,
    manual_ctid_15,
    postgres_cluster,
    start,
    stop,
)
from services import starts_services

from xivo_doctor.lab import faults, healing, lifecycle, postgres, releases
from xivo_doctor.lab.state import LabError
from xivo_doctor.topology import load_topology

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

S1, S2, S3, S4, SPG = "127.10.131.1", "127.10.131.2", "127.10.131.3", "127.10.131.4", "127.10.131.254"
PHONEBOOK = "/service/ipbx/json.php/restricted/pbx_services/phonebook"
# serialize(array('acl' => <tree>)) as the 15.x web interface stores it in accesswebservice.obj
GRANTS_PHONEBOOK = 'a:1:{s:3:"acl";a:1:{s:7:"service";a:1:{s:4:"ipbx";a:1:{s:12:"pbx_services";' \
                   'a:1:{s:9:"phonebook";b:1;}}}}}'
GRANTS_OTHER = 'a:1:{s:3:"acl";a:1:{s:7:"service";a:1:{s:4:"ipbx";a:1:{s:12:"pbx_services";' \
               'a:1:{s:13:"extenfeatures";b:1;}}}}}'


def log_of(root: Path, name: str = "xivo-ctid.log") -> str:
    path = root / "var/log" / name
    return path.read_text() if path.exists() else ""


def psql(dsn: str, sql: str) -> str:
    argv, env = postgres.psql(dsn, sql)
    done = subprocess.run([*argv, "-A", "-t"], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def get(url: str, source: str | None = None, **kwargs) -> requests.Response:
    session = requests.Session()
    if source:
        from requests.adapters import HTTPAdapter

        class Bound(HTTPAdapter):
            def init_poolmanager(self, *args, **kw):
                kw["source_address"] = (source, 0)
                super().init_poolmanager(*args, **kw)

        session.mount("http://", Bound())
        session.mount("https://", Bound())
    return session.get(url, timeout=10, verify=False, **kwargs)


def footer(page: str) -> str:
    return page.split('<h6 id="version-copyright">', 1)[1].split("</h6>", 1)[0].strip()


# --- the stand-ins alone -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
@starts_services
def cluster(tmp_path_factory):
    """A lab PostgreSQL cluster with one database per release used below, filled as `lab up` fills it."""
    with ExitStack() as stack:
        pgdir = postgres_cluster(stack, SPG)
        dsns, uuids = {}, {}
        for index, (version, address) in enumerate((("15.19", S1), ("16.01", S2), ("16.15", S3)), 1):
            dsns[version] = postgres.create_node_database(pgdir, index, version=version)
            uuids[version] = str(uuid.uuid4())
            postgres.fill_node(dsns[version], uuid=uuids[version], node_address=address,
                               peers=[("xivo-9", "127.10.131.9", version)], version=version)
        yield pgdir, dsns, uuids


@pytest.fixture
@starts_services
def ctid(tmp_path, cluster):
    """Start a ctid on a fresh node root (make_root's keywords); stopped at the end."""
    certs = tmp_path / "certs"
    make_root(certs, address=S1, uuid=None)
    with ctids(tmp_path, certs) as run:
        yield run


@pytest.fixture
@starts_services
def fake_consul():
    with fake_consuls(S1, S2) as fakes:
        yield fakes


def test_ctid_15_19_reads_its_uuid_in_the_database_and_registers_an_http_check(ctid, fake_consul, cluster):
    _pgdir, dsns, uuids = cluster
    proc, root = ctid(S1, version="15.19", uuid=None, dsn=dsns["15.19"], ctid=manual_ctid_15(S1),
                      wait_for=(S1, 9495))
    assert not (root / "etc/profile.d/xivo_uuid.sh").exists()
    assert requests.get(f"http://{S1}:9495/0.1/infos", timeout=5).json() == {"uuid": uuids["15.19"]}
    agent = fake_consul[S1]
    assert agent.wait(lambda c: len(c.services) == 1)
    (service_id, service), = agent.services.items()
    assert service == {"ID": service_id, "Name": "xivo-ctid", "Address": S1, "Port": 9495,
                       "Tags": ["xivo-ctid", uuids["15.19"]],
                       "Check": {"HTTP": f"http://{S1}:9495/0.1/infos", "Interval": "300s", "Timeout": "10s"}}
    assert agent.calls[0][2] == {"token": "t0k3n"}  # python-consul puts the token on the registration
    time.sleep(1)
    assert agent.paths() == ["/v1/agent/service/register"]  # no self-check, no TTL to keep passing
    assert f"Registering xivo-ctid on Consul as {service_id} with {S1}:9495" in log_of(root)
    assert stop(proc) == 0
    assert agent.paths()[1:] == [f"/v1/agent/service/deregister/{service_id}"]  # the check goes with it
    assert all(call[2] == {} for call in agent.calls[1:])


def test_ctid_15_20_registers_auto_literally_with_the_shipped_check_url(ctid, fake_consul, cluster):
    _pgdir, dsns, _uuids = cluster
    config = {"rest_api": {"http": {"listen": "0.0.0.0"}}, "service_discovery": {"advertise_address": "auto"}}
    _proc, _root = ctid(S1, version="15.20", uuid=None, dsn=dsns["15.19"], ctid=config, wait_for=(S1, 9495))
    assert fake_consul[S1].wait(lambda c: len(c.services) == 1)
    (service,) = fake_consul[S1].services.values()
    assert service["Address"] == "auto"  # no `auto` before 16.01: the text is registered as is
    assert service["Check"] == {"HTTP": "http://localhost:9495/0.1/infos", "Interval": "300s", "Timeout": "10s"}


def test_ctid_15_19_retries_every_20_seconds(ctid, cluster):
    _pgdir, dsns, _uuids = cluster
    _proc, root = ctid(S1, version="15.19", uuid=None, dsn=dsns["15.19"], ctid=manual_ctid_15(S1),
                       wait_for=(S1, 9495))  # no Consul on the node
    eventually(lambda: "Service registration failed, retrying in 20 seconds" in log_of(root), timeout=10,
               what="the 15.x retry message")
    assert "Failed to register service" in log_of(root)


def test_ctid_16_01_uuid_from_database_tags_name_first_ttl_passes_without_token(ctid, fake_consul, cluster):
    _pgdir, dsns, uuids = cluster
    config = {**MANUAL_CTID, "service_discovery": {**MANUAL_CTID["service_discovery"], "refresh_interval": 0.3}}
    proc, _root = ctid(S2, version="16.01", uuid=None, dsn=dsns["16.01"], ctid=config, wait_for=(S2, 9495))
    assert requests.get(f"http://{S2}:9495/0.1/infos", timeout=5).json() == {"uuid": uuids["16.01"]}
    agent = fake_consul[S2]
    assert agent.wait(lambda c: c.paths().count(f"/v1/agent/check/pass/service:{next(iter(c.services), '')}") >= 2)
    (service_id, service), = agent.services.items()
    assert service == {"ID": service_id, "Name": "xivo-ctid", "Address": S2, "Port": 9495,
                       "Tags": ["xivo-ctid", uuids["16.01"]], "Check": {"TTL": "30s"}}
    assert next(c[2] for c in agent.calls if c[1].startswith("/v1/agent/check/pass/")) == {}  # no token
    assert stop(proc) == 0
    assert agent.paths()[-2:] == [f"/v1/agent/check/deregister/service:{service_id}",
                                  f"/v1/agent/service/deregister/{service_id}"]


def test_ctid_16_01_without_its_database_does_not_start(ctid):
    proc, root = ctid(S2, version="16.01", uuid=None, dsn="postgresql://asterisk:x@127.10.131.253:5432/asterisk")
    assert proc.wait(15) == 1
    assert "cannot read the XiVO UUID from the database" in log_of(root)


@pytest.mark.parametrize("version", ["16.01", "16.05"])
def test_ctid_16_01_to_16_05_stop_at_start_on_a_missing_interface(ctid, cluster, version):
    _pgdir, dsns, _uuids = cluster
    config = {**MANUAL_CTID, "service_discovery": {"advertise_address": "auto", "advertise_address_interface": "eth1"}}
    proc, root = ctid(S1, version=version, dsn=dsns["16.01"], ctid=config)
    assert proc.wait(15) == 1
    assert "You must specify a valid interface name.: eth1" in log_of(root)
    assert not accepts(S1, 9495)


def test_ctid_16_06_falls_back_to_another_interface(ctid, fake_consul):
    config = {**MANUAL_CTID, "service_discovery": {"advertise_address": "auto", "advertise_address_interface": "eth1"}}
    _proc, root = ctid(S1, version="16.06", ctid=config, wait_for=(S1, 9495))
    assert fake_consul[S1].wait(lambda c: len(c.services) == 1)
    (service,) = fake_consul[S1].services.values()
    assert service["Address"] == S1 and service["Tags"][1] == "xivo-ctid"  # uuid first from 16.02
    assert "The configured interface does not exists: eth1" in log_of(root)


def test_ctid_16_02_needs_xivo_uuid(ctid, cluster):
    _pgdir, dsns, _uuids = cluster
    proc, root = ctid(S1, version="16.02", uuid=None, dsn=dsns["16.01"], ctid=MANUAL_CTID)
    assert proc.wait(10) == 1  # the database is there, but 16.02 reads the environment only
    assert "undefined environment variable XIVO_UUID" in log_of(root)


@pytest.mark.parametrize(("version", "body"), [("16.10", {"uuid"}), ("16.11", {"uuid", "cti_protocol_version"}),
                                               ("16.15", {"uuid", "cti_protocol_version"})])
def test_infos_shape_per_version(ctid, version, body):
    _proc, _root = ctid(S1, version=version, ctid=MANUAL_CTID, wait_for=(S1, 9495))
    infos = requests.get(f"http://{S1}:9495/0.1/infos", timeout=5).json()
    assert set(infos) == body
    assert infos.get("cti_protocol_version", "2.2") == "2.2"


@pytest.fixture(scope="module")
@starts_services
def web(tmp_path_factory, cluster):
    """Web services of a 15.19, a 16.01 and a 16.15 node, and of a node without a version file."""
    _pgdir, dsns, _uuids = cluster
    base = tmp_path_factory.mktemp("web")
    # xivo-2 is at 127.10.131.9 for every node (cluster's fill_node); rows an admin would add:
    psql(dsns["15.19"], f"""INSERT INTO accesswebservice (name, login, passwd, host, obj, description, disable) VALUES
        ('granted', NULL, NULL, '127.10.131.20', '{GRANTS_PHONEBOOK}', '', 0),
        ('other-acl', NULL, NULL, '127.10.131.21', '{GRANTS_OTHER}', '', 0),
        ('login-granted', 'ws', 'wspw', NULL, '{GRANTS_PHONEBOOK}', '', 0)""")
    roots = {}
    with ExitStack() as stack:
        for address, version, dsn in ((S1, "15.19", dsns["15.19"]), (S2, "16.01", dsns["16.01"]),
                                      (S3, "16.15", dsns["16.15"]), (S4, None, dsns["16.15"])):
            roots[address] = make_root(base / address, address=address, uuid=None, version=version, dsn=dsn)
            stack.callback(stop, start("webservices", roots[address], wait_for=(address, 443)))
        yield roots


def test_login_page_footer_says_the_version_file_as_the_web_interface_prints_it(web):
    year = time.strftime("%Y")
    page = get(f"https://{S1}/")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert footer(page.text) == (
        'XIVO - Version: 15.19 "Five" | Visit <a href="http://xivo.io" title="XIVO" target="_blank">xivo.io</a> '
        f'for more information | &copy; 2006-{year} <a href="http://avencall.com" title="Avencall" '
        'target="_blank">Avencall</a>')
    assert "<title>XiVO - [xivo-lab-1]</title>" in page.text
    assert footer(get(f"https://{S3}/").text) == (  # the copyright part is gone from 16.14
        'XIVO - Version: 16.15 "Five" | Visit <a href="http://xivo.io" title="XIVO" target="_blank">xivo.io</a> '
        'for more information')
    assert footer(get(f"https://{S4}/index.php").text).startswith('XIVO - Version: Unknown "Five" | ')
    redirect = get(f"http://{S3}/", allow_redirects=False)
    assert redirect.status_code == 302 and redirect.headers["Location"] == f"https://{S3}/"


def test_json_php_restricted_checks_the_acl_at_15_19(web, cluster):
    url = f"https://{S1}{PHONEBOOK}"
    assert get(url, "127.10.131.9").status_code == 403  # the host matches, its ACL (obj '') grants nothing
    assert get(url, "127.10.131.20", params={"act": "search", "search": "dave"}).status_code == 200
    assert get(url, "127.10.131.21").status_code == 403  # an ACL, but not service/ipbx/pbx_services/phonebook
    assert get(url, "127.10.131.22").status_code == 401  # no row at all
    assert get(url, "127.10.131.22", auth=("ws", "wspw")).status_code == 200
    columns = psql(cluster[1]["15.19"], "SELECT column_name FROM information_schema.columns"
                                        " WHERE table_name = 'accesswebservice'").split()
    assert "obj" in columns and "acl" not in columns  # the 15.x table (xivo-dao alchemy @xivo-15.19)


def test_json_php_restricted_ignores_the_acl_from_16_01_and_is_gone_at_16_15(web):
    assert get(f"https://{S2}{PHONEBOOK}", "127.10.131.9").status_code == 200  # acl '{}', not checked
    assert get(f"https://{S3}{PHONEBOOK}", "127.10.131.9").status_code == 404


# --- `lab up --version`: parsing, without starting anything --------------------------------------------

def test_versions_one_for_all_or_one_per_node():
    assert lifecycle.node_versions("16.13", 3) == ["16.13"] * 3
    assert lifecycle.node_versions("16.13,16.15", 2) == ["16.13", "16.15"]
    assert lifecycle.node_versions(["15.19", "16.08.2"], 2) == ["15.19", "16.08.2"]
    with pytest.raises(LabError, match=r"^--version lists 3 versions for 2 nodes"):
        lifecycle.node_versions("16.13,16.15,16.14", 2)
    with pytest.raises(LabError, match=r"^--version: '15\.18' is not a XiVO version the lab runs"):
        lifecycle.node_versions("15.18,16.13", 2)
    assert releases.RELEASES[0] == "15.19" and releases.RELEASES[-1] == "16.15"


def test_lab_up_with_a_wrong_version_list_is_one_line_and_starts_nothing(tmp_path):
    done = subprocess.run(["xivo-doctor", "lab", "up", "--dir", str(tmp_path / "lab"), "--nodes", "2",
                           "--version", "16.13,16.15,16.14", "--base", "127.10.133.0"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 3
    assert done.stderr.strip().splitlines() == [
        "xivo-doctor: error: --version lists 3 versions for 2 nodes; give one version for every node or exactly "
        "one per node"]
    assert not (tmp_path / "lab" / "lab.json").exists()


# --- whole labs ----------------------------------------------------------------------------------------

def consul(node, path, **params):
    """The node's Consul API, token-less as Consul <= 0.7 allows on /v1/agent/* (R1 §4c)."""
    return requests.get(f"https://{node.address}:8500{path}", params=params, verify=False, timeout=5)


def ctid_service(node) -> dict:
    services = consul(node, "/v1/agent/services").json()
    (service,) = [s for s in services.values() if s["Service"] == "xivo-ctid"]
    return service


def ctid_check(node, service_id: str) -> dict:
    return consul(node, "/v1/agent/checks").json()[f"service:{service_id}"]


def stored_check(root: Path, service_id: str) -> dict:
    """The check definition the node's Consul keeps under its data_dir (what consul persists)."""
    return json.loads((root / "var/lib/consul/checks" / f"service%3A{service_id}.json").read_text())


def files_of(root: Path) -> dict[str, bool]:
    return {f: (root / f).exists() for f in ("etc/profile.d/xivo_uuid.sh", "etc/default/xivo",
                                             "etc/systemd/system.conf", "etc/xivo-dao/config.yml")}


def lab_exec(lab, node: str, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["xivo-doctor", "lab", "exec", "--dir", str(lab.dir), node, "--", command],
                          capture_output=True, text=True, timeout=120)


def whole_lab(versions: str, base: str, epmd: int, dist: int):
    lab_dir = Path(tempfile.mkdtemp(prefix="xivo-doctor-test-versions-"))
    lab_dir.chmod(0o711)
    lines: list[str] = []
    try:
        state = lifecycle.up(lab_dir, count=2, version=versions, base=base, epmd_port=epmd, dist_base=dist,
                             say=lines.append)
    except Exception:
        if (lab_dir / "lab.json").exists():
            lifecycle.down(lab_dir, say=lambda _: None)
        print("\n".join(lines))
        raise
    state.up_log = lines  # type: ignore[attr-defined]
    try:
        yield state
    finally:
        lifecycle.down(lab_dir, say=lambda _: None)
        shutil.rmtree(lab_dir, ignore_errors=True)
        assert not listeners(base.rsplit(".", 1)[0] + "."), "lab down left listeners"


class TestLab1519And1601:
    """`lab up --version 15.19,16.01`: before xivo-configure-uuid and the TTL check."""

    @pytest.fixture(scope="class")
    @starts_services
    def lab(self):
        yield from whole_lab("15.19,16.01", "127.10.130.0", 4383, 27300)

    def test_up_log_status_and_topology_say_each_version(self, lab):
        assert any("xivo-1 XiVO 15.19, xivo-2 XiVO 16.01" in line for line in lab.up_log), lab.up_log
        assert {row[0] for row in lifecycle.status(lab.dir) if row[0] != "lab"} == {"xivo-1 15.19", "xivo-2 16.01"}
        done = subprocess.run(["xivo-doctor", "lab", "status", "--dir", str(lab.dir)], capture_output=True,
                              text=True, timeout=60)
        assert "xivo-1 15.19" in done.stdout and "xivo-2 16.01" in done.stdout
        topology = load_topology(lab.dir / "topology.yml")
        assert [(x.version, x.webservices.phonebook_sharing) for x in topology.xivos] == [("15.19", False),
                                                                                           ("16.01", False)]

    def test_files_as_the_release_leaves_them(self, lab):
        one, two = (lab.root(n) for n in lab.nodes)
        for root in (one, two):
            assert files_of(root) == {"etc/profile.d/xivo_uuid.sh": False, "etc/default/xivo": False,
                                      "etc/systemd/system.conf": False, "etc/xivo-dao/config.yml": True}
            dsn = yaml.safe_load((root / "etc/xivo-dao/config.yml").read_text())["db_uri"]
            assert psql(dsn, "SELECT count(*) FROM directories WHERE dirtype = 'phonebook'") == "0"
        defaults = yaml.safe_load((one / "etc/xivo-ctid/config.yml").read_text())["service_discovery"]
        assert {"check_url", "check_url_interval", "check_url_timeout"} <= set(defaults)
        assert not {"ttl_interval", "advertise_address_interface"} & set(defaults)
        assert yaml.safe_load((one / "etc/xivo-ctid/conf.d/interconnection.yml").read_text()) == {
            "rest_api": {"http": {"listen": "0.0.0.0"}},
            "service_discovery": {"advertise_address": lab.nodes[0].address,
                                  "check_url": f"http://{lab.nodes[0].address}:9495/0.1/infos"}}
        defaults = yaml.safe_load((two / "etc/xivo-ctid/config.yml").read_text())["service_discovery"]
        assert {"advertise_address_interface", "ttl_interval", "refresh_interval", "retry_interval"} <= set(defaults)
        assert "check_url" not in defaults
        assert yaml.safe_load((two / "etc/xivo-ctid/conf.d/interconnection.yml").read_text()) == {
            "rest_api": {"http": {"listen": "0.0.0.0"}},
            "service_discovery": {"advertise_address": "auto", "advertise_address_interface": "eth0"}}
        columns = "SELECT column_name FROM information_schema.columns WHERE table_name = 'accesswebservice'"
        assert "obj" in psql(lifecycle.dsn(lab, lab.nodes[0]), columns).split()
        assert "acl" in psql(lifecycle.dsn(lab, lab.nodes[1]), columns).split()
        for node in lab.nodes:  # up to 16.12 a definition names its directory by URI (R2 §2)
            linked = psql(lifecycle.dsn(lab, node), "SELECT count(*) FROM ctidirectories c JOIN directories d"
                                                    " ON d.uri = c.uri WHERE d.dirtype = 'xivo'")
            assert linked == "2"  # internal and xivo-<peer>

    def test_ctid_registrations_read_from_consul(self, lab):
        one, two = lab.nodes
        first = ctid_service(one)
        assert (first["Address"], first["Port"], first["Tags"]) == (one.address, 9495, ["xivo-ctid", one.uuid])
        stored = stored_check(lab.root(one), first["ID"])
        assert (stored["HTTP"], stored["Interval"], stored["TTL"]) == (f"http://{one.address}:9495/0.1/infos", 300,
                                                                       None)
        assert ctid_check(one, first["ID"])["ServiceName"] == "xivo-ctid"
        second = ctid_service(two)
        assert (second["Address"], second["Tags"]) == (two.address, ["xivo-ctid", two.uuid])
        assert stored_check(lab.root(two), second["ID"])["TTL"] == 30
        eventually(lambda: ctid_check(two, second["ID"])["Status"] == "passing", what="the TTL check passing")
        assert requests.get(f"http://{one.address}:9495/0.1/infos", timeout=5).json() == {"uuid": one.uuid}
        assert requests.get(f"http://{two.address}:9495/0.1/infos", timeout=5).json() == {"uuid": two.uuid}

    def test_login_page_footers(self, lab):
        for node in lab.nodes:
            text = footer(get(f"https://{node.address}:{node.https_port}/").text)
            assert text.startswith(f'XIVO - Version: {node.version} "Five" | Visit ') and "&copy; 2006-" in text

    def test_faults_that_make_no_sense_here_are_refused_in_one_line(self, lab):
        for fault, node in (("uuid-not-configured", "xivo-1"), ("uuid-not-configured", "xivo-2"),
                            ("phonebook-private-url", "xivo-2"), ("version-mismatch", "xivo-1")):
            with pytest.raises(LabError) as refused:
                faults.break_(lab.dir, fault, node, say=lambda _: None)
            assert str(refused.value).startswith(f"{fault} makes no sense here: {node} ")
            assert "\n" not in str(refused.value)

    def test_xivo_configure_uuid_does_not_exist_before_16_02(self, lab):
        done = lab_exec(lab, "xivo-2", "xivo-configure-uuid")
        assert done.returncode == 127 and "command not found" in done.stderr
        assert not (lab.root(lab.nodes[1]) / "etc/profile.d/xivo_uuid.sh").exists()

    def test_ctid_advertise_localhost_on_15_19_removes_the_advertise_line(self, lab):
        one = lab.nodes[0]
        faults.break_(lab.dir, "ctid-advertise-localhost", one.name, say=lambda _: None)
        try:
            config = yaml.safe_load((lab.root(one) / "etc/xivo-ctid/conf.d/interconnection.yml").read_text())
            assert config["service_discovery"] == {"check_url": f"http://{one.address}:9495/0.1/infos"}
            eventually(lambda: ctid_service(one)["Address"] == "localhost", what="ctid advertising localhost")
        finally:
            healing.heal(lab.dir, say=lambda _: None)
        assert ctid_service(one)["Address"] == one.address

    def test_duplicate_uuid_on_16_01_is_the_database_only(self, lab):
        one, two = lab.nodes
        faults.break_(lab.dir, "duplicate-uuid", two.name, say=lambda _: None)
        try:
            assert files_of(lab.root(two))["etc/profile.d/xivo_uuid.sh"] is False
            eventually(lambda: requests.get(f"http://{two.address}:9495/0.1/infos", timeout=3).json()["uuid"]
                       == one.uuid, what="ctid reading the cloned UUID")
            assert ctid_service(two)["Tags"] == ["xivo-ctid", one.uuid]
        finally:
            healing.heal(lab.dir, say=lambda _: None)
        assert requests.get(f"http://{two.address}:9495/0.1/infos", timeout=3).json() == {"uuid": two.uuid}


class TestLab1613And1615:
    """`lab up --version 16.13,16.15`: XIVO_UUID, uuid-first tags, the protocol version in /0.1/infos."""

    @pytest.fixture(scope="class")
    @starts_services
    def lab(self):
        yield from whole_lab("16.13,16.15", "127.10.132.0", 4384, 27400)

    def test_files_topology_and_registrations(self, lab):
        for node in lab.nodes:
            root = lab.root(node)
            assert (root / "etc/profile.d/xivo_uuid.sh").read_text() == f"export XIVO_UUID={node.uuid}\n"
            assert (root / "etc/default/xivo").read_text() == f"export XIVO_UUID={node.uuid}\n"
            assert (root / "etc/systemd/system.conf").read_text() == \
                f'[Manager]\nDefaultEnvironment="XIVO_UUID={node.uuid}"\n'
            service = ctid_service(node)
            assert (service["Address"], service["Tags"]) == (node.address, [node.uuid, "xivo-ctid"])
            assert stored_check(root, service["ID"])["TTL"] == 30
            assert requests.get(f"http://{node.address}:9495/0.1/infos", timeout=5).json() == {
                "uuid": node.uuid, "cti_protocol_version": "2.2"}
            # neither shares a phonebook: 16.15 has no json.php, so 16.13 has no peer to share with
            assert psql(lifecycle.dsn(lab, node), "SELECT count(*) FROM directories WHERE dirtype = 'phonebook'") \
                == "0"
            linked = psql(lifecycle.dsn(lab, node), "SELECT count(*) FROM ctidirectories c JOIN directories d"
                                                    " ON d.id = c.directory_id WHERE d.dirtype = 'xivo'")
            assert linked == "2"  # 16.13+: by directory_id
        topology = load_topology(lab.dir / "topology.yml")
        assert [(x.version, x.webservices.phonebook_sharing) for x in topology.xivos] == [("16.13", False),
                                                                                           ("16.15", False)]
        one, two = lab.nodes
        assert "&copy;" in footer(get(f"https://{one.address}:{one.https_port}/").text)
        assert footer(get(f"https://{two.address}:{two.https_port}/").text).startswith(
            'XIVO - Version: 16.15 "Five" | Visit')
        assert "&copy;" not in footer(get(f"https://{two.address}:{two.https_port}/").text)
        assert get(f"https://{two.address}:{two.https_port}{PHONEBOOK}", one.address).status_code == 404

    def test_uuid_not_configured_stops_ctid_and_heal_restores_it(self, lab):
        _one, two = lab.nodes
        with pytest.raises(LabError, match=r"^phonebook-private-url makes no sense here"):
            faults.break_(lab.dir, "phonebook-private-url", two.name, say=lambda _: None)
        faults.break_(lab.dir, "uuid-not-configured", two.name, say=lambda _: None)
        root = lab.root(two)
        try:
            assert not (root / "etc/profile.d/xivo_uuid.sh").exists() and not (root / "etc/default/xivo").exists()
            assert "XIVO_UUID" not in (root / "etc/systemd/system.conf").read_text()
            eventually(lambda: "undefined environment variable XIVO_UUID" in log_of(root), what="ctid's error")
            assert tcp_state(two.address, 9495) == "refused"
            assert not [s for s in consul(two, "/v1/agent/services").json().values() if s["Service"] == "xivo-ctid"]
            # ctid logs its error, then exits: on a loaded machine the status may still see it a moment
            eventually(lambda: [row[4] for row in lifecycle.status(lab.dir) if row[0].startswith(two.name)
                                and row[1] == "xivo-ctid"] == ["down"], what="xivo-ctid down in `lab status`")
            # the admin's repair, as on the XiVO: the postinst's step by hand, then the restart
            done = lab_exec(lab, two.name, "xivo-configure-uuid && service xivo-ctid restart")
            assert done.returncode == 0, done.stderr
            assert (root / "etc/profile.d/xivo_uuid.sh").read_text() == f"export XIVO_UUID={two.uuid}\n"
            assert (root / "etc/default/xivo").read_text() == f"export XIVO_UUID={two.uuid}\n"
            assert (root / "etc/systemd/system.conf").read_text() == \
                f'[Manager]\nDefaultEnvironment="XIVO_UUID={two.uuid}"\n'
            eventually(lambda: ctid_service(two)["Tags"] == [two.uuid, "xivo-ctid"], what="ctid registered again")
        finally:
            healing.heal(lab.dir, say=lambda _: None)
        assert (root / "etc/profile.d/xivo_uuid.sh").read_text() == f"export XIVO_UUID={two.uuid}\n"
        assert ctid_service(two)["Tags"] == [two.uuid, "xivo-ctid"]
        assert all(row[4] == "up" for row in lifecycle.status(lab.dir))

    def test_anonymous_token_not_customised_hides_the_16_15_ctid_from_its_peer(self, lab):
        """consul 0.7.0~xivo3's broken script: the anonymous token of xivo-2 (16.15) reads nothing, so a
        token-less lookup through xivo-1's consul, as 16.15's xivo-ctid makes it, finds nothing."""
        one, two = lab.nodes
        with pytest.raises(LabError, match="makes no sense here"):
            faults.break_(lab.dir, "anonymous-token-not-customised", one.name, say=lambda _: None)

        def seen_anonymously():
            answer = requests.get(f"https://{one.address}:8500/v1/health/service/xivo-ctid",
                                  params={"dc": two.hostname, "passing": "1"}, verify=False, timeout=5)
            return [e["Service"]["Address"] for e in answer.json()]

        assert seen_anonymously() == [two.address]
        faults.break_(lab.dir, "anonymous-token-not-customised", two.name, say=lambda _: None)
        try:
            script = (lab.root(two) / "usr/bin/consul-customize-anonymous-token").read_text()
            assert "service:xivo-:read" in script
            eventually(lambda: seen_anonymously() == [], what="the anonymous lookup finding nothing")
            # still registered and passing: only the anonymous view lost it
            assert [s["Address"] for s in consul(two, "/v1/agent/services").json().values()
                    if s["Service"] == "xivo-ctid"] == [two.address]
        finally:
            healing.heal(lab.dir, say=lambda _: None)
        eventually(lambda: seen_anonymously() == [two.address], what="heal restoring the anonymous rule")
