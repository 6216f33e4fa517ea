"""The lab's xivo-auth, its xivo-dird wiring and the faults of the directory lookup (docs/lab.md).

Two parts:
- the xivo-auth stand-in alone, on 127.10.147.x: one node root per release (15.19, 16.02, 16.13) written
  by hand (tests/support/lab_node_fixture.py), its database in a lab cluster on 127.10.147.254 filled as
  `lab up` fills it (with the doctor's web services user), asked as xivo-dird and the doctor ask it
  (research-directory-lookup.md §5);
- the session's lab (16.13): xivo-auth and xivo-dird running and listed, the topology's `auth` and `dird`
  sections, and the faults `dird-stopped`, `dird-not-restarted`, `lookup-acl-missing` made and healed.
"""

from __future__ import annotations

import base64
import socket
import subprocess
import threading
import time
import uuid
from contextlib import ExitStack
from datetime import datetime

import pytest
import requests
import urllib3
from lab_fixture import eventually, tcp_state
from lab_node_fixture import make_root, postgres_cluster, start, stop
from services import starts_services

from xivo_doctor.lab import faults, healing, lifecycle, postgres
from xivo_doctor.lab.nodes import LabNode
from xivo_doctor.lab.standins.auth_tokens import acl_regex
from xivo_doctor.topology import load_topology

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

PG = "127.10.147.254"
NODES = {"15.19": "127.10.147.1", "16.02": "127.10.147.2", "16.13": "127.10.147.3"}
PEER = ("xivo-9", "127.10.147.9")
PASSWORD = "lookup-Secret-42"
LOOKUP_ACL = ["dird.directories.lookup.*.read", "confd.users.read"]


