"""What the manual's troubleshooting reads on a XiVO, for the support bundle: log tails and command outputs.

Place in the pipeline: acquisition, read-only, run after the checks (`bundle.write_bundle` calls it).
For each XiVO whose on-box data this host can read (`on_box` in the topology, its `root` present,
or `ssh`),
it takes (XIVO-FACTS §8, "Contact-Sharing troubleshooting"):
- the last lines of /var/log/xivo-dird.log, xivo-ctid.log, xivo-confd.log, nginx/xivo.access.log
  (phonebook sharing), the newest /var/log/rabbitmq/*.log, and consul's log: on a XiVO consul logs
  to syslog (`enable_syslog: true`), so the "consul" lines of /var/log/syslog; the lab writes
  /var/log/consul.log, read too when present. Each tail: at most 256 kB read from the end, then
  at most 200 lines; never a whole file, never a FIFO or device (opened non-blocking, regular
  files only); bytes that are not UTF-8 decoded with replacement characters.
- the manual's commands, `rabbitmqctl eval 'rabbit_federation_status:status().'`,
  `consul members -wan`, `consul-cli agent services --ssl --ssl-verify=false`, and the federation
  state the manual's procedure sets, `rabbitmqctl list_parameters` / `list_policies`. Not
  `consul monitor`: it streams until interrupted, so it would only ever time out. Each command: no
  shell, stdin closed, its own process group killed on timeout, min(5 s, the run's time left),
  output capped at 256 kB.
Over SSH (`ssh` and no `on_box`), the same logs and commands are read on the XiVO itself: `tail -c`
of each log (the newest RabbitMQ log found with `ls -1t`), the commands as the XiVO's own, each
bounded as above; the XiVO's Consul master token is read first so that a log quoting it shows it
masked. One SSH connection per XiVO (probes/transport/ssh.py), ended when the bundle is collected.
Nothing here is fatal: what cannot be read comes back with the reason (not found, permission
denied, timed out after N s, exit code N). Every text returned went through `redactor.text`.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xivo_doctor.foundation.errors import ProbeError, ProbeTimeout
from xivo_doctor.probes.onbox import MASTER_TOKEN_FILE  # masked wherever a log quotes it
from xivo_doctor.probes.session import is_local
from xivo_doctor.probes.transport.commands import MAX_BYTES, os_reason, run_bounded
from xivo_doctor.topology.model import Topology, Xivo

if TYPE_CHECKING:
    from xivo_doctor.foundation.deadline import Deadline
    from xivo_doctor.foundation.redact import Redactor

MAX_LINES = 200
COMMAND_TIMEOUT = 5.0  # s: local commands; rabbitmqctl's Erlang start-up takes 0.3-0.5 s (LAB-NOTES §A.3)
# (name in the bundle, path on the XiVO), XIVO-FACTS §8
LOGS = (("xivo-dird.log", "/var/log/xivo-dird.log"), ("xivo-ctid.log", "/var/log/xivo-ctid.log"),
        ("xivo-confd.log", "/var/log/xivo-confd.log"), ("nginx-xivo.access.log", "/var/log/nginx/xivo.access.log"))
RABBITMQ_LOG_DIR = "/var/log/rabbitmq"
SYSLOG, LAB_CONSUL_LOG = "/var/log/syslog", "/var/log/consul.log"


@dataclass(frozen=True)
class Collected:
    """One log tail or command output of one XiVO. `text` is None when nothing could be read;
    `problem` says why it is missing or incomplete (None: collected in full)."""

    xivo: str
    kind: str  # "log" | "command"
    name: str  # file name in the bundle, e.g. "xivo-ctid.log", "consul-members-wan.txt"
    source: str  # the path on the XiVO, or the command line (redacted)
    text: str | None
    problem: str | None = None
    truncated: bool = False  # only the end of a log, or the start of an output, was kept


@dataclass(frozen=True)
class Troubleshooting:
    items: tuple[Collected, ...]
    not_collected: tuple[tuple[str, str], ...]  # (xivo, why nothing was read from it)


def collect(topology: Topology, redactor: Redactor, *, deadline: Deadline | None = None,
            timeout: float = COMMAND_TIMEOUT) -> Troubleshooting:
    """Every reachable XiVO's logs and command outputs; the commands of all XiVOs run concurrently."""
    items: list[Collected] = []
    skipped: list[tuple[str, str]] = []
    jobs: list[tuple[Xivo, str, tuple[str, ...] | None, str]] = []
    links = None
    if any(x.over_ssh for x in topology.xivos):
        from xivo_doctor.foundation.deadline import Deadline
        from xivo_doctor.probes.transport.ssh import SshLinks

        links = SshLinks(deadline or Deadline(60), min(timeout, topology.probe_timeout * 2))
    try:
        for xivo in topology.xivos:
            why = _unreadable(xivo)
            if why:
                skipped.append((xivo.name, why))
                continue
            if xivo.on_box is None:
                try:
                    items += _logs_over_ssh(xivo, links, redactor)
                except ProbeError as exc:  # SSH itself failed: nothing of this XiVO can be read
                    skipped.append((xivo.name, redactor.text(str(exc))))
                    continue
            else:
                items += _logs(xivo, redactor)
            jobs += _commands(xivo)

        def job(args: tuple) -> Collected:
            return _run_job(*args, redactor=redactor, deadline=deadline, timeout=timeout, links=links)

        with ThreadPoolExecutor(max_workers=max(1, min(4, len(jobs))), thread_name_prefix="troubleshoot") as pool:
            items += pool.map(job, jobs)
    finally:
        if links is not None:
            links.close()
    return Troubleshooting(tuple(items), tuple(skipped))


