"""directory-source evaluated on hand-made tables and confd answers; WebProbe.confd_infos against a
local HTTPS server that authorises as xivo-confd does (exact address, or HTTP Digest)."""

from __future__ import annotations

import ssl
from contextlib import contextmanager
from pathlib import Path

import pytest

from xivo_doctor.check import Evidence, FixContext, spec_of
from xivo_doctor.checks import directory_source
from xivo_doctor.foundation.deadline import Deadline
from xivo_doctor.foundation.errors import CannotCheckFromHere, ProbeError
from xivo_doctor.lab.nodes import make_certificate
from xivo_doctor.lab.standins.base import QuietHandler, serve
from xivo_doctor.lab.standins.digest import Digest, parse
from xivo_doctor.probes.onbox import UuidReading
from xivo_doctor.probes.web import WebProbe
from xivo_doctor.topology.model import ConfdAccess, OnBoxAccess, Secret, Topology, Xivo

check = directory_source.test_directory_source
SPEC = spec_of(check)
U1 = "aaaaaaaa-0000-4000-8000-000000000001"
U2 = "bbbbbbbb-0000-4000-8000-000000000002"


def xivo(n: int, *, source: bool = True, database: bool = True) -> Xivo:
    on_box = OnBoxAccess(root=Path(f"/lab/{n}"), database=Secret("postgresql://x") if database else None,
                         source_address=f"127.10.3.{n}" if source else None)
    return Xivo(name=f"xivo-{n}", address=f"127.10.3.{n}", on_box=on_box)


X1, X2 = xivo(1), xivo(2)
T = Topology(name="t", source=Path("t.yml"), xivos=(X1, X2), pairs=())


def tables(peer: str = "127.10.3.1", uri: str | None = None, *, username=None, password=None,
           definition: bool = True, listed: bool = True) -> dict:
    """xivo-2's tables as the manual leaves them, for a directory pointing at `peer`."""
    directories = [
        {"id": 1, "uri": "http://localhost:9487", "dirtype": "xivo", "name": "xivo", "xivo_username": None,
         "xivo_password": None},
        {"id": 2, "uri": uri or f"https://{peer}:9486", "dirtype": "xivo", "name": "xivo-1",
         "xivo_username": username, "xivo_password": Secret(password) if password else None},
        {"id": 3, "uri": f"http://{peer}/service/ipbx/json.php/restricted/pbx_services/phonebook",
         "dirtype": "phonebook", "name": "phonebook-1", "xivo_username": None, "xivo_password": None},
    ]
    definitions = [{"name": "internal", "directory_id": 1}] + ([{"name": "xivo-1", "directory_id": 2}]
                                                                 if definition else [])
    contexts = [{"name": "default", "directory_names": ["internal"] + (["xivo-1"] if listed else [])}]
    return {"directories": directories, "ctidirectories": definitions, "cticontexts": contexts}


class OnBox:
    def __init__(self, tables: dict, hosts=("127.10.3.2",)) -> None:
        self.tables, self.hosts = tables, hosts

    def has_database(self, x) -> bool:
        return bool(x.on_box and x.on_box.database)

    def database_source(self, x) -> str:
        return f"asterisk database of {x.name}"

    def directories(self, x):
        return self.tables["directories"]

    def ctidirectories(self, x):
        return self.tables["ctidirectories"]

    def cticontexts(self, x):
        return self.tables["cticontexts"]

    def webservice_users(self, x):
        return [{"name": "peer", "host": h, "disable": 0, "login": None, "password_set": False} for h in self.hosts]

    def uuid_readings(self, x):
        uuid = {"xivo-1": U1, "xivo-2": U2}[x.name]
        return [UuidReading(f"infos.uuid (asterisk database of {x.name})", "database", uuid)]


class Web:
    def __init__(self, status=200, uuid=U1, elapsed_ms=12.0) -> None:
        self.answer = {"status": status, "uuid": uuid if status == 200 else None, "elapsed_ms": elapsed_ms,
                       "url": "https://127.10.3.1:9486/1.1/infos", "from_address": "127.10.3.2"}
        self.calls = []

    def confd_infos(self, peer, *, from_xivo, username, password, verify):
        self.calls.append((peer.name, from_xivo.name, username, password, verify))
        return {**self.answer, "auth": "digest" if username else "none"}


class Probes:
    def __init__(self, onbox: OnBox, web: Web | None = None) -> None:
        self.onbox, self.web = onbox, web or Web()

    @staticmethod
    def addresses(host: str) -> tuple[str, ...]:
        """An IP stands for itself; these tests declare no host name."""
        return (host,) if host[:1].isdigit() else ()


def run(probes, x=X2) -> Evidence:
    evidence = Evidence()
    check(xivo=x, topology=T, probes=probes, evidence=evidence)
    return evidence


