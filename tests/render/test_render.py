"""Renderers (presentation) on hand-made Reports: JSON + schema, JUnit, terminal, live progress."""

from __future__ import annotations

import io
import json
import os
import re
import stat
import threading
import xml.etree.ElementTree as ET

import jsonschema
import pytest
import render_samples as S
from rich.console import Console
from schema import load_schema

from xivo_doctor.foundation.results import Result, Status
from xivo_doctor.render import json_report, junit, terminal
from xivo_doctor.render.progress import LiveProgress

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def plain_console(width: int = 120) -> Console:
    return Console(file=io.StringIO(), width=width, force_terminal=False)


def rendered(report, **kw) -> str:
    console = plain_console()
    terminal.render_terminal(report, console, **kw)
    return console.file.getvalue()


# --- JSON -------------------------------------------------------------------------------------


def validator() -> jsonschema.Draft202012Validator:
    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize(
    "make, verdict, code",
    [
        (S.ok_report, "OK", 0),
        (S.warning_report, "WARNING", 1),
        (S.critical_report, "CRITICAL", 2),
        (S.unknown_report, "UNKNOWN", 3),
    ],
)
def test_json_validates_and_carries_verdict(make, verdict, code):
    doc = json_report.report_to_dict(make())
    validator().validate(doc)
    assert (doc["verdict"], doc["exit_code"]) == (verdict, code)
    assert doc["schema"] == "xivo-doctor/1"


def test_json_shape_counts_and_results():
    doc = json_report.report_to_dict(S.critical_report())
    assert list(doc) == [
        "schema", "verdict", "exit_code", "started_at", "duration_s", "vantage", "timeout_s",
        "doctor_version", "topology", "counts", "results", "changes",
    ]  # fmt: skip
    assert doc["counts"] == {"pass": 3, "warn": 1, "fail": 1, "error": 1, "skip": 2}
    assert doc["topology"] == S.TOPOLOGY
    fail = next(r for r in doc["results"] if r["status"] == "fail")
    assert list(fail) == [
        "check", "target", "item", "status", "severity", "title", "message", "evidence", "fix",
        "doc", "why", "blocked_by", "facets", "duration_s",
    ]  # fmt: skip
    assert fail["item"] == "port-reachable[xivo-2]"
    assert fail["evidence"]["ports"]["5672"] == {"state": "timeout", "after_s": 3.0}
    assert fail["evidence"]["tried"] == [5672, 8302]
    assert fail["fix"] == {
        "summary": "Open TCP 5672 on xivo-2 for the other XiVOs",
        "commands": [S.CMD_1, S.CMD_2, S.LONG_CMD],
        "doc": "contact_and_presence_sharing.rst#network-flows",
    }
    assert fail["facets"] == ["amqp"] and fail["duration_s"] == 0.012
    assert fail["message"].endswith(S.TRICKY)
    skip = next(r for r in doc["results"] if r["blocked_by"])
    assert skip["blocked_by"] == ["port-reachable[xivo-2]:amqp"] and skip["fix"] is None
    assert next(r for r in doc["results"] if r["target"] == "*")["item"] == "xivo-version"


def test_json_schema_rejects_wrong_documents():
    v = validator()
    doc = json_report.report_to_dict(S.critical_report())
    for mutate in (
        lambda d: d.update(exit_code=0),  # exit code disagrees with the verdict
        lambda d: d["results"][0].update(status="broken"),
        lambda d: d["results"][0].pop("item"),
        lambda d: d["counts"].pop("skip"),
        lambda d: d.update(schema="xivo-doctor/2"),
    ):
        bad = json.loads(json.dumps(doc))
        mutate(bad)
        assert not v.is_valid(bad)


def test_json_round_trips_and_writes_stdout(capsys):
    report = S.critical_report()
    json_report.write_json(report, "-")
    out = capsys.readouterr().out
    assert out.endswith("}\n") and out.startswith('{\n  "schema"')
    assert json.loads(out) == json_report.report_to_dict(report)


