"""The lab's xivo-dird stand-in: what xivo-confgend generates for it per release, and its lookups.

Expected values are written from docs/research-directory-lookup.md (the sections in brackets), not
from the lab's `releases` table. Three parts:
- generation (§1) against a throwaway PostgreSQL cluster on 127.10.236.254, one database per case,
  filled as `lab up` fills a node;
- the stand-in as a process on a node root made by hand: xivo-1 at 127.10.236.1 (dird, a fake
  xivo-auth on its 9497), its peer xivo-2 at 127.10.236.2 (the lab's confd and web-services
  stand-ins, XiVO 16.13), and a fake confd at 127.10.236.3 (slow, or without `uuid`);
- labs made by `lab up`: the session's (two 16.13 nodes), and one of a 15.19 and a 16.13 node.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
import requests
import yaml
from lab_fixture import NETNS, own_lab
from lab_node_fixture import make_root, postgres_cluster, start, stop
from services import starts_services

from xivo_doctor.lab import postgres
from xivo_doctor.lab.standins import dird_config
from xivo_doctor.lab.standins.base import Node, QuietHandler, serve, tls_context

A, B, SLOW, PG = "127.10.236.1", "127.10.236.2", "127.10.236.3", "127.10.236.254"
GOOD = "6f9a1c1e-0d7b-4d5c-9d54-5a1c7a3e0001"  # the fake auth's one valid token
DISPLAY = ["Nom", "Numéro", "Mobile", "Boîte vocale", "Favoris", "E-mail", "Personnel"]  # populate.sql's
UNAUTHORIZED_15 = ("The server could not verify that you are authorized to access the URL requested.  You either "
                   "supplied the wrong credentials (e.g. a bad password), or your browser doesn't understand how to "
                   "supply the credentials required.")


def sql(dsn: str, statement: str, params=None) -> list[tuple]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def cti_tables(dsn: str, context_separation: int = 0, reverse: str | None = '["xivodir"]') -> None:
    """`ctimain.context_separation` and the `ctireversedirectories` row (None: none) set as a case needs
    them (the tables are made if the schema lacks them)."""
    sql(dsn, "CREATE TABLE IF NOT EXISTS ctimain (id serial PRIMARY KEY, context_separation integer);"
             "CREATE TABLE IF NOT EXISTS ctireversedirectories (id serial PRIMARY KEY, directories text NOT NULL)")
    if not sql(dsn, "SELECT 1 FROM ctimain"):
        sql(dsn, "INSERT INTO ctimain (context_separation) VALUES (0)")
    sql(dsn, "UPDATE ctimain SET context_separation = %s", (context_separation,))
    sql(dsn, "DELETE FROM ctireversedirectories")
    if reverse is not None:
        sql(dsn, "INSERT INTO ctireversedirectories (directories) VALUES (%s)", (reverse,))


@pytest.fixture(scope="module")
@starts_services
def cluster():
    with ExitStack() as stack:
        yield postgres_cluster(stack, PG)


@pytest.fixture(scope="module")
def databases(cluster):
    """`make(version, index=9, peer_version=...)`: a fresh node database filled as `lab up` fills node xivo-1."""
    def make(version: str, index: int = 9, peer_version: str | None = None, **tables) -> str:
        dsn = postgres.create_node_database(cluster, index, replace=True, version=version)
        postgres.fill_node(dsn, uuid=str(uuid.uuid4()), node_address=A, peers=[("xivo-2", B, peer_version or version)],
                           version=version)
        cti_tables(dsn, **tables)
        return dsn
    return make


def generate(dsn: str, version: str, name: str):
    database = dird_config.Database(dsn)
    try:
        return dird_config.GENERATORS[name](database, version)
    finally:
        database.close()


# --- generation (§1) ---------------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["15.19", "15.20", "16.02", "16.13", "16.14", "16.15"])
def test_generated_files_per_release(databases, version):
    dsn = databases(version)
    sources = generate(dsn, version, "sources.yml")["sources"]
    phonebook = version in ("16.13",)  # lab rows: both ends 16.03-16.13; confgend keeps the type up to 16.13
    assert set(sources) == {"internal", "xivo-2"} | ({"phonebook-2"} if phonebook else set())
    assert sources["xivo-2"] == {
        "type": "xivo", "name": "xivo-2", "searched_columns": ["firstname", "lastname"],
        "first_matched_columns": ["exten"], "format_columns": postgres.XIVO_FIELDS, "unique_column": "id",
        "confd_config": {"https": True, "host": B, "port": 9486, "timeout": 4, "version": "1.1",
                         "verify_certificate": False}}
    assert sources["internal"]["confd_config"] == {"https": False, "host": "localhost", "port": 9487, "timeout": 4,
                                                   "version": "1.1", "verify_certificate": False}
    if phonebook:
        assert sources["phonebook-2"]["phonebook_url"].startswith(f"http://{B}/service/ipbx/json.php/restricted/")
        assert sources["phonebook-2"]["phonebook_timeout"] == 4 and "confd_config" not in sources["phonebook-2"]
    services = generate(dsn, version, "services.yml")["services"]
    lookup = {"sources": ["internal", "xivo-2", *(["phonebook-2"] if phonebook else []), "personal"]}
    if version != "15.19":
        lookup["timeout"] = 2.9
    assert services["lookup"] == {"default": lookup} and services["favorites"] == {"default": lookup}
    assert services["reverse"] == {"default": {"sources": ["xivodir", "personal"], "timeout": 1}}
    views = generate(dsn, version, "views.yml")["views"]
    assert views["profile_to_display"] == {"default": "Display"}
    assert views["profile_to_display_phone"] == {"default": "default"}
    assert [c["title"] for c in views["displays"]["Display"]] == DISPLAY
    assert views["displays"]["Display"][0] == {"title": "Nom", "type": "name", "default": None, "field": "name"}


def test_phonebook_type_dropped_from_16_14(databases):
    dsn = databases("16.14")
    sql(dsn, "INSERT INTO directories (uri, dirtype, name) VALUES ('http://x/json.php', 'phonebook', 'pb')")
    sql(dsn, "INSERT INTO ctidirectories (name, match_direct, match_reverse, directory_id)"
             " SELECT 'pb', '[]', '[]', id FROM directories WHERE name = 'pb'")
    assert "pb" not in generate(dsn, "16.14", "sources.yml")["sources"]


def test_context_separation_from_15_20(databases):
    dsn = databases("15.20", context_separation=1)
    sql(dsn, "INSERT INTO cticontexts (name, directories, display, description, deletable)"
             " VALUES ('sales', 'xivo-2', 'Display', '', 1), ('nodisplay', 'xivo-2', 'Nope', '', 1)")
    sources = generate(dsn, "15.20", "sources.yml")["sources"]
    assert set(sources) == {f"{n}_{p}" for n in ("internal", "xivo-2") for p in ("default", "sales", "nodisplay")}
    assert sources["xivo-2_sales"]["extra_search_params"] == {"context": "sales"}
    services = generate(dsn, "15.20", "services.yml")["services"]
    assert services["lookup"]["sales"] == {"sources": ["xivo-2_sales", "personal"], "timeout": 2.9}
    assert "nodisplay" not in services["lookup"]  # a context whose display does not exist is no profile
    assert services["reverse"]["default"]["sources"] == ["xivodir", "personal"]  # not a xivo definition: 'ldap'
    # 15.19 has no switch: ctimain is neither read nor needed
    old = databases("15.19", context_separation=1)
    sql(old, "DROP TABLE ctimain")
    assert set(generate(old, "15.19", "sources.yml")["sources"]) == {"internal", "xivo-2"}


def test_sources_unstripped_and_joined_by_uri_up_to_16_12(databases):
    dsn = databases("16.12")
    sql(dsn, "UPDATE cticontexts SET directories = 'internal, xivo-2'")
    assert generate(dsn, "16.12", "services.yml")["services"]["lookup"]["default"]["sources"] == [
        "internal", " xivo-2", "personal"]
    sql(dsn, f"UPDATE directories SET uri = 'https://{B}:9486/x' WHERE name = 'xivo-2'")  # the definition's differs
    assert set(generate(dsn, "16.12", "sources.yml")["sources"]) == {"internal", "phonebook-2"}


@pytest.mark.parametrize("version", ["15.20", "16.15"])
def test_no_ctimain_row_fails_every_file(databases, version):
    dsn = databases(version)
    sql(dsn, "DELETE FROM ctimain")
    for name in dird_config.FILES:
        with pytest.raises(AttributeError):
            generate(dsn, version, name)
    sql(dsn, "DROP TABLE ctimain")  # a missing table is a missing row
    with pytest.raises(AttributeError):
        generate(dsn, version, "views.yml")


@pytest.mark.parametrize("version,fails", [("15.19", True), ("16.14", True), ("16.15", False)])
def test_no_reverse_row_fails_services_up_to_16_14(databases, version, fails):
    dsn = databases(version, reverse=None)
    if fails:
        with pytest.raises(AttributeError):
            generate(dsn, version, "services.yml")
    else:
        assert generate(dsn, version, "services.yml")["services"]["reverse"]["default"]["sources"] == ["personal"]
    sql(dsn, "INSERT INTO ctireversedirectories (directories) VALUES ('[xivodir]')")  # the 16.14 wizard's value
    with pytest.raises(ValueError):
        generate(dsn, version, "services.yml")


def test_bad_json_and_bad_port_fail_the_sources_file(databases):
    dsn = databases("16.13")
    sql(dsn, "UPDATE ctidirectories SET match_direct = 'firstname' WHERE name = 'xivo-2'")
    with pytest.raises(ValueError):
        generate(dsn, "16.13", "sources.yml")
    dsn = databases("16.13")
    sql(dsn, "UPDATE directories SET uri = uri || '/' WHERE name = 'xivo-2'")
    with pytest.raises(ValueError, match="9486/"):
        generate(dsn, "16.13", "sources.yml")
    sql(dsn, f"UPDATE directories SET uri = 'https://{B}/', xivo_verify_certificate = true,"
             " xivo_username = 'u', xivo_password = 'p' WHERE name = 'xivo-2'")
    assert generate(dsn, "16.13", "sources.yml")["sources"]["xivo-2"]["confd_config"] == {
        "https": True, "host": f"{B}/", "timeout": 4, "version": "1.1", "verify_certificate": True,
        "username": "u", "password": "p"}


def test_confgend_cache(databases, tmp_path):
    dsn = databases("16.13")
    database = dird_config.Database(dsn)
    first = dird_config.confgend(tmp_path, database, "16.13")
    cached = tmp_path / "var/lib/xivo-confgend/dird/sources.yml"
    assert yaml.safe_load(cached.read_text()) == first["sources.yml"] and "xivo-2" in first["sources.yml"]["sources"]
    sql(dsn, "UPDATE directories SET uri = uri || '/' WHERE name = 'xivo-2'")
    sql(dsn, "DELETE FROM cticontexts")
    again = dird_config.confgend(tmp_path, database, "16.13")
    assert again["sources.yml"] == first["sources.yml"]  # the old sources, from the cache
    assert again["views.yml"]["views"]["profile_to_display"] == {}  # generated anew
    database.close()
    empty = dird_config.confgend(tmp_path / "fresh", dird_config.Database(dsn), "16.13")
    assert empty["sources.yml"] == {} and empty["services.yml"]["services"]["lookup"] == {}


# --- the stand-in as a process -----------------------------------------------------------------------

class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict]] = []
        self.lock = threading.Lock()

    def add(self, method: str, path: str) -> tuple[str, dict]:
        url = urlsplit(path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        with self.lock:
            self.calls.append((method, url.path, query))
        return url.path, query


def fake_auth(root: Path, recorder: Recorder, grants: set[str]):
    """xivo-auth as dird uses it (§5.4): HEAD/GET /0.1/token/<t>; GOOD is valid with the ACLs in `grants`."""
    class Handler(QuietHandler):
        def answer(self) -> int:
            path, query = recorder.add(self.command, self.path)
            if path != f"/0.1/token/{GOOD}":
                return 404
            if query.get("scope") and query["scope"] not in grants:
                return 403
            return 204 if self.command == "HEAD" else 200

        def do_HEAD(self) -> None:
            self.send_response(self.answer())
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            status = self.answer()
            self.send_json(status, {"data": {"token": GOOD, "auth_id": "1", "xivo_user_uuid": None, "acls": []}}
                           if status == 200 else {"reason": ["No such token"]})

    node = Node(root)
    return serve(A, 9497, Handler, tls=tls_context(node, "/usr/share/xivo-certs/server.crt",
                                                     "/usr/share/xivo-certs/server.key"))


def fake_confd(recorder: Recorder, behaviour: dict):
    """A peer's confd over plain HTTP: `delay` seconds before /1.1/users, items with or without `uuid`."""
    class Handler(QuietHandler):
        def do_GET(self) -> None:
            path, _ = recorder.add("GET", self.path)
            if path == "/1.1/infos":
                return self.send_json(200, {"uuid": "fake-uuid"})
            time.sleep(behaviour.get("delay", 0))
            item = {"id": 7, "line_id": 3, "agent_id": None, "firstname": "Alice", "lastname": "Slow",
                    "exten": "3001", "mobile_phone_number": "", "voicemail_number": None, "userfield": None,
                    "description": "", "context": "default"}
            if behaviour.get("uuid", True):
                item.update(uuid="11111111-2222-3333-4444-555555555555", email=None)
            self.send_json(200, {"total": 1, "items": [item]})
    return serve(SLOW, 9486, Handler)