def psql(dsn: str, sql: str) -> str:
    argv, env = postgres.psql(dsn, sql)
    done = subprocess.run([*argv, "-A", "-t"], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def token(address: str, backend: str, login: str = "xivo-doctor", password: str = PASSWORD,
          **body) -> requests.Response:
    """`POST /0.1/token` as xivo_auth_client sends it (TokenCommand.new)."""
    return requests.post(f"https://{address}:9497/0.1/token", json={"backend": backend, **body},
                         auth=(login, password), verify=False, timeout=10)


def check(address: str, token_id: str, scope: str | None = None, method: str = "HEAD") -> requests.Response:
    """What xivo-dird asks: `HEAD /0.1/token/<t>[?scope=]` (then GET)."""
    params = {"scope": scope} if scope is not None else {}
    return requests.request(method, f"https://{address}:9497/0.1/token/{token_id}", params=params, verify=False,
                            timeout=10)


CONSUL = (PG, 8500)  # what stands for each node's Consul agent here: a port that takes connections


def _consul_agent(stack: ExitStack) -> None:
    """A listener on CONSUL that accepts and closes: xivo-auth asks its Consul before every token
    operation (upstream stores the tokens there) and answers 500 when it does not connect."""
    server = socket.create_server(CONSUL)
    stack.callback(server.close)

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.close()

    threading.Thread(target=serve, daemon=True).start()


@pytest.fixture(scope="module")
@starts_services
def auths(tmp_path_factory):
    """{version: (address, dsn, root)}: an xivo-auth per release, on its database filled as `lab up` does."""
    base = tmp_path_factory.mktemp("auth")
    with ExitStack() as stack:
        pgdir = postgres_cluster(stack, PG)
        _consul_agent(stack)
        nodes = {}
        for index, (version, address) in enumerate(NODES.items(), 1):
            dsn = postgres.create_node_database(pgdir, index, version=version)
            postgres.fill_node(dsn, uuid=str(uuid.uuid4()), node_address=address, peers=[(*PEER, version)],
                               version=version, lookup_password=PASSWORD)
            root = make_root(base / version, address=address, uuid=None, version=version, dsn=dsn)
            (root / "etc/xivo-auth/conf.d").mkdir(parents=True, exist_ok=True)
            consul = f"consul: {{host: {CONSUL[0]}, port: {CONSUL[1]}}}\n"
            (root / "etc/xivo-auth/conf.d/050-consul.yml").write_text(consul)
            stack.callback(stop, start("auth", root, wait_for=(address, 9497)))
            nodes[version] = (address, dsn, root)
        yield nodes


# --- the rows `lab up` writes -------------------------------------------------------------------------

def test_the_doctors_web_services_user_is_a_login_without_host_beside_the_peers_rows(auths):
    _, dsn_15, _ = auths["15.19"]
    _, dsn_16, _ = auths["16.13"]
    assert psql(dsn_16, "SELECT name, login, passwd, coalesce(host, 'NULL'), acl, disable FROM accesswebservice"
                        " ORDER BY id") \
        == (f"xivo-doctor-peer-9|||{PEER[1]}|{{}}|0\n"
            f"xivo-doctor-lookup|xivo-doctor|{PASSWORD}|NULL|{{dird.directories.lookup.*.read,confd.users.read}}|0")
    # 15.19: no `acl` column, `obj` '' as the web interface leaves a new user
    assert psql(dsn_15, "SELECT name, login, host IS NULL, obj FROM accesswebservice WHERE login IS NOT NULL") \
        == "xivo-doctor-lookup|xivo-doctor|t|"
    # what xivo-confgend reads besides the directories: populate.sql's ctimain, an upgraded XiVO's reverse row
    for dsn in (dsn_15, dsn_16):
        assert psql(dsn, "SELECT context_separation FROM ctimain") == "0"
        assert psql(dsn, "SELECT directories FROM ctireversedirectories") == '["xivodir"]'


# --- tokens per release ---------------------------------------------------------------------------------

def test_without_its_consul_xivo_auth_makes_no_token_and_checks_none(auths, tmp_path):
    """wazo-auth keeps its tokens in Consul (xivo_auth/token.py `Storage`, every release): Consul not
    answering is `Connection to consul failed`, 500, for a new token and for a check."""
    address, dsn, _ = auths["16.13"]
    made = token(address, "xivo_service").json()["data"]["token"]
    down = make_root(tmp_path / "down", address="127.10.147.4", uuid=None, version="16.13", dsn=dsn)
    (down / "etc/xivo-auth/conf.d").mkdir(parents=True, exist_ok=True)
    (down / "etc/xivo-auth/conf.d/050-consul.yml").write_text(f"consul: {{host: {CONSUL[0]}, port: 9}}\n")
    process = start("auth", down, wait_for=("127.10.147.4", 9497))
    try:
        refused = token("127.10.147.4", "xivo_service")
        checked = check("127.10.147.4", made, method="GET")
    finally:
        stop(process)
    assert (refused.status_code, refused.json()["reason"]) == (500, ["Connection to consul failed"])
    assert (checked.status_code, checked.json()["reason"]) == (500, ["Connection to consul failed"])
    assert "Connection to consul failed: " in (down / "var/log/xivo-auth.log").read_text()


def test_15_19_xivo_ws_gives_confd_only_and_any_scope_free_check_passes(auths):
    address, dsn, _ = auths["15.19"]
    answer = token(address, "xivo_ws", expiration=60)
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    assert set(data) == {"token", "auth_id", "xivo_user_uuid", "issued_at", "expires_at", "acls"}
    assert str(uuid.UUID(data["token"])) == data["token"]
    assert data["acls"] == ["confd.#"] and data["xivo_user_uuid"] is None
    assert data["auth_id"] == psql(dsn, "SELECT id FROM accesswebservice WHERE login = 'xivo-doctor'")
    issued, expires = (datetime.fromisoformat(data[k]) for k in ("issued_at", "expires_at"))
    assert issued.tzinfo is None and round((expires - issued).total_seconds()) == 60
    assert abs((issued - datetime.now()).total_seconds()) < 5  # local time, naive
    # xivo-dird 15.19-16.02 sends no scope: any valid token passes
    assert check(address, data["token"]).status_code == 204
    assert check(address, data["token"], "confd.users.read").status_code == 204
    refused = check(address, data["token"], "dird.directories.lookup.default.read", method="GET")
    assert refused.status_code == 403
    assert refused.json()["reason"] == ["Unauthorized for dird.directories.lookup.default.read"]
    # 15.19's xivo_service is the services' key files, not the table: the web services login is refused
    other = token(address, "xivo_service")
    assert (other.status_code, other.text) == (401, "Unauthorized Access")
    assert other.headers["WWW-Authenticate"] == 'Basic realm="Authentication Required"'


def test_16_13_xivo_service_gives_the_rows_acls_and_the_lookup_scope_matches(auths):
    address, dsn, _ = auths["16.13"]
    answer = token(address, "xivo_service", expiration=3600)
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    assert data["acls"] == LOOKUP_ACL and data["xivo_user_uuid"] is None
    assert data["auth_id"] == psql(dsn, "SELECT id FROM accesswebservice WHERE login = 'xivo-doctor'")
    t = data["token"]
    assert check(address, t, "dird.directories.lookup.default.read").status_code == 204
    assert check(address, t, "dird.directories.lookup.__switchboard_directory.read").status_code == 204
    head = check(address, t, "dird.directories.reverse.default.read")  # not granted: 403, no body on HEAD
    assert head.status_code == 403 and head.content == b""
    assert check(address, t, "dird.directories.lookup.a.b.read").status_code == 403  # `*` is one segment
    got = check(address, t, method="GET")
    assert got.status_code == 200 and got.json() == {"data": data}
    # xivo_ws is gone from 16.01: refused as a wrong password, in 16.03's JSON
    gone = token(address, "xivo_ws")
    assert gone.status_code == 401 and gone.json()["reason"] == ["Authentication Failed"]


def test_wrong_password_missing_credentials_and_disabled_user_are_401_in_each_releases_words(auths):
    for version, backend in (("15.19", "xivo_ws"), ("16.02", "xivo_service")):
        address = auths[version][0]
        wrong = token(address, backend, password="wrong")
        assert (wrong.status_code, wrong.text) == (401, "Unauthorized Access"), version
        anonymous = requests.post(f"https://{address}:9497/0.1/token", json={"backend": backend}, verify=False,
                                  timeout=10)
        assert anonymous.status_code == 401 and "WWW-Authenticate" in anonymous.headers
    address, dsn, _ = auths["16.13"]
    for answer in (token(address, "xivo_service", password="wrong"), token(address, "unknown"),
                   requests.post(f"https://{address}:9497/0.1/token", json={"backend": "xivo_service"},
                                 verify=False, timeout=10)):
        assert answer.status_code == 401
        body = answer.json()
        assert (body["reason"], body["status_code"]) == (["Authentication Failed"], 401)
        assert isinstance(body["timestamp"], list) and "WWW-Authenticate" not in answer.headers
    psql(dsn, "UPDATE accesswebservice SET disable = 1 WHERE login = 'xivo-doctor'")
    try:
        assert token(address, "xivo_service").status_code == 401  # read at each request: no restart
    finally:
        psql(dsn, "UPDATE accesswebservice SET disable = 0 WHERE login = 'xivo-doctor'")
    assert token(address, "xivo_service").status_code == 200


def test_unknown_malformed_and_expired_tokens_are_404(auths):
    address = auths["16.13"][0]
    assert check(address, str(uuid.uuid4())).status_code == 404
    missing = check(address, str(uuid.uuid4()), "dird.directories.lookup.default.read", method="GET")
    assert missing.status_code == 404 and missing.json()["reason"] == ["No such token"]
    assert check(address, "not-a-uuid", method="GET").json()["reason"] == ["No such token"]
    short = token(address, "xivo_service", expiration=1).json()["data"]["token"]
    assert check(address, short).status_code == 204
    time.sleep(1.2)
    assert check(address, short).status_code == 404


def test_expiration_rules_per_release(auths):
    new, old = auths["16.13"][0], auths["15.19"][0]
    for bad in (0, -5, 1.5, "60"):
        answer = token(new, "xivo_service", expiration=bad)
        assert answer.status_code == 400 and answer.json()["reason"] == ["Invalid expiration"], bad
    data = token(new, "xivo_service", expiration=None).json()["data"]  # null: the default lifetime, 7200 s
    lifetime = datetime.fromisoformat(data["expires_at"]) - datetime.fromisoformat(data["issued_at"])
    assert round(lifetime.total_seconds()) == 7200
    # up to 16.01 any number above 0 does; 0 and null do not
    assert token(old, "xivo_ws", expiration=1.5).status_code == 200
    assert token(old, "xivo_ws", expiration=0).json()["reason"] == ["Invalid expiration"]
    assert token(old, "xivo_ws", expiration=None).status_code == 400


def test_the_log_has_the_requests_but_no_password_and_no_whole_token(auths):
    address, _, root = auths["16.13"]
    t = token(address, "xivo_service").json()["data"]["token"]
    check(address, t, "dird.directories.lookup.default.read")
    log = (root / "var/log/xivo-auth.log").read_text()
    line = f"HEAD https://{address}:9497/0.1/token/{t[:8]}…?scope=dird.directories.lookup.default.read 204"
    assert line in log, log[-500:]
    assert "POST https://" in log and " 200" in log
    assert t not in log and PASSWORD not in log
    assert base64.b64encode(f"xivo-doctor:{PASSWORD}".encode()).decode() not in log


@pytest.mark.parametrize(("acl", "required", "version_16_08", "expected"), [
    ("#", "anything.at.all", False, True),
    ("dird.#", "dird.directories.lookup.default.read", False, True),
    ("dird.directories.lookup.*.read", "dird.directories.lookup.default.read", False, True),
    ("dird.directories.lookup.*.read", "dird.directories.lookup.a.b.read", False, False),
    ("dird.directories.lookup.default.read", "dird.directories.lookup.other.read", False, False),
    ("confd", "confd.users.read", False, False),  # anchored at both ends
    ("confd.users.read", "xconfd.users.read", False, False),
    ("confd.users.me", "confd.users.42", False, True),  # .me is the auth_id (42)
    ("confd.users.me", "confd.users.me", False, False),  # up to 16.07 only the auth_id
    ("confd.users.me", "confd.users.me", True, True),  # 16.08+: `me` or the auth_id
    ("confd.users.me.read", "confd.users.42.read", True, True),
    ("confd.users.me.read", "confd.users.43.read", True, False),
])
def test_acl_matching_as_xivo_auth_does(acl, required, version_16_08, expected):
    assert bool(acl_regex(acl, "42", version_16_08).match(required)) is expected


# --- the lab: wiring and faults --------------------------------------------------------------------------

def lab_token(lab, node) -> str:
    topology = load_topology(lab.dir / "topology.yml")
    xivo = next(x for x in topology.xivos if x.name == node.name)
    answer = requests.post(f"https://{node.address}:{xivo.auth.port}/0.1/token", verify=False, timeout=10,
                           json={"backend": "xivo_service", "expiration": 600},
                           auth=(xivo.auth.username, xivo.auth.password.reveal()))
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]["token"]


