"""Hand-made Reports for renderer tests: every status, a blocked skip, a fix with commands,
nested evidence, and text from an "inspected system" that looks like markup or XML."""

from __future__ import annotations

from xivo_doctor.results import FixOut, Report, Result, Status

TOPOLOGY = {
    "name": "lab",
    "file": "/tmp/lab/topology.yml",
    "federation": "full-mesh",
    "xivos": [
        {"name": "xivo-1", "address": "127.10.0.1", "version": "2023.05"},
        {"name": "xivo-2", "address": "127.10.0.2", "version": "2023.05"},
    ],
    "pairs": ["xivo-1->xivo-2", "xivo-2->xivo-1"],
}

TRICKY = 'filtered [red]markup[/red] <xml & stuff> "quoted" [/]'
CMD_1 = "iptables -I INPUT -p tcp -s 127.10.0.1 --dport 5672 -j ACCEPT  # [bold]not markup[/bold]"
CMD_2 = "echo ':x: <b>&amp;</b> [/]' | tee /tmp/xivo-doctor-example.txt"
LONG_CMD = (
    "rabbitmqctl set_parameter federation-upstream xivo-2 " + "'{" + '"uri": "amqp://' + "x" * 150 + "\"}'"
)


def report(results: list[Result], duration_s: float = 0.84) -> Report:
    return Report(
        results=tuple(results),
        started_at="2024-05-02T10:11:12+02:00",
        duration_s=duration_s,
        vantage="doctor-host (remote)",
        topology=TOPOLOGY,
        timeout_s=30.0,
        doctor_version="0.1.0",
    )


def passing(check: str, target: str, title: str = "", **kw: object) -> Result:
    return Result(check=check, target=target, status=Status.PASS, title=title or f"{check} title", **kw)


def port_fail() -> Result:
    return Result(
        check="port-reachable",
        target="xivo-2",
        status=Status.FAIL,
        title="The ports the interconnection needs are open",
        message="port 5672 (amqp) timed out: " + TRICKY,
        evidence={
            "address": "127.10.0.2",
            "ports": {"5672": {"state": "timeout", "after_s": 3.0}, "8302": {"state": "open"}},
            "tried": [5672, 8302],
        },
        fix=FixOut(
            summary="Open TCP 5672 on xivo-2 for the other XiVOs",
            commands=(CMD_1, CMD_2, LONG_CMD),
            doc="contact_and_presence_sharing.rst#network-flows",
        ),
        doc="contact_and_presence_sharing.rst#network-flows",
        why="RabbitMQ federation links use AMQP on 5672; without it no presence crosses.",
        facets=("amqp",),
        duration_s=0.0123456,
    )


def critical_results() -> list[Result]:
    return [
        passing(
            "xivo-version",
            "*",
            "Every XiVO runs the same version",
            message="all on 2023.05",
            evidence={"versions": {"xivo-1": "2023.05", "xivo-2": "2023.05"}},
        ),
        passing("uuid-unique", "xivo-1", "UUIDs are distinct and agree"),
        Result(
            check="uuid-unique",
            target="xivo-2",
            status=Status.WARN,
            severity="warn",
            title="UUIDs are distinct and agree",
            message="XIVO_UUID in /etc/profile.d/xivo_uuid.sh differs from infos.uuid",
            evidence={"infos.uuid": "aaaa", "XIVO_UUID": "bbbb"},
            why="Peers identify this XiVO by its UUID.",
        ),
        passing(
            "port-reachable", "xivo-1", "The ports the interconnection needs are open", message="all open"
        ),
        port_fail(),
        Result(
            check="consul-wan",
            target="xivo-1",
            status=Status.ERROR,
            title="Consul WAN pool holds every peer",
            message="could not reach consul at https://127.10.0.1:8500: timed out after 3.0 s",
            evidence={"url": "https://127.10.0.1:8500/v1/agent/members?wan=1"},
            doc="contact_and_presence_sharing.rst#consul",
        ),
        Result(
            check="rabbitmq-federation",
            target="xivo-1->xivo-2",
            status=Status.SKIP,
            title="RabbitMQ federation links run",
            message="blocked",
            blocked_by=("port-reachable[xivo-2]:amqp",),
        ),
        Result(
            check="phonebook-restricted",
            target="xivo-1",
            status=Status.SKIP,
            title="Phonebook directories use restricted",
            message="not applicable on XiVO >= 16.14",
        ),
    ]


def critical_report() -> Report:
    return report(critical_results())


def ok_report(n: int = 9, skips: int = 0) -> Report:
    results = [passing("port-reachable", f"xivo-{i}", evidence={"ports": [5672]}) for i in range(1, n + 1)]
    results += [
        Result(check="phonebook-restricted", target=f"xivo-{i}", status=Status.SKIP, title="t", message="n/a")
        for i in range(1, skips + 1)
    ]
    return report(results)


def warning_report() -> Report:
    return report([r for r in critical_results() if r.status in (Status.PASS, Status.WARN)])


def unknown_report() -> Report:
    errors = [
        Result(check="consul-wan", target=t, status=Status.ERROR, title="Consul WAN", message="timed out")
        for t in ("xivo-1", "xivo-2")
    ]
    return report([passing("xivo-version", "*"), *errors])
