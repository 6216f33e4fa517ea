"""The commands an admin types on a XiVO, as they act on a lab node (`lab exec NODE -- ...`).

Place in the lab: `lab exec` runs a command with the node's `bin/` first on PATH, where these
shims stand in for `consul`, `service`, `systemctl`, `xivo-service`, `psql`, `sudo`, `curl`,
`iptables`, (16.02+) `xivo-configure-uuid` and the KV backup and restore of the consul wipe;
`rabbitmqctl` and `rabbitmq-plugins` are real
(wrappers with the node's environment).
So a fix the doctor prints — the manual's commands with this topology's values — can be applied to
a lab node exactly as written and shown to work. Run as
`python -m xivo_doctor.lab.shim --dir DIR --node NAME TOOL -- ARGS...` by the scripts `lab.bindir`
writes; it sits above `lifecycle` (restarts, RabbitMQ start) and nothing in the lab imports it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from xivo_doctor.lab import lifecycle, postgres, rabbitmq, releases
from xivo_doctor.lab.bindir import TOOLS
from xivo_doctor.lab.consul import client as consul_client
from xivo_doctor.lab.state import STANDINS, LabState, alive, read_pid, start_standin, stop_service

# Debian/systemd unit names on a XiVO -> the lab's services
UNITS = {"rabbitmq-server": "rabbitmq", "consul": "consul", "xivo-ctid": "xivo-ctid", "xivo-confd": "xivo-confd",
         "nginx": "webservices", "xivo-auth": "xivo-auth", "xivo-dird": "xivo-dird"}
# `xivo-service stop|start` leaves consul, rabbitmq, postgresql and nginx alone; its default set holds
# xivo-ctid and xivo-dird (`xivo`) plus xivo-confd and xivo-auth (XIVO-FACTS §9)
XIVO_SERVICES = ("xivo-ctid", "xivo-confd", "xivo-auth", "xivo-dird")


def _say(text: str) -> None:
    print(text, file=sys.stderr)


def unit_action(state: LabState, node_name: str, unit: str, action: str) -> int:
    node = state.node(node_name)
    service = UNITS.get(unit)
    if service is None:
        _say(f"lab: unknown service {unit!r} (known: {', '.join(UNITS)})")
        return 1
    if action in ("restart", "reload", "force-reload"):
        lifecycle.restart(state.dir, node_name, service, say=_say)
    elif action == "stop":
        if service == "rabbitmq":
            rabbitmq.stop(lifecycle.rabbit(state, node), state.dir)
        else:
            stop_service(state, node, service)
    elif action == "start":
        if service == "rabbitmq":
            lifecycle.rabbitmq_up(state, _say)
        elif not alive(read_pid(state.pidfile(node, service))):
            start_standin(state, node, service)
    elif action == "status":
        running = alive(read_pid(state.pidfile(node, service))) if service in STANDINS else \
            rabbitmq.is_running(lifecycle.rabbit(state, node))
        print(f"{unit}: {'active (running)' if running else 'inactive (dead)'}")
        return 0 if running else 3
    else:
        _say(f"lab: unsupported action {action!r}")
        return 1
    return 0


def consul(state: LabState, node_name: str, args: list[str]) -> int:
    node = state.node(node_name)
    if args[:1] == ["join"]:
        addresses = [a for a in args[1:] if not a.startswith("-")]
        for address in addresses:
            consul_client.join_wan(node, address)
        print(f"Successfully joined cluster by contacting {len(addresses)} nodes.")
        return 0
    if args[:1] == ["members"]:
        for member in consul_client.api(node, "GET", "/v1/agent/members", wan="1").json() or []:
            status = {1: "alive", 2: "leaving", 3: "left", 4: "failed"}.get(member["Status"], "none")
            print(f"{member['Name']}  {member['Addr']}:{member['Port']}  {status}  server")
        return 0
    if args[:1] == ["configtest"]:
        folder = Path(args[args.index("--config-dir") + 1]) if "--config-dir" in args else None
        for file in sorted(folder.glob("*.json")) if folder else []:
            try:
                json.loads(file.read_text())
            except ValueError as exc:
                print(f"Error decoding '{file}': {exc}")
                return 1
        return 0  # "No output means that the configuration is valid" (the manual)
    _say(f"lab: consul {' '.join(args)} is not emulated (join -wan, members -wan, configtest are)")
    return 1


def xivo_service(state: LabState, node_name: str, args: list[str]) -> int:
    action, scope = [*args, "", ""][:2]
    units = [*XIVO_SERVICES, *(["rabbitmq-server", "consul", "nginx"] if scope == "all" else [])]
    code = 0
    for unit in units if action in ("start", "stop", "restart", "status") else []:
        code |= unit_action(state, node_name, unit, action)
    return code


def psql(state: LabState, node_name: str, args: list[str]) -> int:
    """`psql [asterisk] ...` on the node's `asterisk` database."""
    node = state.node(node_name)
    args = [a for a in args if a != "asterisk"]
    argv, env = postgres.psql(lifecycle.dsn(state, node))
    return subprocess.run([*argv, *args], env=env).returncode


