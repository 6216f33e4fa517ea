"""Run history: the last results kept in a directory, and what changed since the previous run.

Place in the pipeline: after evaluation, before presentation. The CLI (`run --history DIR`,
`nagios --history DIR`) hands the finished, already redacted Report to `with_changes`, which
reads the previous runs, fills `Report.changes` and keeps this run; every renderer then shows
the changes from the Report alone.

One file per run, `run-<started_at as 20240502T081112Z>-<pid>-<key>.json`, holding the
`xivo-doctor/1` document `render/json_report.py` writes (so a kept run is also a JSON report).
`<key>` is the run's `runlock.run_key` (topology file and selection): runs of another topology or
another `--check`/`--node` selection share the directory without being compared. The directory
is bounded: at most `keep` runs per key (this one included), the oldest removed, and no more
than `keep - 1` files read per run.

A kept file that cannot be read back (truncated, edited, another version's) is not a reason to
lose the run: it is skipped and named in `changes["ignored"]`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import itertools
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from xivo_doctor.foundation.errors import DoctorError, UsageError
from xivo_doctor.foundation.results import Report, Status
from xivo_doctor.render.json_report import report_from_dict, to_json
from xivo_doctor.render.output_file import write_output

DEFAULT_KEEP = 20
MAX_KEEP = 1000
MAX_FILE_BYTES = 16 * 1024 * 1024  # a 10-XiVO result is about 230 kB; anything this big is not one of ours
NOT_PASSING = frozenset({Status.FAIL, Status.WARN, Status.ERROR})
_NAME = re.compile(r"^run-(?P<stamp>\d{8}T\d{6}Z)-(?P<pid>\d+(?:\.\d+)?)-(?P<key>[0-9a-f]{16})\.json$")


class HistoryError(DoctorError):
    """The history directory cannot be created, read or written."""


def report_key(report: Report) -> str:
    """A key for a report whose run key is not known: its topology (name and XiVOs) and its
    selection as the items show it (the checks that ran, the XiVOs with items of their own)."""
    xivos = report.topology.get("xivos") or ()
    names = sorted(str(x.get("name")) for x in xivos if isinstance(x, Mapping))
    checks = sorted({r.check for r in report.results})
    own = sorted({r.target for r in report.results if "->" not in r.target and r.target != "*"})
    text = "\0".join([str(report.topology.get("name") or ""), ",".join(names), ",".join(checks), ",".join(own)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def ensure_directory(directory: Path) -> Path:
    """`directory`, created if missing, checked writable; else one line naming it and the fix.
    The CLI calls it before the run so that a wrong `--history` costs no probing."""
    fix = f"create it writable by this user (mkdir -p {directory}) or choose another --history DIR"
    if directory.exists() and not directory.is_dir():
        raise HistoryError(f"cannot keep the history in {directory}: it exists and is not a directory; {fix}")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HistoryError(f"cannot keep the history in {directory}: {exc.strerror or exc}; {fix}") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise HistoryError(f"cannot keep the history in {directory}: not writable by this user; {fix}")
    return directory


def _stamp(started_at: str) -> str:
    """`started_at` in UTC as a sortable file-name part; now when it is not an ISO 8601 time."""
    try:
        when = dt.datetime.fromisoformat(started_at)
    except ValueError:
        when = dt.datetime.now(dt.UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def _kept(directory: Path, key: str) -> list[Path]:
    """This key's files, oldest first: by start time, then (runs in the same second) by when
    they were written."""
    found = []
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                match = _NAME.match(entry.name)
                if match is None or match["key"] != key or not entry.is_file(follow_symlinks=False):
                    continue
                try:
                    written = entry.stat(follow_symlinks=False).st_mtime_ns
                except OSError:
                    written = 0
                found.append((match["stamp"], written, entry.name))
    except OSError as exc:
        raise HistoryError(f"cannot read the history in {directory}: {exc.strerror or exc}; "
                           f"make it readable by this user or choose another --history DIR") from None
    return [directory / entry[2] for entry in sorted(found)]


def _read(path: Path) -> Report | None:
    """A kept run, or None when it cannot be read back."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            return None
        return report_from_dict(json.loads(data.decode("utf-8")))
    except (OSError, UnicodeDecodeError, ValueError, UsageError, RecursionError, TypeError, AttributeError):
        return None


