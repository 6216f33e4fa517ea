"""The HTML report proven in a real browser (issue 5, "Tested in a real browser").

Headless Debian Chromium, driven over the DevTools pipe (tests/cdp.py), with networking disabled,
opens from disk the report of a broken lab and of a report full of hostile strings, and the
assertions read the RENDERED page: what a support engineer sees, not the HTML source. The broken
lab's page is saved as reports/report-screenshot.png (for the README) once everything passed.

Chromium missing is a failure saying how to install it, never a skip: a skipped browser test in
CI would prove nothing.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from pathlib import Path

import pytest
from cdp import INSTALL_HINT, PNG_MAGIC, Browser, CdpError, Page, find_chromium
from render_samples import TOPOLOGY, critical_results, report
from services import starts_services

from conftest import REPO
from xivo_doctor.foundation.results import FixOut, Report, Status
from xivo_doctor.lab import faults, healing
from xivo_doctor.render.html.document import write_html
from xivo_doctor.render.json_report import report_to_dict

SCREENSHOT = REPO / "reports" / "report-screenshot.png"
EXAMPLE = REPO / "reports" / "example-report.html"
FAULT, BROKEN_NODE = "federation-wrong-password", "xivo-1"  # xivo-1's upstream to xivo-2
EXPECTED = "rabbitmq-federation[xivo-1->xivo-2]"

# What the page shows, read in one round trip. `visible` = laid out and not hidden: a fix command
# folded inside a closed <details> or display:none would not count as shown.
SNAPSHOT_JS = r"""(() => {
  const visible = e => e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden';
  const ids = new Set([...document.querySelectorAll('[id]')].map(e => e.id));
  const svgs = [...document.querySelectorAll('svg')].filter(visible).map(s => {
    const r = s.getBoundingClientRect();
    const labels = [...s.querySelectorAll('text')].map(t => {
      const b = t.getBoundingClientRect();
      return {text: t.textContent.trim(), width: b.width, height: b.height,
              inside: b.left >= r.left - 1 && b.right <= r.right + 1 && b.top >= r.top - 1 && b.bottom <= r.bottom + 1};
    });
    const strokes = [...new Set([...s.querySelectorAll('path, line, polyline')].map(e => getComputedStyle(e).stroke)
                                .filter(c => c && c !== 'none'))];
    return {text: s.textContent, width: r.width, height: r.height, labels, strokes};
  });
  return {
    title: document.title,
    lines: document.body.innerText.split('\n').map(s => s.trim()).filter(Boolean),
    code: [...document.querySelectorAll('pre, code')].filter(visible).map(e => e.innerText),
    svgs,
    brokenLinks: [...document.querySelectorAll('a[href^="#"]')].map(a => a.getAttribute('href').slice(1))
                   .filter(h => h && !ids.has(decodeURIComponent(h))),
    pageWidth: document.documentElement.scrollWidth,
    viewWidth: document.documentElement.clientWidth,
  };
})()"""


def test_a_missing_chromium_fails_with_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no chromium on this PATH
    with pytest.raises(CdpError) as failure:
        find_chromium()
    assert INSTALL_HINT in str(failure.value) and "./install-deps.sh --tests" in INSTALL_HINT
    assert issubclass(CdpError, AssertionError)  # so the browser tests FAIL on it, never skip


def test_the_report_of_a_broken_lab_in_chromium(lab, tmp_path):
    report_ = _broken_lab_report(lab)
    data = report_to_dict(report_)
    root = next(r for r in data["results"] if r["item"] == EXPECTED)
    assert root["status"] == "fail" and data["verdict"] == "CRITICAL", root
    commands = root["fix"]["commands"]
    assert any("rabbitmqctl set_parameter federation-upstream" in c for c in commands), commands

    html = tmp_path / "report.html"
    write_html(report_, str(html))
    shot = tmp_path / "report.png"
    with _browser() as browser:
        page = browser.open(html.as_uri())
        seen = page.evaluate(SNAPSHOT_JS)
        width, height = page.screenshot_full(shot)
        view_width, view_height = page.evaluate("[innerWidth, innerHeight]")
    _assert_clean(page, html)

    # The verdict line, at the top, names the verdict and the broken item.
    verdict = next((line for line in seen["lines"][:3] if "CRITICAL" in line), None)
    assert verdict, f"no CRITICAL line at the top of the page: {seen['lines'][:3]}"
    for word in ("rabbitmq-federation", "xivo-1", "xivo-2"):
        assert word in verdict, verdict
    assert "CRITICAL" in seen["title"], seen["title"]

    # The fix commands, exactly as the doctor wrote them in its JSON, shown in code blocks.
    for command in commands:
        assert any(command in block for block in seen["code"]), f"fix command not shown: {command!r}"

    # The topology picture: drawn, with every XiVO's name, and no label clipped by its frame.
    names = [x["name"] for x in data["topology"]["xivos"]]
    picture = next((s for s in seen["svgs"] if all(n in s["text"] for n in names)), None)
    assert picture, f"no visible <svg> naming {names}: {[s['text'][:80] for s in seen['svgs']]}"
    assert picture["width"] > 100 and picture["height"] > 100, picture
    # The broken federation link is drawn apart from the passing one (xivo-2 -> xivo-1).
    assert len(picture["strokes"]) >= 2, f"every link of the picture drawn alike: {picture['strokes']}"
    clipped = [label["text"] for svg in seen["svgs"] for label in svg["labels"] if not label["inside"]]
    assert not clipped, f"SVG labels outside their picture: {clipped}"

    assert not seen["brokenLinks"], f"links to no element: {seen['brokenLinks']}"
    assert seen["pageWidth"] <= seen["viewWidth"], (
        f"the page scrolls sideways: {seen['pageWidth']} px wide in a {seen['viewWidth']} px window")

    # A full-page PNG: as wide as the window, taller than it, a sensible weight.
    data_png = shot.read_bytes()
    assert data_png.startswith(PNG_MAGIC)
    assert png_size(data_png) == (width, height)
    assert width == view_width and height > view_height, (width, height, view_width, view_height)
    assert 20_000 < len(data_png) < 3_000_000, len(data_png)
    os.replace(shot, SCREENSHOT)  # only now: the README shows a page that passed every check above
    shutil.copyfile(html, EXAMPLE)  # and the page itself, for a reader to open


HOSTILE = ("<script>window.__pwned=1</script>", '"><img src=x onerror="window.__pwned=1">',
           "javascript:window.__pwned=1")
HOSTILE_NAME = "xivo-2" + HOSTILE[1]

PROBE_JS = r"""({
  pwned: typeof window.__pwned !== 'undefined',
  imgX: document.querySelectorAll('img[src="x"]').length,
  handlers: [...document.querySelectorAll('*')].flatMap(e => [...e.attributes].map(a => a.name))
              .filter(n => n.startsWith('on')),
  jsLinks: [...document.querySelectorAll('[href],[src],[action],[formaction]')]
             .map(e => e.getAttribute('href') || e.getAttribute('src') || e.getAttribute('action')
                       || e.getAttribute('formaction'))
             .filter(v => /^\s*javascript:/i.test(v)),
  text: document.body.innerText,
})"""


@pytest.fixture
@starts_services
def chromium() -> None:
    """The test runs Debian's Chromium (started inside the test, so that a missing browser fails it)."""


