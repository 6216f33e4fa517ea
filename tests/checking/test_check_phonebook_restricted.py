"""phonebook-restricted evaluated on hand-made tables and json.php answers; WebProbe.phonebook
against local servers: nginx's HTTP→HTTPS redirect followed, the request sent from a XiVO's address."""

from __future__ import annotations

import json
import ssl
from contextlib import contextmanager
from pathlib import Path

import pytest

from xivo_doctor.check import Evidence, FixContext, spec_of
from xivo_doctor.checks import phonebook_restricted
from xivo_doctor.foundation.deadline import Deadline
from xivo_doctor.foundation.errors import CannotCheckFromHere, NotApplicable, ProbeError
from xivo_doctor.lab.nodes import make_certificate
from xivo_doctor.lab.standins.base import QuietHandler, serve
from xivo_doctor.probes.version import VersionProbe
from xivo_doctor.probes.web import WebProbe
from xivo_doctor.topology.model import OnBoxAccess, Secret, Topology, WebServicesAccess, Xivo

check = phonebook_restricted.test_phonebook_restricted
SPEC = spec_of(check)
RESTRICTED = "http://127.10.3.1/service/ipbx/json.php/restricted/pbx_services/phonebook"
PRIVATE = RESTRICTED.replace("/restricted/", "/private/")


def xivo(n: int, version: str | None = "16.13", *, source: bool = True, database: bool = True,
         sharing: bool = True) -> Xivo:
    on_box = OnBoxAccess(root=Path(f"/lab/{n}"), database=Secret("postgresql://x") if database else None,
                         source_address=f"127.10.3.{n}" if source else None)
    return Xivo(name=f"xivo-{n}", address=f"127.10.3.{n}", version=version, on_box=on_box,
                webservices=WebServicesAccess(phonebook_sharing=sharing))


X1, X2 = xivo(1), xivo(2)
T = Topology(name="t", source=Path("t.yml"), xivos=(X1, X2), pairs=())


def rows(*uris: str) -> list[dict]:
    base = [{"id": 1, "uri": "http://localhost:9487", "dirtype": "xivo", "name": "xivo"},
            {"id": 2, "uri": "http://localhost/service/ipbx/json.php/private/pbx_services/phonebook",
             "dirtype": "phonebook", "name": "local"}]
    return base + [{"id": 10 + i, "uri": u, "dirtype": "phonebook", "name": f"phonebook-{i + 1}"}
                   for i, u in enumerate(uris)]


class OnBox:
    def __init__(self, directories, versions=None) -> None:
        self.rows, self.versions = directories, versions or {}

    def has_root(self, x):
        return x.on_box is not None

    def has_database(self, x):
        return bool(x.on_box and x.on_box.database)

    def database_source(self, x):
        return f"asterisk database of {x.name}"

    def version_file(self, x):
        return self.versions.get(x.name)

    def directories(self, x):
        return self.rows


class Web:
    def __init__(self, status=204, json_list=True) -> None:
        self.status, self.json_list, self.calls = status, json_list, []

    def phonebook(self, url, *, from_xivo, term, verify):
        self.calls.append((url, from_xivo.name, term, verify))
        ok = self.status == 200 and self.json_list
        return {"status": self.status, "final_url": url.replace("http://", "https://"), "redirects": [302],
                "count": 2 if ok else None, "json": ok, "www_authenticate": None, "elapsed_ms": 5.0,
                "from_address": from_xivo.on_box.source_address}

    def login_page_version(self, x):
        raise ProbeError(f"the web interface's login page of {x.name}", "cannot connect: connection refused")


class Probes:
    def __init__(self, onbox, web=None) -> None:
        self.onbox, self.web = onbox, web or Web()
        self.version = VersionProbe(self)

    @staticmethod
    def addresses(host: str) -> tuple[str, ...]:
        """An IP stands for itself; these tests declare no host name."""
        return (host,) if host[:1].isdigit() else ()

    def cached(self, key, compute):
        return compute()


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