class Bench:
    def __init__(self, base: Path, cluster: Path) -> None:
        self.cluster, self.auth, self.confd = cluster, Recorder(), Recorder()
        self.grants = {"dird.directories.lookup.default.read"}
        self.behaviour: dict = {}
        self.peer_uuid = str(uuid.uuid4())
        self.peer_dsn = postgres.create_node_database(cluster, 2, replace=True, version="16.13")
        postgres.fill_node(self.peer_dsn, uuid=self.peer_uuid, node_address=B, peers=[("xivo-1", A)],
                           version="16.13")
        self.peer = make_root(base / "xivo-2", address=B, uuid=self.peer_uuid, version="16.13", dsn=self.peer_dsn)
        self.root = make_root(base / "xivo-1", address=A, uuid=str(uuid.uuid4()), version="16.13")
        self.dsn = ""
        self.proc = None

    def dird(self, version: str, edit: str = "", fresh: bool = True, **tables) -> None:
        """(Re)start xivo-1's dird at `version`, its database made anew (unless not `fresh`) then `edit`ed."""
        if self.proc is not None:
            stop(self.proc)
        (self.root / "usr/share/xivo/XIVO-VERSION").write_text(version + "\n")
        if fresh:
            self.dsn = postgres.create_node_database(self.cluster, 1, replace=True, version=version)
            postgres.fill_node(self.dsn, uuid=str(uuid.uuid4()), node_address=A, peers=[("xivo-2", B, "16.13")],
                               version=version)
            cti_tables(self.dsn, **tables)
            (self.root / "etc/xivo-dao").mkdir(parents=True, exist_ok=True)
            (self.root / "etc/xivo-dao/config.yml").write_text(yaml.safe_dump({"db_uri": self.dsn}))
        if edit:
            sql(self.dsn, edit)
        for log in ("xivo-dird.log", "xivo-confgend.log"):
            (self.root / "var/log" / log).unlink(missing_ok=True)
        self.proc = start("dird", self.root, wait_for=(A, 9489))

    def lookup(self, profile: str = "default", token: str | None = GOOD, **params) -> requests.Response:
        params.setdefault("term", "alice")
        headers = {"X-Auth-Token": token} if token is not None else {}
        return requests.get(f"https://{A}:9489/0.1/directories/lookup/{profile}", params=params, headers=headers,
                            verify=str(self.root / "usr/share/xivo-certs/server.crt"), timeout=15)

    def log(self, name: str = "xivo-dird.log") -> str:
        path = self.root / "var/log" / name
        return path.read_text() if path.exists() else ""


