"""JUnit XML for CI systems (Jenkins, GitLab, ...), built from a `Report`.

Place in the pipeline: presentation: reads the Report, never probes.

One `<testsuite name="xivo-doctor">` (hostname = the vantage point) holds one `<testcase>` per
item: `classname` is the check id, `name` the item id (`check[target]`). Each testcase carries
`<properties>`: `target`, `status`, `doc`, `fix` (the fix summary), `fix.command.1`, ... and
`blocked_by` (comma-separated) when set.

Statuses map as follows:

- `fail` -> `<failure type="fail" message=...>`, evidence as text (one JSON object per line).
- `warn` -> a **passing** testcase with `<system-out>WARNING: ...</system-out>` (and the
  evidence). This is deliberate: a warning must not turn a CI pipeline red; the suite's
  `failures` count therefore counts `fail` items only. (Spec purists: the warning is still
  visible in every CI UI that shows system-out, and the `status` property says `warn`.)
- `error` (could not check) -> `<error type="error" message=...>`.
- `skip` -> `<skipped message=...>`: "blocked by X" when blocked, else the reason.

Text from results came from inspected systems: ElementTree escapes `<`, `&` and quotes, and
characters XML 1.0 cannot hold at all (control codes) are written as visible `\\xNN` escapes,
so the document always parses.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from xivo_doctor.foundation.results import Report, Result, Status, thaw
from xivo_doctor.render.output_file import write_output

# Characters outside the XML 1.0 `Char` production (tab, LF and CR are allowed).
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _safe(text: Any) -> str:
    """`text` as a string XML 1.0 can carry."""

    def esc(m: re.Match[str]) -> str:
        code = ord(m.group())
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _XML_INVALID.sub(esc, str(text))


def _seconds(value: float) -> str:
    return f"{float(value):.3f}"


def _evidence_lines(result: Result) -> str:
    """The evidence as JSON lines: one `{"key": value}` object per evidence key."""
    evidence = thaw(result.evidence)
    return "\n".join(
        json.dumps({key: value}, ensure_ascii=False, default=str, sort_keys=False)
        for key, value in evidence.items()
    )


def _skip_reason(result: Result) -> str:
    if result.blocked_by:
        return "blocked by " + ", ".join(result.blocked_by)
    return result.message


def _property(parent: ET.Element, name: str, value: str) -> None:
    ET.SubElement(parent, "property", name=name, value=_safe(value))


def _testcase(suite: ET.Element, result: Result) -> None:
    case = ET.SubElement(
        suite,
        "testcase",
        classname=_safe(result.check),
        name=_safe(result.item_id),
        time=_seconds(result.duration_s),
    )
    props = ET.SubElement(case, "properties")
    _property(props, "target", result.target)
    _property(props, "status", result.status.value)
    doc = result.doc or (result.fix.doc if result.fix else "")
    if doc:
        _property(props, "doc", doc)
    if result.fix is not None:
        _property(props, "fix", result.fix.summary)
        for n, command in enumerate(result.fix.commands, start=1):
            _property(props, f"fix.command.{n}", command)
        if result.fix.doc and result.fix.doc != doc:
            _property(props, "fix.doc", result.fix.doc)
    if result.blocked_by:
        _property(props, "blocked_by", ", ".join(result.blocked_by))

    evidence = _evidence_lines(result)
    if result.status is Status.FAIL:
        failure = ET.SubElement(case, "failure", message=_safe(result.message), type="fail")
        failure.text = _safe(evidence)
    elif result.status is Status.ERROR:
        error = ET.SubElement(case, "error", message=_safe(result.message), type="error")
        error.text = _safe(evidence)
    elif result.status is Status.SKIP:
        ET.SubElement(case, "skipped", message=_safe(_skip_reason(result)))
    elif result.status is Status.WARN:
        out = ET.SubElement(case, "system-out")
        out.text = _safe(f"WARNING: {result.message}" + (f"\n{evidence}" if evidence else ""))


def to_junit_tree(report: Report) -> ET.Element:
    """The `<testsuites>` element."""
    counts = report.counts()
    totals = {
        "tests": str(len(report.results)),
        "failures": str(counts[Status.FAIL.value]),
        "errors": str(counts[Status.ERROR.value]),
        "skipped": str(counts[Status.SKIP.value]),
        "time": _seconds(report.duration_s),
    }
    root = ET.Element("testsuites", name="xivo-doctor", **totals)
    suite = ET.SubElement(
        root,
        "testsuite",
        name="xivo-doctor",
        **totals,
        timestamp=_safe(report.started_at),
        hostname=_safe(report.vantage),
    )
    props = ET.SubElement(suite, "properties")
    _property(props, "schema", report.schema)
    _property(props, "verdict", report.verdict.value)
    _property(props, "exit_code", str(report.exit_code))
    _property(props, "doctor_version", report.doctor_version)
    _property(props, "timeout_s", str(report.timeout_s))
    for result in report.results:
        _testcase(suite, result)
    return root


def to_junit_xml(report: Report) -> str:
    """The JUnit document as text, with its XML declaration, indented, ending in a newline."""
    root = to_junit_tree(report)
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"


def write_junit(report: Report, path: str | Path) -> None:
    """Write the JUnit document to `path` (UTF-8, atomically, parents created); `-` = stdout."""
    write_output(path, to_junit_xml(report))