def lookup(lab, node, term: str) -> requests.Response:
    return requests.get(f"https://{node.address}:9489/0.1/directories/lookup/default", params={"term": term},
                        headers={"X-Auth-Token": lab_token(lab, node)}, verify=False, timeout=10)


def peer_results(lab, node, peer) -> list[dict]:
    """The results of `node`'s xivo-dird that come from `peer` (its users are Lab<octet>)."""
    octet = peer.address.rsplit(".", 1)[1]
    answer = lookup(lab, node, f"Lab{octet}")
    assert answer.status_code == 200, answer.text
    return [r for r in answer.json()["results"] if r["relations"].get("xivo_id") == peer.uuid]


def service_row(lab, node, service):
    return next(r for r in lifecycle.status(lab.dir) if r[0].startswith(f"{node.name} ") and r[1] == service)


def test_the_lab_runs_auth_and_dird_and_declares_them_in_its_topology(lab):
    for node in lab.nodes:
        assert service_row(lab, node, "xivo-auth")[3:] == (f"{node.address}:9497", "up")
        assert service_row(lab, node, "xivo-dird")[3:] == (f"{node.address}:9489", "up")
    secret = lab.dir / "auth.secret"
    assert secret.stat().st_mode & 0o777 == 0o600
    password = secret.read_text().strip()
    topology = load_topology(lab.dir / "topology.yml")
    for xivo in topology.xivos:
        assert (xivo.auth.port, xivo.auth.username, xivo.auth.verify, xivo.dird.port, xivo.dird.verify) == (
            9497, "xivo-doctor", False, 9489, False)
        assert xivo.auth.password.reveal() == password
    raw = (lab.dir / "topology.yml").read_text()
    assert "password_file: auth.secret" in raw and password not in raw
    for node in lab.nodes:
        dsn = lifecycle.dsn(lab, node)
        assert psql(dsn, "SELECT passwd FROM accesswebservice WHERE login = 'xivo-doctor'") == password
        assert token(node.address, "xivo_service", password=password).json()["data"]["acls"] == LOOKUP_ACL