@pytest.fixture(scope="module")
@starts_services
def bench(tmp_path_factory, cluster):
    bench = Bench(tmp_path_factory.mktemp("dird"), cluster)
    with ExitStack() as stack:
        for service, port in (("confd", 9486), ("webservices", 443)):
            stack.callback(stop, start(service, bench.peer, wait_for=(B, port)))
        stack.callback(fake_auth(bench.root, bench.auth, bench.grants).shutdown)
        stack.callback(fake_confd(bench.confd, bench.behaviour).shutdown)
        yield bench
        if bench.proc is not None:
            stop(bench.proc)


def results_by_source(response: requests.Response) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for result in response.json()["results"]:
        found.setdefault(result["source"], []).append(result)
    return found


def test_lookup_16_13_finds_the_peer_user_and_phonebook_entry(bench):
    bench.dird("16.13")
    assert "XiVO xivo-2 successfully loaded" in bench.log() and "XiVO internal successfully loaded" in bench.log()
    bench.auth.calls.clear()
    response = bench.lookup(term="alice")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["term"] == "alice" and body["column_headers"] == DISPLAY
    assert body["column_types"] == ["name", "number", "callable", "voicemail", "favorite", "email", "personal"]
    (alice,) = results_by_source(response)["xivo-2"]
    assert alice["column_values"] == ["Alice Lab2", "2001", "0600020001", None, False, "alice@xivo-2.lab", False]
    peer_alice = sql(bench.peer_dsn, "SELECT id, uuid FROM userfeatures WHERE firstname = 'Alice'")[0]
    assert alice["relations"] == {"xivo_id": bench.peer_uuid, "agent_id": None, "user_id": peer_alice[0],
                                  "user_uuid": peer_alice[1], "endpoint_id": None,
                                  "source_entry_id": str(peer_alice[0])}
    scope = {"scope": "dird.directories.lookup.default.read"}
    assert bench.auth.calls[:2] == [("HEAD", f"/0.1/token/{GOOD}", scope), ("GET", f"/0.1/token/{GOOD}", {})]
    # shared host: dird's requests leave from xivo-1's address, which xivo-2 authorises by host
    confd_log = (bench.peer / "var/log/xivo-confd.log").read_text()
    assert f'{A} - - "GET /1.1/users?view=directory&search=alice" 200' in confd_log
    # `internal` is http://localhost:9487: nothing there on a shared host
    assert "Cannot fetch UUID. No results will be returned" in bench.log()
    assert "Lookup for alice with profile default" in bench.log()
    assert f"(127.0.0.1) GET https://{A}:9489/0.1/directories/lookup/default?term=alice 200" in bench.log()
    (dave,) = results_by_source(bench.lookup(term="dave"))["phonebook-2"]
    assert dave["column_values"][:3] == ["Dave Supplier2", "0100020001", "0700020001"]
    assert dave["relations"] == dict.fromkeys(("xivo_id", "agent_id", "user_id", "endpoint_id", "source_entry_id"))


