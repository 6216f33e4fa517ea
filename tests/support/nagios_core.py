"""Test harness: a real Nagios Core (Debian's `nagios4-core`) run as a child process of a test.

Place in the project: it sits after presentation — it proves that `xivo-doctor nagios` (the plugin)
behaves as Nagios expects by letting Nagios itself run it and record what it understood. Nothing
here touches the system's Nagios (/etc/nagios4, /var/lib/nagios4, systemd): every path Nagios
writes is in the harness's own folder. Active checks are off globally, so only the checks the test
forces (through the external command file) ever run, and a result in status.dat is always the
answer to the test's own question.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

NAGIOS = Path("/usr/sbin/nagios4")
INSTALL_HINT = "Nagios Core is not installed: run ./install-deps.sh --tests (Debian package nagios4-core)"
HOST = "xivo-lab"
# What a Nagios started by systemd gives its plugins: a plain PATH, no HOME, no terminal. The
# plugin must work so (it is also the cron environment); nothing of the test's environment leaks in.
PLUGIN_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}

_BLOCK = re.compile(r"^(\w+) \{\n(.*?)^\t\}", re.M | re.S)


class NagiosError(AssertionError):
    """Nagios refused the configuration, died, or did not do what was asked in time."""


def main_config(folder: Path, *, check_timeout: int) -> str:
    """The main config: every file in `folder`, external commands on, status written every second."""
    f = folder
    return "\n".join([
        f"log_file={f}/nagios.log",
        f"cfg_file={f}/objects.cfg",
        f"object_cache_file={f}/objects.cache",
        f"precached_object_file={f}/objects.precache",
        f"resource_file={f}/resource.cfg",
        f"status_file={f}/status.dat",
        f"temp_file={f}/nagios.tmp",
        f"temp_path={f}",
        f"lock_file={f}/nagios.lock",
        f"check_result_path={f}/checkresults",
        f"query_socket={f}/nagios.qh",  # default /var/lib/nagios4/rw/nagios.qh: the system's
        f"command_file={f}/nagios.cmd",
        f"state_retention_file={f}/retention.dat",
        f"debug_file={f}/nagios.debug",
        f"log_archive_path={f}",
        "retain_state_information=0",
        "log_rotation_method=n",
        "use_syslog=0",
        # the test runs as root; Nagios 4.4 accepts root here (verified: it drops to root, a no-op)
        "nagios_user=root",
        "nagios_group=root",
        "check_external_commands=1",
        "status_update_interval=1",
        "interval_length=1",
        # only forced checks run (SCHEDULE_FORCED_SVC_CHECK ignores this switch, by its definition)
        "execute_service_checks=0",
        "execute_host_checks=0",
        "enable_notifications=0",
        "enable_event_handlers=0",
        "enable_flap_detection=0",
        "enable_environment_macros=0",
        "illegal_macro_output_chars=`~$&|'\"<>",  # Debian's default (none set: a warning)
        "process_performance_data=0",
        f"service_check_timeout={check_timeout}",
        "host_check_timeout=10",
        "event_handler_timeout=10",
        "check_service_freshness=0",
        "check_host_freshness=0",
        "",
    ])


def objects_config(services: dict[str, str]) -> str:
    """A host, one command per service (its command line as given), services never scheduled."""
    always = "".join(f"  {day} 00:00-24:00\n" for day in
                     ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"))
    parts = [
        "define timeperiod {\n  timeperiod_name always\n  alias always\n" + always + "}\n",
        "define command {\n  command_name always-up\n  command_line /bin/true\n}\n",
        "define contact {\n  contact_name nobody\n  host_notifications_enabled 0\n"
        "  service_notifications_enabled 0\n  host_notification_period always\n"
        "  service_notification_period always\n  host_notification_options n\n"
        "  service_notification_options n\n  host_notification_commands always-up\n"
        "  service_notification_commands always-up\n}\n",
        f"define host {{\n  host_name {HOST}\n  address 127.0.0.1\n  check_command always-up\n"
        "  max_check_attempts 1\n  check_interval 86400\n  check_period always\n  contacts nobody\n"
        "  notification_period always\n  notification_interval 0\n}\n",
    ]
    for number, (description, command_line) in enumerate(services.items()):
        if ";" in command_line or "$" in command_line:
            raise ValueError(f"{description}: ';' and '$' are special in Nagios object files: {command_line!r}")
        parts.append(f"define command {{\n  command_name svc-{number}\n  command_line {command_line}\n}}\n")
        parts.append(
            f"define service {{\n  host_name {HOST}\n  service_description {description}\n"
            f"  check_command svc-{number}\n  max_check_attempts 1\n  check_interval 86400\n"
            "  retry_interval 86400\n  check_period always\n  contacts nobody\n  notification_period always\n"
            "  notification_interval 0\n}\n")
    return "".join(parts)


def parse_status(text: str) -> list[tuple[str, dict[str, str]]]:
    """status.dat as (block type, {key: value}) in file order; values keep Nagios's escapes (`\\n`)."""
    blocks = []
    for match in _BLOCK.finditer(text):
        fields = {}
        for line in match.group(2).splitlines():
            key, _, value = line.strip().partition("=")
            if key:
                fields[key] = value
        blocks.append((match.group(1), fields))
    return blocks