def test_heal_writes_the_same_doctor_user_back(lab):
    node = lab.node("xivo-2")
    dsn = lifecycle.dsn(lab, node)
    faults.sql(lab, node, "DELETE FROM accesswebservice WHERE login = 'xivo-doctor'")
    healing.heal(lab.dir, say=lambda _: None)
    assert psql(dsn, "SELECT passwd FROM accesswebservice WHERE login = 'xivo-doctor'") == (
        lab.dir / "auth.secret").read_text().strip()


def test_lab_exec_service_xivo_dird_stop_start_restart(lab):
    node = lab.node("xivo-1")
    run = ["xivo-doctor", "lab", "exec", "--dir", str(lab.dir), node.name, "--", "service", "xivo-dird"]
    try:
        assert subprocess.run([*run, "stop"], capture_output=True, timeout=60).returncode == 0
        assert service_row(lab, node, "xivo-dird")[4] == "down"
        status = subprocess.run([*run, "status"], capture_output=True, text=True, timeout=60)
        assert (status.returncode, status.stdout.strip()) == (3, "xivo-dird: inactive (dead)")
        assert subprocess.run([*run, "start"], capture_output=True, timeout=60).returncode == 0
        eventually(lambda: tcp_state(node.address, 9489) == "open", what="xivo-dird listening again")
        pid = service_row(lab, node, "xivo-dird")[2]
        assert subprocess.run([*run, "restart"], capture_output=True, timeout=60).returncode == 0
        assert service_row(lab, node, "xivo-dird")[2] != pid
        assert service_row(lab, node, "xivo-dird")[4] == "up"  # restart returns once it listens
    finally:
        healing.heal(lab.dir, say=lambda _: None)


