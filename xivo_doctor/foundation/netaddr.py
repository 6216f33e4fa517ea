"""Address helpers shared by evaluation (checks comparing URI hosts), the prefetch, redaction and the
probes' URLs.

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


def url_host(address: str) -> str:
    """The address as the host part of a URL: an IPv6 literal in brackets (RFC 3986 §3.2.2), anything else
    (a name, an IPv4 address, an already bracketed literal) as it is."""
    return f"[{address}]" if ":" in address and not address.startswith("[") else address
