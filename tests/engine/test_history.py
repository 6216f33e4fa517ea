"""Run history: what changed across sequences of hand-made Reports, the history directory (other
selections, corrupt files, pruning, an unwritable directory), and the changes in the terminal,
JSON and HTML. The CLI as cron runs it is in test_cron.py."""

from __future__ import annotations

import io
import json
import os
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest
import render_samples as S
from html_page import Page
from rich.console import Console
from schema import load_schema

from xivo_doctor.engine import history
from xivo_doctor.engine.history import compare, report_key, with_changes
from xivo_doctor.foundation.errors import DoctorError, UsageError
from xivo_doctor.foundation.results import Report, Result, Status
from xivo_doctor.render import json_report, terminal
from xivo_doctor.render.html import document as html

KEY = "0123456789abcdef"
OTHER_KEY = "fedcba9876543210"


def run(n: int, **statuses: str) -> Report:
    """A run started at 10:00:<n>, with one item per keyword: `a="fail"` is item `c[a]` failing."""
    results = [Result(check="c", target=t, status=Status(s), title="c title") for t, s in statuses.items()]
    return replace(S.report(results), started_at=f"2024-05-02T10:00:{n:02d}+00:00")


def keep_runs(directory: Path, runs: list[Report], **kw) -> list[Report]:
    return [with_changes(r, directory, key=KEY, **kw) for r in runs]


def kept(directory: Path, key: str = KEY) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(f"-{key}.json"))


def changed(report: Report) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in report.changes.items()}


# --- what changed -----------------------------------------------------------------------------


def test_the_first_run_has_nothing_to_compare_and_is_kept(tmp_path):
    [first] = keep_runs(tmp_path, [run(1, a="fail")])
    assert changed(first) == {"previous": None, "runs": 1, "new_failures": [], "resolved": [], "flapping": [],
                              "ignored": []}
    assert kept(tmp_path) == [f"run-20240502T100001Z-{os.getpid()}-{KEY}.json"]
    again = json_report.report_from_dict(json.loads((tmp_path / kept(tmp_path)[0]).read_text()))
    assert [(r.item_id, r.status) for r in again.results] == [("c[a]", Status.FAIL)]  # a JSON report, as written


def test_new_failures_are_not_passing_now_and_passed_skipped_or_were_absent_before(tmp_path):
    *_, now = keep_runs(tmp_path, [
        run(1, a="pass", b="pass", d="skip", e="fail", f="error"),
        run(2, a="fail", b="pass", c="error", d="warn", e="fail", f="fail"),
    ])
    assert changed(now)["previous"] == "2024-05-02T10:00:01+00:00"
    assert changed(now)["new_failures"] == ["c[a]", "c[c]", "c[d]"]  # e, f: already not passing
    assert changed(now)["resolved"] == []


def test_resolved_are_not_passing_before_and_passing_or_skipped_now(tmp_path):
    *_, now = keep_runs(tmp_path, [
        run(1, a="fail", b="warn", c="error", d="fail", e="pass"),
        run(2, a="pass", b="skip", c="error", e="pass"),  # d: gone from this run, not resolved
    ])
    assert changed(now)["resolved"] == ["c[a]", "c[b]"]
    assert changed(now)["new_failures"] == [] and changed(now)["runs"] == 2


def test_flapping_over_five_runs(tmp_path):
    runs = keep_runs(tmp_path, [
        run(1, x="pass", y="pass", z="pass", w="pass"),
        run(2, x="fail", y="fail", z="pass", w="fail"),
        run(3, x="pass", y="fail", z="pass"),  # w absent: compared across the gap
        run(4, x="pass", y="fail", z="fail", w="fail"),
        run(5, x="pass", y="fail", z="pass", w="fail"),
    ])
    assert [changed(r)["flapping"] for r in runs] == [[], [], ["c[x]"], ["c[x]"], ["c[x]", "c[z]"]]
    assert changed(runs[-1])["runs"] == 5
    assert changed(runs[-1])["resolved"] == ["c[z]"] and changed(runs[-1])["new_failures"] == []


def test_compare_alone_needs_no_directory():
    assert compare(run(2, a="fail"), [run(1, a="pass")])["new_failures"] == ["c[a]"]


# --- the directory ----------------------------------------------------------------------------


