"""The lab's Consul: a stand-in for a XiVO's `consul agent` (HTTP API) over a real serf WAN pool.

Place in the lab: one process per node, started as `python -m xivo_doctor.lab.consul --root <node root>`
(`__main__` → `agent`): `config` reads `etc/consul/xivo/*.json`, `serf` runs the `serf agent` child,
`state` keeps services and checks under `data_dir`, `api` serves Consul 0.7's HTTP API. `client` is
the other side: how the lab's orchestrator (`lifecycle`, `faults`, `shim`) talks to a node's Consul.
"""