def test_json_writes_file_creating_dirs(tmp_path):
    dest = tmp_path / "a" / "b" / "report.json"
    json_report.write_json(S.critical_report(), str(dest))
    text = dest.read_text(encoding="utf-8")
    assert text.endswith("\n")
    validator().validate(json.loads(text))
    assert [p.name for p in dest.parent.iterdir()] == ["report.json"]  # no temporary file left


def _null_device(folder):
    """A character device like /dev/null (major 1, minor 3), made in `folder`: if the writer renamed over
    it, the test's own copy is lost, never the machine's."""
    if os.geteuid() != 0:
        pytest.skip("mknod needs root")
    node = folder / "null"
    os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    return node


def test_json_to_a_device_or_a_fifo_is_written_into_not_renamed_over(tmp_path):
    # `--json /dev/null` once put a plain file in the place of the machine's /dev/null
    device = _null_device(tmp_path)
    json_report.write_json(S.critical_report(), str(device))
    assert stat.S_ISCHR(device.stat().st_mode)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    read: list[str] = []
    reader = threading.Thread(target=lambda: read.append(fifo.read_text(encoding="utf-8")))
    reader.start()
    json_report.write_json(S.critical_report(), str(fifo))
    reader.join(5)
    assert stat.S_ISFIFO(fifo.stat().st_mode) and json.loads(read[0])["verdict"] == "CRITICAL"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "null"]  # no temporary file left


def test_json_through_a_symlink_replaces_its_target_and_keeps_the_link(tmp_path):
    (tmp_path / "reports").mkdir()
    target = tmp_path / "reports" / "latest.json"
    target.write_text("old")
    link = tmp_path / "latest.json"
    link.symlink_to(target)
    json_report.write_json(S.critical_report(), str(link))
    assert link.is_symlink() and json.loads(target.read_text())["verdict"] == "CRITICAL"


def test_json_masks_unserialisable_values():
    class Masked:
        def __str__(self) -> str:
            return "********"

    r = Result(check="c", target="x", status=Status.PASS, title="t", evidence={"token": Masked()})
    doc = json.loads(json_report.to_json(S.report([r])))
    assert doc["results"][0]["evidence"] == {"token": "********"}


# --- JUnit ------------------------------------------------------------------------------------


def junit_tree():
    return ET.fromstring(junit.to_junit_xml(S.critical_report()))


def props(case: ET.Element) -> dict[str, str]:
    return {p.get("name"): p.get("value") for p in case.find("properties")}


def case_named(root: ET.Element, name: str) -> ET.Element:
    return next(c for c in root.iter("testcase") if c.get("name") == name)


def test_junit_suite_counts():
    root = junit_tree()
    assert root.tag == "testsuites"
    suite = root.find("testsuite")
    assert suite.get("name") == "xivo-doctor"
    assert {k: suite.get(k) for k in ("tests", "failures", "errors", "skipped", "time")} == {
        "tests": "8",
        "failures": "1",
        "errors": "1",
        "skipped": "2",
        "time": "0.840",
    }
    assert suite.get("hostname") == "doctor-host (remote)"
    assert suite.get("timestamp") == "2024-05-02T10:11:12+02:00"
    assert len(suite.findall("testcase")) == 8


def test_junit_failure_properties_and_special_characters():
    case = case_named(junit_tree(), "port-reachable[xivo-2]")
    assert case.get("classname") == "port-reachable" and case.get("time") == "0.012"
    p = props(case)
    assert p["target"] == "xivo-2" and p["status"] == "fail"
    assert p["doc"] == "contact_and_presence_sharing.rst#network-flows"
    assert p["fix"] == "Open TCP 5672 on xivo-2 for the other XiVOs"
    assert [p["fix.command.1"], p["fix.command.2"], p["fix.command.3"]] == [S.CMD_1, S.CMD_2, S.LONG_CMD]
    failure = case.find("failure")
    assert failure.get("type") == "fail"
    assert failure.get("message") == "port 5672 (amqp) timed out: " + S.TRICKY
    lines = [json.loads(line) for line in failure.text.splitlines()]
    assert {"ports": {"5672": {"state": "timeout", "after_s": 3.0}, "8302": {"state": "open"}}} in lines


