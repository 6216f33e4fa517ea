"""The lab's Consul agent process: `python -m xivo_doctor.lab.consul --root <node root>` (via `__main__`).

Place in the pipeline: lab only (docs/lab.md, "consul"). It stands in for a XiVO's `consul agent
-config-dir /etc/consul/xivo` (XIVO-FACTS §4), a one-server datacenter named after the short hostname:

- config: `etc/consul/xivo/*.json` merged in lexical order (`consul.config`); a file that is not JSON
  stops it with exit code 1, as consul refuses a bad config;
- WAN gossip: a real `serf agent` child on `bind_addr:8302` (`consul.serf`), killed with the stand-in;
- HTTP API on `client_addr:ports.https` with `cert_file`/`key_file`, and the lab's forwarding listener
  on `bind_addr:8300` (`consul.api`); services and checks under `data_dir` (`consul.state`).

On SIGTERM/SIGINT it stops serf **without a leave** (TERM; KILL after 3 s), so the other nodes see
this one `failed` after serf's detection delay (~40 s), as when a consul server stops or crashes;
its snapshot makes the restarted serf rejoin its peers. Logs go to `var/log/consul.log` in consul's
line format. Exit code 1 if the config, serf or a listener cannot start, or if serf dies.
"""

from __future__ import annotations

import logging
import signal
import ssl
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import ClassVar

from xivo_doctor.lab.consul.api import Agent, make_handler
from xivo_doctor.lab.consul.config import ConfigError, ConsulConfig, load_config
from xivo_doctor.lab.consul.serf import SerfAgent, SerfError
from xivo_doctor.lab.consul.state import State
from xivo_doctor.lab.standins.base import Node, Server, main_args, serve, tls_context


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
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        config = load_config(node)
    except ConfigError as exc:
        return fail(log, str(exc))
    log.info(f"==> Starting Consul agent... (lab stand-in) node '{config.node_name}' dc '{config.datacenter}'")
    config.data_dir.mkdir(parents=True, exist_ok=True)
    state = State(config.data_dir, config.node_name, config.server_port, log)
    serf = SerfAgent(node_name=config.node_name, datacenter=config.datacenter, bind_addr=config.bind_addr,
                     advertise_addr=config.advertise_addr, port=config.serf_wan_port,
                     server_port=config.server_port, snapshot=config.data_dir / "serf" / "remote.snapshot",
                     rejoin=config.rejoin_after_leave, log=log)

    def serf_died(code: int) -> None:
        log.error(f"agent: WAN serf exited unexpectedly (code {code}), shutting down")
        outcome["code"] = 1
        stop.set()

    try:
        serf.start(serf_died)
    except (SerfError, OSError) as exc:
        serf.stop()
        return fail(log, f"Error starting agent: WAN serf: {exc}")
    agent = Agent(config=config, state=state, serf=serf, log=log, node_id=node_id(config.data_dir))
    try:
        servers = start_listeners(node, config, agent)
    except (OSError, ssl.SSLError) as exc:
        serf.stop()
        return fail(log, f"Error starting agent: {exc}")
    log.info(f"consul: New leader elected: {config.node_name}")
    stop.wait()
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