def _statuses(report: Report) -> dict[str, Status]:
    return {r.item_id: r.status for r in report.results}


def compare(current: Report, previous: Sequence[Report]) -> dict[str, Any]:
    """`changes` for `current` given the kept runs before it, oldest first (see Report.changes).

    - new failures: not passing now (fail, warn, error), and passing, skipped or absent in the
      previous run;
    - resolved: not passing in the previous run, passing or skipped now;
    - flapping: the status changed at least twice over these runs (an item absent from a run
      is compared across the gap).
    On the first run there is nothing to compare: the three lists are empty.
    """
    now = _statuses(current)
    runs = [_statuses(r) for r in previous] + [now]
    new_failures: list[str] = []
    resolved: list[str] = []
    if previous:
        before = runs[-2]
        new_failures = [i for i, s in now.items() if s in NOT_PASSING and before.get(i) not in NOT_PASSING]
        resolved = [i for i, s in before.items() if s in NOT_PASSING and now.get(i) in (Status.PASS, Status.SKIP)]
    flapping = []
    for item in {i for statuses in runs for i in statuses}:
        seen = [statuses[item] for statuses in runs if item in statuses]
        if sum(a != b for a, b in itertools.pairwise(seen)) >= 2:
            flapping.append(item)
    return {
        "previous": previous[-1].started_at if previous else None,
        "runs": len(runs),
        "new_failures": sorted(new_failures),
        "resolved": sorted(resolved),
        "flapping": sorted(flapping),
    }


def with_changes(report: Report, directory: Path, *, keep: int = DEFAULT_KEEP, key: str | None = None) -> Report:
    """`report` with `changes` filled from the runs kept in `directory`; this run is kept there
    too (written atomically) and the oldest runs beyond `keep` (this one included) removed.

    `key` is the run's `runlock.run_key(...)`; without it, `report_key(report)`. Raises
    `UsageError` for a `keep` out of 2..1000 and `HistoryError` (one line naming the directory and
    the fix) when the directory cannot be created or written.
    """
    if not 2 <= keep <= MAX_KEEP:
        raise UsageError(f"history keep {keep}: out of range; keep between 2 and {MAX_KEEP} runs")
    directory = ensure_directory(Path(directory))
    key = str(key) if key is not None else report_key(report)
    if not re.fullmatch(r"[0-9a-f]{16}", key):
        key = hashlib.sha256(key.encode()).hexdigest()[:16]
    previous, ignored = [], []
    for path in _kept(directory, key)[-(keep - 1):]:
        run = _read(path)
        if run is None:
            ignored.append(path.name)
        else:
            previous.append(run)
    changes = compare(report, previous)
    changes["ignored"] = ignored
    report = dataclasses.replace(report, changes=changes)
    _store(report, directory, key)
    _prune(directory, key, keep)
    return report


def _store(report: Report, directory: Path, key: str) -> None:
    # One process keeping several runs that started in the same second (a long-lived caller):
    # `<pid>.2`, `<pid>.3`, ... instead of replacing the one before.
    stamp, pid = _stamp(report.started_at), os.getpid()
    path = directory / f"run-{stamp}-{pid}-{key}.json"
    n = 1
    while path.exists():
        n += 1
        path = directory / f"run-{stamp}-{pid}.{n}-{key}.json"
    try:
        write_output(path, to_json(report))
    except OSError as exc:
        raise HistoryError(f"cannot keep the history in {directory}: {exc.strerror or exc}; "
                           f"make it writable by this user or choose another --history DIR") from None


def _prune(directory: Path, key: str, keep: int) -> None:
    for path in _kept(directory, key)[:-keep]:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise HistoryError(f"cannot remove an old run {path}: {exc.strerror or exc}; "
                               f"make {directory} writable by this user") from None
