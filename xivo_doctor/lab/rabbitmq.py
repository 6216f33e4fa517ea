"""lab: real RabbitMQ nodes, one per XiVO, federated as the XiVO manual says (LAB-NOTES §A).

The public API of the lab's RabbitMQ part; the code is split in `rabbitmq_node` (files,
environment, epmd, start/stop) and `rabbitmq_federation` (the manual's commands, status).
"""

from __future__ import annotations

from xivo_doctor.lab.rabbitmq_federation import (
    EXCHANGE,
    POLICY,
    declare_exchange,
    federation_status,
    link_states,
    set_upstream,
    setup_federation,
    upstream_uri,
)
from xivo_doctor.lab.rabbitmq_node import (
    DIST_PORT_BASE,
    EPMD_PORT,
    RABBITMQ_BIN,
    RabbitNode,
    ctl,
    ctl_argv,
    ensure_cookie,
    env,
    is_running,
    rabbitmq_home,
    start,
    start_epmd,
    stop,
    stop_epmd,
    wait_ready,
    write_config,
    write_ctl_wrappers,
)

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
    "federation_status",
    "is_running",
    "link_states",
    "rabbitmq_home",
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