def _unreadable(xivo: Xivo) -> str | None:
    if xivo.over_ssh:
        return None
    if xivo.on_box is None:
        return ("the topology gives neither on_box nor ssh access to it (logs are read on the XiVO, or"
                " over SSH)")
    if not Path(xivo.on_box.root).is_dir():
        return f"on_box.root {xivo.on_box.root} is not a directory here"
    return None


# -- logs ------------------------------------------------------------------------------------------
def _logs(xivo: Xivo, redactor: Redactor) -> list[Collected]:
    assert xivo.on_box is not None
    root = Path(xivo.on_box.root)
    wanted = [(name, path, None) for name, path in LOGS]
    out = []
    try:
        newest = _newest_log(root / RABBITMQ_LOG_DIR.lstrip("/"))
        wanted.append((f"rabbitmq-{newest.name}", f"{RABBITMQ_LOG_DIR}/{newest.name}", None))
    except OSError as exc:
        out.append(Collected(xivo.name, "log", "rabbitmq.log", f"{RABBITMQ_LOG_DIR}/*.log", None, os_reason(exc)))
    wanted.append(("consul-syslog.log", SYSLOG, "consul"))
    if (root / LAB_CONSUL_LOG.lstrip("/")).exists():
        wanted.append(("consul.log", LAB_CONSUL_LOG, None))
    for name, path, keep in wanted:
        try:
            text, truncated = tail(root / path.lstrip("/"), keep=keep)
        except OSError as exc:
            out.append(Collected(xivo.name, "log", name, path, None, os_reason(exc)))
            continue
        shown = path + (f" (lines with {keep!r})" if keep else "")
        out.append(Collected(xivo.name, "log", name, shown, redactor.text(text), None, truncated))
    return out