def configure_uuid(state: LabState, node_name: str) -> int:
    """xivo-manage-db's bin/xivo-configure-uuid (16.02-16.15, R1 §2): unless already configured, the
    UUID of `infos` into /etc/profile.d/xivo_uuid.sh, system.conf's DefaultEnvironment and (appended)
    /etc/default/xivo. The lab has no systemd manager: its environment is system.conf's (as after a
    reboot), and `systemctl set-environment` has nothing to do."""
    node = state.node(node_name)
    if not releases.uuid_files(node.version):
        _say(f"bash: xivo-configure-uuid: command not found (XiVO {node.version}: it comes with 16.02)")
        return 127
    root = state.root(node)
    profile, system_conf, default = (root / "etc/profile.d/xivo_uuid.sh", root / "etc/systemd/system.conf",
                                     root / "etc/default/xivo")
    if profile.is_file() and "XIVO_UUID" in system_conf.read_text():
        return 0  # _already_configured (show-environment, the profile file, system.conf)
    argv, env = postgres.psql(lifecycle.dsn(state, node), "SELECT uuid FROM infos LIMIT 1")
    done = subprocess.run([*argv, "-A", "-t"], env=env, capture_output=True, text=True, timeout=30)
    uuid = done.stdout.strip()
    if done.returncode or not uuid:
        _say(f"xivo-configure-uuid: cannot read infos.uuid: {done.stderr.strip() or 'no row'}")
        return 1
    profile.parent.mkdir(parents=True, exist_ok=True)
    profile.write_text(releases.uuid_profile(uuid))
    lines = []
    for line in system_conf.read_text().splitlines(keepends=True):  # _set_system_conf
        if "DefaultEnvironment=" not in line:
            lines.append(line)
        elif line.startswith("#") or line.strip().endswith("="):
            lines.append(f'DefaultEnvironment="XIVO_UUID={uuid}"\n')
        else:
            lines.append(f'{line.strip()} "XIVO_UUID={uuid}"\n')
    system_conf.write_text("".join(lines))
    with open(default, "a") as sysv:  # _add_sysv_compat
        sysv.write(releases.uuid_default_line(uuid))
    return 0


def consul_kv(tool: str, args: list[str]) -> int:
    """The manual's KV backup and restore around the consul wipe (Configure Consul, up to 16.06):
    `xivo-backup-consul-kv -o FILE`, `xivo-restore-consul-kv -i FILE`. The lab's Consul keeps no KV
    store (docs/lab.md), so the backup is an empty JSON list and the restore checks it reads one."""
    option = "-o" if tool == "xivo-backup-consul-kv" else "-i"
    if option not in args or args.index(option) + 1 >= len(args):
        _say(f"usage: {tool} {option} FILE")
        return 2
    path = Path(args[args.index(option) + 1])
    if option == "-o":
        path.write_text("[]\n")
        return 0
    try:
        if not isinstance(json.loads(path.read_text()), list):
            raise ValueError("not a list of keys")
    except (OSError, ValueError) as exc:
        _say(f"{tool}: cannot restore from {path}: {exc}")
        return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("tool", choices=TOOLS)
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--node", required=True)
    parser.add_argument("args", nargs=argparse.REMAINDER)
    ns = parser.parse_args()
    args = ns.args[1:] if ns.args[:1] == ["--"] else ns.args
    state = LabState.load(ns.dir)
    node = state.node(ns.node)
    if ns.tool == "service":
        return unit_action(state, ns.node, args[0], args[1] if len(args) > 1 else "status")
    if ns.tool == "systemctl":
        if args[:1] in (["set-environment"], ["unset-environment"], ["daemon-reload"]):
            # the lab's daemons read XIVO_UUID from /etc/profile.d/xivo_uuid.sh at start: nothing to do
            _say(f"lab: systemctl {args[0]} has no effect in the lab (daemons read the files at start)")
            return 0
        return unit_action(state, ns.node, args[1].removesuffix(".service"), args[0]) if len(args) > 1 else 1
    if ns.tool == "xivo-service":
        return xivo_service(state, ns.node, args)
    if ns.tool == "consul":
        return consul(state, ns.node, args)
    if ns.tool == "psql":
        return psql(state, ns.node, args)
    if ns.tool == "xivo-configure-uuid":
        return configure_uuid(state, ns.node)
    if ns.tool in ("xivo-backup-consul-kv", "xivo-restore-consul-kv"):
        return consul_kv(ns.tool, args)
    if ns.tool == "sudo":  # `sudo -u postgres psql ...`: the lab runs everything as root already
        while args and args[0].startswith("-"):
            args = args[2:] if args[0] in ("-u", "-g") else args[1:]
        return subprocess.run(args, env=os.environ).returncode
    # (on a node that is a host of its own, curl and iptables are the real ones: lab.bindir)
    if ns.tool == "curl":
        # On the node, localhost:8500 is its own consul; nodes sharing the host: its own address.
        args = [re.sub(r"//(localhost|127\.0\.0\.1)([:/])", rf"//{node.address}\2", a) for a in args]
        return subprocess.run(["/usr/bin/curl", *args]).returncode
    _say("lab: iptables rules are not applied in a lab whose nodes share this host's network"
         " (`lab up --netns` gives each node its own)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