def test_hostile_strings_render_as_text_and_run_nothing(tmp_path, chromium):
    html = tmp_path / "hostile.html"
    write_html(_hostile_report(), str(html))
    # The control: the same strings pasted raw into a page without escaping nor CSP. It proves the
    # probes below see an injection when there is one (a test that cannot fail proves nothing).
    control = tmp_path / "control.html"
    control.write_text("<!doctype html><meta charset=utf-8><body><p>" + "</p><p>".join(HOSTILE) + "</p>"
                       f'<a href="{HOSTILE[2]}">link</a></body>', encoding="utf-8")
    with _browser() as browser:
        bad = browser.open(control.as_uri())
        bad_probe = bad.evaluate(PROBE_JS)
        page = browser.open(html.as_uri())
        probe = page.evaluate(PROBE_JS)
    assert bad_probe["pwned"] and bad_probe["imgX"] == 1 and "onerror" in bad_probe["handlers"], bad_probe
    assert bad_probe["jsLinks"] and any(u.endswith("/x") for u in bad.requests), (bad_probe, bad.requests)

    assert not probe["pwned"], "a hostile string ran as script"
    assert probe["imgX"] == 0 and not probe["handlers"] and not probe["jsLinks"], probe
    for text in (*HOSTILE, HOSTILE_NAME):
        assert text in probe["text"], f"hostile string not shown as text: {text!r}"
    _assert_clean(page, html)  # nothing requested (an <img src=x> would fetch ./x), no CSP violation


# -- helpers ---------------------------------------------------------------------------------------

class _browser:
    """Chromium for one test, started inside the test so that a missing browser FAILS it."""

    def __enter__(self) -> Browser:
        self.browser = Browser.start()
        return self.browser

    def __exit__(self, kind: type | None, *exc: object) -> None:
        self.browser.close()
        if kind is None:  # else the test's own failure is the one to show
            assert not self.browser.stragglers(), "Chromium processes left running"


