"""A command's deadline counts from its process's start (its exec), as Nagios and cron count: the
interpreter's own start-up is part of `-t`. In-process callers (argv given) start the clock at the call."""

from __future__ import annotations

import subprocess
import sys
import time

from xivo_doctor.foundation.deadline import Deadline


def test_a_deadline_with_time_spent_has_that_much_less_left():
    now = [100.0]
    deadline = Deadline(10, clock=lambda: now[0], spent=1.5)
    assert deadline.remaining() == 8.5
    assert Deadline(2, clock=lambda: now[0], spent=60).expired  # never more than all of it


def test_process_age_is_the_time_since_the_exec():
    code = "import time; time.sleep(0.6); from xivo_doctor.foundation.deadline import process_age; print(process_age())"
    started = time.monotonic()
    age = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert 0.6 <= age <= time.monotonic() - started + 0.05


def test_the_command_line_counts_its_start_up_and_an_in_process_call_does_not(monkeypatch):
    from xivo_doctor.cli import main as cli_main

    seen = {}
    monkeypatch.setattr(cli_main, "COMMANDS", {**cli_main.COMMANDS, "run": "tests_probe:never"})
    monkeypatch.setattr(cli_main, "guarded", lambda command, **_: seen.setdefault("called", command()))
    monkeypatch.setattr(cli_main.importlib, "import_module",
                        lambda _: type("M", (), {"never": staticmethod(lambda args, masks: seen.update(
                            started_ago=args.started_ago) or 0)}))
    cli_main.main(["run", "-T", "x.yml"])
    assert seen["started_ago"] == 0.0
    monkeypatch.setattr(sys, "argv", ["xivo-doctor", "run", "-T", "x.yml"])
    cli_main.main()
    assert seen["started_ago"] > 0.0
