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
from xivo_doctor.probes.version import ObservedVersion
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
           definition: bool = True, listed: bool = True, match_direct: str = '["firstname","lastname"]',
           display: str = "Display", verify=None, ca_path=None) -> dict:
    """xivo-2's tables as the manual leaves them (16.13+: definitions joined by directory_id), for a
    directory pointing at `peer`."""
    directories = [
        {"id": 1, "uri": "http://localhost:9487", "dirtype": "xivo", "name": "xivo", "xivo_username": None,
         "xivo_password": None},
        {"id": 2, "uri": uri or f"https://{peer}:9486", "dirtype": "xivo", "name": "xivo-1",
         "xivo_username": username, "xivo_password": Secret(password) if password else None,
         "xivo_verify_certificate": verify, "xivo_custom_ca_path": ca_path},
        {"id": 3, "uri": f"http://{peer}/service/ipbx/json.php/restricted/pbx_services/phonebook",
         "dirtype": "phonebook", "name": "phonebook-1", "xivo_username": None, "xivo_password": None},
    ]
    fields = '["firstname","lastname"]'
    definitions = [{"name": "internal", "directory_id": 1, "match_direct": fields, "match_reverse": "[]"}] + (
        [{"name": "xivo-1", "directory_id": 2, "match_direct": match_direct, "match_reverse": "[]"}]
        if definition else [])
    contexts = [{"name": "default", "display": display,
                 "directory_names": ["internal"] + (["xivo-1"] if listed else [])}]
    return {"directories": directories, "ctidirectories": definitions, "cticontexts": contexts,
            "ctidisplays": [{"id": 1, "name": "Display"}]}


class OnBox:
    def __init__(self, tables: dict, hosts=("127.10.3.2",), root: bool = True) -> None:
        self.tables, self.hosts, self.root = tables, hosts, root

    def has_database(self, x) -> bool:
        return bool(x.on_box and x.on_box.database)

    def has_root(self, x) -> bool:
        return self.root

    def file_at(self, x, path):
        real = x.on_box.root / path.lstrip("/")
        return str(real) if real.is_file() else None

    def database_source(self, x) -> str:
        return f"asterisk database of {x.name}"

    def directories(self, x):
        return self.tables["directories"]

    def ctidirectories(self, x):
        return self.tables["ctidirectories"]

    def cticontexts(self, x):
        return self.tables["cticontexts"]

    def ctidisplays(self, x):
        return self.tables["ctidisplays"]

    def webservice_users(self, x):
        return [{"name": "peer", "host": h, "disable": 0, "login": None, "password_set": False} for h in self.hosts]

    def uuid_readings(self, x):
        uuid = {"xivo-1": U1, "xivo-2": U2}[x.name]
        return [UuidReading(f"infos.uuid (asterisk database of {x.name})", "database", uuid)]


class Web:
    def __init__(self, status=200, uuid=U1, elapsed_ms=12.0, error=None) -> None:
        self.answer = {"status": status, "uuid": uuid if status == 200 else None, "elapsed_ms": elapsed_ms,
                       "url": "https://127.10.3.1:9486/1.1/infos", "from_address": "127.10.3.2"}
        self.calls, self.urls, self.error = [], [], error

    def confd_infos(self, peer, *, from_xivo, username, password, verify, url=None):
        self.calls.append((peer.name, from_xivo.name, username, password, verify))
        self.urls.append(url)
        if self.error:
            raise ProbeError(f"xivo-confd of {peer.name} ({url})", self.error)
        return {**self.answer, "auth": "digest" if username else "none"}


class Versions:
    """probes.version: what each XiVO says its version is (None: not observed), else the topology's."""

    def __init__(self, observed: dict | None = None) -> None:
        self.observed = observed or {}

    def of(self, x) -> ObservedVersion:
        found = self.observed.get(x.name)
        return ObservedVersion(found, f"XIVO-VERSION on {x.name}" if found else "not read")

    def at_hand(self, x) -> ObservedVersion:
        seen = self.of(x)
        return seen if seen.version or not x.version else ObservedVersion(x.version, "declared")


