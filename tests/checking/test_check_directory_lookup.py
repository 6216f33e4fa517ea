"""directory-lookup evaluated on hand-made tables and dird answers (the lab proves it on live stand-ins:
tests/checking/test_fault_matrix.py): what is asked (backend per release, profiles, term), how each
answer of xivo-dird and xivo-auth is judged, the fix and the metric."""

from __future__ import annotations

from pathlib import Path

import pytest

from xivo_doctor.check import Evidence, FixContext, Outcome, spec_of
from xivo_doctor.checks import directory_lookup
from xivo_doctor.foundation.errors import NotApplicable, ProbeError
from xivo_doctor.foundation.results import Status
from xivo_doctor.probes.onbox import UuidReading
from xivo_doctor.probes.version import ObservedVersion
from xivo_doctor.topology.model import AuthAccess, OnBoxAccess, Pair, Secret, Topology, Xivo

check = directory_lookup.test_directory_lookup
SPEC = spec_of(check)
U1, U2 = "aaaaaaaa-0000-4000-8000-000000000001", "bbbbbbbb-0000-4000-8000-000000000002"
AUTH = AuthAccess(username="xivo-doctor", password=Secret("s3cret-auth"))


def xivo(n: int, *, database: bool = True, auth: AuthAccess = AUTH) -> Xivo:
    on_box = OnBoxAccess(root=Path(f"/lab/{n}"), database=Secret("postgresql://x") if database else None)
    return Xivo(name=f"xivo-{n}", address=f"127.10.4.{n}", on_box=on_box, auth=auth)


X1, X2 = xivo(1), xivo(2)
T = Topology(name="t", source=Path("t.yml"), xivos=(X1, X2), pairs=(Pair(X2, X1), Pair(X1, X2)))
ALICE = {"id": 7, "uuid": "cccccccc-0000-4000-8000-000000000007", "firstname": "Alice", "lastname": "Martin"}


class OnBox:
    """xivo-2's tables: a `xivo` directory and a phonebook toward xivo-1, listed in `default`."""

    def __init__(self, *, contexts=None, match_direct='["firstname","lastname"]', users=(ALICE,), entries=None):
        self.contexts = contexts or [{"name": "default", "display": "Display",
                                      "directory_names": ["internal", "xivo-1", "phonebook-1"]}]
        self.match_direct, self.users_, self.entries = match_direct, list(users), entries

    def has_database(self, x) -> bool:
        return bool(x.on_box and x.on_box.database)

    def has_root(self, x) -> bool:
        return False

    def database_source(self, x) -> str:
        return f"asterisk database of {x.name}"

    def directories(self, x):
        return [{"id": 1, "uri": "http://localhost:9487", "dirtype": "xivo", "name": "internal"},
                {"id": 2, "uri": "https://127.10.4.1:9486", "dirtype": "xivo", "name": "xivo-1"},
                {"id": 3, "uri": "http://127.10.4.1/service/ipbx/json.php/restricted/pbx_services/phonebook",
                 "dirtype": "phonebook", "name": "phonebook-1"}]

    def ctidirectories(self, x):
        return [{"name": "internal", "directory_id": 1, "match_direct": "[]"},
                {"name": "xivo-1", "directory_id": 2, "match_direct": self.match_direct},
                {"name": "phonebook-1", "directory_id": 3, "match_direct": "[]"}]

    def cticontexts(self, x):
        return self.contexts

    def ctidisplays(self, x):
        return [{"name": "Display"}]

    def users(self, x):
        return self.users_

    def phonebook_entries(self, x):
        if self.entries is None:
            raise ProbeError("asterisk database", "reading phonebook: no such table")
        return self.entries

    def uuid_readings(self, x):
        return [UuidReading("infos.uuid", "database", {"xivo-1": U1, "xivo-2": U2}[x.name])]


def result(user_id=7, xivo_id=U1, source="xivo-1", values=("Alice Martin", "1001")):
    return {"column_values": list(values), "source": source,
            "relations": {"xivo_id": xivo_id, "user_id": user_id, "agent_id": None, "endpoint_id": 2}}


class Dird:
    def __init__(self, answers=None, token_status=200, refused=False, token_reason="Authentication Failed"):
        self.answers = answers or {}
        self.token_status, self.refused, self.token_reason = token_status, refused, token_reason
        self.tokens, self.lookups = [], []

    def token(self, x, backend):
        self.tokens.append((x.name, backend))
        return {"status": self.token_status, "acls": ["dird.directories.lookup.*.read"], "backend": backend,
                "reason": "" if self.token_status == 200 else self.token_reason, "elapsed_ms": 5.0}

    def lookup(self, x, profile, term, attempt=1):
        self.lookups.append((x.name, profile, term) if attempt == 1 else (x.name, profile, term, attempt))
        if self.refused:
            raise ProbeError(f"xivo-dird of {x.name}", "cannot connect: connection refused")
        answer = self.answers.get(term, (200, [result()]))
        if isinstance(answer, list):  # one answer per attempt: (status, results, elapsed_ms)
            status, results, elapsed = answer[attempt - 1]
        else:
            (status, results), elapsed = answer, 42.0
        return {"status": status, "results": results if status == 200 else [], "elapsed_ms": elapsed,
                "reason": "" if status == 200 else "the reason", "url": "https://…"}


