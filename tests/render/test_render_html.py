"""The HTML report (presentation) on hand-made Reports and on real demo results read back.

The page is parsed with the stdlib's html.parser, the way a browser tokenises it: what is an
element, an attribute or text there is what a browser would run or show.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
import render_samples as S
from html_page import Page

from xivo_doctor.engine import registry
from xivo_doctor.foundation.errors import UsageError
from xivo_doctor.foundation.measures import Reach
from xivo_doctor.foundation.results import FixOut, Report, Result, Status
from xivo_doctor.render import readback, words
from xivo_doctor.render.html import document as html
from xivo_doctor.render.html import model as html_model
from xivo_doctor.render.html import picture
from xivo_doctor.render.json_report import report_from_dict, report_to_dict, to_json

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "xivo_doctor" / "render" / "html" / "templates"
# Real lab runs kept as fixtures (reports/ is empty in a fresh clone): a WAN fault, and the
# broken-federation report the browser test saved as the README's example.
DEMOS = [REPO / "tests" / "data" / "demo-consul-not-joined.json", REPO / "reports" / "example-report.html"]
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "javascript:alert(1)",
    "</script><script>alert(1)</script>",
    "line\u2028sep\u2029para <!-- x",
]




def page(report: Report) -> Page:
    return Page(html.render_html(report))


def embedded(parsed: Page) -> dict:
    scripts = parsed.root.find_all("script")
    assert len(scripts) == 1, "only the result JSON may be a <script>"
    assert scripts[0].attrs == {"type": "application/json", "id": "xivo-doctor-result"}
    return json.loads(scripts[0].text())


# --- hostile text stays text ------------------------------------------------------------------


def hostile_report(padding: Report | None = None) -> Report:
    """Every place a Report holds text from an inspected system or the topology, made hostile."""
    a, b, c, d, e = HOSTILE
    topology = {"name": e, "federation": "full-mesh", a: b,
                "xivos": [{"name": a, "address": b}, {"name": c, "address": d}], "pairs": [f"{a}->{c}"]}
    results = [
        Result(check="port-reachable", target=a, status=Status.FAIL, title=b, message=c,
               evidence={"source": d, a: {b: [c, {d: e}]}, "problems": [{"peer": c, e: a}]},
               fix=FixOut(summary=e, commands=(a, b, c, d, e), doc=d), doc=c, why=b, severity=a, facets=(e,),
               reach=(Reach(origin=b, port=c, service=d, state=e, ok=False), Reach(a, b, c, d, True))),
        Result(check="consul-wan", target=c, status=Status.FAIL, title=a, message=e,
               evidence={"source": a, "peers": {a: b}, "problems": [{"peer": a, "kind": d}]}),
        Result(check="directory-source", target=a, status=Status.ERROR, title=d, message=b,
               evidence={"directories": {c: [{"uri": d, "status": e}]}}),
        Result(check="rabbitmq-federation", target=f"{a}->{c}", status=Status.SKIP, title=c, message=a,
               blocked_by=(f"port-reachable[{a}]", e)),
        Result(check="xivo-version", target=c, status=Status.PASS, title=e, message=d,
               evidence={"source": b, "version": a}),
        Result(check=e, target="*", status=Status.WARN, severity="warn", title=a, message=d,
               fix=FixOut(summary=b, commands=(e,))),
    ]
    if padding is not None:
        results += list(padding.results)
    return Report(results=tuple(results), started_at=a, duration_s=1.0, vantage=b, topology=topology,
                  timeout_s=30.0, doctor_version=c)


@pytest.mark.parametrize("make", [hostile_report, lambda: hostile_report(S.big_report(10))],
                         ids=["small", "ten-xivos"])
def test_hostile_text_is_shown_as_text_and_runs_nothing(make):
    report = make()
    parsed = page(report)
    nodes = list(parsed.root.walk())
    assert not [n.tag for n in nodes if n.tag in {"img", "iframe", "object", "embed", "base", "form"}]
    for n in nodes:
        for name, value in n.attrs.items():
            assert not name.lower().startswith("on"), f"<{n.tag} {name}=...>"
            if name.lower() in {"href", "src", "xlink:href", "action", "formaction"}:
                assert not (value or "").strip().lower().startswith("javascript:"), f"<{n.tag} {name}={value!r}>"
    assert embedded(parsed) == report_to_dict(report)
    shown = parsed.text()
    for hostile in HOSTILE:
        assert hostile in shown, f"{hostile!r} is not shown as text"


def test_embedded_json_is_inert_in_a_script_element():
    message = "</script><script>alert(1)</script> <!-- & \u2028\u2029 '\""
    report = S.report([Result(check="c", target="x", status=Status.FAIL, title="t", message=message)])
    block = str(html.embedded_json(report))
    for char in "<>&\u2028\u2029":
        assert char not in block
    assert json.loads(block) == report_to_dict(report)
    assert json.loads(block)["results"][0]["message"] == message


def test_only_embedded_json_is_marked_safe():
    """Autoescape is on for every template and nothing else bypasses it."""
    assert html._environment().autoescape is True
    for template in TEMPLATES.glob("*.j2"):
        assert "safe" not in template.read_text(encoding="utf-8").replace("unsafe-inline", ""), template.name
    sources = (REPO / "xivo_doctor" / "render" / "html" / "document.py").read_text() + (
        REPO / "xivo_doctor" / "render" / "html" / "model.py").read_text()
    assert sources.count("Markup(") == 1


# --- self-contained ---------------------------------------------------------------------------


@pytest.mark.parametrize("make", [S.critical_report, S.ok_report, lambda: S.big_report(10)],
                         ids=["critical", "ok", "ten-xivos"])
def test_page_makes_no_external_reference(make):
    parsed = page(make())
    metas = {n.attrs.get("http-equiv"): n.attrs.get("content") for n in parsed.root.find_all("meta")}
    assert metas["Content-Security-Policy"] == CSP
    assert [n.attrs for n in parsed.root.find_all("link")] == [{"rel": "icon", "href": "data:,"}]
    for n in parsed.root.walk():
        for name, value in n.attrs.items():
            if name in {"href", "src", "xlink:href", "action", "poster", "srcset"}:
                assert (value or "").startswith(("#", "data:")), f"<{n.tag} {name}={value!r}>"
            assert "http:" not in (value or "") and "https:" not in (value or ""), f"<{n.tag} {name}={value!r}>"
            assert "url(" not in (value or "") or (value or "").startswith("url(#"), f"<{n.tag} {name}={value!r}>"
    css = "".join(n.text() for n in parsed.root.find_all("style"))
    assert "url(" not in css and "@import" not in css and "http" not in css
    assert "@media print" in css and "details::details-content" in css  # printed with every part open


# --- the verdict line and what to fix first ----------------------------------------------------


def test_verdict_line_is_the_title_and_a_ticket_title():
    report = S.report([
        S.passing("port-reachable", "xivo-1"),
        Result(check="rabbitmq-federation", target="xivo-1->xivo-2", status=Status.FAIL, title="t",
               message="ACCESS_REFUSED\nsecond line"),
        Result(check="consul-wan", target="xivo-2", status=Status.FAIL, title="t", message="not joined"),
    ])
    parsed = page(report)
    expected = "CRITICAL — rabbitmq-federation xivo-1←xivo-2: ACCESS_REFUSED (+1 more)"
    assert words.headline(report) == expected
    assert parsed.root.find_all("title")[0].text() == expected
    assert parsed.one("verdict").text() == expected
    assert words.headline(S.ok_report(2)) == "OK — 2 items pass on 2 XiVOs (lab)"
    assert words.headline(S.unknown_report()).startswith("UNKNOWN — could not check consul-wan xivo-1: timed out")
    assert words.headline(S.warning_report()).startswith("WARNING — uuid-unique xivo-2: XIVO_UUID in")


def test_fix_these_first_lists_root_causes_in_order_with_commands_doc_and_blocks():
    report = S.critical_report()
    parsed = page(report)
    causes = [li for li in parsed.one("fix-first").find_all("li") if "cause" in li.attrs.get("class", "")]
    assert [li.find_all("a")[0].text() for li in causes] == [r.item_id for r in report.root_causes()]
    port = causes[[r.item_id for r in report.root_causes()].index("port-reachable[xivo-2]")]
    assert [c.text() for c in port.find_all("code") if c.parent.tag == "pre"] == ["\n".join(S.port_fail().fix.commands)]
    assert "contact_and_presence_sharing.rst#network-flows" in port.text()
    blocks = [a.attrs["href"] for a in port.find_all("a")][1:]
    assert blocks == ["#item-rabbitmq-federation-xivo-1-to-xivo-2"]
    errors = parsed.one("could-not-check").parent.find_all("ul")[0]
    assert "consul-wan[xivo-1]" in errors.text() and "timed out after 3.0 s" in errors.text()


# --- matrix and items ---------------------------------------------------------------------------


@pytest.mark.parametrize("make", [S.critical_report, lambda: S.big_report(3), lambda: S.big_report(10)],
                         ids=["critical", "three-xivos", "ten-xivos"])
def test_every_item_has_one_anchor_and_every_link_lands(make):
    report = make()
    parsed = page(report)
    anchors = html_model.slugs(report)
    for r in report.results:
        parsed.one(anchors[r.item_id])
    assert all(len(nodes) == 1 for nodes in parsed.by_id.values()), "duplicate ids"
    for a in parsed.root.find_all("a"):
        assert a.attrs["href"][1:] in parsed.by_id, f"link to nowhere: {a.attrs['href']}"
    matrix = parsed.one("matrix")
    cells = [td for t in matrix.find_all("table") if "ports" not in t.attrs.get("class", "")
             for td in t.find_all("td") if td.text() != "·"]
    assert len(cells) == len(report.results)
    for td in cells:
        word = td.text().split()[-1]
        assert word in {s.value for s in Status}, td.text()  # a symbol and a word: not colour alone


def test_matrix_columns_and_pair_matrix():
    report = S.big_report(3)
    parsed = page(report)
    tables = parsed.one("matrix").find_all("table")
    head = [th.text() for th in tables[0].find_all("thead")[0].find_all("th")]
    assert head == ["check \\ XiVO", "xivo-1", "xivo-2", "xivo-3"]
    rows = [tr.find_all("th")[0].text() for tr in tables[0].find_all("tbody")[0].find_all("tr")]
    assert rows == ["port-reachable", "consul-wan", "uuid-unique", "ctid-advertise", "directory-source",
                    "phonebook-restricted", "xivo-version"]
    pair = tables[1].find_all("tbody")[0].find_all("tr")
    first = [td.text() for td in pair[0].find_all("td")]  # xivo-1 downstream of xivo-1, -2, -3
    assert first == ["·", "– skip", "✗ fail"]  # xivo-2's 5672 is filtered; xivo-1<-xivo-3 is down


def test_ports_read_from_each_origin_to_each_xivo():
    """The grid of ports: a row per origin (a peer over SSH, or the doctor's host), a column per XiVO;
    a port dropped for one peer only is one red cell, on that peer's row."""
    results = list(S.big_report(3).results)
    one = next(i for i, r in enumerate(results) if r.item_id == "port-reachable[xivo-1]")
    results[one] = replace(results[one], status=Status.FAIL, evidence={"ports": {
        "5672/tcp": {"service": "RabbitMQ AMQP", "from": {"xivo-2": "timeout", "xivo-3": "open", "admin": "open"}},
        "9495/tcp": {"service": "xivo-ctid REST", "from": {"xivo-2": "open", "xivo-3": "open", "admin": "open"}}}})
    report = replace(S.big_report(3), results=S.declared(results, ["xivo-1", "xivo-2", "xivo-3"]))
    grid = next(t for t in page(report).one("matrix").find_all("table") if "ports" in t.attrs.get("class", ""))
    assert [th.text() for th in grid.find_all("thead")[0].find_all("th")] == ["from \\ to", "xivo-1", "xivo-2",
                                                                               "xivo-3"]
    rows = {tr.find_all("th")[0].text(): tr.find_all("td") for tr in grid.find_all("tbody")[0].find_all("tr")}
    assert list(rows) == ["xivo-1", "xivo-2", "xivo-3", "admin (the doctor's host)"]
    to_one = rows["xivo-2"][0]
    assert to_one.attrs.get("class") == "s-fail" and to_one.text() == "✗ 5672/tcp timeout✓ 1 open"
    assert [a.attrs["href"] for a in to_one.find_all("a")] == ["#item-port-reachable-xivo-1"]
    assert rows["xivo-3"][0].text() == "✓ 2 open" and "class" not in rows["xivo-3"][0].attrs
    assert rows["admin (the doctor's host)"][0].text() == "✓ 2 open"
    assert [td.text() for td in rows["admin (the doctor's host)"][1:]] == ["·", "·"]  # tried from peers only
    assert rows["xivo-1"][0].text() == "·" and rows["xivo-1"][1].text() == "✗ 5672/tcp timeout✓ 6 open"


def test_a_report_without_ports_tried_has_no_port_grid():
    assert "Ports: from" not in html.render_html(S.critical_report())


def test_items_failed_in_full_passing_collapsed_and_evidence_shown_with_its_source():
    report = S.critical_report()
    parsed = page(report)
    port = parsed.one("item-port-reachable-xivo-2")
    assert port.tag == "details" and "open" in port.attrs
    body = port.text()
    assert S.TRICKY in body and "Data source" not in body  # the sample has no `source`
    assert "timeout" in body and "after_s" in body and "5672" in body
    assert [dt.text() for dt in port.find_all("dt")] == ["address", "ports", "tried"]
    ports = port.find_all("table")[0]  # a mapping of flat mappings: one row each
    assert [th.text() for th in ports.find_all("th")] == ["", "state", "after_s", "5672", "8302"]
    assert [[td.text() for td in tr.find_all("td")] for tr in ports.find_all("tr")[1:]] == [["timeout", "3.0"],
                                                                                            ["open", ""]]
    passing = parsed.one("item-port-reachable-xivo-1")
    assert passing.tag == "tr" and passing.parent.parent.parent.parent.tag == "details"
    assert "open" not in passing.parent.parent.parent.parent.attrs
    blocked = parsed.one("item-rabbitmq-federation-xivo-1-to-xivo-2")
    assert [a.attrs["href"] for a in blocked.find_all("a")] == ["#item-port-reachable-xivo-2"]


def test_passing_items_shrink_with_the_report_so_ten_xivos_stay_under_420_kB(capsys):
    """Ten XiVOs: 9 checks, 180 pair items (federation and directory-lookup each way). The embedded
    result JSON holds every item's evidence (about 3/4 of the file); the page shows it for failures."""
    sizes = {}
    for n in (2, 5, 7, 10):
        text = html.render_html(S.big_report(n))
        parsed = Page(text)
        sizes[n] = len(text.encode("utf-8"))
        row = parsed.one("item-uuid-unique-xivo-1")
        evidence = [d for d in row.find_all("details") if d.find_all("summary")[0].text() == "evidence"]
        assert (row.tag, bool(evidence)) == {2: ("tr", True), 5: ("tr", False), 7: ("td", False), 10: ("td", False)}[n]
        assert parsed.one("item-port-reachable-xivo-2").tag == "details"  # a failure is always in full
    with capsys.disabled():
        print("\nHTML report size: " + ", ".join(f"{n} XiVOs {size / 1000:.0f} kB" for n, size in sizes.items()))
    assert sizes[10] < 420_000


# --- the picture --------------------------------------------------------------------------------


def test_picture_of_ten_xivos_draws_every_expected_link_with_its_status():
    pic = picture.build_picture(S.big_report(10))
    panels = {p.key: p for p in pic.panels}
    assert [len(panels[k].links) for k in ("federation", "consul-wan", "directories")] == [90, 45, 90]
    fed = {(k.a, k.b): k.mark for k in panels["federation"].links}
    assert fed[("xivo-3", "xivo-1")].status == "fail"  # messages flow upstream xivo-3 -> downstream xivo-1
    assert fed[("xivo-3", "xivo-1")].item == "rabbitmq-federation[xivo-1->xivo-3]"
    assert fed[("xivo-1", "xivo-3")].status == "pass"
    assert {fed[("xivo-2", d)].status for d in ("xivo-1", "xivo-5")} == {"skip"}  # blocked by xivo-2's 5672
    wan = {frozenset((k.a, k.b)): k.mark for k in panels["consul-wan"].links}
    assert wan[frozenset(("xivo-1", "xivo-3"))].item == "consul-wan[xivo-3]"
    assert {m.status for key, m in wan.items() if key != frozenset(("xivo-1", "xivo-3"))} == {"pass"}
    dirs = {(k.a, k.b): k.mark.status for k in panels["directories"].links}
    # xivo-4's directory-source fails for xivo-1: its lookups are blocked, so its other arrows are not proven
    assert dirs[("xivo-4", "xivo-1")] == "fail" and dirs[("xivo-4", "xivo-2")] == "skip"
    assert dirs[("xivo-2", "xivo-3")] == "pass"
    assert pic.nodes["xivo-2"].status == "fail" and pic.nodes["xivo-1"].status == "pass"
    places = {(n.x, n.y) for n in panels["federation"].nodes}
    assert len(places) == 10
    p = panels["federation"]
    assert all(0 <= n.x <= p.width and 0 <= n.y <= p.height for n in p.nodes)
    there, back = next(k for k in p.links if (k.a, k.b) == ("xivo-1", "xivo-2")), \
        next(k for k in p.links if (k.a, k.b) == ("xivo-2", "xivo-1"))
    assert (there.cx, there.cy) != (back.cx, back.cy)  # the two directions bow apart: both visible


def test_a_panel_of_pair_items_and_per_xivo_items_draws_the_worst_of_both():
    """Directories: directory-source (per XiVO, its view of each peer) beside directory-lookup (pairs)."""
    source_fail = Result(check="directory-source", target="xivo-2", status=Status.FAIL, title="t", message="m",
                         evidence={"problems": [{"peer": "xivo-1", "kind": "missing"}]})
    results = [S.passing("directory-source", "xivo-1"), source_fail,
               S.passing("directory-lookup", "xivo-1->xivo-2"),
               Result(check="directory-lookup", target="xivo-2->xivo-1", status=Status.SKIP, title="t",
                      message="blocked", blocked_by=("directory-source[xivo-2]",))]
    report = replace(S.report(results), topology={**S.TOPOLOGY, "pairs": ["xivo-1->xivo-2", "xivo-2->xivo-1"]})
    dirs = next(p for p in picture.build_picture(report).panels if p.key == "directories")
    marks = {(k.a, k.b): (k.mark.status, k.mark.item) for k in dirs.links}
    assert marks[("xivo-2", "xivo-1")] == ("fail", "directory-source[xivo-2]")
    assert marks[("xivo-1", "xivo-2")][0] == "pass" and len(marks) == 2


def test_picture_of_a_real_wan_fault_blames_the_failing_item():
    """A real lab run after `lab break consul-not-joined` (kept under tests/data): consul-wan[xivo-1]
    passes (the fault is reported on xivo-2) while its pool lacks xivo-2."""
    report = registry.describe(readback.load_report(DEMOS[0]))  # as `xivo-doctor report` reads it back
    assert report.verdict.value == "CRITICAL"
    wan = next(p for p in picture.build_picture(report).panels if p.key == "consul-wan")
    assert [(k.mark.status, k.mark.item) for k in wan.links] == [("fail", "consul-wan[xivo-2]")]


# --- environment --------------------------------------------------------------------------------


def test_environment_shows_run_facts_each_xivo_and_the_whole_topology():
    report = S.big_report(3)
    topology = {**report.topology, "new_key": {"nested": ["kept", "as loaded"]}}
    report = replace(report, topology=topology)
    parsed = page(report)
    env = parsed.one("environment")
    text = env.text()
    for fact in ("0.1.0", "xivo-1 (on box)", "2026-11-25T10:31:15+00:00", "4.20 s", "30.0 s", "xivo-doctor/1",
                 "new_key", "as loaded", "/etc/xivo-doctor/topology.yml"):
        assert fact in text, fact
    body = env.find_all("table")[0].find_all("tbody")[0]
    rows = [[td.text() for td in tr.find_all("td")] for tr in body.find_all("tr")]
    assert rows[0][:4] == ["xivo-1", "10.20.1.1", "16.13", "00000001-5b17-4ac3-895c-ab6335d3e7f3"]
    unknown = [[td.text() for td in tr.find_all("td")][:4]
               for tr in Page(html.render_html(S.critical_report())).one("environment").find_all("tr")[1:3]]
    assert unknown == [["xivo-1", "127.10.0.1", "2023.05", "unknown"], ["xivo-2", "127.10.0.2", "2023.05", "unknown"]]


# --- read back ----------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [S.critical_report, S.ok_report, hostile_report, lambda: S.big_report(10)]
                         + [lambda p=p: readback.load_report(p) for p in DEMOS],
                         ids=["critical", "ok", "hostile", "ten-xivos"] + [p.name for p in DEMOS])
