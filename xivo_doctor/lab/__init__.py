"""The lab: a live interconnection of N XiVO nodes on this machine (docs/lab.md).

Real RabbitMQ, PostgreSQL and serf; stand-ins for Consul's HTTP API, xivo-ctid, xivo-confd and
the web services, each driven by its node's config files and tables. Used by `xivo-doctor lab`,
`xivo-doctor demo` and the integration tests.
"""
