"""The pytest plugin seen from outside (pytester): ids, fixtures, order, blocking, classification."""

from __future__ import annotations

import json
import textwrap

import pytest

TOPOLOGY = """\
name: plugin-test
xivos:
  - {name: xivo-1, address: 127.10.201.1}
  - {name: xivo-2, address: 127.10.201.2}
  - {name: xivo-3, address: 127.10.201.3}
"""

HEADER = """\
import time
from xivo_doctor.check import Fix, check, not_applicable, cannot_check_from_here
from xivo_doctor.foundation.errors import ProbeError

def deco(id, **kw):
    kw.setdefault("fix", Fix("repair {xivo.name} at {xivo.address}", ["fix-it {xivo.address}"]))
    return check(id=id, title=id.title(), why="because", doc="contact_and_presence_sharing.rst#prerequisite", **kw)
"""


def run(pytester: pytest.Pytester, checks: str, *args: str, topology: str = TOPOLOGY):
    pytester.makefile(".yml", topology=topology)
    pytester.makepyfile(test_fake=HEADER + textwrap.dedent(checks))
    out = pytester.path / "out.json"
    result = pytester.runpytest("-p", "xivo_doctor.engine.plugin", "--topology", "topology.yml",
                                "--doctor-json", str(out), *args)
    data = json.loads(out.read_text()) if out.exists() else None
    return result, data


def statuses(data) -> dict[str, str]:
    return {r["item"]: r["status"] for r in data["results"]}


def test_ids_are_check_and_target_and_fixtures_are_parametrised(pytester):
    result, data = run(pytester, """
        @deco("per-xivo")
        def test_per_xivo(xivo, topology, xivos, evidence):
            evidence["name"] = xivo.name
            assert len(xivos) == 3 and topology.name == "plugin-test"

        @deco("per-pair")
        def test_per_pair(pair):
            assert pair.xivo is not pair.peer

        @deco("whole")
        def test_whole(topology):
            pass
    """, "-v")
    result.assert_outcomes(passed=10)
    result.stdout.fnmatch_lines(["*test_per_xivo?xivo-1? PASSED*", "*test_per_pair?xivo-1->xivo-2? PASSED*"])
    assert list(statuses(data)) == [
        "per-xivo[xivo-1]", "per-xivo[xivo-2]", "per-xivo[xivo-3]",
        "per-pair[xivo-1->xivo-2]", "per-pair[xivo-1->xivo-3]", "per-pair[xivo-2->xivo-1]",
        "per-pair[xivo-2->xivo-3]", "per-pair[xivo-3->xivo-1]", "per-pair[xivo-3->xivo-2]", "whole",
    ]
    # what the check put, and where it was seen from (the engine's, for every item about a XiVO)
    evidence = data["results"][0]["evidence"]
    assert set(evidence) == {"name", "vantage"} and evidence["name"] == "xivo-1"
    assert evidence["vantage"].endswith(", by the network only"), evidence


DEPENDENCIES = """
    @deco("dependent", depends_on=["upstream"])
    def test_dependent(pair):
        pass

    @deco("on-other-facet", depends_on=["upstream:ctid"])
    def test_other_facet(xivo):
        pass

    @deco("on-failed-facet", depends_on=["upstream:amqp"])
    def test_failed_facet(xivo):
        pass

    @deco("upstream")
    def test_upstream(xivo, evidence):
        evidence.failed_facet("amqp")
        assert xivo.name != "xivo-2", f"{xivo.name} is broken"
"""


def test_a_failed_upstream_blocks_only_its_xivo_and_pairs_containing_it(pytester):
    _result, data = run(pytester, DEPENDENCIES)
    got = statuses(data)
    # upstream runs first although declared last
    assert list(got)[:3] == ["upstream[xivo-1]", "upstream[xivo-2]", "upstream[xivo-3]"]
    assert got["upstream[xivo-2]"] == "fail"
    assert got["dependent[xivo-1->xivo-3]"] == got["dependent[xivo-3->xivo-1]"] == "pass"
    for pair in ("xivo-1->xivo-2", "xivo-2->xivo-1", "xivo-2->xivo-3", "xivo-3->xivo-2"):
        item = next(r for r in data["results"] if r["item"] == f"dependent[{pair}]")
        assert item["status"] == "skip"
        assert item["blocked_by"] == ["upstream[xivo-2]"]
        assert item["message"] == "blocked by upstream[xivo-2]"
    # a dependency on another facet of the upstream is not blocked; one on the failed facet is
    assert got["on-other-facet[xivo-2]"] == "pass"
    assert got["on-failed-facet[xivo-2]"] == "skip"
    assert got["on-failed-facet[xivo-1]"] == "pass"
    # the root cause shows once, with its fix filled with this topology's values
    failed = [r for r in data["results"] if r["status"] == "fail"]
    assert [r["item"] for r in failed] == ["upstream[xivo-2]"]
    assert failed[0]["message"] == "xivo-2 is broken"
    assert failed[0]["fix"] == {"summary": "repair xivo-2 at 127.10.201.2", "commands": ["fix-it 127.10.201.2"],
                                "doc": "contact_and_presence_sharing.rst#prerequisite"}
    assert failed[0]["facets"] == ["amqp"]
    assert data["verdict"] == "CRITICAL"


