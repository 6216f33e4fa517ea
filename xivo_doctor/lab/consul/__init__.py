"""The lab's Consul: a stand-in for a XiVO's `consul agent` (HTTP API) over a real serf WAN pool.

Place in the lab: one process per node, started as `python -m xivo_doctor.lab.consul --root <node root>`
(`__main__` → `agent`): `versions` says which Consul the node's XiVO version ships, `config` reads
`etc/consul/xivo/*.json`, `serf` runs the `serf agent` child, `state` keeps services and checks under
`data_dir`, `acl` the ACL tokens under `data_dir/raft/` (`acl_rules` parses their rules), `checks` runs
HTTP checks, `api` serves the HTTP API of that Consul version (0.5.2 to 0.7.0): it dispatches to
`agent_endpoint`, `catalog` and `acl_endpoint`, over `request` (token, Consul's headers) and
`local_agent` (what the agent knows). `client` is the other side: how the lab's orchestrator
(`lifecycle`, `faults`, `shim`) talks to a node's Consul.
"""
