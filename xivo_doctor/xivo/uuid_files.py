"""The files xivo-configure-uuid writes XIVO_UUID to, and how their XIVO_UUID line is read.

Place in the pipeline: XiVO facts used by the on-box probe (probes/onbox.py) and `uuid-unique`; no
I/O. Source: wazo-platform/xivo-manage-db bin/xivo-configure-uuid (XIVO-FACTS §2): a shell
`export XIVO_UUID=...` in /etc/profile.d/xivo_uuid.sh, `XIVO_UUID=...` in /etc/default/xivo and
`DefaultEnvironment="XIVO_UUID=..."` in /etc/systemd/system.conf (`_set_system_conf`).
"""

from __future__ import annotations

import re

XIVO_UUID_FILES = ("/etc/profile.d/xivo_uuid.sh", "/etc/default/xivo", "/etc/systemd/system.conf")

_SHELL_UUID = re.compile(r"""^\s*(?:export\s+)?XIVO_UUID=(["']?)([^"'\s;]*)\1""")
_SYSTEMD_UUID = re.compile(r"""XIVO_UUID=([^"'\s]*)""")


def uuid_in(path: str, text: str | None) -> str | None:
    """XIVO_UUID as the last uncommented assignment of `text` (the content of `path`) sets it; None
    when the file is missing (`text` None) or sets none."""
    if text is None:
        return None
    found = None
    for line in text.splitlines():
        if line.lstrip().startswith(("#", ";")):
            continue
        if path.endswith("system.conf"):
            # DefaultEnvironment="XIVO_UUID=..." (xivo-configure-uuid, _set_system_conf)
            if line.strip().startswith("DefaultEnvironment="):
                for match in _SYSTEMD_UUID.finditer(line):
                    found = match.group(1) or None
        else:
            match = _SHELL_UUID.match(line)
            if match:
                found = match.group(2) or None
    return found