def test_token_term_and_profile_in_that_order(bench):
    bench.dird("16.13")
    refused = bench.lookup(token=None)
    assert refused.status_code == 401
    assert refused.json()["reason"] == ["Unauthorized"] and isinstance(refused.json()["timestamp"], float)
    assert "Unauthorized: {'invalid_token': ''}" in bench.log()
    assert bench.lookup(profile="nope", token=None).status_code == 401  # the token comes first
    assert bench.lookup(profile="other").status_code == 401  # 16.03+: the token lacks that profile's ACL
    bench.grants.add("dird.directories.lookup.a_b.read")
    try:
        missing = bench.lookup(profile="a.b", term=None)
        assert missing.status_code == 400 and missing.json() == {"message": {"term": "term is missing"}}
        unknown = bench.lookup(profile="a.b")
    finally:
        bench.grants.discard("dird.directories.lookup.a_b.read")
    assert unknown.status_code == 404
    assert unknown.json()["reason"] == ["The profile `a.b` does not exist"]
    assert "The profile `a.b` does not exist" in bench.log()


def test_15_19_any_valid_token_old_bodies_no_user_uuid(bench):
    bench.dird("15.19")
    bench.auth.calls.clear()
    other = bench.lookup(profile="nope")
    assert other.status_code == 404  # no ACL checked: the valid token passes
    assert bench.auth.calls[0] == ("HEAD", f"/0.1/token/{GOOD}", {})
    assert bench.lookup(token="bad").json() == {"message": UNAUTHORIZED_15}
    assert bench.lookup(term=None).json() == {
        "message": {"term": "(term is missing)  Missing required parameter in the query string"}}
    (alice,) = results_by_source(bench.lookup())["xivo-2"]
    assert "user_uuid" not in alice["relations"] and alice["relations"]["xivo_id"] == bench.peer_uuid


