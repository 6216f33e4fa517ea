"""The connect loop port-reachable runs on a XiVO over SSH (probes/transport/tcp_over_ssh.py), run
here by the same bash against real sockets: its lines read back as the local scan reads a connect."""

from __future__ import annotations

import socket

import pytest

from xivo_doctor.foundation.errors import ProbeError
from xivo_doctor.probes.transport import tcp
from xivo_doctor.probes.transport.commands import run_bounded
from xivo_doctor.probes.transport.tcp_over_ssh import _outcome, scan_from
from xivo_doctor.topology.model import Xivo


class HereInsteadOfSsh:
    """Runs the command on this machine: what sshd would do on the XiVO, without the SSH."""

    def __init__(self, argv_seen: list | None = None) -> None:
        self.seen = argv_seen if argv_seen is not None else []

    def run(self, xivo, argv, *, what, timeout):
        self.seen.append(argv)
        return run_bounded(argv, timeout, merge_stderr=False)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_open_and_refused_ports_read_back_with_the_xivo_named():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        listening, closed = server.getsockname()[1], _free_port()
        runner = HereInsteadOfSsh()
        found = scan_from(runner, Xivo(name="xivo-2", address="127.0.0.2"),
                          [("127.0.0.1", listening), ("127.0.0.1", closed)], 2)
    assert found[("127.0.0.1", listening)].state == tcp.OPEN
    assert found[("127.0.0.1", closed)].state == tcp.REFUSED
    assert found[("127.0.0.1", closed)].detail == "connection refused (from xivo-2)"
    assert len(runner.seen) == 1  # every target in one command


@pytest.mark.parametrize(("code", "message", "state"), [
    (124, "", tcp.TIMEOUT),
    (1, "bash: connect: No route to host bash: line 1: /dev/tcp/10.9.9.9/5672: No route to host", tcp.UNREACHABLE),
    (1, "bash: nowhere.invalid: Name or service not known", tcp.UNRESOLVED),
])
def test_bash_words_map_to_the_scans_states(code, message, state):
    assert _outcome(code, message, 2)[0] == state


def test_an_answer_without_a_line_per_target_is_a_probe_error():
    class Mute(HereInsteadOfSsh):
        def run(self, xivo, argv, *, what, timeout):
            return run_bounded(["true"], timeout, merge_stderr=False)

    with pytest.raises(ProbeError, match=r"no answer for 127\.0\.0\.1:9"):
        scan_from(Mute(), Xivo(name="xivo-2", address="127.0.0.2"), [("127.0.0.1", 9)], 1)
