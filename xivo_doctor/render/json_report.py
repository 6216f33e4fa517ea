"""The `xivo-doctor/1` JSON document (DESIGN §5) built from a `Report`.

Place in the pipeline: presentation: reads the Report, never probes. The shape is a contract
(scripts and monitoring systems read it); `xivo_doctor/result-schema.json` describes it as a
JSON Schema (draft 2020-12). Extend it by adding keys, never by renaming or removing one.

Values JSON cannot represent (e.g. a masked `Secret` that slipped into evidence) are written as
their `str()`, which for secrets is the mask, never the secret.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from xivo_doctor.results import FixOut, Report, Result, thaw

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "result-schema.json"


def _fix_to_dict(fix: FixOut | None) -> dict[str, Any] | None:
    if fix is None:
        return None
    return {"summary": fix.summary, "commands": list(fix.commands), "doc": fix.doc}


def result_to_dict(result: Result) -> dict[str, Any]:
    """One entry of `results`, keys in contract order."""
    return {
        "check": result.check,
        "target": result.target,
        "item": result.item_id,
        "status": result.status.value,
        "severity": result.severity,
        "title": result.title,
        "message": result.message,
        "evidence": thaw(result.evidence),
        "fix": _fix_to_dict(result.fix),
        "doc": result.doc,
        "why": result.why,
        "blocked_by": list(result.blocked_by),
        "facets": list(result.facets),
        "duration_s": round(float(result.duration_s), 3),
    }


def report_to_dict(report: Report) -> dict[str, Any]:
    """The whole document as plain dicts and lists, ready for `json.dumps`."""
    return {
        "schema": report.schema,
        "verdict": report.verdict.value,
        "exit_code": report.exit_code,
        "started_at": report.started_at,
        "duration_s": round(float(report.duration_s), 3),
        "vantage": report.vantage,
        "timeout_s": report.timeout_s,
        "doctor_version": report.doctor_version,
        "topology": thaw(report.topology),
        "counts": report.counts(),
        "results": [result_to_dict(r) for r in report.results],
    }


def to_json(report: Report) -> str:
    """The document as UTF-8-ready text: indent 2, trailing newline."""
    return json.dumps(report_to_dict(report), indent=2, ensure_ascii=False, default=str) + "\n"


def write_json(report: Report, dest: str) -> None:
    """Write the document to `dest`; `-` means standard output.

    A file is replaced atomically (written beside it, then renamed), so a monitoring system
    reading it never sees half a document. Parent directories are created.
    """
    text = to_json(report)
    if dest == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    path = Path(dest)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_schema() -> dict[str, Any]:
    """The JSON Schema of `xivo-doctor/1`, as shipped with the package."""
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
