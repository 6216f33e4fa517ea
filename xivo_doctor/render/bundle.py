"""The support bundle (`--bundle FILE.tar.gz`): everything a support engineer needs, in one file.

Place in the pipeline: presentation and packaging, after the run. It renders the (already
redacted) `Report` with the HTML, JSON and JUnit renderers, adds the topology file's text, and
what `probes.troubleshoot` collected on the XiVOs this host can read (log tails, the manual's
troubleshooting commands), and packs them as a .tar.gz:

    xivo-doctor-<YYYYmmdd-HHMMSS>/      (the run's start, UTC)
      report.html  result.json  junit.xml  topology.yml
      logs/<xivo>/<name>.log  commands/<xivo>/<slug>.txt  (first line: the command line)
      MISSING.txt  (what could not be collected, and why)
      manifest.json  (schema xivo-doctor-bundle/1: version, command line, verdict, each file's size and sha256)

Members are regular files only (mode 0644, owner 0:0), named under the top folder only. The
archive is written beside `dest` and renamed, so a reader never sees half of it; it is created
mode 0600, as the logs it holds may be readable by root only on the XiVO. Every text in it was
redacted: the report upstream, the rest here (`redactor.text`). A write error raises one-line
`DoctorError` naming the path; a part that cannot be collected is listed in MISSING.txt instead.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import json
import os
import re
import shlex
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from xivo_doctor import __version__
from xivo_doctor.foundation.errors import DoctorError
from xivo_doctor.foundation.results import Report
from xivo_doctor.probes import troubleshoot
from xivo_doctor.render.json_report import to_json
from xivo_doctor.render.junit import to_junit_xml
from xivo_doctor.render.output_file import destination, in_place
from xivo_doctor.topology.model import Topology

if TYPE_CHECKING:
    from xivo_doctor.foundation.deadline import Deadline
    from xivo_doctor.foundation.redact import Redactor

SCHEMA = "xivo-doctor-bundle/1"
MEMBER_MODE = 0o644
ARCHIVE_MODE = 0o600
MAX_TOPOLOGY_BYTES = 1_000_000
_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]")


@dataclass(frozen=True)
class BundleSummary:
    """What was written, for the CLI's one line (`bundle: PATH (N files, S bytes, M missing)`)."""

    path: Path
    top: str  # the archive's top folder
    files: tuple[str, ...]  # paths inside the top folder, in archive order
    size: int  # bytes of the .tar.gz
    missing: tuple[str, ...]  # one line per part that could not be collected

    def __str__(self) -> str:
        return f"{len(self.files)} files, {self.size} bytes, {len(self.missing)} missing"