@pytest.mark.parametrize("status", [200, 204])
def test_the_restricted_url_answered_from_this_xivo_passes(status):
    web = Web(status)
    evidence = run(Probes(OnBox(rows(RESTRICTED)), web))
    assert evidence.summary == "1 peer phonebooks answer xivo-2 on their restricted URL"
    assert web.calls == [(RESTRICTED, "xivo-2", "xivo-doctor", False)]
    (entry,) = evidence["phonebooks"]["xivo-1"]
    assert entry["status"] == status and entry["sent_from"] == "127.10.3.2" and entry["redirects"] == [302]
    assert SPEC.depends_on == ("port-reachable:http", "port-reachable:https") and SPEC.involves == "peers"


def test_a_private_url_fails_without_a_request_with_the_restricted_one_in_the_fix():
    web = Web()
    message, evidence = fails(Probes(OnBox(rows(PRIVATE)), web))
    assert message == (f"'phonebook-1' uses the private URL {PRIVATE}: private answers 403 to anyone but xivo-1 "
                       "itself; write restricted")
    assert web.calls == []
    out = fix(evidence)
    assert out.summary == ("on xivo-2, in Configuration → Management → Directories, set the URL of 'phonebook-1' "
                           f"for xivo-1 with the URL {RESTRICTED} (restricted, not private: private answers only "
                           "the XiVO itself)")
    assert out.commands[0] == "service xivo-dird restart  # on xivo-2: dird reads its sources at start"
    assert out.doc == "phonebook_sharing.rst#configuring-the-directories"


def test_401_means_no_host_user_with_empty_login_and_password():
    message, evidence = fails(Probes(OnBox(rows(RESTRICTED)), Web(401)))
    assert message == ("xivo-1 refused 'phonebook-1' from 127.10.3.2 (HTTP 401): it has no web services user with "
                       "Host matching 127.10.3.2 and an empty login and password")
    out = fix(evidence)
    assert out.summary.startswith("on xivo-1, in Configuration → Management → Web Services Access, add a user with "
                                  "Host 127.10.3.2 (xivo-2) and login and password left empty")
    assert out.doc == "phonebook_sharing.rst#open-phonebook-access"


@pytest.mark.parametrize(("status", "kind", "words"), [
    (403, "status", "xivo-1 answered 403 to 'phonebook-1' from 127.10.3.2, which json.php's restricted mode does "
                    "not answer on 16.13"),
    (404, "gone", "xivo-1 has no json.php phonebook (HTTP 404 to 'phonebook-1'): XiVO 16.14 and later removed it"),
    (500, "status", "xivo-1 answered HTTP 500 to 'phonebook-1' from 127.10.3.2"),
])
def test_other_answers_fail_with_their_meaning(status, kind, words):
    message, evidence = fails(Probes(OnBox(rows(RESTRICTED)), Web(status)))
    assert message.startswith(words)
    assert evidence["problems"][0]["kind"] == kind


def test_a_200_that_is_not_the_phonebooks_json_fails():
    message, _ = fails(Probes(OnBox(rows(RESTRICTED)), Web(200, json_list=False)))
    assert message == "xivo-1 answered an answer that is not the phonebook's JSON to 'phonebook-1' from 127.10.3.2"


def test_a_url_that_is_not_the_phonebook_fails():
    message, _ = fails(Probes(OnBox(rows("http://127.10.3.1/some/other/path"))))
    assert message == ("'phonebook-1' has the URL http://127.10.3.1/some/other/path, not the restricted phonebook "
                       f"URL {RESTRICTED}")


def test_no_phonebook_for_a_peer_that_serves_one_fails():
    message, evidence = fails(Probes(OnBox(rows(RESTRICTED.replace("127.10.3.1", "192.0.2.7")))))
    assert message.startswith("no phonebook directory for xivo-1 on xivo-2")
    assert evidence["not_declared_xivos"] == ["phonebook-1 (http://192.0.2.7/service/ipbx/json.php/restricted/"
                                              "pbx_services/phonebook)"]
    assert "add a phonebook directory for xivo-1" in fix(evidence).summary
    # a peer on 16.14+ serves no json.php phonebook: nothing to point at
    run(Probes(OnBox(rows(), versions={"xivo-1": "16.15"})))