def _logs_over_ssh(xivo: Xivo, links: Any, redactor: Redactor) -> list[Collected]:
    """The same log tails, read on the XiVO over SSH (`tail -c`, `ls -t`): its master token is
    learned by `redactor` first, so that a log quoting it shows it masked. Raises ProbeError when
    SSH to the XiVO fails."""
    try:
        token = links.read_file(xivo, MASTER_TOKEN_FILE, 4096)
    except ProbeError as exc:
        if exc.source == links.source(xivo):
            raise
        token = None
    redactor.learn([token.strip()] if token else [])
    wanted = [(name, path, None) for name, path in LOGS]
    out = []
    listed = links.run(xivo, ["ls", "-1t", "--", RABBITMQ_LOG_DIR], what=f"ls {RABBITMQ_LOG_DIR}")
    newest = next((n for n in (listed.output or "").splitlines() if n.endswith(".log")), None)
    if newest is None:
        out.append(Collected(xivo.name, "log", "rabbitmq.log", f"{RABBITMQ_LOG_DIR}/*.log", None,
                             _ssh_reason(listed.errors) if listed.exit_code else "not found"))
    else:
        wanted.append((f"rabbitmq-{newest}", f"{RABBITMQ_LOG_DIR}/{newest}", None))
    wanted += [("consul-syslog.log", SYSLOG, "consul"), ("consul.log", LAB_CONSUL_LOG, None)]
    for name, path, keep in wanted:
        # one byte more than kept: there was more before when it comes back
        try:
            ran = links.run(xivo, ["tail", "-c", str(MAX_BYTES + 1), "--", path], what=f"tail {path}",
                            max_bytes=MAX_BYTES + 1)
        except ProbeTimeout as exc:  # a FIFO at the log's path never ends: this log only
            out.append(Collected(xivo.name, "log", name, path, None, exc.detail))
            continue
        if ran.exit_code != 0:
            if path != LAB_CONSUL_LOG:  # the lab's own consul log: read only where it exists
                out.append(Collected(xivo.name, "log", name, path, None, _ssh_reason(ran.errors) or ran.problem))
            continue
        data = (ran.output or "").encode()
        text, truncated = last_lines(data[-MAX_BYTES:], len(data) > MAX_BYTES, keep=keep)
        shown = path + (f" (lines with {keep!r})" if keep else "") + " over SSH"
        out.append(Collected(xivo.name, "log", name, shown, redactor.text(text), None, truncated))
    return out


def _ssh_reason(errors: str) -> str:
    """A command's complaint in the words the local reads use ("not found", "permission denied")."""
    if "No such file" in errors:
        return "not found"
    if "Permission denied" in errors:
        return "permission denied"
    return " ".join(errors.split())[:200]


def _newest_log(folder: Path) -> Path:
    """The *.log file written last (the non-empty one on a tie: a node's log beside its empty
    upgrade log). Raises OSError: the folder cannot be listed, or holds no log."""
    found = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.endswith(".log") and entry.is_file():
                info = entry.stat()
                found.append((info.st_mtime, info.st_size, entry.name))
    if not found:
        raise FileNotFoundError(0, "not found")
    return folder / max(found)[2]


def tail(path: Path, *, max_lines: int = MAX_LINES, max_bytes: int = MAX_BYTES,
         keep: str | None = None) -> tuple[str, bool]:
    """The last `max_lines` lines (those containing `keep`, if given) within the last `max_bytes`
    bytes of `path`, and whether anything before them was left out. Raises OSError."""
    # O_NONBLOCK: opening a FIFO planted at a log's path must not wait for a writer.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise OSError(0, "a directory, not a file" if stat.S_ISDIR(info.st_mode) else "not a regular file")
    with os.fdopen(fd, "rb") as file:
        start = max(0, info.st_size - max_bytes)
        file.seek(start)
        data = file.read(max_bytes)
    return last_lines(data, start > 0, max_lines=max_lines, keep=keep)


