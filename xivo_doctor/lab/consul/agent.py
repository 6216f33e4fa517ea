"""The lab's Consul agent process: `python -m xivo_doctor.lab.consul --root <node root>` (via `__main__`).

Place in the pipeline: lab only (docs/lab.md, "consul"). It stands in for a XiVO's `consul agent
-config-dir /etc/consul/xivo` (XIVO-FACTS §4), a one-server datacenter named after the short hostname:

- config: `etc/consul/xivo/*.json` merged in lexical order (`consul.config`); a file that is not JSON
  stops it with exit code 1, as consul refuses a bad config;
- WAN gossip: a real `serf agent` child on `bind_addr:8302` (`consul.serf`), killed with the stand-in;
- HTTP API on `client_addr:ports.https` with `cert_file`/`key_file`, and the lab's forwarding listener
  on `bind_addr:8300` (`consul.api`); services and checks under `data_dir` (`consul.state`), ACL
  tokens under `data_dir/raft/` (`consul.acl`), HTTP checks run by `consul.checks`;
- the Consul version of the node's XiVO (`usr/share/xivo/XIVO-VERSION`, `consul.versions`), read at
  start; a missing or unknown version file is logged and taken as the lab's default XiVO (16.13);
- on XiVO 16.15 (package 0.7.0~xivo4), consul.service's `ExecStartPost=-/usr/bin/consul-customize-anonymous-token`
  runs once the leader is elected, if the node has that script: the ACL update in its `body='...'`
  line, with `/var/lib/consul/master_token`, failures ignored (research R1 §4b).

On SIGTERM/SIGINT it stops serf **without a leave** (TERM; KILL after 3 s), so the other nodes see
this one `failed` after serf's detection delay (~40 s), as when a consul server stops or crashes;
its snapshot makes the restarted serf rejoin its peers. Logs go to `var/log/consul.log` in consul's
line format. Exit code 1 if the config, serf or a listener cannot start, or if serf dies.
"""

from __future__ import annotations

import json
import logging
import re
import signal
import ssl
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import ClassVar

from xivo_doctor.lab.consul import versions
from xivo_doctor.lab.consul.acl import AclError, AclStore
from xivo_doctor.lab.consul.api import make_handler
from xivo_doctor.lab.consul.checks import HttpChecks
from xivo_doctor.lab.consul.config import ConfigError, ConsulConfig, load_config
from xivo_doctor.lab.consul.local_agent import Agent, serf_tags
from xivo_doctor.lab.consul.serf import SerfAgent, SerfError
from xivo_doctor.lab.consul.state import State, field
from xivo_doctor.lab.standins.base import Node, Server, main_args, serve, tls_context

CUSTOMIZE_SCRIPT = "/usr/bin/consul-customize-anonymous-token"
MASTER_TOKEN_FILE = "/var/lib/consul/master_token"
_SCRIPT_BODY = re.compile(r"^\s*body='(?P<body>.*)'\s*$", re.M)


class ConsulFormatter(logging.Formatter):
    """Consul 0.7's log lines: `    2016/11/29 10:00:00 [INFO] agent: ...`."""

    LEVELS: ClassVar[dict[str, str]] = {"WARNING": "WARN", "ERROR": "ERR", "CRITICAL": "ERR"}

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(record.created))
        line = f"    {stamp} [{self.LEVELS.get(record.levelname, record.levelname)}] {record.getMessage()}"
        return line + ("\n" + self.formatException(record.exc_info) if record.exc_info else "")


def consul_log(node: Node) -> logging.Logger:
    log = node.log("consul")
    for handler in log.handlers:
        handler.setFormatter(ConsulFormatter())
    return log


def node_id(data_dir: Path) -> str:
    """A stable node ID kept in `<data_dir>/node-id`, as later consul versions do."""
    path = data_dir / "node-id"
    if not path.exists():
        path.write_text(str(uuid.uuid4()))
    return path.read_text().strip()


def consul_version(node: Node, log: logging.Logger) -> versions.ConsulVersion:
    """The consul package of the node's XiVO version (`consul.versions`)."""
    try:
        return versions.for_xivo(node.version())
    except (OSError, ValueError) as exc:
        log.warning(f"lab: XiVO version unknown ({exc}): consul of the lab's default XiVO {versions.DEFAULT_XIVO}")
        return versions.for_xivo(versions.DEFAULT_XIVO)


def customize_anonymous_token(node: Node, agent: Agent, log: logging.Logger) -> None:
    """XiVO 16.15's ExecStartPost (wazo-consul-config fe727aa, R1 §4b), after the leader election.

    The script PUTs its `body` to /v1/acl/update with the token of /var/lib/consul/master_token;
    systemd ignores its failure (`-` prefix) and curl's output is discarded: here it is only logged.
    """
    script = node.path(CUSTOMIZE_SCRIPT)
    if not agent.version.customize_anonymous_token or not script.is_file():
        return
    shown = f"lab: ExecStartPost=-{CUSTOMIZE_SCRIPT}"
    try:
        match = _SCRIPT_BODY.search(script.read_text())
        if match is None:
            raise ValueError("no body='...' line")
        body = json.loads(match["body"])
        if not isinstance(body, dict) or not field(body, "ID"):
            raise ValueError("ACL ID must be set")  # what acl/update answers (400)
        token = node.path(MASTER_TOKEN_FILE).read_text().strip()
        agent.acls.apply_set(token, str(field(body, "ID")), str(field(body, "Name") or ""),
                             str(field(body, "Type") or "client"), str(field(body, "Rules") or ""))
    except (OSError, ValueError, AclError) as exc:
        log.info(f"{shown}: failed (ignored): {exc}")
        return
    log.info(f"{shown}: token {field(body, 'ID')!r} updated")