def test_junit_warn_passes_error_and_skips():
    root = junit_tree()
    warn = case_named(root, "uuid-unique[xivo-2]")
    assert warn.find("failure") is None and warn.find("error") is None
    assert warn.find("system-out").text.startswith("WARNING: XIVO_UUID in")
    assert props(warn)["status"] == "warn"
    err = case_named(root, "consul-wan[xivo-1]").find("error")
    assert err.get("message").startswith("could not reach consul")
    blocked = case_named(root, "rabbitmq-federation[xivo-1->xivo-2]")
    assert blocked.find("skipped").get("message") == "blocked by port-reachable[xivo-2]:amqp"
    assert props(blocked)["blocked_by"] == "port-reachable[xivo-2]:amqp"
    na = case_named(root, "phonebook-restricted[xivo-1]").find("skipped")
    assert na.get("message") == "not applicable on XiVO >= 16.14"
    assert "blocked_by" not in props(case_named(root, "phonebook-restricted[xivo-1]"))


def test_junit_survives_control_characters_and_writes_file(tmp_path):
    r = Result(
        check="c",
        target="x",
        status=Status.FAIL,
        title="t",
        message="bell\x07 esc\x1b[2J",
        evidence={"k": "\x00"},
    )
    dest = tmp_path / "out" / "junit.xml"
    junit.write_junit(S.report([r]), dest)
    root = ET.parse(dest).getroot()
    assert root.find("testsuite/testcase/failure").get("message") == "bell\\x07 esc\\x1b[2J"


# --- terminal ---------------------------------------------------------------------------------


def test_verdict_lines():
    tally = "1 fail, 1 error, 1 warn, 3 pass, 2 skip in 0.84 s"
    assert terminal.verdict_line(S.critical_report()) == f"CRITICAL: port-reachable[xivo-2] failed — {tally}"
    assert terminal.verdict_line(S.ok_report()) == "OK: 9 items pass (0 skip) in 0.84 s"
    assert terminal.verdict_line(S.ok_report(1, 2)) == "OK: 1 item passes (2 skip) in 0.84 s"
    assert (
        terminal.verdict_line(S.warning_report())
        == "WARNING: uuid-unique[xivo-2] warned — 0 fail, 0 error, 1 warn, 3 pass, 0 skip in 0.84 s"
    )
    assert (
        terminal.verdict_line(S.unknown_report()) == "UNKNOWN: could not check consul-wan[xivo-1] (+1 more)"
        " — 0 fail, 2 error, 0 warn, 1 pass, 0 skip in 0.84 s"
    )
    two = S.critical_results()
    two.append(Result(check="directory-source", target="xivo-1", status=Status.FAIL, title="t"))
    assert terminal.verdict_line(S.report(two)).startswith(
        "CRITICAL: port-reachable[xivo-2] failed (+1 more) — 2 fail"
    )


def test_terminal_sections_and_lines():
    report = S.critical_report()
    out = rendered(report)
    lines = out.splitlines()
    assert "\x1b" not in out
    assert lines[0] == "Results"
    assert "Every XiVO runs the same version  xivo-version" in lines
    assert "  PASS   *               all on 2023.05" in lines
    assert "  FAIL   xivo-2          port 5672 (amqp) timed out: " + S.TRICKY in lines
    assert (
        "  ERROR  xivo-1          could not reach consul at https://127.10.0.1:8500: timed out after 3.0 s"
        in lines
    )
    assert "  SKIP   xivo-1->xivo-2  blocked by port-reachable[xivo-2]:amqp" in lines
    assert "  SKIP   xivo-1          not applicable on XiVO >= 16.14" in lines
    assert "What to fix" in lines
    assert lines[-1] == terminal.verdict_line(report)
    # What to fix: fail and warn in run order, then errors
    headers = [ln for ln in lines if " — " in ln and ln.split()[0] in {"FAIL", "WARN", "ERROR"}]
    assert [h.split()[1] for h in headers] == [
        "uuid-unique[xivo-2]",
        "port-reachable[xivo-2]",
        "consul-wan[xivo-1]",
    ]


