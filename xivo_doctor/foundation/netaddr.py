"""Address predicates shared by evaluation (checks comparing URI hosts), the prefetch and redaction.

Place in the pipeline: a helper with no I/O; `ipaddress` decides, so `10:11:12` or `1.2.3.4.5`
are not addresses.
"""

from __future__ import annotations

import ipaddress


def is_ip_address(text: str) -> bool:
    """True for an IPv4 or IPv6 literal (no brackets, no port)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
