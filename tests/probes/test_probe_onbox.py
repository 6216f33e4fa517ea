"""OnBoxProbe: XIVO_UUID files and the version file under a root in tmp_path, and the `asterisk`
database of a throwaway PostgreSQL cluster (xivo_doctor.lab.postgres) on 127.10.3.250."""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

import psycopg
import pytest
from services import starts_services

from xivo_doctor.foundation.deadline import Deadline
from xivo_doctor.foundation.errors import ProbeError, ProbeTimeout
from xivo_doctor.lab import postgres
from xivo_doctor.probes import Probes, onbox
from xivo_doctor.probes.onbox import OnBoxProbe, UuidReading
from xivo_doctor.topology.model import OnBoxAccess, Secret, Xivo

UUID = "6f0b4a9e-2b3c-4d5e-8f90-123456789abc"
OTHER = "11111111-2222-4333-8444-555555555555"
PG_ADDRESS = "127.10.3.250"


class Session:
    """The slice of `Probes` a probe uses: deadline, timeout, per-run cache, sibling probes."""

    def __init__(self, *, timeout: float = 2.0, seconds: float = 30.0, ctid=None, consul=None) -> None:
        self.deadline = Deadline(seconds)
        self.timeout = timeout
        self.ctid, self.consul = ctid, consul
        self._lock, self._cache, self._key_locks = threading.Lock(), {}, {}

    # the real per-run cache, failures remembered, not a copy of it
    cached = Probes.cached
    outcome = Probes.outcome


def write(root: Path, path: str, text: str) -> None:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def box(root: Path | None = None, dsn: str | None = None, name: str = "xivo-2") -> Xivo:
    access = OnBoxAccess(root=root or Path("/nonexistent"), database=Secret(dsn) if dsn else None,
                         source_address="127.10.3.2")
    return Xivo(name=name, address="127.10.3.2", on_box=access)


# -- files --------------------------------------------------------------------------------------

def test_xivo_uuid_files_as_xivo_configure_uuid_writes_them(tmp_path):
    write(tmp_path, "/etc/profile.d/xivo_uuid.sh", f"export XIVO_UUID={UUID}\n")
    write(tmp_path, "/etc/default/xivo", f"# sysv\nXIVO_UUID=\"{UUID}\"\nOTHER=1\n")
    write(tmp_path, "/etc/systemd/system.conf",
          "[Manager]\n#DefaultEnvironment=\"XIVO_UUID=commented\"\n"
          f"DefaultEnvironment=LANG=C \"XIVO_UUID={UUID}\"\n")
    found = OnBoxProbe(Session()).xivo_uuid_files(box(tmp_path))
    assert found == {"/etc/profile.d/xivo_uuid.sh": UUID, "/etc/default/xivo": UUID, "/etc/systemd/system.conf": UUID}


def test_missing_files_and_files_without_xivo_uuid_give_none(tmp_path):
    write(tmp_path, "/etc/systemd/system.conf", "[Manager]\n#DefaultEnvironment=\n")
    write(tmp_path, "/etc/default/xivo", "# XIVO_UUID=old\n")
    found = OnBoxProbe(Session()).xivo_uuid_files(box(tmp_path))
    assert found == dict.fromkeys(onbox.XIVO_UUID_FILES)


def test_an_unreadable_file_is_a_probe_error(tmp_path):
    (tmp_path / "etc/profile.d/xivo_uuid.sh").mkdir(parents=True)  # a directory where the file should be
    with pytest.raises(ProbeError) as caught:
        OnBoxProbe(Session()).xivo_uuid_files(box(tmp_path))
    assert str(caught.value) == "/etc/profile.d/xivo_uuid.sh of xivo-2: cannot read: Is a directory"


def test_version_file(tmp_path):
    probe = OnBoxProbe(Session())
    assert probe.version_file(box(tmp_path)) is None
    write(tmp_path, onbox.VERSION_FILE, "16.13\n")
    assert OnBoxProbe(Session()).version_file(box(tmp_path)) == "16.13"
    write(tmp_path, onbox.VERSION_FILE, "<html>\n")
    with pytest.raises(ProbeError, match=r"XIVO-VERSION of xivo-2: holds '<html>', not a version"):
        OnBoxProbe(Session()).version_file(box(tmp_path))


def test_no_on_box_means_no_access_not_an_error():
    bare = Xivo(name="xivo-1", address="127.10.3.1")
    probe = OnBoxProbe(Session())
    assert not probe.has_root(bare) and not probe.has_database(bare)
    assert probe.has_root(box()) and not probe.has_database(box())


