"""Meta-tests: every check is declared completely and documented; the README's commands are true."""

from __future__ import annotations

import ast
import itertools
import re
from pathlib import Path

import pytest

from conftest import REPO
from xivo_doctor.check import Fix
from xivo_doctor.cli.main import build_parser
from xivo_doctor.engine import registry

MANUAL = REPO.parent / "shared" / "docs"
README = (REPO / "README.md").read_text()
SPECS = registry.discover()


def section_ids(page: Path) -> set[str]:
    """Section ids as docutils makes them: the title lower-cased, non-alphanumerics as '-'."""
    lines = page.read_text().splitlines()
    ids = set()
    for title, underline in itertools.pairwise(lines):
        if title.strip() and re.fullmatch(r"([=\-~*^\"#+])\1{2,}", underline.strip()) and len(underline) >= len(title):
            ids.add(re.sub(r"[^a-z0-9]+", "-", title.strip().lower()).strip("-"))
    return ids


def test_there_are_checks_and_their_ids_are_unique():
    assert SPECS
    registry.validate(SPECS)  # unique ids, known dependencies, no cycle


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
def test_each_check_is_fully_declared(spec):
    assert spec.title.strip() and spec.why.strip()
    assert isinstance(spec.fix, Fix) or callable(spec.fix)
    assert spec.severity in ("fail", "warn")
    for dep, _facet in spec.dependencies():
        assert dep in {s.id for s in SPECS}


@pytest.mark.skipif(not MANUAL.is_dir(), reason="the manual pages (../shared/docs) are not beside this checkout")
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
def test_each_doc_reference_names_a_real_manual_section(spec):
    page, _, section = spec.doc.partition("#")
    assert (MANUAL / page).is_file(), f"{spec.id}: no manual page {page}"
    assert section in section_ids(MANUAL / page), f"{spec.id}: no section #{section} in {page}"


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
def test_each_check_is_in_the_readme(spec):
    assert f"`{spec.id}`" in README, f"README does not document check {spec.id}"


def test_each_command_is_in_the_readme():
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for name in commands:
        assert f"xivo-doctor {name}" in README, f"README does not document `xivo-doctor {name}`"


def test_ci_runs_exactly_the_readmes_test_command():
    first_block = README.split("```sh\n", 1)[1].split("```", 1)[0].strip().splitlines()
    assert (len(first_block) == 2 and "demo" in first_block[0]) or "xivo-doctor" in first_block[0]
    test_command = first_block[1]
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == test_command


def test_every_module_says_its_place_in_the_pipeline():
    for path in [*REPO.glob("xivo_doctor/**/*.py"), *REPO.glob("checks/*.py")]:
        assert ast.get_docstring(ast.parse(path.read_text())), f"{path.relative_to(REPO)} has no module docstring"


def test_only_the_plugin_knows_pytest():
    for path in [*REPO.glob("xivo_doctor/**/*.py")]:
        if path.name == "plugin.py":
            continue
        tree = ast.parse(path.read_text())
        imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not imported & {"pytest", "_pytest"}, f"{path.relative_to(REPO)} imports pytest"
