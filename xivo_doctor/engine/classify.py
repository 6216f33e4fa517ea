"""Turns what happened to one item into a `Result`: the evaluation half of the result model.

Place in the pipeline: the pytest plugin hands over the exception an item raised (if any);
this module decides its status without knowing pytest:

- no exception -> `pass`
- `AssertionError` raised in the check's own module -> `fail`, or `warn` for a check of severity
  `warn`; raised elsewhere (a probe, a library) it is no verdict on the XiVO: an internal error
- `ProbeError` (unreachable or unparsable source, deadline) -> `error`: could not check
- `NotApplicable` / `CannotCheckFromHere` -> `skip` with the reason
- blocked by a failed upstream -> `skip` with `blocked_by`
- any other exception -> `error` naming it as an internal error of the check (a bug to report)

Whatever the status, the result then carries what the check declares of every outcome (its
metrics, the link it judges and its view of each peer, facts about XiVOs: `CheckSpec.describe`),
so that no renderer needs to know the check.
"""

from __future__ import annotations

from collections.abc import Sequence

from xivo_doctor.check import CheckSpec, Evidence, FixContext
from xivo_doctor.foundation.errors import CannotCheckFromHere, NotApplicable, ProbeError
from xivo_doctor.foundation.results import Result, Status


def assertion_text(exc: AssertionError) -> str:
    """The check's own words: pytest's assertion rewriting appends '\\nassert ...' detail."""
    text = str(exc)
    head = text.split("\nassert ", 1)[0].strip()
    return head or "assertion failed (the check gave no message)"


def _raised_in(module: str, exc: BaseException) -> str | None:
    """Where `exc` was raised ("path:line"), when that is outside `module`; None when inside it (or
    unknown: an exception never raised, as in tests, counts as the check's own)."""
    tb = exc.__traceback__
    if tb is None or not module:
        return None
    while tb.tb_next is not None:
        tb = tb.tb_next
    frame = tb.tb_frame
    if frame.f_globals.get("__name__") == module:
        return None
    return f"{frame.f_code.co_filename}:{tb.tb_lineno}"


def classify(
    spec: CheckSpec,
    target: str,
    *,
    exc: BaseException | None,
    evidence: Evidence | None,
    fix_context: FixContext,
    blocked_by: Sequence[str] = (),
    duration_s: float = 0.0,
) -> Result:
    """The item's `Result`, described by its check's declarations."""
    xivos = [x.name for x in fix_context.topology.xivos]
    return spec.describe(_status(spec, target, exc=exc, evidence=evidence, fix_context=fix_context,
                                 blocked_by=blocked_by, duration_s=duration_s), xivos)


def _status(
    spec: CheckSpec,
    target: str,
    *,
    exc: BaseException | None,
    evidence: Evidence | None,
    fix_context: FixContext,
    blocked_by: Sequence[str],
    duration_s: float,
) -> Result:
    evidence = evidence if evidence is not None else Evidence()
    base = {
        "check": spec.id,
        "target": target,
        "title": spec.title,
        "doc": spec.doc,
        "why": spec.why,
        "severity": spec.severity,
        "evidence": dict(evidence),
        "duration_s": round(duration_s, 4),
    }
    if blocked_by:
        names = ", ".join(blocked_by)
        return Result(status=Status.SKIP, message=f"blocked by {names}", blocked_by=tuple(blocked_by), **base)
    if exc is None:
        return Result(status=Status.PASS, message=evidence.summary, **base)
    elsewhere = _raised_in(spec.module, exc) if isinstance(exc, AssertionError) else None
    if elsewhere is not None:  # a broken invariant of the doctor's, not the check's judgement of a XiVO
        return Result(status=Status.ERROR, message=f"internal error in check {spec.id}: AssertionError at "
                      f"{elsewhere} (please report this)", **base)
    if isinstance(exc, AssertionError):
        status = Status.WARN if spec.severity == "warn" else Status.FAIL
        fix = spec.fill_fix(FixContext(**{**vars(fix_context), "evidence": dict(evidence)}))
        facets = tuple(evidence.facets)
        return Result(status=status, message=assertion_text(exc), fix=fix, facets=facets, **base)
    if isinstance(exc, ProbeError):
        return Result(status=Status.ERROR, message=f"could not check: {exc}", **base)
    if isinstance(exc, NotApplicable):
        return Result(status=Status.SKIP, message=f"not applicable: {exc}", **base)
    if isinstance(exc, CannotCheckFromHere):
        return Result(status=Status.SKIP, message=f"cannot check from here: {exc}", **base)
    name = type(exc).__name__
    return Result(
        status=Status.ERROR,
        message=f"internal error in check {spec.id}: {name}: {exc} (please report this)",
        **base,
    )
