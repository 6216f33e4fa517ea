"""lab: real RabbitMQ nodes, one per XiVO, federated as the XiVO manual says (LAB-NOTES §A).

Place in the lab: the public API of the lab's RabbitMQ part (`from xivo_doctor.lab import rabbitmq`),
used by `lifecycle`, `faults` and `shim`. The code is split in `rabbitmq.node` (a node's files,
environment and CLI), `rabbitmq.process` (epmd, start/stop, readiness) and `rabbitmq.federation`
(the manual's commands, status).
"""

from __future__ import annotations

from xivo_doctor.lab.rabbitmq.federation import (
    EXCHANGE,
    POLICY,
    declare_exchange,
    federation_state,
    federation_status,
    link_states,
    restore_federation,
    save_healthy,
    set_upstream,
    setup_federation,
    upstream_uri,
)
from xivo_doctor.lab.rabbitmq.node import (
    DIST_PORT_BASE,
    EPMD_PORT,
    RABBITMQ_BIN,
    RabbitNode,
    ctl,
    ctl_argv,
    ensure_cookie,
    env,
    rabbitmq_home,
    write_config,
    write_ctl_wrappers,
)
from xivo_doctor.lab.rabbitmq.process import is_running, start, start_epmd, stop, stop_epmd, wait_ready

__all__ = [
    "DIST_PORT_BASE",
    "EPMD_PORT",
    "EXCHANGE",
    "POLICY",
    "RABBITMQ_BIN",
    "RabbitNode",
    "ctl",
    "ctl_argv",
    "declare_exchange",
    "ensure_cookie",
    "env",
    "federation_state",
    "federation_status",
    "is_running",
    "link_states",
    "rabbitmq_home",
    "restore_federation",
    "save_healthy",
    "set_upstream",
    "setup_federation",
    "start",
    "start_epmd",
    "stop",
    "stop_epmd",
    "upstream_uri",
    "wait_ready",
    "write_config",
    "write_ctl_wrappers",
]