def last_lines(data: bytes, cut: bool, *, max_lines: int = MAX_LINES, keep: str | None = None) -> tuple[str, bool]:
    """The last `max_lines` lines (with `keep`) of the end of a log, `cut` when the log began
    before `data` did; and whether anything was left out."""
    if cut:  # began mid-line (maybe mid-character): drop the partial first line
        data = data[data.find(b"\n") + 1:] if b"\n" in data else b""
    lines = data.decode("utf-8", "replace").replace("\r\n", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if keep is not None:
        lines = [line for line in lines if keep in line.lower()]
    truncated = cut or len(lines) > max_lines
    lines = lines[-max_lines:]
    return "".join(line + "\n" for line in lines), truncated


# -- commands --------------------------------------------------------------------------------------
def _commands(xivo: Xivo) -> list[tuple[Xivo, str, tuple[str, ...] | None, str]]:
    """(xivo, slug, argv or None, why not) for each troubleshooting command of `xivo`.

    A command the topology does not give (`on_box.rabbitmqctl`, `on_box.consul`) is looked up on
    PATH only when this host is that XiVO: run here, it would describe this host, not the XiVO.
    Over SSH each is the XiVO's own command."""
    over_ssh = xivo.on_box is None
    here = over_ssh or is_local(xivo.address)
    vhost = xivo.rabbitmq.vhost

    def prefix(given: tuple[str, ...] | None, default: str, key: str) -> tuple[tuple[str, ...] | None, str]:
        if given and not over_ssh:
            return given, ""
        if here:
            return (default,), ""
        return None, f"not run: no {key} in the topology, and this host is not {xivo.name}"

    ctl, ctl_why = prefix(xivo.on_box and xivo.on_box.rabbitmqctl, "rabbitmqctl", "on_box.rabbitmqctl")
    consul, consul_why = prefix(xivo.on_box and xivo.on_box.consul, "consul", "on_box.consul")
    cli, cli_why = ("consul-cli",), ""
    if not here:  # it has no topology key: it exists only on the XiVO itself
        cli, cli_why = None, f"not run: consul-cli runs only on the XiVO itself, and this host is not {xivo.name}"
    specs = [
        ("rabbitmqctl-federation-status", ctl, ("eval", "rabbit_federation_status:status()."), ctl_why),
        ("rabbitmqctl-list-parameters", ctl, ("list_parameters", "-p", vhost), ctl_why),
        ("rabbitmqctl-list-policies", ctl, ("list_policies", "-p", vhost), ctl_why),
        ("consul-members-wan", consul, ("members", "-wan"), consul_why),
        ("consul-cli-agent-services", cli, ("agent", "services", "--ssl", "--ssl-verify=false"), cli_why),
    ]
    return [(xivo, slug, (*base, *args) if base else None, why or "") for slug, base, args, why in specs]


def _run_job(xivo: Xivo, slug: str, argv: tuple[str, ...] | None, why: str, *, redactor: Redactor,
             deadline: Deadline | None, timeout: float, links: Any = None) -> Collected:
    name = f"{slug}.txt"
    if argv is None:
        return Collected(xivo.name, "command", name, slug, None, why)
    over_ssh = xivo.on_box is None
    line = redactor.text(shlex.join(argv)) + (" (over SSH)" if over_ssh else "")
    budget = timeout if deadline is None else min(timeout, deadline.remaining())
    if budget <= 0:
        return Collected(xivo.name, "command", name, line, None,
                         f"not run: the run's deadline ({deadline.seconds:g} s, -t) had passed")
    if over_ssh:
        try:
            ran = links.run(xivo, list(argv), what=slug, timeout=budget)
        except ProbeError as exc:
            return Collected(xivo.name, "command", name, line, None, redactor.text(str(exc)))
        if ran.exit_code not in (0, None):
            absent = ran.exit_code == 127  # the shell's "command not found"
            ran = dataclasses.replace(ran, output=(ran.output or "") + ran.errors, problem=(
                f"{argv[0]}: not found on {xivo.name}" if absent else ran.problem or f"exit code {ran.exit_code}"))
    else:
        ran = run_bounded(argv, budget)
    if ran.problem is not None and ran.output is None:
        return Collected(xivo.name, "command", name, line, None, ran.problem)
    return Collected(xivo.name, "command", name, line, redactor.text(ran.output or ""), ran.problem, ran.truncated)
