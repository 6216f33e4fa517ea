"""The lab: a live interconnection of N XiVO nodes on this machine (docs/lab.md).

Real RabbitMQ, PostgreSQL and serf; stand-ins for Consul's HTTP API, xivo-ctid, xivo-confd and
the web services, each driven by its node's config files and tables. Used by `xivo-doctor lab`,
`xivo-doctor demo` and the integration tests.

What it is made of, from the bottom up:
- `nodes` (a node's files), `state` (lab.json, pids, ports), `postgres` (the `asterisk` databases);
- `rabbitmq/` (real brokers, federated), `consul/` (the Consul stand-in over real serf, and the
  client the lab talks to it with), `standins/` (xivo-confd, xivo-ctid, the web services);
- `labtopology` (the topology file for the doctor), `lifecycle` (`lab up|down|status|restart`; a new
  lab's addresses, ports and releases in `layout`, the steps that start its processes in `startup`),
  `faults` (`lab break|heal`);
- `lab exec`: `bindir` (each node's bin/ scripts), `shim` (the admin's commands they run), `execute`.
"""