def test_a_run_past_its_deadline_reads_no_file(tmp_path):
    with pytest.raises(ProbeTimeout):
        OnBoxProbe(Session(seconds=0)).version_file(box(tmp_path))


# -- the UUID from every source ----------------------------------------------------------------

class Ctid:
    def __init__(self, answer=None, error=None):
        self.answer, self.error = answer, error

    def infos(self, xivo):
        if self.error:
            raise ProbeError(f"xivo-ctid REST API of {xivo.name}", self.error)
        return self.answer


class Consul:
    def __init__(self, services=None, error=None):
        self.services, self.error = services, error

    def agent_services(self, xivo):
        if self.error:
            raise ProbeError(f"consul API of {xivo.name}", self.error)
        return self.services


def ctid_service(uuid: str, sid: str = "e546a652") -> dict:
    return {sid: {"ID": sid, "Service": "xivo-ctid", "Tags": ["xivo-ctid", uuid], "Port": 9495,
                  "Address": "127.10.3.2"}}


def test_uuid_readings_keep_an_unreachable_source_with_its_reason(tmp_path):
    write(tmp_path, "/etc/profile.d/xivo_uuid.sh", f"export XIVO_UUID={UUID}\n")
    services = {"consul": {"ID": "consul", "Service": "consul", "Tags": []}, **ctid_service(UUID)}
    session = Session(ctid=Ctid(error="cannot connect: connection refused"), consul=Consul(services))
    readings = OnBoxProbe(session).uuid_readings(box(tmp_path))
    assert readings == [
        UuidReading("infos.uuid (asterisk database of xivo-2)", "database",
                    unavailable="no on_box.database in the topology"),
        UuidReading("/etc/profile.d/xivo_uuid.sh", "file", UUID),
        UuidReading("/etc/default/xivo", "file", None),
        UuidReading("/etc/systemd/system.conf", "file", None),
        UuidReading("xivo-ctid /0.1/infos (http://127.10.3.2:9495)", "ctid",
                    unavailable="xivo-ctid REST API of xivo-2: cannot connect: connection refused"),
        UuidReading("tag of the xivo-ctid service in xivo-2's Consul", "consul", UUID),
    ]
    assert readings[2].shown() == "(no UUID there)" and readings[4].shown().startswith("not read: ")


def test_uuid_readings_without_any_source_raise():
    session = Session(ctid=Ctid(error="cannot connect: connection refused"), consul=Consul(error="timed out"))
    bare = Xivo(name="xivo-1", address="127.10.3.1")
    with pytest.raises(ProbeError, match=r"^UUID of xivo-1: no source could be read \(infos.uuid"):
        OnBoxProbe(session).uuid_readings(bare)


def test_uuid_readings_one_per_ctid_registration_and_none_registered():
    bare = Xivo(name="xivo-1", address="127.10.3.1")
    two = {**ctid_service(UUID, "a"), **ctid_service(OTHER, "b")}
    readings = OnBoxProbe(Session(ctid=Ctid({"uuid": UUID}), consul=Consul(two))).uuid_readings(bare)
    assert [(r.source, r.uuid) for r in readings if r.kind == "consul"] == [
        ("tag of the xivo-ctid service in xivo-1's Consul (id a)", UUID),
        ("tag of the xivo-ctid service in xivo-1's Consul (id b)", OTHER),
    ]
    readings = OnBoxProbe(Session(ctid=Ctid({"uuid": UUID}), consul=Consul({}))).uuid_readings(bare)
    assert readings[-1] == UuidReading("tag of the xivo-ctid service in xivo-1's Consul", "consul",
                                       unavailable="no xivo-ctid service registered")


# -- the directory tables as xivo-dao reads them (hand-made rows, no database) --------------------

def tables_probe(monkeypatch, **tables) -> tuple[OnBoxProbe, Xivo]:
    """An OnBoxProbe whose database read gives `tables` (rows as `SELECT *` gives them)."""
    monkeypatch.setattr(OnBoxProbe, "_read", lambda self, x: tables)
    return OnBoxProbe(Session()), box(dsn="postgresql://x")


def test_ctidirectories_keep_the_columns_the_table_has(monkeypatch):
    """Up to 16.12 a definition has `uri` and no `directory_id` (manage-db 15b236bd8060, 16.13): the
    check joins by the one there is."""
    old = {"id": 1, "name": "xivo-1", "uri": "https://127.10.3.1:9486", "delimiter": None,
           "match_direct": '["firstname"]', "match_reverse": "[]", "description": "", "deletable": 1}
    new = {k: v for k, v in old.items() if k != "uri"} | {"directory_id": 2}
    probe, x = tables_probe(monkeypatch, ctidirectories=[old])
    assert probe.ctidirectories(x) == [old]
    probe, x = tables_probe(monkeypatch, ctidirectories=[new])
    assert probe.ctidirectories(x) == [new]