def test_runs_of_another_topology_or_selection_are_not_compared(tmp_path):
    with_changes(run(1, a="pass"), tmp_path, key=KEY)
    with_changes(run(2, a="fail", b="fail"), tmp_path, key=OTHER_KEY)
    now = with_changes(run(3, a="pass"), tmp_path, key=KEY)
    assert changed(now)["previous"] == "2024-05-02T10:00:01+00:00" and changed(now)["runs"] == 2
    assert changed(now)["resolved"] == [] and changed(now)["flapping"] == []
    assert len(kept(tmp_path)) == 2 and len(kept(tmp_path, OTHER_KEY)) == 1


def test_without_a_run_key_the_report_gives_one(tmp_path):
    """A caller with no run key (a script) still separates topologies and selections."""
    assert report_key(run(1, a="pass")) == report_key(run(2, a="fail"))
    assert report_key(run(1, a="pass")) != report_key(run(1, b="pass"))  # another XiVO selected
    other_topology = replace(run(1, a="pass"), topology={**S.TOPOLOGY, "name": "other"})
    assert report_key(other_topology) != report_key(run(1, a="pass"))
    with_changes(run(1, a="pass"), tmp_path)
    assert changed(with_changes(run(2, a="fail"), tmp_path))["new_failures"] == ["c[a]"]


@pytest.mark.parametrize("content", [b"", b"{not json", b"\xff\xfe", b'{"schema": "other/9"}', b"[]",
                                     b'{"schema": "xivo-doctor/1", "results": [{"status": "bogus"}]}'])
def test_a_corrupt_history_file_is_ignored_and_named(tmp_path, content):
    keep_runs(tmp_path, [run(1, a="fail"), run(2, a="pass")])
    newest = tmp_path / kept(tmp_path)[-1]
    newest.write_bytes(content)
    now = with_changes(run(3, a="pass"), tmp_path, key=KEY)
    assert changed(now)["ignored"] == [newest.name]
    assert changed(now)["previous"] == "2024-05-02T10:00:01+00:00"  # the run before it still counts
    assert changed(now)["resolved"] == ["c[a]"] and changed(now)["runs"] == 2


def test_pruned_to_keep_and_no_more_than_keep_files_read(tmp_path):
    runs = keep_runs(tmp_path, [run(n, a="fail" if n % 2 else "pass") for n in range(1, 8)], keep=3)
    assert kept(tmp_path) == [f"run-20240502T10000{n}Z-{os.getpid()}-{KEY}.json" for n in (5, 6, 7)]
    assert changed(runs[-1])["runs"] == 3 and changed(runs[-1])["flapping"] == ["c[a]"]
    # Older files beyond the window are not read: corrupt ones there are not even noticed.
    for n in (1, 2, 3):
        (tmp_path / f"run-20240502T09000{n}Z-1-{KEY}.json").write_text("corrupt")
    now = with_changes(run(8, a="pass"), tmp_path, key=KEY, keep=3)
    assert changed(now)["ignored"] == [] and changed(now)["previous"] == "2024-05-02T10:00:07+00:00"
    assert len(kept(tmp_path)) == 3


def test_runs_started_in_the_same_second_are_all_kept_in_order(tmp_path):
    _first, second, third = keep_runs(tmp_path, [run(1, a="pass"), run(1, a="fail"), run(1, a="pass")])
    assert changed(second)["new_failures"] == ["c[a]"]
    assert changed(third)["resolved"] == ["c[a]"] and changed(third)["runs"] == 3
    assert len(kept(tmp_path)) == 3


@pytest.mark.parametrize("keep", [1, 0, 1001])
def test_keep_is_bounded(tmp_path, keep):
    with pytest.raises(UsageError, match=r"keep between 2 and 1000 runs"):
        with_changes(run(1, a="pass"), tmp_path, key=KEY, keep=keep)


def test_a_directory_that_cannot_be_created_is_one_line_naming_it_and_the_fix(tmp_path):
    (tmp_path / "file").write_text("")
    cases = ((tmp_path / "file", "it exists and is not a directory"), (tmp_path / "file" / "h", "Not a directory"))
    for directory, why in cases:
        with pytest.raises(DoctorError) as caught:
            with_changes(run(1, a="pass"), directory, key=KEY)
        assert str(caught.value) == (f"cannot keep the history in {directory}: {why}; create it writable by this user "
                                     f"(mkdir -p {directory}) or choose another --history DIR")


# --- the changes shown ------------------------------------------------------------------------