def write_bundle(report: Report, dest: str | os.PathLike[str], *, topology: Topology, redactor: Redactor,
                 argv: Sequence[str], collect: bool = True, deadline: Deadline | None = None) -> BundleSummary:
    """Write the bundle of `report` (redacted already, as every renderer receives it) to `dest`.

    `argv` is the command line shown in the manifest (redacted here). `collect=False` leaves out the
    logs and commands; `deadline` bounds each troubleshooting command (with its own 5 s limit)."""
    if os.fspath(dest) == "-":
        raise DoctorError("--bundle -: a bundle is an archive file, not a stream; give a file name, "
                          "e.g. --bundle support.tar.gz")
    path = Path(dest)
    created = dt.datetime.now(dt.UTC).replace(microsecond=0)
    top = f"xivo-doctor-{_compact(report.started_at)}"
    files: dict[str, bytes] = {}
    missing: list[str] = []

    html = _html(report)
    if html is None:
        missing.append("report.html: the HTML renderer (xivo_doctor.render.html.document) is not installed")
    else:
        files["report.html"] = html.encode()
    files["result.json"] = to_json(report).encode()
    files["junit.xml"] = to_junit_xml(report).encode()
    try:
        files["topology.yml"] = redactor.text(_read_topology(topology.source)).encode()
    except OSError as exc:
        missing.append(f"topology.yml: cannot read {topology.source}: {troubleshoot.os_reason(exc)}")

    collected: list[dict[str, object]] = []
    if collect:
        found = troubleshoot.collect(topology, redactor, deadline=deadline)
        for xivo, why in found.not_collected:
            missing.append(f"{redactor.text(xivo)}: logs and commands not collected: {why}")
        for item in found.items:
            collected.append(_add_item(files, missing, item, redactor))
    else:
        missing.append("logs and commands: not collected (collection was turned off)")

    files["MISSING.txt"] = _missing_text(missing).encode()
    manifest = {
        "schema": SCHEMA,
        "doctor_version": __version__,
        "created_at": created.isoformat(),
        "command_line": redactor.text(shlex.join(argv)),
        "verdict": report.verdict.value,
        "exit_code": report.exit_code,
        "started_at": report.started_at,
        "files": [{"path": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                  for name, data in files.items()],
        "collected": collected,
        "missing": missing,
    }
    files["manifest.json"] = (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode()
    size = _write_tar(path, top, files, int(created.timestamp()))
    return BundleSummary(path, top, tuple(files), size, tuple(missing))


def _html(report: Report) -> str | None:
    try:
        from xivo_doctor.render.html.document import render_html  # optional: its own helper builds it
    except ModuleNotFoundError as exc:
        if exc.name != "xivo_doctor.render.html.document":
            raise
        return None
    return render_html(report)


def _read_topology(source: Path) -> str:
    with open(source, "rb") as file:
        data = file.read(MAX_TOPOLOGY_BYTES)
    return data.decode("utf-8", "replace")


def _add_item(files: dict[str, bytes], missing: list[str], item: troubleshoot.Collected,
              redactor: Redactor) -> dict[str, object]:
    """Put one collected log or command output in `files`; note it in `missing` if incomplete."""
    folder = "logs" if item.kind == "log" else "commands"
    xivo = _component(redactor.text(item.xivo))
    name = f"{folder}/{xivo}/{_component(item.name)}"
    if item.text is not None:
        if item.kind == "command":
            body = f"$ {item.source}\n{item.text}"
            notes = [f"output cut after {troubleshoot.MAX_BYTES // 1024} kB"] if item.truncated else []
            notes += [item.problem] if item.problem else []
            if notes and not body.endswith("\n"):
                body += "\n"
            body += "".join(f"# xivo-doctor: {note}\n" for note in notes)
        else:
            body = item.text
        files[name] = body.encode()
    if item.problem:
        missing.append(f"{xivo}: {item.kind} {item.source}: {item.problem}")
    return {"xivo": xivo, "kind": item.kind, "source": item.source,
            "file": name if item.text is not None else None, "problem": item.problem, "truncated": item.truncated}


def _missing_text(missing: list[str]) -> str:
    head = "# What the support bundle could not collect, and why (one line each).\n"
    return head + ("".join(line + "\n" for line in missing) if missing else "Nothing: everything was collected.\n")


def _component(text: str) -> str:
    """One safe path component: no separator, no leading dot (so never `.` or `..`)."""
    return _UNSAFE.sub("_", text).lstrip(".") or "_"


def _compact(started_at: str) -> str:
    """`2026-11-25T09:06:34+00:00` -> `20261125-090634` (UTC), as the demo's report names."""
    try:
        moment = dt.datetime.fromisoformat(started_at)
    except ValueError:
        return _component(re.sub(r"\D", "", started_at)[:14] or "unknown")
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y%m%d-%H%M%S")


def _write_tar(path: Path, top: str, files: dict[str, bytes], mtime: int) -> int:
    tmp: str | None = None
    try:
        path = destination(path)
        if in_place(path):  # /dev/null, a FIFO: written into, never renamed over (render/output_file.py)
            data = io.BytesIO()
            _archive(data, top, files, mtime)
            with open(path, "wb") as raw:
                raw.write(data.getvalue())
            return len(data.getvalue())
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as raw:
            _archive(raw, top, files, mtime)
            raw.flush()
            os.fsync(raw.fileno())
        os.chmod(tmp, ARCHIVE_MODE)
        os.replace(tmp, path)
        tmp = None
        return path.stat().st_size
    except OSError as exc:
        raise DoctorError(f"cannot write the bundle {path}: {exc.strerror or exc}; choose a writable path") from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def _archive(raw, top: str, files: dict[str, bytes], mtime: int) -> None:
    """The gzipped tar of `files` under `top/`, written to `raw`."""
    with gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=mtime) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            tar.addfile(_member(top, name, len(data), mtime), io.BytesIO(data))


def _member(top: str, name: str, size: int, mtime: int) -> tarfile.TarInfo:
    full = f"{top}/{name}"
    # Names are built from safe components; this guards the invariant a reader's `tar x` relies on.
    if full.startswith("/") or ".." in full.split("/") or "" in full.split("/"):
        raise ValueError(f"unsafe member name {full!r}")
    info = tarfile.TarInfo(full)
    info.size, info.mtime, info.mode, info.type = size, mtime, MEMBER_MODE, tarfile.REGTYPE
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info
