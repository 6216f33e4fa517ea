"""What the admin reads is what the check wrote: with no secret in the topology, the redactor
changes nothing in any text a check can emit (its messages, fix summaries and commands, evidence
words). Before issue 13 the redactor masked the word after "token:" in a sentence: ctid-advertise's
fix read "...without a token: ******** the anonymous token read...".

Every string literal of every module under checks/ is taken, the parts of an f-string joined with
`<value>` where a value goes (a placeholder, as the fixes print them), and passed through a
redactor that knows no secret.
"""

from __future__ import annotations

import ast

import pytest

from conftest import REPO
from xivo_doctor.foundation.redact import Redactor

CHECK_FILES = sorted((REPO / "checks").glob("*.py"))


def texts(path) -> list[tuple[int, str]]:
    found = []
    tree = ast.parse(path.read_text())
    inside = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            parts = [v.value if isinstance(v, ast.Constant) else "<value>" for v in node.values]
            found.append((node.lineno, "".join(str(p) for p in parts)))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in inside:
            found.append((node.lineno, node.value))
    return found


@pytest.mark.parametrize("path", CHECK_FILES, ids=[p.name for p in CHECK_FILES])
def test_no_word_of_a_check_is_masked_when_there_is_no_secret(path):
    redactor = Redactor()
    changed = [(line, text, redactor.text(text)) for line, text in texts(path) if redactor.text(text) != text]
    assert not changed, "\n".join(f"{path.name}:{line}: {text!r} -> {shown!r}" for line, text, shown in changed)


def test_the_walk_sees_the_texts_that_matter():
    """The sentence of ctid-advertise's fix that the old redactor broke is among the texts walked."""
    walked = " ".join(text for _, text in texts(REPO / "checks" / "_ctid_advertise_fix.py"))
    assert "datacenter without a token: let the anonymous token" in walked