def test_auth_unreachable_is_503(bench):
    config = {"auth": {"host": "127.10.236.9", "port": 9497}}  # nothing there
    conf_d = bench.root / "etc/xivo-dird/conf.d"
    conf_d.mkdir(parents=True, exist_ok=True)
    (conf_d / "999-auth.yml").write_text(yaml.safe_dump(config))
    try:
        bench.dird("16.13")
        down = bench.lookup()
        assert down.status_code == 503 and down.json()["reason"] == ["Authentication server unreachable"]
        assert "Authentication server unreachable: {'auth_server_host': '127.10.236.9'" in bench.log()
        bench.dird("15.20", fresh=True)
        old = bench.lookup().json()
        assert old["reason"][0].startswith("Could not connect to authentication server on 127.10.236.9:9497: ")
        assert isinstance(old["timestamp"], list)
    finally:
        (conf_d / "999-auth.yml").unlink()


SLOW_SOURCE = f"""
    INSERT INTO directories (uri, dirtype, name) VALUES ('http://{SLOW}:9486', 'xivo', 'slow');
    INSERT INTO ctidirectories (name, match_direct, match_reverse, {{link}})
      SELECT 'slow', '["firstname"]', '[]', {{value}} FROM directories WHERE name = 'slow';
    UPDATE cticontexts SET directories = directories || ',slow'"""