def fails(probes, x=X2) -> tuple[str, Evidence]:
    evidence = Evidence()
    with pytest.raises(AssertionError) as caught:
        check(xivo=x, topology=T, probes=probes, evidence=evidence)
    return str(caught.value), evidence


def fix(evidence, x=X2):
    return SPEC.fill_fix(FixContext(T, x, None, dict(evidence)))


def test_the_manuals_directory_passes_and_the_internal_one_is_ignored():
    web = Web()
    evidence = run(Probes(OnBox(tables()), web))
    assert evidence.summary == "1 remote directories answer with their peer's UUID and are searched"
    assert evidence["directories"] == {"xivo-1": [{"directory": "xivo-1", "uri": "https://127.10.3.1:9486",
                                                   "status": 200, "uuid": U1, "elapsed_ms": 12.0, "auth": "none",
                                                   "from_address": "127.10.3.2"}]}
    assert web.calls == [("xivo-1", "xivo-2", None, None, False)]  # by host, from xivo-2
    assert SPEC.depends_on == ("port-reachable:confd", "uuid-unique") and SPEC.involves == "peers"


def test_no_directory_for_a_declared_peer_fails():
    message, evidence = fails(Probes(OnBox(tables(peer="192.0.2.9"))))
    assert message == "no directory for xivo-1 on xivo-2 (the manual wants one per remote XiVO)"
    assert evidence["not_declared_xivos"] == ["xivo-1 (https://192.0.2.9:9486)"]
    out = fix(evidence)
    assert "add a directory of type xivo with URI https://127.10.3.1:9486 for xivo-1" in out.summary
    assert out.commands == ("service xivo-dird restart  # on xivo-2: dird reads its sources at start",)
    assert out.doc == "contact_and_presence_sharing.rst#configuring-the-directories"


@pytest.mark.parametrize("uri", ["http://127.10.3.1:9486", "https://127.10.3.1:9487", "http://127.10.3.1"])
def test_a_wrong_scheme_or_port_fails_without_a_request(uri):
    web = Web()
    message, evidence = fails(Probes(OnBox(tables(uri=uri)), web))
    assert message == (f"directory 'xivo-1' has URI {uri}, but xivo-1's xivo-confd answers on "
                       "https://127.10.3.1:9486 (9487 is plain HTTP for 127.0.0.1 only)")
    assert web.calls == []
    assert "set the URI of 'xivo-1' to https://127.10.3.1:9486" in fix(evidence).summary


def test_a_uri_without_port_uses_the_confd_clients_9486():
    run(Probes(OnBox(tables(uri="https://127.10.3.1"))))


def test_401_by_host_names_the_peers_hosts_and_points_at_the_web_services_user():
    message, evidence = fails(Probes(OnBox(tables(), hosts=("127.10.3.0/24",)), Web(status=401)))
    assert message == ("xivo-1's xivo-confd refused 'xivo-1' from 127.10.3.2 (HTTP 401): no enabled web services "
                       "user of xivo-1 has Host exactly 127.10.3.2 (its enabled users' hosts: 127.10.3.0/24), and "
                       "the directory has no username and password")
    out = fix(evidence)
    assert out.summary.startswith("on xivo-1, in Configuration → Management → Web Services Access, add a user "
                                  "whose Host is xivo-2's exact address 127.10.3.2")
    assert out.doc == "contact_and_presence_sharing.rst#add-a-web-service-user"


def test_the_directorys_credentials_go_to_the_probe_never_to_the_evidence():
    web = Web(status=401)
    message, evidence = fails(Probes(OnBox(tables(username="dird", password="s3cret")), web))
    assert message.endswith("and the directory's credentials are refused")
    (call,) = web.calls
    assert call[2] == "dird" and isinstance(call[3], Secret) and call[3].reveal() == "s3cret"
    assert "s3cret" not in repr(dict(evidence)) and "s3cret" not in message


def test_another_xivos_uuid_fails():
    message, _ = fails(Probes(OnBox(tables()), Web(uuid=U2)))
    assert message == (f"https://127.10.3.1:9486 answered UUID {U2}, but xivo-1's UUID is {U1} "
                       "(infos.uuid (asterisk database of xivo-1))")


def test_an_unexpected_status_fails_with_it():
    message, evidence = fails(Probes(OnBox(tables()), Web(status=500)))
    assert message == "xivo-1's xivo-confd answered HTTP 500 to 'xivo-1' from 127.10.3.2"
    assert fix(evidence).commands == ("tail -n 50 /var/log/xivo-confd.log  # on xivo-1",)


def test_a_directory_without_definition_or_context_is_never_searched():
    message, evidence = fails(Probes(OnBox(tables(definition=False))))
    assert message == "directory 'xivo-1' has no CTI definition, so xivo-dird never loads it"
    assert "Directories → Definitions, add a definition for the directory 'xivo-1'" in fix(evidence).summary
    message, evidence = fails(Probes(OnBox(tables(listed=False))))
    assert message == "definition 'xivo-1' is in no context's direct directories, so no profile searches it"
    assert "Direct directories, add 'xivo-1'" in fix(evidence).summary


