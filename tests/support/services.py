"""Which tests need the lab, a real service, or network peers and processes of their own, said once,
on the fixtures that start them.

A fixture that starts the lab, RabbitMQ, PostgreSQL, serf, Nagios Core or Chromium, or servers on
127.10.x.y playing a XiVO's part (black holes, hostile peers, stand-in APIs) and the doctor as a
process, is decorated `@starts_services`; tests/conftest.py marks every test that uses one
(directly or through another fixture) `lab`. `python3 -m pytest -m "not lab"` is then the fast
lane: the doctor's own code, in-process, no waiting on a peer's timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)
ATTRIBUTE = "starts_services"


def starts_services(function: F) -> F:
    """Decorate the fixture's function (under `@pytest.fixture`)."""
    setattr(function, ATTRIBUTE, True)
    return function


def needs_services(item) -> bool:
    """Does this test item use, at any depth, a fixture that starts services?"""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(getattr(definition.func, ATTRIBUTE, False)
               for name in item.fixturenames for definition in info.name2fixturedefs.get(name, ()))