@pytest.mark.parametrize(("directories", "names"), [
    ("internal,xivo-1", ["internal", "xivo-1"]),
    ("internal, xivo-1", ["internal", " xivo-1"]),  # not stripped: ' xivo-1' is no definition
    ("", []),
    (None, []),
])
def test_cticontexts_split_the_list_as_xivo_dao_does(monkeypatch, directories, names):
    row = {"id": 1, "name": "default", "directories": directories, "display": "Display", "description": "",
           "deletable": 1}
    probe, x = tables_probe(monkeypatch, cticontexts=[row])
    assert probe.cticontexts(x)[0]["directory_names"] == names


def test_ctidisplays_are_read_and_an_unreadable_table_fails_alone(monkeypatch):
    assert onbox.QUERIES["ctidisplays"] == "SELECT * FROM ctidisplays ORDER BY id"
    display = {"id": 1, "name": "Display", "data": "{}", "deletable": 1, "description": "Default display"}
    probe, x = tables_probe(monkeypatch, ctidisplays=[display], infos=[{"uuid": UUID}])
    assert probe.ctidisplays(x) == [display]
    missing = ProbeError("asterisk database of xivo-2", 'reading ctidisplays: relation "ctidisplays" does not exist')
    probe, x = tables_probe(monkeypatch, ctidisplays=missing, infos=[{"uuid": UUID}])
    assert probe.infos_uuid(x) == UUID
    with pytest.raises(ProbeError, match=r"reading ctidisplays"):
        probe.ctidisplays(x)


def test_file_at_gives_where_a_xivos_file_is_read_from_here(tmp_path):
    write(tmp_path, "/etc/ssl/peer.crt", "-----BEGIN CERTIFICATE-----\n")
    probe = OnBoxProbe(Session())
    assert probe.file_at(box(tmp_path), "/etc/ssl/peer.crt") == str(tmp_path / "etc/ssl/peer.crt")
    assert probe.file_at(box(tmp_path), "/etc/ssl/none.crt") is None
    with pytest.raises(ProbeError, match=r"no on_box in the topology"):
        probe.file_at(Xivo(name="xivo-1", address="127.10.3.1"), "/etc/ssl/peer.crt")


# -- the asterisk database ---------------------------------------------------------------------

@pytest.fixture(scope="module")
@starts_services
def database():
    """A throwaway cluster with one node database filled as the lab fills it, plus credentials."""
    folder = Path(tempfile.mkdtemp(prefix="xivo-doctor-onbox-"))
    folder.chmod(0o711)
    try:
        postgres.init(folder / "pg", PG_ADDRESS)
        dsn = postgres.create_node_database(folder / "pg", 1)
        postgres.fill_node(dsn, uuid=UUID, node_address="127.10.3.1", peers=[("xivo-2", "127.10.3.2")],
                           version="16.13")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("UPDATE directories SET xivo_username = 'dird', xivo_password = 'dird-secret' "
                         "WHERE name = 'xivo-2'")
            conn.execute("INSERT INTO accesswebservice (name, login, passwd, host) "
                         "VALUES ('remote', 'remote', 'ws-secret', NULL)")
        yield dsn
    finally:
        if (folder / "pg" / postgres.MARKER).exists():
            postgres.stop(folder / "pg")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def connects(monkeypatch):
    """Count the connections the probe opens."""
    made = []
    real = psycopg.connect

    def counting(*args, **kwargs):
        made.append(kwargs.get("connect_timeout"))
        return real(*args, **kwargs)

    monkeypatch.setattr(onbox.psycopg, "connect", counting)
    return made


def test_database_tables_over_one_connection(database, connects):
    probe, x = OnBoxProbe(Session()), box(dsn=database, name="xivo-1")
    assert probe.infos_uuid(x) == UUID
    directories = {d["name"]: d for d in probe.directories(x)}
    assert directories["xivo"]["uri"] == "http://localhost:9487"
    remote = directories["xivo-2"]
    assert (remote["uri"], remote["dirtype"], remote["xivo_username"]) == ("https://127.10.3.2:9486", "xivo", "dird")
    assert isinstance(remote["xivo_password"], Secret) and str(remote["xivo_password"]) == "********"
    assert remote["xivo_password"].reveal() == "dird-secret"
    assert directories["xivo"]["xivo_password"] is None
    definitions = {d["name"]: d["directory_id"] for d in probe.ctidirectories(x)}
    assert definitions["xivo-2"] == remote["id"]
    (context,) = probe.cticontexts(x)
    assert context["name"] == "default" and context["directory_names"] == ["internal", "xivo-2", "phonebook-2"]
    users = {u["name"]: u for u in probe.webservice_users(x)}
    assert users["xivo-doctor-peer-2"]["host"] == "127.10.3.2" and not users["xivo-doctor-peer-2"]["password_set"]
    assert users["remote"]["password_set"] and "passwd" not in users["remote"]
    assert "ws-secret" not in repr(users) and "dird-secret" not in repr(directories)
    assert connects == [2]  # one connection per XiVO per run, connect_timeout from the probe timeout