def slow_source(version: str) -> str:
    by_id = version >= "16.13"
    return SLOW_SOURCE.format(link="directory_id" if by_id else "uri", value="id" if by_id else "uri")


@pytest.mark.parametrize("version,waits", [("16.13", False), ("15.19", True)])
def test_lookup_timeout(bench, version, waits):
    bench.behaviour["delay"] = 3.5
    try:
        bench.dird(version, edit=slow_source(version))
        started = time.monotonic()
        found = results_by_source(bench.lookup())
        elapsed = time.monotonic() - started
    finally:
        bench.behaviour["delay"] = 0
    if waits:  # 15.19: no timeout, every source waited for
        assert elapsed >= 3.5 and "slow" in found
    else:  # 2.9 s, the slow source dropped without a word
        assert 2.8 <= elapsed < 3.4 and "slow" not in found and "xivo-2" in found


def test_peer_confd_without_uuid_gives_nothing_from_16_02(bench):
    bench.behaviour["uuid"] = False
    try:
        bench.dird("16.02", edit=slow_source("16.02"))
        found = results_by_source(bench.lookup())
        logged = bench.log()
        bench.dird("16.01", edit=slow_source("16.01"))
        bench.confd.calls.clear()
        older = results_by_source(bench.lookup())
        results_by_source(bench.lookup(term="slow"))
    finally:
        bench.behaviour["uuid"] = True
    assert "slow" not in found and "xivo-2" in found
    assert "(root): An error occured in search" in logged and "KeyError: 'uuid'" in logged
    assert older["slow"][0]["relations"]["xivo_id"] == "fake-uuid"
    # /1.1/infos once for the life of the process (`_get_uuid`), /1.1/users at every search (§3.2)
    assert [call[1] for call in bench.confd.calls] == ["/1.1/infos", "/1.1/users", "/1.1/users"]