class Probes:
    def __init__(self, onbox: OnBox, web: Web | None = None, versions: dict | None = None) -> None:
        self.onbox, self.web = onbox, web or Web()
        self.version = Versions(versions if versions is not None else {"xivo-1": "16.13", "xivo-2": "16.13"})

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
                                                   "url": "https://127.10.3.1:9486/1.1/infos",
                                                   "verify": "no certificate check",
                                                   "status": 200, "uuid": U1, "elapsed_ms": 12.0, "auth": "none",
                                                   "from_address": "127.10.3.2"}]}
    assert web.calls == [("xivo-1", "xivo-2", None, None, False)]  # by host, from xivo-2
    assert web.urls == ["https://127.10.3.1:9486/1.1/infos"]
    assert evidence["versions"] == {"xivo-2": "16.13", "xivo-1": "16.13"}
    assert evidence["definitions_joined_by"] == "directory_id"
    assert SPEC.depends_on == ("port-reachable:confd", "uuid-unique") and SPEC.involves == "peers"


def test_no_directory_for_a_declared_peer_fails():
    message, evidence = fails(Probes(OnBox(tables(peer="192.0.2.9"))))
    assert message == "no directory for xivo-1 on xivo-2 (the manual wants one per remote XiVO)"
    assert evidence["not_declared_xivos"] == ["xivo-1 (https://192.0.2.9:9486)"]
    out = fix(evidence)
    assert "add a directory of type xivo with URI https://127.10.3.1:9486 for xivo-1" in out.summary
    assert out.commands == ("service xivo-dird restart  # on xivo-2: dird reads its sources at start",)
    assert out.doc == "contact_and_presence_sharing.rst#configuring-the-directories"


# The scheme is compared as written (`'https': scheme == 'https'`, xivo-confgend _format_confd_config):
# HTTPS:// is plain HTTP to 9486, which xivo-confd serves over HTTPS only.
@pytest.mark.parametrize(("uri", "asked"), [("http://127.10.3.1:9486", "http://127.10.3.1:9486/1.1/infos"),
                                            ("http://127.10.3.1", "http://127.10.3.1:9486/1.1/infos"),
                                            ("HTTPS://127.10.3.1:9486", "http://127.10.3.1:9486/1.1/infos")])
def test_a_scheme_that_is_not_exactly_https_is_plain_http_and_fails_without_a_request(uri, asked):
    web = Web()
    message, evidence = fails(Probes(OnBox(tables(uri=uri)), web))
    assert message == (f"directory 'xivo-1' has URI {uri}: its scheme is not exactly 'https', so xivo-dird asks "
                       f"{asked} in plain HTTP, but xivo-1's xivo-confd serves HTTPS only, on "
                       "https://127.10.3.1:9486 (9487 is plain HTTP for 127.0.0.1 only)")
    assert web.calls == []
    assert "set the URI of 'xivo-1' to https://127.10.3.1:9486" in fix(evidence).summary


def test_a_wrong_port_fails_without_a_request():
    web = Web()
    message, evidence = fails(Probes(OnBox(tables(uri="https://127.10.3.1:9487")), web))
    assert message == ("directory 'xivo-1' has URI https://127.10.3.1:9487: xivo-dird asks "
                       "https://127.10.3.1:9487/1.1/infos, but xivo-1's xivo-confd answers on "
                       "https://127.10.3.1:9486 (9487 is plain HTTP for 127.0.0.1 only)")
    assert web.calls == [] and evidence["problems"][0]["kind"] == "uri"


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
    with pytest.raises(CannotCheckFromHere, match=r"give `ssh` access to xivo-2 \(or on_box\.database\)"):
        run(Probes(OnBox(tables())), x2)
    x2 = xivo(2, source=False)
    with pytest.raises(CannotCheckFromHere, match=r"set on_box\.source_address for xivo-2"):
        run(Probes(OnBox(tables())), x2)
    run(Probes(OnBox(tables(username="dird", password="s3cret"))), x2)  # Digest needs no source address


