"""`xivo-doctor nagios`: ranges, the plugin output (status line, long output, perfdata) to the
Monitoring Plugins guidelines, exit codes 0/2/3 on real sockets, the answer within -t + 1 s even
when a probe hangs, and the plugin on the live lab (healthy, one check, a broken federation)."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from functools import partial

import pytest
import render_samples as samples

from conftest import REPO, TEST_PORTS, loopback_topology
from servers import BlackHole, Hostile, Listener, serve, slow_loris
from xivo_doctor.cli.main import main
from xivo_doctor.cli.nagios import Collector, run_within
from xivo_doctor.engine import registry
from xivo_doctor.engine.options import RunOptions
from xivo_doctor.engine.run import Run
from xivo_doctor.engine.runlock import RunLock, run_key
from xivo_doctor.foundation.deadline import Deadline
from xivo_doctor.foundation.errors import DoctorError, UsageError
from xivo_doctor.foundation.results import FixOut, Result, Status
from xivo_doctor.render.json_report import report_from_dict
from xivo_doctor.render.nagios import output as nagios
from xivo_doctor.render.nagios.ranges import Thresholds, parse
from xivo_doctor.render.words import cause
from xivo_doctor.topology import load_topology

NONE = Thresholds()

# --- the guidelines' grammar, as a regex: 'label'=value[UOM];[warn];[crit];[min];[max] -------------
_NUM = r"-?(?:\d+(?:\.\d+)?|\.\d+)"
_RANGE = rf"@?(?:(?:~|{_NUM}):)?(?:{_NUM})?"
_VALUE = rf"(?:{_NUM}(?:us|ms|s|%|B|KB|MB|TB|c)?|U)"
_LABEL = r"(?:'[^'=]+'|[^'=\s]+)"


def _item(named: bool) -> str:
    def group(name: str) -> str:
        return f"?P<{name}>" if named else "?:"

    return (rf"({group('label')}{_LABEL})=({group('value')}{_VALUE})(?:;({group('warn')}{_RANGE})"
            rf"(?:;({group('crit')}{_RANGE})(?:;({group('min')}{_NUM})?(?:;({group('max')}{_NUM})?)?)?)?)?")


PERF_ITEM = re.compile(_item(named=True))
PERFDATA = re.compile(rf"{_item(named=False)}(?: {_item(named=False)})*")


def perf_items(text: str) -> dict[str, dict[str, str]]:
    """The perfdata of a plugin output (everything after the first line's `|`), checked against the
    grammar, by label (quotes removed)."""
    head = text.splitlines()[0]
    assert head.count("|") == 1, head
    data = head.split("|", 1)[1].strip()
    assert PERFDATA.fullmatch(data), data
    items = {}
    for word in data.split(" "):
        found = PERF_ITEM.fullmatch(word)
        assert found, word
        items[found["label"].strip("'")] = found.groupdict()
    return items


def federation(down: str, up: str, latency: float | None, status: Status = Status.PASS) -> Result:
    evidence = {"latency_ms": latency, "probe": {"delivered": latency is not None}} if latency is not None else {}
    return samples.declared([Result(check="rabbitmq-federation", target=f"{down}->{up}", status=status,
                                    title="federation", message=f"a probe message crossed in {latency} ms",
                                    evidence=evidence)], (down, up))[0]


# --- ranges ---------------------------------------------------------------------------------------

# (range, values that alert, values that do not): the guidelines' own table of examples
RANGES = [
    ("10", [-0.1, 10.01, 1e6], [0, 5, 10]),
    ("10:", [-5, 9.99], [10, 1e9]),
    ("~:10", [10.01, 1e9], [-1e9, 0, 10]),
    ("10:20", [9.9, 20.1], [10, 15, 20]),
    ("@10:20", [10, 15, 20], [9.9, 20.1]),
    ("500", [500.5], [0, 499.9, 500]),
    ("0.5:1.5", [0.4, 1.6], [0.5, 1.5]),
    ("-5:-1", [-6, 0], [-5, -1]),
    ("~:", [], [-1e9, 0, 1e9]),
    ("@~:", [-1e9, 0, 1e9], []),
    (" 200 ", [201], [200]),
]


@pytest.mark.parametrize(("text", "alerting", "quiet"), RANGES, ids=[r[0].strip() for r in RANGES])
def test_a_valid_range_alerts_as_the_guidelines_say(text, alerting, quiet):
    limit = parse(text, "-w")
    assert [v for v in alerting if limit.alerts(v)] == alerting
    assert [v for v in quiet if not limit.alerts(v)] == quiet
    assert str(limit) == text.strip()  # written back as given, for the perfdata


def test_range_bounds_are_read_right():
    assert (parse("10").start, parse("10").end) == (0, 10)
    assert parse("10:").end == math.inf and parse("~:3").start == -math.inf
    assert parse("@1:2").inside and not parse("1:2").inside


INVALID = ["", " ", "@", "abc", "20:10", "1e3", "inf", "nan", ":10", "10::20", "~", "5:~", "10:20:30", "1,5",
           "@@1", "10ms", "0x10", "- 5"]


@pytest.mark.parametrize("text", INVALID)
def test_an_invalid_range_is_one_line_naming_the_option_and_the_fix(text):
    with pytest.raises(UsageError) as caught:
        parse(text, "-c")
    message = str(caught.value)
    assert message.startswith(f"-c {text!r}: ") and "\n" not in message
    assert "start:end" in message or "[@][start:][end]" in message


# --- status line, long output, perfdata -------------------------------------------------------------


def test_the_status_line_says_the_same_cause_as_the_html_title():
    for report, state in ((samples.ok_report(), "OK"), (samples.critical_report(), "CRITICAL"),
                          (samples.warning_report(), "WARNING"), (samples.unknown_report(), "UNKNOWN")):
        assert nagios.status_line(report, NONE) == f"XIVO-DOCTOR {state} - {nagios.safe(cause(report))}"
        assert nagios.exit_code(report, NONE) == report.exit_code
    assert nagios.status_line(samples.ok_report(), NONE) == "XIVO-DOCTOR OK - 9 items pass on 9 XiVOs (lab)"


def test_the_long_output_is_one_line_per_item_that_did_not_pass_worst_first():
    lines = nagios.long_output(samples.critical_report())
    assert [line.split(":", 2)[:2] for line in lines] == [
        ["port-reachable[xivo-2]", " fail"], ["uuid-unique[xivo-2]", " warn"], ["consul-wan[xivo-1]", " error"],
        ["rabbitmq-federation[xivo-1->xivo-2]", " skip"], ["phonebook-restricted[xivo-1]", " skip"]]
    assert lines[0] == ("port-reachable[xivo-2]: fail: port 5672 (amqp) timed out: " + samples.TRICKY
                        + " — fix: Open TCP 5672 on xivo-2 for the other XiVOs")
    assert lines[3] == "rabbitmq-federation[xivo-1->xivo-2]: skip: blocked by port-reachable[xivo-2]:amqp"
    assert lines[4] == "phonebook-restricted[xivo-1]: skip: not applicable on XiVO >= 16.14"
    assert nagios.long_output(samples.ok_report()) == []
    verbose = nagios.long_output(samples.ok_report(2), verbose=True)
    assert verbose == ["port-reachable[xivo-1]: pass: port-reachable title", "port-reachable[xivo-2]: pass: "
                       "port-reachable title"]


def test_no_pipe_and_no_control_character_reaches_the_text():
    hostile = Result(check="port-reachable", target="xivo|2", status=Status.FAIL, title="t",
                     message="a | b \x1b[31mred\x1b[0m\r\nsecond | line",
                     fix=FixOut("run `a | b`\nthen c", ("echo x | tee y",)))
    report = samples.report([hostile, federation("xivo|1", "xivo-2", 3.0)])
    text = nagios.render(report, Thresholds(warning=parse("1")))
    head, *rest = text.rstrip("\n").split("\n")
    assert text.count("|") == 1 and "|" in head  # only the perfdata separator
    assert "\x1b" not in text and "\r" not in text
    assert rest == ["port-reachable[xivo/2]: fail: a / b  [31mred [0m — fix: run `a / b`"]
    assert head.startswith("XIVO-DOCTOR CRITICAL - port-reachable xivo/2: a / b")
    assert "federation latency xivo/1←xivo-2 3 ms > 1" in head
    assert "'fed_xivo_1_from_xivo-2'=3ms;1;;0;" in head  # labels only [A-Za-z0-9_.-]


def test_perfdata_follows_the_guidelines_grammar():
    for report in (samples.ok_report(), samples.critical_report(), samples.big_report(10),
                   samples.report([federation("a b", "c'd", 0.00001), federation("x", "y", None, Status.FAIL)])):
        for thresholds in (NONE, Thresholds(parse("@10:20"), parse("~:1000.5"))):
            items = perf_items(nagios.render(report, thresholds))
            counts = report.counts()
            for status in counts:
                assert items[status]["value"] == str(counts[status]) and items[status]["min"] == "0"
            assert items["duration"]["value"].endswith("s") and items["duration"]["max"] == "30"


def test_perfdata_has_a_latency_per_link_and_the_alive_wan_members_per_xivo():
    items = perf_items(nagios.render(samples.big_report(10), Thresholds(parse("500"), parse("2000"))))
    links = {k: v for k, v in items.items() if k.startswith("fed_")}
    assert len(links) == 90
    assert links["fed_xivo-1_from_xivo-3"] == {"label": "'fed_xivo-1_from_xivo-3'", "value": "1.49ms", "warn": "500",
                                                "crit": "2000", "min": "0", "max": None}
    assert links["fed_xivo-4_from_xivo-2"]["value"] == "U"  # blocked: no probe, undetermined
    assert {v["value"] for k, v in items.items() if k.startswith("wan_alive_")} == {"10"}
    assert items["wan_alive_xivo-7"]["max"] == "10"


def test_a_real_run_with_a_wan_pool_missing_a_peer():
    data = json.loads((REPO / "tests" / "data" / "demo-consul-not-joined.json").read_text())
    report = registry.describe(report_from_dict(data))  # what the checks declare of it: their metrics
    text = nagios.render(report, NONE)
    items = perf_items(text)
    assert (items["wan_alive_xivo-1"]["value"], items["wan_alive_xivo-2"]["value"]) == ("1", "1")
    assert items["wan_alive_xivo-1"]["max"] == "2"
    assert re.fullmatch(r"\d+(\.\d+)?ms", items["fed_xivo-1_from_xivo-2"]["value"])
    assert text.startswith("XIVO-DOCTOR CRITICAL - consul-wan xivo-2: xivo-1 (127.10.0.1) is not in xivo-2's WAN pool")
    assert text.splitlines()[1].startswith("consul-wan[xivo-2]: fail: ")
    assert " — fix: join xivo-2's consul to the WAN pool" in text.splitlines()[1]


def test_a_latency_beyond_a_threshold_raises_the_state_and_says_so():
    slow = samples.report([federation("xivo-1", "xivo-2", 812.4), federation("xivo-2", "xivo-1", 3.2)])
    assert nagios.status_line(slow, NONE) == "XIVO-DOCTOR OK - 2 items pass on 2 XiVOs (lab)"
    warn = Thresholds(warning=parse("500"))
    assert nagios.status_line(slow, warn) == "XIVO-DOCTOR WARNING - federation latency xivo-1←xivo-2 812.4 ms > 500"
    assert nagios.exit_code(slow, warn) == 1
    both = Thresholds(warning=parse("2"), critical=parse("500"))
    assert nagios.status_line(slow, both) == ("XIVO-DOCTOR CRITICAL - federation latency xivo-1←xivo-2 812.4 ms > 500 "
                                              "(+1 more)")
    assert nagios.exit_code(slow, both) == 2
    inside = Thresholds(critical=parse("@0:5"))
    assert nagios.status_line(slow, inside) == "XIVO-DOCTOR CRITICAL - federation latency xivo-2←xivo-1 3.2 ms in @0:5"
    # A failed run stays CRITICAL with its own cause first; a warning breach only adds to it.
    broken = samples.report([*samples.critical_results(), federation("xivo-2", "xivo-1", 812)])
    line = nagios.status_line(broken, warn)
    assert line == f"XIVO-DOCTOR CRITICAL - {cause(broken)}; federation latency xivo-2←xivo-1 812 ms > 500"
    # A latency that could not be measured never alerts: it is `U` in the perfdata.
    assert nagios.exit_code(samples.report([federation("a", "b", None)]), Thresholds(critical=parse("@~:"))) == 0


def test_what_changed_since_the_previous_run_ends_the_long_output():
    changes = {"previous": "2024-05-02T10:01:12+02:00", "runs": 3, "new_failures": ["port-reachable[xivo-2]"],
               "resolved": [], "flapping": ["consul-wan[xivo-1]", "uuid-unique[xivo-2]"], "ignored": ["run-x.json"]}
    report = dataclasses.replace(samples.critical_report(), changes=changes)
    assert nagios.long_output(report)[-1] == (
        "since 2024-05-02T10:01:12+02:00 (3 runs kept): new failures: port-reachable[xivo-2]; resolved: none; "
        "flapping: consul-wan[xivo-1], uuid-unique[xivo-2]; 1 unreadable kept run ignored")
    first = dataclasses.replace(samples.ok_report(), changes={"previous": None, "runs": 1, "new_failures": [],
                                                              "resolved": [], "flapping": []})
    assert nagios.long_output(first) == ["first run kept in the history (1 run kept): new failures: none; "
                                         "resolved: none; flapping: none"]


def test_a_run_cut_by_the_deadline_is_unknown_with_what_finished():
    done = [samples.passing("xivo-version", "*"), samples.port_fail()]
    cut = nagios.Unfinished(timeout_s=2.0, total=6, running="consul-wan[xivo-1]")
    report = samples.report(done)
    text = nagios.render(report, NONE, cut)
    assert nagios.exit_code(report, Thresholds(critical=parse("1")), cut) == 3
    lines = text.splitlines()
    assert lines[0].startswith("XIVO-DOCTOR UNKNOWN - timed out after 2 s: 2 of 6 items finished; so far CRITICAL: "
                               "port-reachable xivo-2: port 5672 (amqp) timed out")
    assert lines[1:] == [nagios.long_output(report)[0], "consul-wan[xivo-1]: unknown: still running at the deadline",
                         "3 more items: unknown: not started before the deadline"]
    perf_items(text)
    early = nagios.render(samples.report([]), NONE, nagios.Unfinished(timeout_s=0.5, total=None))
    assert early.splitlines()[0].startswith("XIVO-DOCTOR UNKNOWN - timed out after 0.5 s: 0 of ? items finished |")
    assert early.splitlines()[1] == "the checks were still being collected at the deadline"


def test_the_worker_is_left_behind_when_it_outlives_the_deadline(tmp_path):
    """A hung run: the main thread answers with what the listener collected (real Run and Collector;
    the runner stands for a probe stuck past its own timeout)."""
    topology = load_topology(loopback_topology(tmp_path, ["127.10.142.1", "127.10.142.2"]))
    collector, release = Collector(), threading.Event()
    run = Run(RunOptions(topology=topology, timeout=0.3), listener=collector)

    def hung(run: Run):
        run.listener.start(3)
        run.listener.item_started("xivo-version[xivo-1]")
        run.listener.item_done(samples.passing("xivo-version", "xivo-1"))
        run.listener.item_started("uuid-unique[xivo-1]")
        release.wait(30)

    try:
        outcome = run_within(run, collector, Deadline(0.3), grace=0.1, runner=hung)
    finally:
        release.set()
    assert outcome.unfinished == nagios.Unfinished(timeout_s=0.3, total=3, running="uuid-unique[xivo-1]")
    assert [r.item_id for r in outcome.report.results] == ["xivo-version[xivo-1]"]
    assert outcome.report.topology["name"] == "test-loopback"

    def broken(run: Run):
        raise DoctorError("a check module failed to load")

    with pytest.raises(DoctorError, match="failed to load"):
        run_within(run, Collector(), Deadline(5), runner=broken)


def test_a_thread_the_run_left_behind_does_not_hold_the_exit_code():
    """A non-daemon thread still stuck (a probe's pool thread) would make the interpreter wait for
    it at exit: the plugin leaves with its code once the deadline has passed."""
    script = ("import threading, time\n"
              "from xivo_doctor.cli.nagios import leave_when_held\n"
              "from xivo_doctor.foundation.deadline import Deadline\n"
              "before = set(threading.enumerate())\n"
              "threading.Thread(target=time.sleep, args=(60,)).start()\n"
              "threading.Thread(target=time.sleep, args=(0.01,)).start()\n"
              "leave_when_held(2, before, Deadline(0.2))\n"
              "print('not reached')\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", "")
    finished = ("import threading, time\n"
                "from xivo_doctor.cli.nagios import leave_when_held\n"
                "from xivo_doctor.foundation.deadline import Deadline\n"
                "before = set(threading.enumerate())\n"
                "threading.Thread(target=time.sleep, args=(0.01,)).start()\n"
                "leave_when_held(2, before, Deadline(5))\n"
                "print('returned')\n")
    done = subprocess.run([sys.executable, "-c", finished], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert (done.returncode, done.stdout) == (0, "returned\n")


# --- the command, in-process and as Nagios runs it -------------------------------------------------

A = ["127.10.142.1", "127.10.142.2"]


def plugin(*args: str, timeout: float = 60) -> tuple[subprocess.CompletedProcess, float]:
    """As Nagios runs it: no environment (no HOME, no locale), no terminal, stdin closed."""
    started = time.monotonic()
    done = subprocess.run(["env", "-i", sys.executable, "-m", "xivo_doctor", "nagios", *args], cwd=REPO,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    return done, time.monotonic() - started


def test_exit_codes_0_and_2_on_real_ports(tmp_path, capsys, own_peers):
    topology = loopback_topology(tmp_path, A)
    with ExitStack() as stack:
        for address in A:
            serve(stack, Listener, address, TEST_PORTS.values())
        assert main(["nagios", "-T", str(topology), "--check", "port-reachable"]) == 0
        out = capsys.readouterr()
        assert out.out.startswith("XIVO-DOCTOR OK - 2 items pass on 2 XiVOs (test-loopback) | pass=2;;;0 fail=0;;;0")
        assert out.out.count("\n") == 1 and out.err == ""
        done, _ = plugin("-T", str(topology), "--check", "port-reachable", "--node", "xivo-1")
        assert done.returncode == 0 and done.stderr == "", done
        assert done.stdout.startswith("XIVO-DOCTOR OK - 1 item passes on 2 XiVOs (test-loopback) | pass=1;;;0")
    # nothing listens any more: refused everywhere
    done, _ = plugin("-T", str(topology), "--check", "port-reachable", "-w", "100", "-c", "200")
    assert done.returncode == 2 and done.stderr == "", done
    lines = done.stdout.splitlines()
    assert lines[0].startswith("XIVO-DOCTOR CRITICAL - port-reachable xivo-1: ")
    assert [line.split(":")[0] for line in lines[1:]] == ["port-reachable[xivo-1]", "port-reachable[xivo-2]"]
    assert "\x1b[" not in done.stdout
    perf_items(done.stdout)


def test_every_failure_is_one_unknown_line_on_stdout_and_exit_3(tmp_path, capsys, own_peers):
    topology = loopback_topology(tmp_path, A)
    cases = {
        ("-T", str(tmp_path / "missing.yml")): f"XIVO-DOCTOR UNKNOWN - {tmp_path / 'missing.yml'}: file not found",
        ("-T", str(topology), "--check", "federation"): "XIVO-DOCTOR UNKNOWN - --check federation: no such check",
        ("-T", str(topology), "--node", "xivo-9"): "XIVO-DOCTOR UNKNOWN - --node xivo-9: no such XiVO",
        ("-T", str(topology), "-w", "20:10"): "XIVO-DOCTOR UNKNOWN - -w '20:10': the start 20 is above the end 10",
        ("-T", str(topology), "-c", "fast"): "XIVO-DOCTOR UNKNOWN - -c 'fast': not a threshold range",
        ("-T", str(topology), "--history", str(topology)):
            f"XIVO-DOCTOR UNKNOWN - cannot keep the history in {topology}",
    }
    for args, start in cases.items():
        assert main(["nagios", *args]) == 3, args
        out = capsys.readouterr()
        assert out.out.startswith(start) and out.out.count("\n") == 1 and out.err == "", (args, out)
    (tmp_path / "bad.yml").write_text("xivos: [\n")
    assert main(["nagios", "-T", str(tmp_path / "bad.yml")]) == 3
    assert capsys.readouterr().out.startswith(f"XIVO-DOCTOR UNKNOWN - {tmp_path / 'bad.yml'}")
    for bad in (["-t", "soon"], ["-t", "0"], ["--bogus"], ["extra"], ["-w"], ["--help"]):
        with pytest.raises(SystemExit) as caught:
            main(["nagios", "-T", str(topology), *bad])
        assert caught.value.code == 3, bad
        out = capsys.readouterr()
        assert out.err == "" and (out.out.startswith("XIVO-DOCTOR UNKNOWN - xivo-doctor nagios: ") or bad == ["--help"])
        assert out.out.count("\n") == 1 or bad == ["--help"], out.out
    done, _ = plugin("-T", str(topology), "-t", "soon")
    assert (done.returncode, done.stderr) == (3, "")
    assert done.stdout == ("XIVO-DOCTOR UNKNOWN - xivo-doctor nagios: argument -t/--timeout: 'soon' is not a number "
                           "of seconds; see xivo-doctor nagios --help\n")


def test_a_second_run_of_the_same_selection_is_unknown_while_the_first_holds_the_lock(tmp_path, capsys, own_peers):
    topology = loopback_topology(tmp_path, A)
    with RunLock(run_key(topology, ["port-reachable"], [])):
        assert main(["nagios", "-T", str(topology), "--check", "port-reachable"]) == 3
        out = capsys.readouterr().out
        assert out.startswith("XIVO-DOCTOR UNKNOWN - another xivo-doctor run of ") and out.count("\n") == 1
        # another selection of the same topology is another Nagios service: not blocked
        main(["nagios", "-T", str(topology), "--check", "xivo-version", "--node", "xivo-1"])
        assert "another xivo-doctor run" not in capsys.readouterr().out


def test_an_internal_error_is_one_redacted_line_and_its_traceback_only_with_v(tmp_path, capsys, monkeypatch, own_peers):
    topology = loopback_topology(tmp_path, A)

    def boom(*args, **kwargs):
        raise RuntimeError("renderer broke on amqp://xivo:s3cretpass@10.0.0.1 password=hunter2")

    monkeypatch.setattr("xivo_doctor.cli.nagios.render", boom)
    assert main(["nagios", "-T", str(topology), "--check", "xivo-version"]) == 3
    out = capsys.readouterr()
    assert out.out.startswith("XIVO-DOCTOR UNKNOWN - internal error: RuntimeError: renderer broke on "
                              "amqp://xivo:********@10.0.0.1 password=******** (run with -v")
    assert out.out.count("\n") == 1 and out.err == ""
    assert main(["nagios", "-T", str(topology), "--check", "xivo-version", "-v"]) == 3
    out = capsys.readouterr()
    assert out.out.count("\n") == 1 and "Traceback" in out.err and "hunter2" not in out.err + out.out


def test_history_adds_what_changed_to_the_long_output(tmp_path, capsys, own_peers):
    topology = loopback_topology(tmp_path, A)
    history = tmp_path / "history"
    with ExitStack() as stack:
        serve(stack, Listener, A[0], TEST_PORTS.values())
        serve(stack, Listener, A[1], TEST_PORTS.values())
        assert main(["nagios", "-T", str(topology), "--check", "port-reachable", "--history", str(history)]) == 0
        first = capsys.readouterr().out.splitlines()
    assert first[1:] == ["first run kept in the history (1 run kept): new failures: none; resolved: none; "
                         "flapping: none"]
    assert main(["nagios", "-T", str(topology), "--check", "port-reachable", "--history", str(history)]) == 2
    second = capsys.readouterr().out.splitlines()
    assert second[-1].startswith("since ") and second[-1].endswith(
        "(2 runs kept): new failures: port-reachable[xivo-1], port-reachable[xivo-2]; resolved: none; flapping: none")
    assert len(list(history.glob("run-*.json"))) == 2


def test_an_answer_within_the_timeout_plus_one_second_when_ports_never_answer(tmp_path, own_peers):
    # probe_timeout above -t: every operation is cut by the run's deadline, not its own timeout
    topology = loopback_topology(tmp_path, ["127.10.143.1", "127.10.143.2"], probe_timeout=30)
    with ExitStack() as stack:
        for address in ("127.10.143.1", "127.10.143.2"):
            serve(stack, BlackHole, address, TEST_PORTS.values())
        done, took = plugin("-T", str(topology), "-t", "2")
    print(f"\nnagios -t 2, every port black-holed: exit {done.returncode} after {took:.2f} s")
    assert done.returncode == 3 and done.stderr == "", done
    assert done.stdout.startswith("XIVO-DOCTOR UNKNOWN - could not check port-reachable xivo-1: ")
    assert "timed out after 2 s" in done.stdout
    perf_items(done.stdout)
    assert took < 2 + 1


def test_an_answer_within_the_timeout_plus_one_second_when_a_probe_trickles(tmp_path, own_peers):
    """xivo-ctid's port answers its headers a byte at a time, for ever: the transport cuts the
    request at its budget (probes/bounded.py), the item is an error naming the source, and the
    plugin answers well within -t + 1 s. (A probe stuck where no timer reaches, e.g. a DNS
    lookup, is the watchdog's case: test_the_worker_is_left_behind_when_it_outlives_the_deadline.)"""
    addresses = ["127.10.143.1", "127.10.143.2"]
    topology = loopback_topology(tmp_path, addresses, probe_timeout=30)  # only the run's -t can cut it
    with ExitStack() as stack:
        for address in addresses:
            serve(stack, Listener, address, [p for k, p in TEST_PORTS.items() if k != "ctid"])
            serve(stack, partial(Hostile, behave=slow_loris), address, [TEST_PORTS["ctid"]])  # a byte / 0.2 s
        done, took = plugin("-T", str(topology), "-t", "2", "--check", "uuid-unique")
    print(f"\nnagios -t 2, xivo-ctid trickling its headers: exit {done.returncode} after {took:.2f} s")
    assert done.returncode == 3 and done.stderr == "", done
    lines = done.stdout.splitlines()
    assert lines[0].startswith("XIVO-DOCTOR UNKNOWN - could not check uuid-unique xivo-1"), lines[0]
    assert any(line.startswith("uuid-unique[xivo-1]: error:") and "timed out" in line for line in lines), lines
    perf_items(done.stdout)
    assert took < 2 + 1


# --- the live lab -------------------------------------------------------------------------------------


def lab_plugin(lab, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    return plugin("-T", str(lab.dir / "topology.yml"), *args)


def test_the_healthy_lab_is_ok_with_a_latency_per_link_and_both_xivos_in_each_wan_pool(lab):
    done, took = lab_plugin(lab, "-w", "500", "-c", "2000")
    print(f"\nnagios on the healthy lab: {took:.2f} s\n{done.stdout}")
    assert done.returncode == 0 and done.stderr == "", done
    assert done.stdout.startswith("XIVO-DOCTOR OK - ") and done.stdout.count("\n") == 1, done.stdout
    items = perf_items(done.stdout)
    for link in ("fed_xivo-1_from_xivo-2", "fed_xivo-2_from_xivo-1"):
        assert re.fullmatch(r"\d+(\.\d+)?ms", items[link]["value"]), items[link]
        assert (items[link]["warn"], items[link]["crit"], items[link]["min"]) == ("500", "2000", "0")
    for xivo in ("xivo-1", "xivo-2"):
        assert (items[f"wan_alive_{xivo}"]["value"], items[f"wan_alive_{xivo}"]["max"]) == ("2", "2")
    assert items["fail"]["value"] == items["error"]["value"] == "0"


def test_one_check_per_service_and_its_wall_time_on_the_lab(lab):
    times = {}
    for spec in registry.discover():
        done, times[spec.id] = lab_plugin(lab, "--check", spec.id)
        assert done.returncode == 0, done.stdout
        items = perf_items(done.stdout)
        assert int(items["pass"]["value"]) + int(items["skip"]["value"]) >= 1
        assert any(k.startswith("fed_") for k in items) == (spec.id == "rabbitmq-federation")
        assert any(k.startswith("wan_alive_") for k in items) == (spec.id == "consul-wan")
    print("\nnagios --check ID on the 2-node lab (wall time, s): "
          + ", ".join(f"{check} {took:.2f}" for check, took in times.items()))
    done, _ = lab_plugin(lab, "--check", "rabbitmq-federation")
    assert int(perf_items(done.stdout)["pass"]["value"]) == 2


def test_a_wrong_federation_password_is_critical_naming_the_pair(lab):
    from xivo_doctor.lab import faults, healing

    faults.break_(lab.dir, "federation-wrong-password", None, say=lambda _: None)
    try:
        for _ in range(20):  # a restarted link may take a moment to report its error
            done, _ = lab_plugin(lab, "--check", "rabbitmq-federation")
            if done.returncode == 2:
                break
            time.sleep(0.5)
    finally:
        healing.heal(lab.dir, say=lambda _: None)
    print(f"\nnagios --check rabbitmq-federation, federation-wrong-password:\n{done.stdout}")
    assert done.returncode == 2, done.stdout
    lines = done.stdout.splitlines()
    assert lines[0].startswith("XIVO-DOCTOR CRITICAL - rabbitmq-federation xivo-2←xivo-1: "), lines[0]
    assert lines[1].startswith("rabbitmq-federation[xivo-2->xivo-1]: fail: ") and " — fix: " in lines[1]
    items = perf_items(done.stdout)
    assert items["fed_xivo-2_from_xivo-1"]["value"] == "U"
    assert items["fed_xivo-1_from_xivo-2"]["value"].endswith("ms")