def test_digest_only_with_both_credentials_and_the_certificate_checked(bench):
    peer_crt = (bench.peer / "usr/share/xivo-certs/server.crt").read_text()
    (bench.root / "usr/share/xivo-certs/peer.crt").write_text(peer_crt)
    sql(bench.peer_dsn, "UPDATE accesswebservice SET disable = 1 WHERE host = %s", (A,))
    sql(bench.peer_dsn, "INSERT INTO accesswebservice (name, login, passwd, disable) VALUES ('dird', 'dird', 's3', 0)")
    try:
        found = {}
        for case, edit in {
            "digest": "xivo_username = 'dird', xivo_password = 's3'",
            "username only": "xivo_username = 'dird'",
            "CA path": "xivo_username = 'dird', xivo_password = 's3', xivo_verify_certificate = true,"
                       " xivo_custom_ca_path = '/usr/share/xivo-certs/peer.crt'",
            "system CAs": "xivo_username = 'dird', xivo_password = 's3', xivo_verify_certificate = true",
        }.items():
            bench.dird("16.13", edit=f"UPDATE directories SET {edit} WHERE name = 'xivo-2'")
            found[case] = "xivo-2" in results_by_source(bench.lookup())
            if case == "system CAs":
                assert "SSLError" in bench.log() and "Cannot fetch UUID. No results will be returned" in bench.log()
    finally:
        sql(bench.peer_dsn, "DELETE FROM accesswebservice WHERE name = 'dird'")
        sql(bench.peer_dsn, "UPDATE accesswebservice SET disable = 0 WHERE host = %s", (A,))
    assert found == {"digest": True, "username only": False, "CA path": True, "system CAs": False}


def test_context_separation_filters_the_peer_by_context(bench):
    bench.dird("16.13", context_separation=1)
    (alice,) = results_by_source(bench.lookup())["xivo-2_default"]
    assert alice["relations"]["xivo_id"] == bench.peer_uuid
    confd_log = (bench.peer / "var/log/xivo-confd.log").read_text()
    assert '"GET /1.1/users?view=directory&context=default&search=alice" 200' in confd_log


def test_trailing_slash_keeps_the_cached_sources(bench):
    bench.dird("16.13")  # generates, and caches
    assert "xivo-2" in results_by_source(bench.lookup())
    bench.dird("16.13", fresh=False, edit="UPDATE directories SET uri = uri || '/' WHERE name = 'xivo-2'")
    assert "xivo-2" in results_by_source(bench.lookup())
    confgend = bench.log("xivo-confgend.log")
    assert "unexpected error raised by handler" in confgend and "cache hit on dird/sources.yml" in confgend
    assert "ValueError: invalid literal for int() with base 10: '9486/'" in confgend


