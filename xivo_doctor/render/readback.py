"""Reading a report back: the result JSON embedded in an HTML report (or a JSON report itself),
so `xivo-doctor report FILE.html` can print the summary again without the servers.

Place in the pipeline: presentation, in reverse: a file written by `html.write_html` (or
`json_report.write_json`) -> the `xivo-doctor/1` document -> `report_from_dict` -> the frozen
`Report` any renderer takes. Nothing here probes.

The file comes from a ticket, so it may be anything: every way it can fail to be a report
(unreadable, not text, no embedded block, JSON invalid, another schema) is one `UsageError`
line naming the file, never a traceback.
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from xivo_doctor.foundation.errors import UsageError
from xivo_doctor.foundation.results import SCHEMA, Report
from xivo_doctor.render.json_report import report_from_dict

BLOCK_ID = "xivo-doctor-result"  # <script type="application/json" id="xivo-doctor-result">
MAX_BYTES = 64 * 1024 * 1024  # a report is well under 1 MB; anything huge is not one

__all__ = ["BLOCK_ID", "load_report", "read_report", "report_from_dict"]


class _Block(HTMLParser):
    """Collects the text of the first <script type="application/json" id="xivo-doctor-result">."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.inside = False
        self.found = False
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script" and not self.found and attributes.get("id") == BLOCK_ID and (
                (attributes.get("type") or "").lower() == "application/json"):
            self.inside = self.found = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self.inside = False

    def handle_data(self, data: str) -> None:
        if self.inside:
            self.parts.append(data)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _name(path: Path) -> str:
    """The file as named in a message: on one line whatever characters its name holds."""
    return str(path).replace("\n", "\\n").replace("\r", "\\r")


def _text(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"{_name(path)}: cannot read it: {_one_line(exc.strerror or str(exc))}") from None
    if len(data) > MAX_BYTES:
        raise UsageError(f"{_name(path)}: not an xivo-doctor report (larger than {MAX_BYTES // 1024 // 1024} MB)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UsageError(f"{_name(path)}: not an xivo-doctor report (not UTF-8 text)") from None


def read_report(path: str | Path) -> dict[str, Any]:
    """The `xivo-doctor/1` document of an HTML report (its embedded block) or of a JSON report."""
    path = Path(path)
    text = _text(path)
    if text.lstrip().startswith("{"):
        source, what = text, "its JSON"
    else:
        parser = _Block()
        parser.feed(text)
        parser.close()
        if not parser.found:
            raise UsageError(f"{_name(path)}: not an xivo-doctor report (no <script id=\"{BLOCK_ID}\"> result block)")
        source, what = "".join(parser.parts), "its embedded result"
    try:
        doc = json.loads(source)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{_name(path)}: {what} is not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})"
                         ) from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise UsageError(f"{_name(path)}: not an {SCHEMA} result (schema {_one_line(str(found))[:60]!r})")
    return doc


def load_report(path: str | Path) -> Report:
    """`report_from_dict(read_report(path))`, with the file named in any error."""
    doc = read_report(path)
    try:
        return report_from_dict(doc)
    except UsageError as exc:
        raise UsageError(f"{_name(path)}: {_one_line(str(exc))}") from None
