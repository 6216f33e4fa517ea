"""The text the manual's troubleshooting command prints, read as the doctor reads the term it gets.

`rabbitmqctl eval 'rabbit_federation_status:status().'` (XIVO-FACTS §5, LAB-NOTES §A.5) prints the
links' term, or an error when the plugin does not run; the doctor asks for the same term inside one
`eval` (probes/rabbitmq/broker.py). The tests feed real outputs of that command through here.
"""

from __future__ import annotations

from typing import Any

from xivo_doctor.probes.rabbitmq import federation_status as fs


def parse_status(text: str) -> list[dict[str, Any]] | None:
    """The command's output -> links; None: the plugin does not run."""
    if fs.plugin_not_running(text):
        return None
    return fs.links_from_term(fs.parse_term(text))