def test_default_profile_always_exists(bench):
    bench.dird("16.13", edit="DELETE FROM cticontexts")
    response = bench.lookup()
    assert response.status_code == 200 and response.json()["results"] == []
    assert response.json()["column_headers"] == ["Name", "Number", "Mobile", "Favorite", "Personal"]
    assert "Cannot find lookup sources for profile default" in bench.log()


# --- a lab made by `lab up` (research §2, §3) -------------------------------------------------------

MIXED_BASE = os.environ.get("XIVO_TEST_DIRD_LAB_BASE", "198.18.136.0" if NETNS else "127.10.136.0")


def token(state, node) -> str:
    """A token of the doctor's web services user from the node's xivo-auth: backend `xivo_ws` up to 15.20,
    `xivo_service` from 16.01 (§5.3)."""
    backend = "xivo_ws" if node.version in ("15.19", "15.20") else "xivo_service"
    password = (state.dir / "auth.secret").read_text().strip()
    answer = requests.post(f"https://{node.address}:9497/0.1/token", auth=("xivo-doctor", password),
                           json={"backend": backend, "expiration": 300}, verify=False, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]["token"]


def lab_lookup(node, term: str = "alice", profile: str = "default", auth: str | None = None) -> requests.Response:
    return requests.get(f"https://{node.address}:9489/0.1/directories/lookup/{profile}", params={"term": term},
                        headers={"X-Auth-Token": auth} if auth else {}, verify=False, timeout=15)


def test_lab_16_13_finds_the_peer_by_xivo_id(lab):
    one, two = lab.nodes[0], lab.nodes[1]
    auth = token(lab, one)
    found = results_by_source(lab_lookup(one, auth=auth))
    (alice,) = found[two.name]
    octet = two.address.rsplit(".", 1)[1]
    assert alice["column_values"][0] == f"Alice Lab{octet}"
    assert alice["relations"]["xivo_id"] == two.uuid and alice["relations"]["user_uuid"]
    assert found["internal"][0]["relations"]["xivo_id"] == one.uuid  # its own confd on 127.0.0.1:9487
    (dave,) = results_by_source(lab_lookup(one, "dave", auth=auth))[f"phonebook-{two.name.split('-')[1]}"]
    assert dave["column_values"][0] == f"Dave Supplier{octet}" and dave["relations"]["xivo_id"] is None
    refused = lab_lookup(one)
    assert refused.status_code == 401 and refused.json()["reason"] == ["Unauthorized"]
    unknown = lab_lookup(one, profile="nowhere", auth=auth)
    assert unknown.status_code == 404 and unknown.json()["reason"] == ["The profile `nowhere` does not exist"]


@pytest.fixture(scope="module")
@starts_services
def mixed_lab():
    with own_lab("xivo-doctor-test-dird-", count=2, version="15.19,16.13", base=MIXED_BASE, epmd_port=4397,
                 dist_base=28400, own_network=NETNS) as state:
        yield state


def test_mixed_lab_15_19_and_16_13(mixed_lab):
    old, new = mixed_lab.nodes  # 15.19, 16.13
    (alice,) = results_by_source(lab_lookup(old, auth=token(mixed_lab, old)))[new.name]
    assert alice["relations"]["xivo_id"] == new.uuid and "user_uuid" not in alice["relations"]
    assert lab_lookup(old).json() == {"message": UNAUTHORIZED_15}
    # 16.13's dird reads each user's uuid, which the 15.19 peer's confd does not send: KeyError, nothing
    # from that source (research §3.4), as upstream
    answer = lab_lookup(new, auth=token(mixed_lab, new))
    assert answer.status_code == 200 and old.name not in results_by_source(answer)
    logged = (mixed_lab.root(new) / "var/log/xivo-dird.log").read_text()
    assert "(root): An error occured in search" in logged and "KeyError: 'uuid'" in logged