class NagiosCore:
    """One Nagios process with its own folder. Use as a context manager: stopped (by pid) on exit."""

    def __init__(self, folder: Path, services: dict[str, str], *, check_timeout: int = 20) -> None:
        self.folder = folder
        self.services = services
        self.check_timeout = check_timeout
        self.cfg = folder / "nagios.cfg"
        self.process: subprocess.Popen | None = None
        if len(str(folder / "nagios.qh")) > 100:  # a Unix socket path holds at most 107 bytes
            raise ValueError(f"folder path too long for Nagios's query socket: {folder}")

    # -- lifecycle ---------------------------------------------------------------------------

    def write(self) -> Path:
        (self.folder / "checkresults").mkdir(parents=True, exist_ok=True)
        (self.folder / "resource.cfg").write_text("")
        (self.folder / "objects.cfg").write_text(objects_config(self.services))
        self.cfg.write_text(main_config(self.folder, check_timeout=self.check_timeout))
        return self.cfg

    def verify(self) -> str:
        """`nagios4 -v`: the pre-flight check Nagios's own docs ask for; its output on failure."""
        done = subprocess.run([str(NAGIOS), "-v", str(self.cfg)], capture_output=True, text=True, timeout=30)
        # a warning is a defect of the harness's own config too: refuse it as Nagios refuses errors
        if done.returncode != 0 or "Total Warnings: 0" not in done.stdout:
            raise NagiosError(f"nagios4 -v {self.cfg} did not accept the configuration cleanly:\n"
                              f"{done.stdout}{done.stderr}")
        return done.stdout

    def start(self, timeout: float = 15.0) -> None:
        if not NAGIOS.exists():
            raise NagiosError(INSTALL_HINT)
        self.write()
        self.verify()
        out = open(self.folder / "nagios.out", "wb")  # noqa: SIM115 - the child keeps it open
        self.process = subprocess.Popen([str(NAGIOS), str(self.cfg)], stdout=out, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, cwd=self.folder, env=PLUGIN_ENV)
        out.close()
        command_file = self.folder / "nagios.cmd"
        self._until(lambda: command_file.exists() and (self.folder / "status.dat").exists()
                    and "command file worker" in self.log(), timeout, "Nagios ready (command file, status.dat)")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the main process, SIGKILL after `timeout`; then no Nagios process of ours may remain."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        # The workers and the command file worker are Nagios's children; their command lines name
        # our folder (the config or the query socket), so they are recognisably ours.
        end = time.monotonic() + timeout
        while (left := self.our_processes()) and time.monotonic() < end:
            time.sleep(0.1)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        left = [pid for pid in left if _alive(pid)]
        if left:
            raise NagiosError(f"Nagios processes of ours remain after stop: {left}")

    def our_processes(self) -> list[int]:
        mine = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "nagios4" in cmdline and str(self.folder) in cmdline:
                mine.append(int(entry.name))
        return mine

    def __enter__(self) -> NagiosCore:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- asking and reading ------------------------------------------------------------------

    def log(self) -> str:
        path = self.folder / "nagios.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def status(self) -> dict[str, dict[str, str]]:
        """Each service's servicestatus block, by service description."""
        path = self.folder / "status.dat"
        text = path.read_text(errors="replace") if path.exists() else ""  # replaced atomically by Nagios
        return {b["service_description"]: b for kind, b in parse_status(text) if kind == "servicestatus"}

    def command(self, line: str, timeout: float = 5.0) -> None:
        """One external command, written to the FIFO (non-blocking: no reader yet -> retry, bounded)."""
        data = f"[{int(time.time())}] {line}\n".encode()
        end = time.monotonic() + timeout
        while True:
            try:
                fd = os.open(self.folder / "nagios.cmd", os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno not in (errno.ENXIO, errno.ENOENT) or time.monotonic() > end:
                    raise NagiosError(f"cannot write to Nagios's command file: {exc}") from exc
                time.sleep(0.1)
                continue
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            return

    def force(self, descriptions: Iterable[str]) -> int:
        """Force an immediate check of each service; return the time forced.

        status.dat keeps `last_check` in whole seconds, so the time forced is chosen strictly after
        every previous `last_check` of these services: a result with `last_check` >= it is new.
        """
        descriptions = list(descriptions)
        before = self.status()
        forced = max([int(time.time())] + [int(before.get(d, {}).get("last_check", 0)) + 1 for d in descriptions])
        while time.time() < forced:
            time.sleep(0.05)
        for description in descriptions:
            self.command(f"SCHEDULE_FORCED_SVC_CHECK;{HOST};{description};{forced}")
        return forced

    def wait_checked(self, descriptions: Iterable[str], forced: int, timeout: float) -> dict[str, dict[str, str]]:
        """Until status.dat shows a check of each service started at or after `forced`."""
        descriptions = list(descriptions)

        def done() -> dict[str, dict[str, str]] | None:
            status = self.status()
            fresh = {d: status[d] for d in descriptions if d in status and status[d].get("has_been_checked") == "1"
                     and int(status[d].get("last_check", 0)) >= forced}
            return status if len(fresh) == len(descriptions) else None

        return self._until(done, timeout, f"checks of {', '.join(descriptions)} recorded in status.dat")

    def check(self, descriptions: Iterable[str], timeout: float | None = None) -> dict[str, dict[str, str]]:
        """Force checks of these services and return status.dat once they are all recorded."""
        descriptions = list(descriptions)
        forced = self.force(descriptions)
        return self.wait_checked(descriptions, forced, timeout or self.check_timeout + 10)

    def _until(self, predicate, timeout: float, what: str):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.process is not None and self.process.poll() is not None:
                raise NagiosError(f"Nagios exited ({self.process.returncode}) while waiting for {what}:\n"
                                  f"{(self.folder / 'nagios.out').read_text(errors='replace')}\n{self.log()}")
            if result := predicate():
                return result
            time.sleep(0.2)
        raise NagiosError(f"{what}: not within {timeout:g} s; nagios.log ends:\n"
                          + "\n".join(self.log().splitlines()[-20:]))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def status_lines(block: dict[str, str], keys: Iterable[str] = (
        "service_description", "current_state", "state_type", "has_been_checked", "last_check",
        "check_execution_time", "plugin_output", "long_plugin_output", "performance_data")) -> str:
    """The relevant status.dat lines of one service, as Nagios wrote them (for the issue note)."""
    return "\n".join(f"\t{key}={block.get(key, '')}" for key in keys)