def test_terminal_fix_block_is_copyable():
    lines = rendered(S.critical_report()).splitlines()
    start = lines.index("FAIL   port-reachable[xivo-2] — The ports the interconnection needs are open")
    block = lines[start : start + 16]
    assert block[1] == "  Observed: port 5672 (amqp) timed out: " + S.TRICKY
    assert "    address: 127.10.0.2" in block
    assert "    ports:" in block
    assert "      5672: state=timeout, after_s=3.0" in block
    assert "      8302: state=open" in block
    assert "    tried: 5672, 8302" in block
    assert (
        "  Why it matters: RabbitMQ federation links use AMQP on 5672; without it no presence crosses."
        in block
    )
    assert "  Fix: Open TCP 5672 on xivo-2 for the other XiVOs" in block
    i = block.index("  Fix: Open TCP 5672 on xivo-2 for the other XiVOs")
    assert block[i + 1 : i + 4] == [S.CMD_1, S.CMD_2, S.LONG_CMD]  # verbatim, unwrapped, unindented
    assert "  Manual: contact_and_presence_sharing.rst#network-flows" in block
    assert "  Blocks: rabbitmq-federation[xivo-1->xivo-2]" in block


def test_terminal_markup_is_literal_even_in_colour():
    console = Console(file=io.StringIO(), width=120, force_terminal=True, color_system="truecolor")
    terminal.render_terminal(S.critical_report(), console)
    out = ANSI.sub("", console.file.getvalue())
    assert S.TRICKY in out and S.CMD_1 in out.splitlines() and S.CMD_2 in out.splitlines()
    assert "\x1b[" in console.file.getvalue()  # it did colour


def test_terminal_escapes_control_characters():
    r = Result(check="c", target="x", status=Status.FAIL, title="t", message="evil\x1b[2J\rend")
    out = rendered(S.report([r]))
    assert "\x1b" not in out and "evil\\x1b[2J\\x0dend" in out


def test_terminal_quiet_is_exactly_the_verdict_line():
    for make in (S.ok_report, S.warning_report, S.critical_report, S.unknown_report):
        report = make()
        assert rendered(report, quiet=True) == terminal.verdict_line(report) + "\n"


def test_terminal_verbose_shows_passing_evidence():
    quiet_ev = rendered(S.critical_report())
    loud = rendered(S.critical_report(), verbose=True)
    evidence = "           versions: xivo-1=2023.05, xivo-2=2023.05"
    assert evidence not in quiet_ev.splitlines()
    assert evidence in loud.splitlines()


def test_terminal_ok_has_no_fix_section():
    out = rendered(S.ok_report())
    assert "What to fix" not in out
    assert out.splitlines()[-1] == "OK: 9 items pass (0 skip) in 0.84 s"


# --- live progress ----------------------------------------------------------------------------


def drive(progress: LiveProgress, results: list[Result]) -> None:
    with progress as p:
        p.start(len(results))
        for r in results:
            p.item_started(r.item_id)
            p.item_done(r)


def test_progress_prints_nothing_off_terminal():
    console = plain_console()
    progress = LiveProgress(console)
    assert not progress.enabled
    drive(progress, S.critical_results())
    assert console.file.getvalue() == ""


def test_progress_on_a_terminal_runs_and_clears():
    console = Console(file=io.StringIO(), width=120, force_terminal=True)
    progress = LiveProgress(console)
    assert progress.enabled
    drive(progress, S.critical_results())
    assert progress._tally() == "1 fail, 1 error"


def test_outside_a_terminal_no_line_is_wrapped():
    """Cron's mail, a CI log, `| less`: long lines stay whole (a wrapped UUID or command cannot be
    searched or pasted); on an 80-column terminal the same report wraps them."""
    long_message = "uuid " + "0123abcd-" * 12 + " at the end of a sentence that goes on well past eighty columns"
    report = S.report([Result(check="uuid-unique", target="xivo-1", status=Status.FAIL, title="UUIDs agree",
                              message=long_message)])
    piped = io.StringIO()
    terminal.render_terminal(report, Console(file=piped, highlight=False))
    assert any(line.endswith(long_message) for line in piped.getvalue().splitlines())
    on_screen = io.StringIO()
    terminal.render_terminal(report, Console(file=on_screen, highlight=False, force_terminal=True, width=80,
                                             color_system=None))
    assert not any(line.endswith(long_message) for line in on_screen.getvalue().splitlines())
