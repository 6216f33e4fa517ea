"""How long the doctor waits for an SSH login (probes/transport/ssh.py), with the real ssh client.

A server that takes the connection and sends no banner is silent: ssh's ConnectTimeout (the probe
timeout) ends it. A server that sent its banner is there, and what follows (key exchange, the key's
check, sshd's session) is CPU on both hosts: the doctor gives it at least LOGIN_FLOOR, so that a busy
host (Nagios starting ten plugins at once) is not called silent. The CI once saw exactly that.
"""

from __future__ import annotations

import shutil
import time

import pytest

from servers import Hostile, silent
from xivo_doctor.foundation.deadline import Deadline
from xivo_doctor.probes.transport import ssh
from xivo_doctor.topology.model import SshAccess, Xivo

pytestmark = pytest.mark.skipif(shutil.which("ssh") is None, reason="no ssh client (openssh-client)")


def banner_then_nothing(server: Hostile, conn) -> None:
    """Says it is an SSH server, then never goes on with the key exchange."""
    server.send(conn, b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")
    server.stopped.wait()


def _login(behave, timeout: float) -> tuple[BaseException | None, float]:
    """A command on a XiVO whose SSH port is a server behaving so: (the error, seconds it took)."""
    server = Hostile("127.0.0.1", 0, behave)
    xivo = Xivo(name="xivo-1", address="127.0.0.1",
                ssh=SshAccess(port=server.sock.getsockname()[1], accept_new_host_key=True))
    links = ssh.SshLinks(Deadline(30), timeout)
    began = time.monotonic()
    try:
        links.run(xivo, ["true"], what="a command")
    except Exception as exc:
        return exc, time.monotonic() - began
    finally:
        server.close()
    return None, time.monotonic() - began


def test_a_server_that_answered_its_banner_gets_the_login_floor(monkeypatch):
    monkeypatch.setattr(ssh, "LOGIN_FLOOR", 2.5)
    error, took = _login(banner_then_nothing, timeout=1)
    assert error is not None and "no SSH login within 2.5 s" in str(error), error
    assert 2.3 < took < 4, took  # the floor, not the probe timeout of 1 s


def test_a_server_without_a_banner_is_silent_at_the_probe_timeout(monkeypatch):
    monkeypatch.setattr(ssh, "LOGIN_FLOOR", 5)
    error, took = _login(silent, timeout=1)
    assert error is not None and "no SSH answer from 127.0.0.1" in str(error), error
    assert took < 2.5, took  # ssh's ConnectTimeout=1 covers the banner wait, whatever the floor