def test_the_faults_are_listed_with_one_line_each(lab):
    listed = subprocess.run(["xivo-doctor", "lab", "faults"], capture_output=True, text=True, timeout=60).stdout
    for name in ("dird-stopped", "dird-not-restarted", "lookup-acl-missing"):
        (line,) = [each for each in listed.splitlines() if each.split()[:1] == [name]]
        assert len(line.split(name, 1)[1].strip()) > 20


def test_lookup_acl_missing_is_refused_where_dird_checks_no_acl():
    node, peer = LabNode.new(2, "198.18.1.2", "16.02"), LabNode.new(1, "198.18.1.1", "16.02")
    why = faults.FAULTS["lookup-acl-missing"].refused(node, peer)
    assert why and "16.03" in why and "\n" not in why
    assert faults.FAULTS["lookup-acl-missing"].refused(LabNode.new(2, "198.18.1.2", "16.03"), peer) is None


def test_dird_stopped_then_healed(lab):
    node, peer = faults.break_(lab.dir, "dird-stopped", None, say=lambda _: None)
    try:
        assert service_row(lab, node, "xivo-dird")[4] == "down"
        assert tcp_state(node.address, 9489) == "refused"
        assert service_row(lab, peer, "xivo-dird")[4] == "up"
    finally:
        healing.heal(lab.dir, say=lambda _: None)
    assert service_row(lab, node, "xivo-dird")[4] == "up"
    assert peer_results(lab, node, peer)


def test_dird_not_restarted_leaves_right_tables_and_a_stale_dird_until_heal(lab):
    before = {n.name: service_row(lab, n, "xivo-dird")[2] for n in lab.nodes}
    node, peer = faults.break_(lab.dir, "dird-not-restarted", None, say=lambda _: None)
    try:
        directories = psql(lifecycle.dsn(lab, node), "SELECT directories FROM cticontexts WHERE name = 'default'")
        assert peer.name in directories.split(",")  # the tables are right again
        assert service_row(lab, node, "xivo-dird")[2] != before[node.name]  # restarted while it was missing
        assert peer_results(lab, node, peer) == []  # and still without the peer's source
        assert peer_results(lab, peer, node)  # the peer's own dird is fine
    finally:
        healing.heal(lab.dir, say=lambda _: None)
    assert peer_results(lab, node, peer)


def test_heal_restarts_a_dird_only_where_it_read_other_tables_or_a_uuid_changed(lab):
    pids = lambda: {n.name: service_row(lab, n, "xivo-dird")[2] for n in lab.nodes}  # noqa: E731
    before = pids()
    faults.break_(lab.dir, "port-closed", None, say=lambda _: None)  # nothing dird reads
    healing.heal(lab.dir, say=lambda _: None)
    assert pids() == before
    faults.break_(lab.dir, "duplicate-uuid", None, say=lambda _: None)  # its peers may cache it
    healing.heal(lab.dir, say=lambda _: None)
    assert all(pid != before[name] for name, pid in pids().items())
    assert all(peer_results(lab, n, p) for n in lab.nodes for p in lab.nodes if p is not n)


def test_lookup_acl_missing_makes_dird_refuse_and_heal_gives_the_acl_back(lab):
    node, peer = faults.break_(lab.dir, "lookup-acl-missing", None, say=lambda _: None)
    try:
        dsn = lifecycle.dsn(lab, node)
        assert psql(dsn, "SELECT acl FROM accesswebservice WHERE login = 'xivo-doctor'") == "{}"
        t = lab_token(lab, node)
        assert check(node.address, t, method="GET").json()["data"]["acls"] == []
        assert check(node.address, t, "dird.directories.lookup.default.read").status_code == 403
        assert lookup(lab, node, "Alice").status_code == 401
        assert lookup(lab, peer, "Alice").status_code == 200
    finally:
        healing.heal(lab.dir, say=lambda _: None)
    assert lookup(lab, node, "Alice").status_code == 200