class Probes:
    def __init__(self, onbox=None, dird=None, version="16.13", passive=False):
        self.onbox, self.dird, self.passive = onbox or OnBox(), dird or Dird(), passive
        self.version = type("V", (), {"at_hand": lambda _, x: ObservedVersion(version, "XIVO-VERSION")})()

    @staticmethod
    def addresses(host):
        return (host,) if host[:1].isdigit() else ()


X2_X1 = Pair(X2, X1)


def run(probes, pair=X2_X1) -> Evidence:
    evidence = Evidence()
    check(pair=pair, topology=T, probes=probes, evidence=evidence)
    return evidence


def fails(probes, pair=X2_X1) -> tuple[str, Evidence]:
    evidence = Evidence()
    with pytest.raises(AssertionError) as caught:
        check(pair=pair, topology=T, probes=probes, evidence=evidence)
    return str(caught.value), evidence


def fix(evidence):
    return SPEC.fill_fix(FixContext(T, X2, X1, dict(evidence)))


def test_the_peers_user_found_with_the_peers_uuid_passes():
    dird = Dird()
    evidence = run(Probes(dird=dird))
    assert dird.tokens == [("xivo-2", "xivo_service")]
    assert dird.lookups == [("xivo-2", "default", "Martin")]
    assert evidence["lookups"]["default"]["found"] and evidence["latency_ms"] == 42.0
    assert "Alice Martin (id 7)" in evidence.summary and U1 in evidence.summary
    assert "s3cret" not in repr(dict(evidence))


@pytest.mark.parametrize(("version", "backend"),
                         [("15.19", "xivo_ws"), ("15.20", "xivo_ws"), ("16.01", "xivo_service")])
def test_the_token_backend_is_the_releases(version, backend):
    dird = Dird()
    run(Probes(dird=dird, version=version))
    assert dird.tokens == [("xivo-2", backend)]


def test_each_profile_listing_the_peers_directory_is_asked_with_a_searched_name():
    contexts = [{"name": "default", "display": "Display", "directory_names": ["internal", "xivo-1"]},
                {"name": "sales", "display": "Display", "directory_names": ["xivo-1"]},
                {"name": "other", "display": "Display", "directory_names": ["internal"]},
                {"name": "nodisplay", "display": "Gone", "directory_names": ["xivo-1"]}]
    dird = Dird(answers={"Alice": (200, [result()])})
    run(Probes(OnBox(contexts=contexts, match_direct='["firstname"]'), dird))
    assert dird.lookups == [("xivo-2", "default", "Alice"), ("xivo-2", "sales", "Alice")]


def test_without_this_xivos_database_the_default_profile_is_asked():
    x2 = xivo(2, database=False)
    dird = Dird()
    evidence = run(Probes(dird=dird), Pair(x2, X1))
    assert dird.lookups == [("xivo-2", "default", "Martin")]
    assert "default" in " ".join(evidence["notes"])


def test_a_200_without_the_user_fails_and_the_fix_restarts_dird_then_reads_its_log():
    dird = Dird(answers={"Martin": (200, [result(user_id=3, xivo_id=U2, source="internal")])})
    message, evidence = fails(Probes(dird=dird))
    assert "1 result(s), none is Alice Martin (id 7) of xivo-1" in message
    assert evidence["problems"][0]["kind"] == "not-found"
    out = fix(evidence)
    assert out.commands[0] == "service xivo-dird restart  # on xivo-2"
    assert "/var/log/xivo-dird.log" in out.commands[1]
    assert out.doc == "contact_and_presence_sharing.rst#restart-xivo-dird"


def test_the_user_with_an_old_uuid_is_dirds_cache():
    dird = Dird(answers={"Martin": (200, [result(xivo_id="dddddddd-0000-4000-8000-000000000009")])})
    message, evidence = fails(Probes(dird=dird))
    assert evidence["problems"][0]["kind"] == "stale" and "until it restarts" in message


@pytest.mark.parametrize(("status", "kind", "words"), [(404, "profile", "has not been restarted"),
                                                       (503, "auth", "cannot reach its xivo-auth"),
                                                       (500, "status", "HTTP 500")])
def test_dirds_error_answers_fail_with_what_it_said(status, kind, words):
    message, evidence = fails(Probes(dird=Dird(answers={"Martin": (status, [])})))
    assert evidence["problems"][0]["kind"] == kind and words in message and "the reason" in message
    assert fix(evidence).commands


def test_nothing_listening_on_dirds_port_fails():
    message, evidence = fails(Probes(dird=Dird(refused=True)))
    assert evidence["problems"][0]["kind"] == "refused" and "stopped" in message
    assert fix(evidence).commands[0] == "service xivo-dird restart  # on xivo-2"


def test_a_token_without_the_lookup_acl_is_the_doctors_access_not_a_fault():
    with pytest.raises(ProbeError, match=r"dird\.directories\.lookup\.default\.read"):
        run(Probes(dird=Dird(answers={"Martin": (401, [])})))