def test_a_slow_peer_is_noted_past_dirds_lookup_timeout():
    evidence = run(Probes(OnBox(tables()), Web(elapsed_ms=3100)))
    assert evidence["slow"] == ["xivo-1 took 3100 ms to answer /1.1/infos: past dird's 2.9 s lookup timeout its "
                                "results are dropped silently"]
    assert "dropped silently" in evidence.summary


def test_without_database_or_source_address_it_cannot_check_from_here():
    x2 = xivo(2, database=False)
    with pytest.raises(CannotCheckFromHere, match=r"give on_box\.database for xivo-2"):
        run(Probes(OnBox(tables())), x2)
    x2 = xivo(2, source=False)
    with pytest.raises(CannotCheckFromHere, match=r"set on_box\.source_address for xivo-2"):
        run(Probes(OnBox(tables())), x2)
    run(Probes(OnBox(tables(username="dird", password="s3cret"))), x2)  # Digest needs no source address


# -- WebProbe.confd_infos against a local HTTPS server -------------------------------------------

SERVER, CLIENT, PORT = "127.10.3.241", "127.10.3.242", 19486


class Session:
    def __init__(self) -> None:
        self.deadline, self.timeout, self._cache = Deadline(30), 2.0, {}

    def cached(self, key, compute):
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]


@contextmanager
def confd(tmp_path, allowed_host: str | None):
    make_certificate(tmp_path, SERVER)
    digest, seen = Digest("XIVO-CONFD"), []

    class Handler(QuietHandler):
        def do_GET(self):
            seen.append(self.client_address[0])
            fields = parse(self.headers.get("Authorization"))
            if self.client_address[0] == allowed_host or (fields and digest.check("GET", fields, "s3cret")):
                self.send_json(200, {"uuid": U1})
            else:
                self.send_json(401, ["Unauthorized"], {"WWW-Authenticate": digest.challenge()})

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "usr/share/xivo-certs/server.crt", tmp_path / "usr/share/xivo-certs/server.key")
    server = serve(SERVER, PORT, Handler, tls=context)
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()


PEER = Xivo(name="xivo-1", address=SERVER, confd=ConfdAccess(port=PORT))
FROM = Xivo(name="xivo-2", address=CLIENT, on_box=OnBoxAccess(source_address=CLIENT))


def test_confd_infos_from_a_xivos_address(tmp_path):
    with confd(tmp_path, allowed_host=CLIENT) as seen:
        answer = WebProbe(Session()).confd_infos(PEER, from_xivo=FROM)
    assert {k: answer[k] for k in ("status", "uuid", "from_address", "auth")} == \
        {"status": 200, "uuid": U1, "from_address": CLIENT, "auth": "none"}
    assert seen == [CLIENT]


def test_confd_infos_with_digest_and_without(tmp_path):
    with confd(tmp_path, allowed_host=None):
        probe = WebProbe(Session())
        refused = probe.confd_infos(PEER, from_xivo=FROM)
        wrong = probe.confd_infos(PEER, from_xivo=FROM, username="dird", password=Secret("nope"))
        right = probe.confd_infos(PEER, from_xivo=FROM, username="dird", password=Secret("s3cret"))
    assert (refused["status"], refused["uuid"]) == (401, None)
    assert (wrong["status"], right["status"], right["uuid"], right["auth"]) == (401, 200, U1, "digest")
    assert "s3cret" not in repr(right) and "nope" not in repr(wrong)


def test_confd_infos_unreachable_is_a_probe_error():
    with pytest.raises(ProbeError, match=r"xivo-confd of xivo-1 \(https://127.10.3.241:19486/1.1/infos\) from "
                                         r"xivo-2 \(127.10.3.242\): cannot connect: connection refused"):
        WebProbe(Session()).confd_infos(PEER, from_xivo=FROM)


def test_a_peer_declared_by_name_matches_a_directory_uri_by_address():
    """issue 13: directory URIs carry addresses while the topology may name a XiVO by host name."""
    from xivo_doctor.xivo.directories import by_peer

    named = Xivo(name="xivo-1", address="xivo-1.example.com")
    topology = Topology(name="t", source=Path("t.yml"), xivos=(named, X2), pairs=())
    row = {"name": "xivo-1", "uri": "https://10.0.0.1:9486", "dirtype": "xivo"}
    assert by_peer([row], "xivo", X2, topology)[0] == []  # as text, not the same host
    resolver = {"xivo-1.example.com": ("10.0.0.1",)}
    matched, elsewhere = by_peer([row], "xivo", X2, topology, lambda h: resolver.get(h, (h,)))
    assert matched == [(row, named)] and elsewhere == []