# -- as xivo-confgend and xivo-dird do it (each test below failed on the check before them) ----------

FROZEN = ("xivo-confgend cannot generate xivo-dird's sources because of directory 'xivo-1': xivo-confgend splits "
          "its URI {uri} at the first ':' after the scheme and reads int({port!r}) as the port number, which fails; "
          "it serves its last cached dird/sources.yml instead, so ALL directories of xivo-2 stay as they were when "
          "it last generated (changes since are ignored, even after restarting xivo-dird)")


@pytest.mark.parametrize(("uri", "port"), [("https://127.10.3.1:9486/", "9486/"),
                                           ("https://127.10.3.1:9486/1.1", "9486/1.1")])
def test_a_path_after_the_port_freezes_every_directory_and_sends_nothing(uri, port):
    web = Web()
    message, evidence = fails(Probes(OnBox(tables(uri=uri)), web))
    assert message == FROZEN.format(uri=uri, port=port)
    assert web.calls == []
    assert evidence["problems"] == [{"peer": "xivo-1", "kind": "frozen", "directory": "xivo-1"}]
    out = fix(evidence)
    assert "set the URI of 'xivo-1' to https://127.10.3.1:9486 (no path, no trailing '/')" in out.summary
    assert out.commands == ("service xivo-dird restart  # on xivo-2: dird reads its sources at start",)


def test_an_ipv6_literal_freezes_every_directory_even_toward_an_undeclared_host():
    t = tables()
    t["directories"].append({"id": 4, "uri": "https://[::1]:9486", "dirtype": "xivo", "name": "v6",
                             "xivo_username": None, "xivo_password": None})
    t["ctidirectories"].append({"name": "v6", "directory_id": 4, "match_direct": "[]", "match_reverse": "[]"})
    message, evidence = fails(Probes(OnBox(t)))
    assert message.startswith("xivo-confgend cannot generate xivo-dird's sources because of directory 'v6': "
                              "xivo-confgend splits its URI https://[::1]:9486 at the first ':' after the scheme "
                              "and reads int(':1]:9486') as the port number, which fails")
    assert evidence["problems"] == [{"kind": "frozen", "directory": "v6"}]


def test_a_path_without_port_is_asked_where_dird_asks():
    """https://h/ gives host 'h/' and port 9486: dird asks https://h/:9486/1.1/infos (port 443)."""
    web = Web(status=404)
    message, evidence = fails(Probes(OnBox(tables(uri="https://127.10.3.1/")), web))
    assert web.urls == ["https://127.10.3.1/:9486/1.1/infos"]
    assert message == ("xivo-1's xivo-confd answered HTTP 404 to 'xivo-1' from 127.10.3.2 at "
                       "https://127.10.3.1/:9486/1.1/infos, the URL xivo-confgend builds from the URI "
                       "https://127.10.3.1/ (scheme://host:port split at the first ':')")
    assert evidence["problems"][0]["kind"] == "uri"
    assert "set the URI of 'xivo-1' to https://127.10.3.1:9486" in fix(evidence).summary


def test_the_rows_certificate_check_not_the_topologys():
    web = Web()
    run(Probes(OnBox(tables(verify=True)), web))
    assert web.calls[0][4] is True  # xivo_verify_certificate without a CA path: requests' CA bundle
    web = Web()
    evidence = run(Probes(OnBox(tables(verify=False, ca_path="/etc/ignored.crt")), web))
    assert web.calls[0][4] is False and evidence["directories"]["xivo-1"][0]["verify"] == "no certificate check"