def fail(log: logging.Logger, message: str) -> int:
    log.error(message)
    print(f"==> {message}", file=sys.stderr)
    return 1


def start_listeners(node: Node, config: ConsulConfig, agent: Agent) -> list[Server]:
    """The forwarding listener (server RPC port) and the HTTPS API; OSError/SSLError if one cannot start."""
    servers = [serve(config.bind_addr, config.server_port, make_handler(agent, rpc=True))]
    agent.log.info(f"agent: lab server RPC (HTTP forwarding) listening on {config.bind_addr}:{config.server_port}")
    if config.https_port > 0:
        tls = tls_context(node, config.cert_file, config.key_file)
        servers.append(serve(config.client_addr, config.https_port, make_handler(agent), tls=tls))
        agent.log.info(f"agent: Starting HTTPS server on {config.client_addr}:{config.https_port}")
    if config.http_port > 0:
        servers.append(serve(config.client_addr, config.http_port, make_handler(agent)))
        agent.log.info(f"agent: Starting HTTP server on {config.client_addr}:{config.http_port}")
    return servers


def run(root: str) -> int:
    node = Node(root)
    log = consul_log(node)
    # Our own stop event rather than standins.base.wait_for_stop: a dying serf must also stop us, with code 1.
    stop = threading.Event()
    outcome = {"code": 0}
    # The handler only notes the signal: Event.set() in a handler can deadlock on the lock the main
    # thread's Event.wait() holds when the signal lands (standins.base.wait_for_stop says the same)
    signals: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: signals.append(signum))
    try:
        config = load_config(node)
    except ConfigError as exc:
        return fail(log, str(exc))
    version = consul_version(node, log)
    log.info(f"==> Starting Consul agent... (lab stand-in) node '{config.node_name}' dc '{config.datacenter}'")
    log.info(f"         Version: 'v{version.version}' (package {version.package})")
    config.data_dir.mkdir(parents=True, exist_ok=True)
    state = State(config.data_dir, config.node_name, config.server_port, log)
    acls = AclStore(config.data_dir / "raft", enabled=bool(config.acl_datacenter),
                    master_token=config.acl_master_token, default_policy=config.acl_default_policy,
                    bump=state.bump, log=log)
    state.index = max(state.index, acls.max_index())
    serf = SerfAgent(node_name=config.node_name, datacenter=config.datacenter, bind_addr=config.bind_addr,
                     advertise_addr=config.advertise_addr, port=config.serf_wan_port,
                     server_port=config.server_port, snapshot=config.data_dir / "serf" / "remote.snapshot",
                     rejoin=config.rejoin_after_leave, log=log, extra_tags=serf_tags(config, version))

    def serf_died(code: int) -> None:
        log.error(f"agent: WAN serf exited unexpectedly (code {code}), shutting down")
        outcome["code"] = 1
        stop.set()

    try:
        serf.start(serf_died)
    except (SerfError, OSError) as exc:
        serf.stop()
        return fail(log, f"Error starting agent: WAN serf: {exc}")
    try:
        own_address = node.address  # where an HTTP check's `localhost` lands first (consul.checks)
    except (OSError, ValueError, KeyError):
        own_address = "127.0.0.1"  # a node without interfaces.json: only its loopback
    checks = HttpChecks(state, own_address, version, log)
    agent = Agent(config=config, version=version, state=state, acls=acls, checks=checks, serf=serf, log=log,
                  node_id=node_id(config.data_dir))
    # Leadership, its initializeACL and systemd's ExecStartPost all happen before `systemctl start consul`
    # returns; the lab's "started" is the API port accepting, so they come before the listeners.
    log.info(f"consul: New leader elected: {config.node_name}")
    acls.initialize()
    customize_anonymous_token(node, agent, log)
    try:
        servers = start_listeners(node, config, agent)
    except (OSError, ssl.SSLError) as exc:
        serf.stop()
        return fail(log, f"Error starting agent: {exc}")
    checks.sync()
    while not signals and not stop.wait(0.2):
        pass
    checks.stop()
    log.info("agent: requesting shutdown")
    closing = [threading.Thread(target=server.shutdown) for server in servers]  # each waits up to 0.5 s
    for thread in closing:
        thread.start()
    for thread, server in zip(closing, servers, strict=True):
        thread.join()
        server.server_close()
    serf.stop()
    log.info("agent: shutdown complete")
    return outcome["code"]


def main() -> None:
    args = main_args("Consul HTTP API stand-in with real serf WAN gossip (lab)")
    sys.exit(run(args.root))


if __name__ == "__main__":
    main()