def test_not_applicable_from_16_14_or_without_phonebook_sharing():
    with pytest.raises(NotApplicable, match=r"xivo-2 runs 16\.15 \(/usr/share/xivo/XIVO-VERSION on xivo-2\).*stale"):
        run(Probes(OnBox(rows(RESTRICTED), versions={"xivo-2": "16.15"})))
    with pytest.raises(NotApplicable, match=r"runs 16\.14 \(declared in the topology, not read from the XiVO\)"):
        run(Probes(OnBox(rows(RESTRICTED))), xivo(2, "16.14"))
    with pytest.raises(NotApplicable, match=r"phonebook_sharing: false"):
        run(Probes(OnBox(rows(RESTRICTED))), xivo(2, sharing=False))


def test_without_database_or_source_address_it_cannot_check_from_here():
    with pytest.raises(CannotCheckFromHere, match=r"give `ssh` access to xivo-2 \(or on_box\.database\)"):
        run(Probes(OnBox(rows(RESTRICTED))), xivo(2, database=False))
    with pytest.raises(CannotCheckFromHere, match=r"set on_box\.source_address for xivo-2"):
        run(Probes(OnBox(rows(RESTRICTED))), xivo(2, source=False))
    # the URL itself is judged even so
    with pytest.raises(AssertionError):
        run(Probes(OnBox(rows(PRIVATE))), xivo(2, source=False))


# -- as xivo-dird's phonebook backend and json.php do it (each failed on the check before them) ------

def test_the_search_never_checks_the_certificate_as_dird_does():
    """phonebook_plugin.py sends verify=False whatever the topology says of the peer's certificate."""
    x1 = Xivo(name="xivo-1", address="127.10.3.1", version="16.13",
              webservices=WebServicesAccess(verify="/etc/ssl/certs/ca.pem"))
    topology = Topology(name="t", source=Path("t.yml"), xivos=(x1, X2), pairs=())
    web = Web()
    check(xivo=X2, topology=topology, probes=Probes(OnBox(rows(RESTRICTED)), web), evidence=Evidence())
    assert web.calls == [(RESTRICTED, "xivo-2", "xivo-doctor", False)]


@pytest.mark.parametrize("versions", [{"xivo-2": "16.02"}, {"xivo-1": "16.02"}, {"xivo-2": "15.20"}])
def test_a_missing_directory_is_only_a_finding_where_the_manual_has_phonebook_sharing(versions):
    """The Phonebook Sharing page is in the manual from 16.03 (wazo-doc 95d73d76) to 16.13."""
    evidence = run(Probes(OnBox(rows(), versions=versions)))
    assert "problems" not in evidence
    message, _ = fails(Probes(OnBox(rows(), versions={"xivo-2": "16.03", "xivo-1": "16.13"})))
    assert message.startswith("no phonebook directory for xivo-1 on xivo-2")


def test_a_missing_directory_is_not_judged_without_versions():
    evidence = run(Probes(OnBox(rows())), xivo(2, None))
    assert evidence["not_judged"] == ["not judged: whether xivo-2 needs a phonebook directory for xivo-1 (the "
                                      "manual's Phonebook Sharing is XiVO 16.03-16.13): the versions are not both "
                                      "known"]


def test_an_existing_directory_is_judged_before_16_03_too():
    message, _ = fails(Probes(OnBox(rows(PRIVATE), versions={"xivo-2": "15.19", "xivo-1": "15.19"})))
    assert message.startswith("'phonebook-1' uses the private URL")


@pytest.mark.parametrize("peer", ["15.19", "15.20", None])
def test_a_403_to_the_restricted_url_up_to_15_20_is_the_users_access_rights(peer):
    x1 = xivo(1, peer)
    topology = Topology(name="t", source=Path("t.yml"), xivos=(x1, X2), pairs=())
    evidence = Evidence()
    with pytest.raises(AssertionError) as caught:
        check(xivo=X2, topology=topology, probes=Probes(OnBox(rows(RESTRICTED)), Web(403)), evidence=evidence)
    known = (f"xivo-1 runs {peer} (declared in the topology, not read from the XiVO)" if peer
             else "xivo-1's version is not known")
    assert str(caught.value) == (f"xivo-1 answered 403 to 'phonebook-1' from 127.10.3.2: up to XiVO 15.20 ({known}) "
                                 "json.php matched a web services user but its access rights (ACL) do not grant "
                                 "service/ipbx/pbx_services/phonebook")
    out = SPEC.fill_fix(FixContext(topology, X2, None, dict(evidence)))
    assert "tick IPBX → IPBX services → Phonebook (service/ipbx/pbx_services/phonebook)" in out.summary


