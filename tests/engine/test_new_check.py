"""The README's promise, kept: a new check is one file, and nothing in the engine or the renderers
changes. A check written in a temporary folder, with its own warm-up, metric, kind of link and
facts, runs, is warmed up before pytest starts, is drawn in the HTML picture, shows up in the
Nagios perfdata and in the XiVO table, and its fix is filled, all through what it declares.
"""

from __future__ import annotations

import textwrap
import threading

from conftest import REPO, loopback_topology
from xivo_doctor.engine.options import RunOptions
from xivo_doctor.engine.plugin import run_checks
from xivo_doctor.engine.run import Run
from xivo_doctor.render.html.document import render_html
from xivo_doctor.render.html.picture import build_picture
from xivo_doctor.render.nagios.output import perfdata, status_line
from xivo_doctor.render.nagios.ranges import Thresholds, parse
from xivo_doctor.topology import load_topology

ECHO_CHECK = '''
"""echo-link: a check written by a site, to prove the engine needs no change for it."""

import threading

from xivo_doctor.check import Fix, LinkKind, LinkView, Metric, check


def _read(probes, xivo):
    """A slow read, as a probe makes one: cached for the run under one key."""
    def compute():
        return {"thread": threading.current_thread().name, "hops": len(xivo.name)}
    return probes.cached(("echo-link", xivo.name), compute)


def warm_up(w):
    for x in w.xivos:
        w.chain([lambda x=x: _read(w.probes, x)])


@check(
    id="echo-link",
    title="Each XiVO echoes to each peer",
    why="a site's own concern",
    fix=Fix("on {xivo.name}, restart the echo service", ["service echo restart  # on {xivo.name}"]),
    doc="contact_and_presence_sharing.rst#prerequisite",
    involves="peers",
    warm_up=warm_up,
    metrics=lambda o: [Metric(f"echo_hops_{o.xivo}", o.evidence.get("hops"), "c", minimum=0,
                              thresholds=True, words=f"echo hops of {o.xivo}")],
    link=LinkKind("echo", "Echo", "an arrow per XiVO -> peer it echoes to", directed=True, order=5),
    links=lambda o: {peer: LinkView(peer != "xivo-1", f"echo to {peer}") for peer in o.xivos if peer != o.xivo},
    facts=lambda o: {o.xivo: {"echo": "on"}},
)
def test_echo_link(xivo, probes, evidence):
    answer = _read(probes, xivo)
    evidence["read_in"] = answer["thread"]
    evidence["hops"] = answer["hops"]
    assert xivo.name != "xivo-2", "xivo-2 does not echo"
'''


def test_a_check_in_its_own_file_runs_warms_up_is_drawn_and_measured(tmp_path):
    folder = tmp_path / "site-checks"
    folder.mkdir()
    (folder / "echo_link.py").write_text(textwrap.dedent(ECHO_CHECK))
    topology = load_topology(loopback_topology(tmp_path, ["127.10.177.1", "127.10.177.2"]))
    run = Run(RunOptions(topology=topology, timeout=30, checks_folder=folder))
    before = set(threading.enumerate())
    run.start_warm_up()
    report = run_checks(run)
    assert {t.name for t in set(threading.enumerate()) - before} <= {"prefetch"}

    by_target = {r.target: r for r in report.results}
    assert [r.item_id for r in report.results] == ["echo-link[xivo-1]", "echo-link[xivo-2]"]
    assert by_target["xivo-1"].status.value == "pass" and by_target["xivo-2"].status.value == "fail"
    # warmed up: each XiVO's read was made by the warm-up's thread, and the check found it there
    assert {r.evidence["read_in"] for r in report.results} == {"prefetch"}
    assert by_target["xivo-2"].fix.commands == ("service echo restart  # on xivo-2",)

    panels = {p.key: p for p in build_picture(report).panels}
    assert list(panels) == ["echo"]
    arrows = {(k.a, k.b): k.mark.status for k in panels["echo"].links}
    assert arrows == {("xivo-1", "xivo-2"): "pass", ("xivo-2", "xivo-1"): "fail"}

    data = perfdata(report, Thresholds(warning=parse("5", "-w"), critical=None))
    assert "'echo_hops_xivo-1'=6c;5;;0; 'echo_hops_xivo-2'=6c;5;;0;" in data
    assert status_line(report, Thresholds(warning=parse("5", "-w"), critical=None)).startswith(
        "XIVO-DOCTOR CRITICAL - echo-link xivo-2: xivo-2 does not echo")
    page = render_html(report)
    assert "<th>echo</th>" in page and ">Echo<" in page


def test_the_readmes_example_check_loads_and_runs(tmp_path):
    """The README's "Adding a check" example is a real check: it loads, and its probe call exists
    (nothing answers on the XiVO: the item is `error` for that, not an internal error)."""
    readme = (REPO / "README.md").read_text()
    example = readme.split("## Adding a check", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    folder = tmp_path / "readme-checks"
    folder.mkdir()
    (folder / "ctid_listen.py").write_text(example)
    (folder / "port_reachable.py").write_text((REPO / "checks" / "port_reachable.py").read_text())  # its upstream
    topology = load_topology(loopback_topology(tmp_path, ["127.10.178.1", "127.10.178.2"], probe_timeout=0.5))
    report = run_checks(Run(RunOptions(topology=topology, timeout=10, checks=("ctid-listen",), checks_folder=folder)))
    assert [r.item_id for r in report.results] == ["ctid-listen[xivo-1]", "ctid-listen[xivo-2]"]
    for result in report.results:
        assert result.status.value == "error", result
        assert "internal error" not in result.message and "xivo-ctid" in result.message
