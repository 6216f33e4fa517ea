"""The `xivo-doctor/1` JSON document (DESIGN §5) built from a `Report`.

Place in the pipeline: presentation: reads the Report, never probes. The shape is a contract
(scripts and monitoring systems read it); `xivo_doctor/result-schema.json` describes it as a
JSON Schema (draft 2020-12). Extend it by adding keys, never by renaming or removing one.

Values JSON cannot represent (e.g. a masked `Secret` that slipped into evidence) are written as
their `str()`, which for secrets is the mask, never the secret.

`report_from_dict` is the inverse: it rebuilds the frozen Report from such a document (read back
from a JSON file or from the block embedded in an HTML report, see `readback.py`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from xivo_doctor.foundation.errors import UsageError
from xivo_doctor.foundation.results import SCHEMA, FixOut, Report, Result, Status, thaw
from xivo_doctor.render.output_file import write_output


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
        "changes": thaw(report.changes) if report.changes is not None else None,
    }


def to_json(report: Report) -> str:
    """The document as UTF-8-ready text: indent 2, trailing newline."""
    return json.dumps(report_to_dict(report), indent=2, ensure_ascii=False, default=str) + "\n"


def write_json(report: Report, dest: str) -> None:
    """Write the document to `dest`; `-` means standard output. A file is replaced atomically
    (render/output_file.py), so a monitoring system reading it never sees half a document."""
    write_output(dest, to_json(report))


_KIND_WORDS: dict[Any, str] = {str: "a string", (int, float): "a number", dict: "an object", list: "a list"}


def _field(doc: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str, default: Any = None) -> Any:
    """`doc[key]` if it is of `kind` (never a bool: JSON's true is not a number), `default` if it is
    absent and a default is given, else a UsageError."""
    value = doc.get(key)
    if value is None and default is not None:
        return default
    if not isinstance(value, kind) or isinstance(value, bool):
        raise UsageError(f"not an {SCHEMA} result: {where}{key} is missing or not {_KIND_WORDS[kind]}")
    return value


def _result_from_dict(doc: Any, where: str) -> Result:
    if not isinstance(doc, dict):
        raise UsageError(f"not an {SCHEMA} result: {where[:-1]} is not an object")
    status = _field(doc, "status", str, where)
    if status not in {s.value for s in Status}:
        raise UsageError(f"not an {SCHEMA} result: {where}status {status[:40]!r} is not one of "
                         + ", ".join(s.value for s in Status))
    fix = doc.get("fix")
    if fix is not None:
        fix_doc = _field(doc, "fix", dict, where)
        fix = FixOut(summary=_field(fix_doc, "summary", str, f"{where}fix."),
                     commands=tuple(str(c) for c in _field(fix_doc, "commands", list, f"{where}fix.")),
                     doc=str(fix_doc.get("doc", "")))
    return Result(
        check=_field(doc, "check", str, where),
        target=_field(doc, "target", str, where),
        status=Status(status),
        title=_field(doc, "title", str, where),
        message=str(doc.get("message", "")),
        evidence=doc.get("evidence") if isinstance(doc.get("evidence"), dict) else {},
        fix=fix,
        doc=str(doc.get("doc", "")),
        why=str(doc.get("why", "")),
        severity=str(doc.get("severity", "fail")),
        blocked_by=tuple(str(b) for b in _field(doc, "blocked_by", list, where, [])),
        facets=tuple(str(f) for f in _field(doc, "facets", list, where, [])),
        duration_s=float(_field(doc, "duration_s", (int, float), where, 0.0)),
    )


def report_from_dict(doc: Any) -> Report:
    """The frozen `Report` a `report_to_dict` document describes (the inverse of it), e.g. read
    back from a JSON file or an HTML report. `verdict`, `exit_code` and `counts` are derived from
    the results again, not trusted. Raises `UsageError` (one line) when `doc` is not one."""
    if not isinstance(doc, dict):
        raise UsageError(f"not an {SCHEMA} result: the document is not a JSON object")
    if doc.get("schema") != SCHEMA:
        raise UsageError(f"not an {SCHEMA} result: schema is {str(doc.get('schema'))[:40]!r}")
    results = _field(doc, "results", list, "")
    return Report(
        results=tuple(_result_from_dict(r, f"results[{i}].") for i, r in enumerate(results)),
        started_at=_field(doc, "started_at", str, ""),
        duration_s=float(_field(doc, "duration_s", (int, float), "")),
        vantage=_field(doc, "vantage", str, ""),
        topology=_field(doc, "topology", dict, ""),
        timeout_s=_field(doc, "timeout_s", (int, float), ""),
        doctor_version=_field(doc, "doctor_version", str, ""),
        changes=doc.get("changes") if isinstance(doc.get("changes"), dict) else None,
    )