def test_read_back_round_trip(make, tmp_path):
    report = make()
    dest = tmp_path / "deep" / "er" / "report.html"
    html.write_html(report, str(dest))
    assert oct(dest.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in dest.parent.iterdir()] == ["report.html"]  # no temporary file left
    doc = readback.read_report(dest)
    assert doc == report_to_dict(report)
    assert report_to_dict(report_from_dict(doc)) == report_to_dict(report)
    assert report_to_dict(readback.load_report(dest)) == report_to_dict(report)


def test_read_report_also_reads_a_json_report(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(to_json(S.critical_report()), encoding="utf-8")
    assert readback.read_report(path) == report_to_dict(S.critical_report())


@pytest.mark.parametrize("content, words", [
    (b"\x89PNG\r\n\x1a\n\x00\xff\xfe", "not UTF-8"),
    (b"<html><body><p>hello</p></body></html>", "no <script"),
    (b'<script type="application/json" id="xivo-doctor-result">{"schema": </script>', "not valid JSON"),
    (b'<script type="application/json" id="xivo-doctor-result">{"schema": "other/2"}</script>', "other/2"),
    (b'<script type="application/json" id="xivo-doctor-result">[1, 2]</script>', "not an xivo-doctor/1"),
    (b'{"schema": "xivo-doctor/0\\nINJECTED"}', "not an xivo-doctor/1"),
    (b'<script type="application/json" id="xivo-doctor-result">{"schema": "xivo-doctor/1", "results": [{}]}'
     b"</script>", "results"),
], ids=["binary", "no-block", "invalid-json", "wrong-schema", "not-object", "newline-schema", "bad-result"])
def test_read_back_of_what_is_not_a_report_is_one_line_naming_the_file(tmp_path, content, words):
    path = tmp_path / "ticket attachment.html"
    path.write_bytes(content)
    with pytest.raises(UsageError) as caught:
        readback.load_report(path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(path)) and words in message, message


def test_read_back_of_a_missing_file(tmp_path):
    with pytest.raises(UsageError, match=r"nothing\.html: cannot read it: No such file"):
        readback.read_report(tmp_path / "nothing.html")
    with pytest.raises(UsageError) as caught:
        readback.read_report(tmp_path / "two\nlines.html")
    assert "\n" not in str(caught.value) and "two\\nlines.html" in str(caught.value)


@pytest.mark.parametrize("key, value, words", [
    ("status", "maybe", r"results\[2\]\.status 'maybe' is not one of pass, warn"),
    ("duration_s", "slow", r"results\[2\]\.duration_s is missing or not a number"),
    ("blocked_by", "port-reachable", r"results\[2\]\.blocked_by is missing or not a list"),
    ("fix", {"summary": 1}, r"results\[2\]\.fix\.summary is missing or not a string"),
])
def test_report_from_dict_rejects_what_a_report_cannot_hold(key, value, words):
    doc = report_to_dict(S.critical_report())
    doc["results"][2][key] = value
    with pytest.raises(UsageError, match=words):
        report_from_dict(doc)


def test_write_html_leaves_the_old_file_when_rendering_fails(tmp_path, monkeypatch):
    dest = tmp_path / "report.html"
    dest.write_text("old", encoding="utf-8")

    def broken(*_a, **_k):
        raise RuntimeError("boom")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(RuntimeError):
        html.write_html(S.critical_report(), str(dest))
    assert dest.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_write_html_to_standard_output(capsys):
    html.write_html(S.critical_report(), "-")
    out = capsys.readouterr().out
    assert out == html.render_html(S.critical_report()) and out.startswith("<!DOCTYPE html>")


def test_backticked_names_become_code_and_hostile_backticks_stay_text():
    assert html.code_spans("the federated `xivo` exchange") == [(False, "the federated "), (True, "xivo"),
                                                                (False, " exchange")]
    assert html.code_spans("an odd ` backtick") == [(False, "an odd ` backtick")]
    r = Result(check="rabbitmq-federation", target="xivo-1->xivo-2", status=Status.FAIL, title="t",
               why="through `<script>x</script>`")
    page = html.render_html(S.report([r]))
    assert "<code>&lt;script&gt;x&lt;/script&gt;</code>" in page


def test_the_ticket_title_drops_a_raw_error_quoted_in_parentheses():
    message = ("the link from 'xivo-2' is in error ({auth_failure,\"ACCESS_REFUSED - Login was refused using "
               "authentication mechanism PLAIN.\"}): wrong user or password in the upstream URI")
    r = Result(check="rabbitmq-federation", target="xivo-1->xivo-2", status=Status.FAIL, title="t", message=message)
    assert words.headline(S.report([r])) == ("CRITICAL — rabbitmq-federation xivo-1←xivo-2: the link from "
                                                  "'xivo-2' is in error: wrong user or password in the upstream URI")