# -- WebProbe.phonebook against local servers ---------------------------------------------------

SERVER, CLIENT, HTTP, HTTPS = "127.10.3.243", "127.10.3.244", 18080, 18443


class Session:
    def __init__(self) -> None:
        self.deadline, self.timeout, self._cache = Deadline(30), 2.0, {}

    def cached(self, key, compute):
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]


@contextmanager
def nginx(tmp_path, status: int, body=None):
    """Port HTTP redirects to HTTPS as XiVO's nginx does; HTTPS answers `status` and records clients."""
    make_certificate(tmp_path, SERVER)
    seen = []

    class Redirect(QuietHandler):
        def do_GET(self):
            seen.append(("http", self.client_address[0], self.path))
            self.send_text(302, "302 Found\n", {"Location": f"https://{SERVER}:{HTTPS}{self.path}"})

    class Answer(QuietHandler):
        def do_GET(self):
            seen.append(("https", self.client_address[0], self.path))
            if status == 204:
                self.send_response(204)
                self.end_headers()
            elif status == 401:
                self.send_text(401, "", {"WWW-Authenticate": 'Basic realm="Access Restricted"'})
            else:
                self.send_text(status, json.dumps(body) if body is not None else "<html>")

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "usr/share/xivo-certs/server.crt", tmp_path / "usr/share/xivo-certs/server.key")
    servers = [serve(SERVER, HTTP, Redirect), serve(SERVER, HTTPS, Answer, tls=context)]
    try:
        yield seen
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


URL = f"http://{SERVER}:{HTTP}/service/ipbx/json.php/restricted/pbx_services/phonebook"
FROM = Xivo(name="xivo-2", address=CLIENT, on_box=OnBoxAccess(source_address=CLIENT))


def test_phonebook_follows_the_redirect_from_the_xivos_address(tmp_path):
    with nginx(tmp_path, 200, [{"phonebook": {}}, {"phonebook": {}}]) as seen:
        answer = WebProbe(Session()).phonebook(URL, from_xivo=FROM, term="xivo-doctor")
    path = "/service/ipbx/json.php/restricted/pbx_services/phonebook?act=search&search=xivo-doctor"
    assert seen == [("http", CLIENT, path), ("https", CLIENT, path)]
    assert (answer["status"], answer["count"], answer["json"], answer["redirects"]) == (200, 2, True, [302])
    assert answer["final_url"] == URL.replace(f"http://{SERVER}:{HTTP}", f"https://{SERVER}:{HTTPS}")
    assert answer["from_address"] == CLIENT


def test_phonebook_401_204_and_html(tmp_path, own_peers):
    with nginx(tmp_path, 401):
        refused = WebProbe(Session()).phonebook(URL, from_xivo=FROM, term="x")
    assert (refused["status"], refused["www_authenticate"]) == (401, 'Basic realm="Access Restricted"')
    with nginx(tmp_path, 204):
        assert WebProbe(Session()).phonebook(URL, from_xivo=FROM, term="x")["count"] is None
    with nginx(tmp_path, 200):
        html = WebProbe(Session()).phonebook(URL, from_xivo=FROM, term="x")
    assert (html["status"], html["json"], html["count"]) == (200, False, None)


def test_phonebook_without_a_source_address_is_refused():
    bare = Xivo(name="xivo-2", address=CLIENT)
    with pytest.raises(ProbeError, match=r"no on_box\.source_address nor ssh for xivo-2 to send from"):
        WebProbe(Session()).phonebook(URL, from_xivo=bare, term="x")
