"""Meta-test: a third-party package is imported before any of its submodules, in the modules the
run's threads import.

Why: the run's slow reads start in threads before pytest loads (probes/prefetch.py), so modules are
first imported by several threads at once. CPython imports a submodule's parent while holding the
submodule's import lock: a thread running `from requests.auth import HTTPDigestAuth` first holds
`requests.auth` and waits for `requests`, while another thread inside `requests/__init__` waits for
`requests.auth`. The import system breaks that deadlock by handing one thread a partially
initialised module: `xivo-doctor nagios --check directory-source` answered "internal error:
cannot import name '_basic_auth_str' from partially initialized module 'requests.auth'" in 13 of
30 runs on the lab. Importing `requests` first (a plain wait on its lock, holding none it needs)
made it 0 of 30. This test keeps those modules, and their functions' local imports, that way.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from conftest import REPO

OURS = {"xivo_doctor", "checks"}


def third_party(name: str) -> bool:
    top = name.split(".")[0]
    return top not in sys.stdlib_module_names and top not in OURS and top != "__future__"


def _imports(nodes) -> list[tuple[int, str, bool]]:
    """(line, package, safe) of each import among `nodes`: `import a` and `from a import b` load the
    top package first (safe); `import a.b` and `from a.b import c` lock `a.b`, then load `a`."""
    out = []
    for node in sorted((n for n in nodes if isinstance(n, (ast.Import, ast.ImportFrom))), key=lambda n: n.lineno):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, "." not in a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module, "." not in node.module))
    return [i for i in out if third_party(i[1])]


def offences(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    inside = {id(n) for f in functions for n in ast.walk(f) if n is not f}
    module_level = _imports(n for n in ast.walk(tree) if id(n) not in inside)
    # A function runs after its module has run: every module-level import counts for it.
    everywhere = {name.split(".")[0] for _, name, safe in module_level if safe}
    found = []
    for scope, known in [(module_level, set()), *[(_imports(ast.walk(f)), set(everywhere)) for f in functions]]:
        for line, name, safe in scope:
            top = name.split(".")[0]
            if safe:
                known.add(top)
            elif top not in known:
                found.append(f"{path.relative_to(REPO)}:{line}: imports {name} before `import {top}`")
    return sorted(set(found))


def test_every_third_party_package_is_imported_before_its_submodules():
    # What the run's threads import: the probes (prefetch, the Nagios plugin's worker) and the checks.
    # The CLI's and renderers' imports (rich, jinja2) happen in the main thread alone.
    modules = sorted([*(REPO / "xivo_doctor" / "probes").rglob("*.py"), *(REPO / "checks").glob("*.py"),
                      *(REPO / "xivo_doctor" / "engine").glob("*.py")])
    assert len(modules) > 25
    bad = [o for m in modules for o in offences(m)]
    assert not bad, "\n".join(bad)


def test_the_rule_catches_a_submodule_imported_first():
    sample = REPO / "tests" / "data" / "import-order-sample.txt"  # .txt: ruff would reorder it
    assert offences(sample) == ["tests/data/import-order-sample.txt:4: imports requests.auth before `import requests`",
                                "tests/data/import-order-sample.txt:9: imports pika.exceptions before `import pika`"]