def test_refused_credentials_are_an_error_naming_the_user():
    with pytest.raises(ProbeError, match=r"'xivo-doctor'.*HTTP 401"):
        run(Probes(dird=Dird(token_status=401)))


def test_without_credentials_or_with_passive_it_says_how_to_enable_it():
    with pytest.raises(NotApplicable, match=r"auth\.username and auth\.password for xivo-2"):
        run(Probes(), Pair(xivo(2, auth=AuthAccess()), X1))
    with pytest.raises(NotApplicable, match="--passive"):
        run(Probes(passive=True))


def test_a_peer_without_any_user_skips():
    with pytest.raises(NotApplicable, match="xivo-1 has no user"):
        run(Probes(OnBox(users=[])))


def test_the_peers_phonebook_entry_is_found_by_name_up_to_16_13():
    entries = [{"id": 1, "firstname": "Dave", "lastname": "Supplier1", "displayname": "Dave"}]
    phonebook = result(user_id=None, xivo_id=None, source="phonebook-1", values=("Dave Supplier1", "0123"))
    dird = Dird(answers={"Supplier1": (200, [phonebook])})
    evidence = run(Probes(OnBox(entries=entries), dird))
    assert ("xivo-2", "default", "Supplier1") in dird.lookups
    assert evidence["phonebook"]["lookups"]["default"]["found"]
    dird = Dird(answers={"Supplier1": (200, [])})
    message, evidence = fails(Probes(OnBox(entries=entries), dird))
    assert evidence["problems"][0]["kind"] == "phonebook" and "Dave Supplier1" in message
    dird = Dird()
    run(Probes(OnBox(entries=entries), dird, version="16.14"))
    assert [lookup[2] for lookup in dird.lookups] == ["Martin"]  # no phonebook backend from 16.14


def test_an_answer_at_dirds_timeout_without_the_user_is_asked_again_and_the_second_judged():
    # the first search after dird starts, or on a busy XiVO, ends at the 2.9 s timeout without the
    # peer's source; asked again it finds the user: the configuration is right, the slowness is kept
    dird = Dird(answers={"Martin": [(200, [], 2904.0), (200, [result()], 310.0)]})
    evidence = run(Probes(dird=dird))
    assert dird.lookups == [("xivo-2", "default", "Martin"), ("xivo-2", "default", "Martin", 2)]
    assert evidence["lookups"]["default"]["first_answer"] == {"elapsed_ms": 2904.0, "results": 0, "sources": []}
    assert evidence["latency_ms"] == 2904.0 and "asked a second time" in evidence.summary


def test_two_answers_at_dirds_timeout_fail_as_a_source_too_slow():
    dird = Dird(answers={"Martin": [(200, [], 2950.0), (200, [result(source="internal", xivo_id=U2)], 2921.0)]})
    message, _ = fails(Probes(dird=dird))
    assert "dird answered after 2921 ms (and 2950 ms when first asked)" in message
    assert "a source slower than 2.9 s is dropped" in message and len(dird.lookups) == 2


def test_a_quick_answer_without_the_user_is_not_asked_again():
    quick = Dird(answers={"Martin": [(200, [], 120.0)]})
    fails(Probes(dird=quick))
    slow_but_found = Dird(answers={"Martin": [(200, [result()], 2950.0)]})
    run(Probes(dird=slow_but_found))
    assert quick.lookups == slow_but_found.lookups == [("xivo-2", "default", "Martin")]


def test_15_19_waits_for_every_source_so_a_slow_answer_is_not_asked_again():
    dird = Dird(answers={"Martin": [(200, [], 3950.0)]})
    message, _ = fails(Probes(dird=dird, version="15.19"))
    assert len(dird.lookups) == 1 and "slower than" not in message


def test_the_metric_is_the_lookups_latency_per_pair():
    outcome = Outcome("xivo-2", "xivo-1", Status.PASS, {"latency_ms": 42.0}, ("xivo-1", "xivo-2"))
    (metric,) = SPEC.metrics(outcome)
    assert (metric.label, metric.value, metric.unit) == ("dird_xivo-2_finds_xivo-1", 42.0, "ms")
    blocked = Outcome("xivo-2", "xivo-1", Status.SKIP, {}, ("xivo-1", "xivo-2"))
    assert SPEC.metrics(blocked)[0].value is None


def test_xivo_auth_failing_to_make_tokens_is_the_xivos_fault():
    message, evidence = fails(Probes(dird=Dird(token_status=500, token_reason="Connection to consul failed")))
    assert evidence["problems"][0]["kind"] == "auth-consul" and "no user of xivo-2 gets a token" in message
    assert fix(evidence).commands == ("service consul start  # on xivo-2",)
    message, evidence = fails(Probes(dird=Dird(token_status=500, token_reason="Internal Server Error")))
    assert evidence["problems"][0]["kind"] == "auth-token"
    assert "service xivo-auth restart  # on xivo-2" in fix(evidence).commands


def test_a_consul_down_blocks_the_lookup_as_its_root_cause():
    assert ("port-reachable", "consul-rpc") in SPEC.dependencies()