def test_a_custom_ca_file_is_read_on_the_xivo(tmp_path):
    x2 = Xivo(name="xivo-2", address="127.10.3.2",
              on_box=OnBoxAccess(root=tmp_path, database=Secret("postgresql://x"), source_address="127.10.3.2"))
    web = Web()
    message, evidence = fails(Probes(OnBox(tables(verify=True, ca_path="/etc/ssl/peer.crt")), web), x2)
    assert message == ("directory 'xivo-1' checks xivo-1's certificate with /etc/ssl/peer.crt, which does not exist "
                       "on xivo-2: xivo-dird's TLS handshake fails and 'xivo-1' returns nothing")
    assert web.calls == [] and "Custom CA certificate" in fix(evidence, x2).summary
    (tmp_path / "etc/ssl").mkdir(parents=True)
    (tmp_path / "etc/ssl/peer.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    evidence = run(Probes(OnBox(tables(verify=True, ca_path="/etc/ssl/peer.crt")), web), x2)
    assert web.calls == [("xivo-1", "xivo-2", None, None, str(tmp_path / "etc/ssl/peer.crt"))]
    assert evidence["directories"]["xivo-1"][0]["verify"] == "the CA file /etc/ssl/peer.crt of xivo-2"


def test_a_custom_ca_file_without_on_box_root_cannot_be_judged():
    web = Web()
    with pytest.raises(CannotCheckFromHere, match=r"CA file /etc/ssl/peer\.crt of xivo-2: give on_box\.root"):
        run(Probes(OnBox(tables(verify=True, ca_path="/etc/ssl/peer.crt"), root=False), web))
    assert web.calls == []


def test_a_certificate_that_does_not_verify_is_dirds_failure_too():
    web = Web(error="TLS failed: certificate verify failed")
    message, evidence = fails(Probes(OnBox(tables(verify=True)), web))
    assert message.startswith("xivo-1's certificate does not verify at https://127.10.3.1:9486/1.1/infos (TLS "
                              "failed: certificate verify failed) with requests' default CA bundle where "
                              "xivo-doctor runs (xivo-dird uses xivo-2's system CA bundle, not read here)")
    assert "set Verify certificate of 'xivo-1' to No" in fix(evidence).summary
    with pytest.raises(ProbeError):  # without a certificate check, a TLS failure is no finding
        run(Probes(OnBox(tables()), Web(error="TLS failed: EOF")))


def test_up_to_16_12_definitions_join_directories_by_uri():
    t = tables()
    for d, uri in zip(t["ctidirectories"], ("http://localhost:9487", "https://127.10.3.1:9486"), strict=True):
        del d["directory_id"]
        d["uri"] = uri
    evidence = run(Probes(OnBox(t)))
    assert evidence["definitions_joined_by"] == "uri"
    t["ctidirectories"][1]["uri"] = "https://127.10.3.1:9486/"  # not the same text: no source for xivo-1
    message, _ = fails(Probes(OnBox(t)))
    assert message == ("directory 'xivo-1' has no CTI definition whose URI is exactly the directory's (up to XiVO "
                       "16.12 xivo-confgend joins them by URI), so xivo-dird never loads it")


def test_a_context_whose_display_filter_is_missing_gives_no_profile():
    message, evidence = fails(Probes(OnBox(tables(display="Gone"))))
    assert message.startswith("context 'default' lists definition 'xivo-1', but its display 'Gone' is no display "
                              "filter of xivo-2: xivo-confgend makes no lookup profile for 'default'")
    assert "create the display filter 'Gone' in Services → CTI Server → Directories → Display filters" in \
        fix(evidence).summary


def test_match_direct_not_json_freezes_every_directory():
    message, evidence = fails(Probes(OnBox(tables(match_direct="[firstname"))))
    assert message.startswith("xivo-confgend cannot generate xivo-dird's sources because of definition 'xivo-1': "
                              "its match_direct '[firstname' is not JSON")
    assert "edit 'xivo-1': write Direct match" in fix(evidence).summary


@pytest.mark.parametrize("columns", ["", "[]", "{}"])
def test_no_direct_match_column_means_every_search_is_empty(columns):
    message, _ = fails(Probes(OnBox(tables(match_direct=columns))))
    assert message == (f"definition 'xivo-1' has no Direct match column ({columns!r}): xivo-dird keeps only the "
                       "users matching one of them, so every search of 'xivo-1' returns nothing")


def test_dird_16_02_and_later_finds_nothing_on_a_peer_before_16_02():
    message, evidence = fails(Probes(OnBox(tables()), versions={"xivo-2": "16.02", "xivo-1": "16.01"}))
    assert message.startswith("xivo-2 runs 16.02 and xivo-1 16.01: xivo-dird ≥ 16.02 reads each user's uuid")
    assert "upgrade xivo-1 to 16.02" in fix(evidence).summary
    run(Probes(OnBox(tables()), versions={"xivo-2": "16.01", "xivo-1": "16.02"}))  # the other way round works
    evidence = run(Probes(OnBox(tables()), versions={"xivo-2": "16.13"}))  # xivo-1 not observed: not judged
    assert evidence["not_judged"][0].startswith("not judged: whether xivo-2's xivo-dird ≥ 16.02 reads xivo-1's")
    assert evidence["versions"] == {"xivo-2": "16.13", "xivo-1": "not observed"}


@pytest.mark.parametrize(("version", "noted"), [("15.19", False), ("15.20", True), (None, True)])
def test_the_lookup_timeout_exists_from_15_20(version, noted):
    evidence = run(Probes(OnBox(tables()), Web(elapsed_ms=3100), versions={"xivo-2": version, "xivo-1": version}))
    assert ("slow" in evidence) is noted
    if version is None:
        assert evidence["slow"] == ["xivo-1 took 3100 ms to answer /1.1/infos: past dird's 2.9 s lookup timeout "
                                    "(XiVO 15.20 and later; xivo-2's version is not known) its results are dropped "
                                    "silently"]
    evidence = run(Probes(OnBox(tables()), Web(elapsed_ms=4200), versions={"xivo-2": version, "xivo-1": version}))
    assert evidence["slow"] == ["xivo-1 took 4200 ms to answer /1.1/infos: past the confd client's 4 s timeout "
                                "xivo-dird gets nothing from it"]


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
def confd(tmp_path, allowed_host: str | None, paths: list | None = None):
    make_certificate(tmp_path, SERVER)
    digest, seen = Digest("XIVO-CONFD"), []

    class Handler(QuietHandler):
        def do_GET(self):
            seen.append(self.client_address[0])
            if paths is not None:
                paths.append(self.path)
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


def test_confd_infos_asks_the_url_dird_builds_with_its_certificate_check(tmp_path):
    """The URL xivo-confgend makes of https://h/ is https://h/:9486/1.1/infos: sent as is; the row's CA
    file verifies the peer's certificate, requests' own bundle does not know a self-signed one."""
    paths = []
    with confd(tmp_path, allowed_host=CLIENT, paths=paths):
        probe = WebProbe(Session())
        answer = probe.confd_infos(PEER, url=f"https://{SERVER}:{PORT}/:9486/1.1/infos", from_xivo=FROM)
        ca = str(tmp_path / "usr/share/xivo-certs/server.crt")
        verified = probe.confd_infos(PEER, url=f"https://{SERVER}:{PORT}/1.1/infos", from_xivo=FROM, verify=ca)
        with pytest.raises(ProbeError, match=r"TLS failed: certificate verify failed"):
            probe.confd_infos(PEER, url=f"https://{SERVER}:{PORT}/1.1/infos", from_xivo=FROM, verify=True)
    assert paths == ["/:9486/1.1/infos", "/1.1/infos"]
    assert answer["url"] == f"https://{SERVER}:{PORT}/:9486/1.1/infos"
    assert (verified["status"], verified["uuid"]) == (200, U1)


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
