"""The redactor of a topology: its secrets, and with `addresses`, pseudonyms for its XiVOs' addresses.

Place in the pipeline: the topology knows what is secret in it (passwords, tokens, the database
DSN, every `${VAR}` it expanded) and which names a report must keep readable; the redaction itself
is the foundation's (foundation/redact.py). The run redacts every result and report with it; the
CLI masks its error lines with it once the topology is loaded.
"""

from __future__ import annotations

from xivo_doctor.foundation.redact import Redactor
from xivo_doctor.topology.model import Topology


def redactor_for(topology: Topology | None, *, addresses: bool = False) -> Redactor:
    if topology is None:
        return Redactor(addresses=addresses)
    # A secret equal to a name the report must show (the manual's `rabbitmqctl add_user xivo
    # xivo` makes the password the user name, the exchange name and the directory type) cannot
    # be masked as free text without making the report unreadable; it is still masked wherever
    # it stands as a credential (URIs, headers, password fields).
    names = {topology.name, "xivo"}
    for x in topology.xivos:
        names |= {x.name, x.rabbitmq.user, x.rabbitmq.vhost, x.confd.username or ""}
        if x.rabbitmq.management is not None:
            names.add(x.rabbitmq.management.user or "")
    folded = {n.lower() for n in names if n}
    secrets = [s for s in (*topology.secrets(), *topology.env_values) if s.lower() not in folded]
    return Redactor(secrets, addresses=addresses, known_addresses=[x.address for x in topology.xivos],
                    names=[topology.name, *(x.name for x in topology.xivos)])
