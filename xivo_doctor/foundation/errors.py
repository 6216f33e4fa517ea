"""The narrow errors the library raises. The CLI alone turns them into messages and exit codes.

Each has one documented outcome:

- `TopologyError`: the topology file is missing or invalid -> one line naming file, line, key and
  what to write instead; exit 3 (UNKNOWN: nothing could be checked).
- `ProbeError`: a data source could not be reached or parsed -> that item is `error`
  (could not check), never `fail`.
- `ProbeTimeout`: a `ProbeError` because the operation or the run's deadline ran out -> `error`
  with "timed out after S s".
- `NotApplicable`: raised by a check -> `skip` with the reason (e.g. phonebook sharing on 16.14+).
- `CannotCheckFromHere`: raised by a check when what it needs is out of reach from this vantage
  point -> `skip` saying which access would let it check.
- `CheckDefinitionError`: a check is declared wrongly (unknown dependency, cycle, duplicate id) ->
  one line, exit 3; a developer's mistake, never the admin's.
- `UsageError`: a command-line value that cannot work (unknown `--check` id, unknown `--node`) ->
  one line, exit 3.
"""

from __future__ import annotations


class DoctorError(Exception):
    """Base of every error the library raises on purpose."""


class TopologyError(DoctorError):
    """The topology file is missing or invalid."""

    def __init__(self, message: str, *, file: str = "", line: int | None = None, key: str = "") -> None:
        self.file = file
        self.line = line
        self.key = key
        self.detail = message
        where = file
        if file and line is not None:
            where = f"{file}:{line}"
        prefix = ": ".join(p for p in (where, key) if p)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class ProbeError(DoctorError):
    """A data source could not be reached or its answer could not be read."""

    def __init__(self, source: str, message: str) -> None:
        self.source = source
        self.detail = message
        super().__init__(f"{source}: {message}")


class ProbeTimeout(ProbeError):
    """The operation, or the whole run's deadline, ran out."""


class NotApplicable(DoctorError):
    """The check does not apply here; the reason says why."""


class CannotCheckFromHere(DoctorError):
    """The data the check needs is out of reach from where the doctor runs."""


class CheckDefinitionError(DoctorError):
    """A check is declared wrongly: a developer's mistake."""


class UsageError(DoctorError):
    """A command-line value that cannot work."""