def test_a_deselected_upstream_blocks_nothing(pytester):
    _result, data = run(pytester, DEPENDENCIES, "--check", "dependent")
    assert set(statuses(data).values()) == {"pass"}
    assert len(data["results"]) == 6


def test_node_selection_keeps_that_xivo_and_its_pairs(pytester):
    _result, data = run(pytester, DEPENDENCIES, "--check", "dependent", "--check", "upstream", "--node", "xivo-3")
    assert list(statuses(data)) == [
        "upstream[xivo-3]", "dependent[xivo-1->xivo-3]", "dependent[xivo-2->xivo-3]",
        "dependent[xivo-3->xivo-1]", "dependent[xivo-3->xivo-2]",
    ]


def test_a_dependency_cycle_is_a_clear_error(pytester):
    result, _data = run(pytester, """
        @deco("alpha", depends_on=["beta"])
        def test_alpha(xivo):
            pass

        @deco("beta", depends_on=["alpha"])
        def test_beta(xivo):
            pass
    """)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*check dependency cycle: alpha -> beta -> alpha*"])


def test_each_outcome_is_classified(pytester):
    result, data = run(pytester, """
        @deco("probe-error")
        def test_probe_error(xivo):
            raise ProbeError(f"consul on {xivo.name}", "connection refused")

        @deco("not-applicable")
        def test_na(xivo):
            not_applicable("XiVO 16.14 has no json.php phonebook")

        @deco("out-of-reach")
        def test_reach(xivo):
            cannot_check_from_here("give on_box.database for this XiVO")

        @deco("warned", severity="warn")
        def test_warned(xivo):
            assert False, "slightly off"

        @deco("buggy")
        def test_buggy(xivo):
            {}["missing"]
    """, "--node", "xivo-1")
    got = {r["check"]: r for r in data["results"]}
    assert got["probe-error"]["status"] == "error"
    assert got["probe-error"]["message"] == "could not check: consul on xivo-1: connection refused"
    assert got["not-applicable"]["status"] == "skip"
    assert got["not-applicable"]["message"] == "not applicable: XiVO 16.14 has no json.php phonebook"
    assert got["out-of-reach"]["message"] == "cannot check from here: give on_box.database for this XiVO"
    assert got["warned"]["status"] == "warn" and got["warned"]["fix"] is not None
    assert got["buggy"]["status"] == "error"
    assert got["buggy"]["message"].startswith("internal error in check buggy: KeyError")
    assert data["verdict"] == "UNKNOWN" and data["exit_code"] == 3
    # plain pytest shows our words, not a traceback
    result.stdout.fnmatch_lines(["*ERROR: could not check: consul on xivo-1: connection refused*"])


def test_items_that_cannot_start_before_the_deadline_are_errors(pytester):
    _result, data = run(pytester, """
        @deco("slow")
        def test_slow(xivo):
            time.sleep(0.6)
    """, "--doctor-timeout", "1")
    got = statuses(data)
    assert got["slow[xivo-1]"] == got["slow[xivo-2]"] == "pass"
    assert got["slow[xivo-3]"] == "error"
    item = data["results"][2]
    assert item["message"] == "could not check: run: timed out after 1 s (the run's deadline, -t)"


def test_unknown_check_and_node_are_usage_errors(pytester):
    result, _ = run(pytester, DEPENDENCIES, "--check", "nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--check nope: no such check; known: *dependent*"])
    result, _ = run(pytester, DEPENDENCIES, "--node", "xivo-9")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--node xivo-9: no such XiVO in *topology.yml; known: xivo-1, xivo-2, xivo-3*"])


def test_a_bad_topology_is_a_usage_error_naming_file_and_key(pytester):
    result, _ = run(pytester, DEPENDENCIES, topology="xivos:\n  - {name: xivo-1, adress: 127.10.201.1}\n")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "ERROR: topology.yml:2: xivos[0].adress: unknown key; did you mean 'address'?" in result.stderr.lines


def test_a_run_does_not_format_pytest_tracebacks_it_replaces(tmp_path, monkeypatch):
    """Every item that raised gets its own classification; pytest's default traceback, built before it
    and thrown away, parsed the source of every frame: 1.2 s an item for an SSH error, 15 s of a
    2-XiVO run without its SSH key. A run asks pytest for the "native" one, which parses nothing."""
    from _pytest._code import code

    from xivo_doctor.engine.options import RunOptions
    from xivo_doctor.engine.plugin import run_checks
    from xivo_doctor.engine.run import Run
    from xivo_doctor.topology import load_topology

    formatted = []
    real = code.FormattedExcinfo.repr_traceback
    monkeypatch.setattr(code.FormattedExcinfo, "repr_traceback",
                        lambda self, excinfo: formatted.append(excinfo.typename) or real(self, excinfo))
    path = tmp_path / "t.yml"
    # nothing listens on these loopback addresses, and the SSH key is missing: every item that reads
    # more than a port raises
    path.write_text("name: t\nprobe_timeout: 1\ndefaults:\n  version: '16.13'\n"
                    f"  ssh: {{identity_file: {tmp_path}/no-key}}\nxivos:\n"
                    "- {name: xivo-1, address: 127.10.4.1}\n- {name: xivo-2, address: 127.10.4.2}\n")
    report = run_checks(Run(RunOptions(topology=load_topology(path), timeout=30)))
    errors = [r for r in report.results if r.status.value == "error"]
    assert errors, [(r.item_id, r.status.value) for r in report.results]
    assert formatted == []