def plain(report: Report, **kw) -> str:
    console = Console(file=io.StringIO(), width=120, force_terminal=False)
    terminal.render_terminal(report, console, **kw)
    return console.file.getvalue()


def with_sample_changes(**changes) -> Report:
    base = {"previous": "2024-05-02T09:55:00+00:00", "runs": 4, "new_failures": ["port-reachable[xivo-2]"],
            "resolved": ["port-reachable[xivo-1]"], "flapping": ["gone[xivo-9]"], "ignored": []}
    return replace(S.critical_report(), changes={**base, **changes})


def test_terminal_says_what_changed_before_the_verdict_line():
    out = plain(with_sample_changes(ignored=["run-x.json"])).splitlines()
    at = out.index("Changes since 2024-05-02T09:55:00+00:00  (4 runs kept)")
    assert out[at + 1:at + 6] == ["  new failures: port-reachable[xivo-2]", "  resolved: port-reachable[xivo-1]",
                                  "  flapping: gone[xivo-9]", "  ignored (unreadable): run-x.json", ""]
    assert out[-1].startswith("CRITICAL: ") and at > out.index("What to fix")


def test_terminal_first_run_nothing_changed_and_quiet():
    assert "  first run kept in this history: nothing to compare yet" in plain(with_sample_changes(previous=None))
    same = with_sample_changes(new_failures=[], resolved=[], flapping=[])
    assert "Changes since 2024-05-02T09:55:00+00:00  (4 runs kept)\n  nothing changed\n" in plain(same)
    assert plain(with_sample_changes(), quiet=True).count("\n") == 1
    assert "Changes" not in plain(S.critical_report())


def test_json_changes_validate_against_the_schema():
    validator = jsonschema.Draft202012Validator(load_schema())
    for report in (with_sample_changes(), with_sample_changes(previous=None, new_failures=[]), S.ok_report()):
        validator.validate(json_report.report_to_dict(report))
    doc = json_report.report_to_dict(with_sample_changes())
    assert doc["changes"]["new_failures"] == ["port-reachable[xivo-2]"] and doc["changes"]["runs"] == 4
    assert json_report.report_from_dict(json.loads(json_report.to_json(with_sample_changes()))).changes == (
        with_sample_changes().changes)
    with pytest.raises(jsonschema.ValidationError):  # the schema does check the shape
        validator.validate({**doc, "changes": {**doc["changes"], "runs": 0}})


def test_html_shows_the_changes_near_the_top_with_links_to_the_items():
    page = Page(html.render_html(with_sample_changes(ignored=["run-x.json"])))
    section = page.one("changes")
    text = " ".join(section.text().split())
    assert text.startswith("Changes since the previous run Compared with the run of 2024-05-02T09:55:00+00:00; "
                           "4 runs kept in the history (--history).")
    assert "New failures port-reachable[xivo-2] ✗ fail" in text and "Resolved port-reachable[xivo-1] ✓ pass" in text
    assert "Flapping gone[xivo-9] (not in this run)" in text and "run-x.json" in text
    links = [a.attrs["href"] for a in section.find_all("a")]
    assert links == ["#item-port-reachable-xivo-2", "#item-port-reachable-xivo-1"]
    ids = [n.attrs.get("id") for n in page.root.find_all("section")]
    assert ids.index("changes") < ids.index("fix-first")
    [nav] = page.root.find_all("nav")
    assert nav.find_all("a")[0].attrs["href"] == "#changes"


def test_html_first_run_and_no_history():
    first = " ".join(Page(html.render_html(with_sample_changes(previous=None))).text().split())
    assert "The first run kept in this history: nothing to compare yet." in first
    plain_page = Page(html.render_html(S.critical_report()))
    assert "changes" not in plain_page.by_id
    assert plain_page.root.find_all("nav")[0].find_all("a")[0].attrs["href"] == "#fix-first"


def test_html_escapes_hostile_item_ids_from_a_kept_run():
    page = html.render_html(with_sample_changes(flapping=["x[<script>alert(1)</script>]"]))
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page


def test_history_is_bounded_by_default(tmp_path):
    assert history.DEFAULT_KEEP == 20 and history.MAX_KEEP == 1000
    runs = keep_runs(tmp_path, [run(n, a="pass") for n in range(1, 23)])
    assert len(kept(tmp_path)) == 20 and changed(runs[-1])["runs"] == 20