def _assert_clean(page: Page, html: Path) -> None:
    """No JavaScript error, no console error, and no request but the document itself."""
    assert not page.exceptions, page.exceptions
    errors = [text for level, text in page.log if level == "error"]
    errors += [text for kind, text in page.console if kind in ("error", "assert")]
    assert not errors, errors
    others = [u for u in page.requests if u != html.as_uri() and not u.startswith("data:")]
    assert not others, f"the report tried to load {others} (failed: {page.failed})"
    assert html.as_uri() in page.requests


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) read from a PNG's IHDR chunk."""
    assert data.startswith(PNG_MAGIC) and data[12:16] == b"IHDR", "not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _broken_lab_report(lab) -> Report:
    """The lab broken by FAULT, run in-process as `xivo-doctor run` does (redaction included)."""
    from xivo_doctor.engine.options import RunOptions
    from xivo_doctor.engine.plugin import run_checks
    from xivo_doctor.engine.run import Run
    from xivo_doctor.topology import load_topology

    topology = load_topology(lab.dir / "topology.yml")
    faults.break_(lab.dir, FAULT, BROKEN_NODE, say=lambda _: None)
    try:
        # RabbitMQ retries a refused link every few seconds: run until the link shows the failure.
        for _ in range(20):
            report_ = run_checks(Run(RunOptions(topology=topology, timeout=30)))
            if any(r.item_id == EXPECTED and r.status is Status.FAIL for r in report_.results):
                break
            time.sleep(0.5)
    finally:
        healing.heal(lab.dir, say=lambda _: None)
    return report_  # redacted by Run.report, as every output is


def _hostile_report() -> Report:
    """The renderer samples, with hostile text wherever an inspected system can put some."""
    topology = {**TOPOLOGY, "xivos": [TOPOLOGY["xivos"][0], {**TOPOLOGY["xivos"][1], "name": HOSTILE_NAME}]}
    results = []
    for result in critical_results():
        # xivo-2 renamed everywhere it is named: items, pairs and what blocks them.
        result = dataclasses.replace(result, target=result.target.replace("xivo-2", HOSTILE_NAME),
                                     blocked_by=tuple(b.replace("xivo-2", HOSTILE_NAME) for b in result.blocked_by))
        if result.status is Status.FAIL:
            result = dataclasses.replace(
                result,
                message=f"{result.message} {HOSTILE[0]}",
                evidence={**result.evidence, HOSTILE[0]: HOSTILE[1], "url": HOSTILE[2], "source": HOSTILE[0]},
                fix=FixOut(summary=f"fix {HOSTILE[1]}", commands=(*HOSTILE, "echo ok"), doc=HOSTILE[2]),
                doc=HOSTILE[2],
            )
        results.append(result)
    return dataclasses.replace(report(results), topology=topology, vantage=HOSTILE[1])


def test_hostile_data_from_the_inspected_systems_renders_as_text(lab, tmp_path):
    """The same strings, but where a real system holds them: a directory's name and a phonebook
    URL in xivo-1's database, tags of a Consul registration on xivo-1 (XiVO names themselves
    cannot be hostile: the topology loader accepts only plain names). `xivo-doctor run --html`."""
    import requests

    from xivo_doctor.cli.main import main
    from xivo_doctor.lab.state import LabState

    state = LabState.load(lab.dir)
    one, two = state.nodes[0], state.nodes[1]
    url = (f"http://{two.address}/service/ipbx/json.php/private/pbx_services/phonebook?x="
           f"{HOSTILE[1]}{HOSTILE[0]}&{HOSTILE[2]}")
    register = {"ID": "hostile", "Name": "xivo-ctid", "Tags": list(HOSTILE), "Address": one.address, "Port": 9495}
    consul = f"https://{one.address}:8500/v1/agent/service"
    headers = {"X-Consul-Token": one.master_token}
    html = tmp_path / "lab-hostile.html"
    try:
        faults.sql(state, one, f"UPDATE directories SET name = '{HOSTILE[0]}' WHERE dirtype = 'xivo'")
        faults.sql(state, one, f"UPDATE directories SET uri = '{url}' WHERE dirtype = 'phonebook'")
        assert requests.put(f"{consul}/register", json=register, headers=headers, verify=False,
                            timeout=5).status_code == 200
        assert main(["run", "-T", str(lab.dir / "topology.yml"), "--html", str(html), "-q"]) == 2
    finally:
        requests.put(f"{consul}/deregister/hostile", headers=headers, verify=False, timeout=5)
        healing.heal(lab.dir, say=lambda _: None)
    source = html.read_text()
    # The strings did reach the report (else the test proves nothing): escaped, in the page source.
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in source
    with _browser() as browser:
        page = browser.open(html.as_uri())
        probe = page.evaluate(PROBE_JS)
    assert not probe["pwned"], "a hostile string from the lab ran as script"
    assert probe["imgX"] == 0 and not probe["handlers"] and not probe["jsLinks"], probe
    for text in HOSTILE:
        assert text in probe["text"], f"hostile string not shown as text: {text!r}"
    _assert_clean(page, html)
