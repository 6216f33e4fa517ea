"""Finds the checks and validates their declarations as a whole.

Place in the pipeline: before collection. `xivo-doctor checks` lists what `discover()` finds;
the pytest plugin uses `order()` to run upstream checks first and `validate()` to refuse a
dependency on an unknown check or a cycle. Adding a check is adding a file under `checks/`:
nothing here names a check.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from xivo_doctor.check import CheckSpec, spec_of
from xivo_doctor.foundation.errors import CheckDefinitionError
from xivo_doctor.foundation.results import Report


def checks_dir() -> Path:
    """The folder holding the check modules: `xivo_doctor/checks` in an installed wheel (the
    repository's `checks/` mapped at build time), the repository's `checks/` in a checkout."""
    try:
        import xivo_doctor.checks as package
    except ImportError:
        return Path(__file__).resolve().parent.parent / "checks"
    return Path(next(iter(package.__path__)))


def check_files(folder: Path | None = None) -> list[Path]:
    folder = folder or checks_dir()
    return sorted(p for p in folder.glob("*.py") if not p.name.startswith("_") and p.name != "conftest.py")


def _load(path: Path):
    # One module per file, whatever folder holds it: two folders may hold a module of the same name.
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
    name = f"_xivo_doctor_registry_.{path.stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise CheckDefinitionError(f"{path}: cannot be imported as a check module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def discover(folder: Path | None = None) -> list[CheckSpec]:
    """Every declared check, validated, in dependency order."""
    specs: list[CheckSpec] = []
    for path in check_files(folder):
        module = _load(path)
        specs.extend(s for s in (spec_of(v) for v in vars(module).values()) if s is not None)
    validate(specs)
    return order(specs)


def validate(specs: Iterable[CheckSpec]) -> None:
    specs = list(specs)
    by_id: dict[str, CheckSpec] = {}
    for spec in specs:
        if spec.id in by_id:
            raise CheckDefinitionError(
                f"check id {spec.id!r} is declared twice ({by_id[spec.id].module} and {spec.module})"
            )
        by_id[spec.id] = spec
    for spec in specs:
        for dep, _facet in spec.dependencies():
            if dep not in by_id:
                raise CheckDefinitionError(f"check {spec.id} depends on unknown check {dep!r}")
    order(specs)


def order(specs: Iterable[CheckSpec]) -> list[CheckSpec]:
    """Upstream checks before their dependents; otherwise the given order. Raises on a cycle."""
    specs = list(specs)
    by_id = {s.id: s for s in specs}
    done: dict[str, CheckSpec] = {}
    visiting: list[str] = []

    def visit(spec: CheckSpec) -> None:
        if spec.id in done:
            return
        if spec.id in visiting:
            cycle = [*visiting[visiting.index(spec.id) :], spec.id]
            raise CheckDefinitionError(f"check dependency cycle: {' -> '.join(cycle)}")
        visiting.append(spec.id)
        for dep, _facet in spec.dependencies():
            if dep in by_id:  # a dependency outside this run blocks nothing (it was deselected)
                visit(by_id[dep])
        visiting.pop()
        done[spec.id] = spec

    for spec in specs:
        visit(spec)
    return list(done.values())


def describe(report: Report, folder: Path | None = None) -> Report:
    """A report read back from a file (JSON keeps what was seen, not what the checks declare of it)
    with each result described again by its check: metrics, the link it judges, facts. A check
    this doctor does not know leaves its results as they are."""
    specs = {s.id: s for s in discover(folder)}
    names = [str(x.get("name", "")) for x in report.topology.get("xivos", ()) if isinstance(x, Mapping)]
    results = tuple(specs[r.check].describe(r, names) if r.check in specs else r for r in report.results)
    return dataclasses.replace(report, results=results)