def test_the_session_is_read_only_with_a_statement_timeout(database, monkeypatch):
    monkeypatch.setitem(onbox.QUERIES, "settings", "SELECT current_setting('default_transaction_read_only') AS ro, "
                                                   "current_setting('statement_timeout') AS st")
    (row,) = OnBoxProbe(Session(timeout=1.5))._table(box(dsn=database, name="xivo-1"), "settings")
    assert row == {"ro": "on", "st": "1500ms"}


def test_a_slow_query_is_cut_by_the_timeout(database, monkeypatch):
    monkeypatch.setitem(onbox.QUERIES, "slow", "SELECT pg_sleep(5)")
    with pytest.raises(ProbeTimeout, match=r"asterisk database of xivo-1: slow: timed out after 0.3 s"):
        OnBoxProbe(Session(timeout=0.3)).infos_uuid(box(dsn=database, name="xivo-1"))


def test_a_missing_table_fails_that_table_only(database, monkeypatch):
    monkeypatch.setitem(onbox.QUERIES, "cticontexts", "SELECT * FROM no_such_table")
    probe, x = OnBoxProbe(Session()), box(dsn=database, name="xivo-1")
    assert probe.infos_uuid(x) == UUID
    with pytest.raises(ProbeError, match=r"^asterisk database of xivo-1: reading cticontexts: .*no_such_table"):
        probe.cticontexts(x)


def test_a_database_down_is_a_probe_error_naming_no_secret_tried_once(database, connects):
    down = database.replace(":5432/", ":5439/")
    password = down.split(":")[2].split("@")[0]
    probe, x = OnBoxProbe(Session()), box(dsn=down, name="xivo-1")
    with pytest.raises(ProbeError) as caught:
        probe.infos_uuid(x)
    assert caught.value.source == "asterisk database of xivo-1"
    assert "Connection refused" in str(caught.value)
    assert password not in str(caught.value) and down not in str(caught.value)
    with pytest.raises(ProbeError):
        probe.directories(x)
    assert len(connects) == 1  # the failure is kept for the run


def test_a_wrong_password_names_no_secret(database):
    wrong = database.replace(database.split(":")[2].split("@")[0], "not-the-password")
    with pytest.raises(ProbeError) as caught:
        OnBoxProbe(Session()).infos_uuid(box(dsn=wrong, name="xivo-1"))
    assert "password authentication failed" in str(caught.value) and "not-the-password" not in str(caught.value)


def test_uuid_readings_with_the_database(database, tmp_path):
    write(tmp_path, "/etc/profile.d/xivo_uuid.sh", f"export XIVO_UUID={OTHER}\n")
    x = Xivo(name="xivo-1", address="127.10.3.1", on_box=OnBoxAccess(root=tmp_path, database=Secret(database)))
    readings = OnBoxProbe(Session(ctid=Ctid({"uuid": UUID}), consul=Consul(ctid_service(UUID)))).uuid_readings(x)
    assert {r.source: r.uuid for r in readings} == {
        "infos.uuid (asterisk database of xivo-1)": UUID, "/etc/profile.d/xivo_uuid.sh": OTHER,
        "/etc/default/xivo": None, "/etc/systemd/system.conf": None,
        "xivo-ctid /0.1/infos (http://127.10.3.1:9495)": UUID, "tag of the xivo-ctid service in xivo-1's Consul": UUID,
    }


def test_on_box_files_without_a_database_dsn_read_the_database_over_ssh(monkeypatch):
    """The doctor installed on a XiVO, given its files (on_box) and `ssh` but no on_box.database: the
    database is read over SSH as for any XiVO (it was asked on-box and failed an assertion)."""
    import dataclasses

    from xivo_doctor.topology.model import SshAccess

    xivo = dataclasses.replace(box(), ssh=SshAccess())
    probe = OnBoxProbe(Session())
    asked = []
    monkeypatch.setattr(OnBoxProbe, "_read_over_ssh",
                        lambda self, x: asked.append(x.name) or {"infos": [{"uuid": UUID}]})
    assert probe.has_database(xivo) and probe.infos_uuid(xivo) == UUID
    assert asked == ["xivo-2"]
