"""Who logs in on a lab node, and what their shell runs first: as on a fresh Debian XiVO.

Place in the lab: `nodes.write_root` writes these in a node's root when the node is a host of its
own (`--netns`); the node's mount namespace (lab.mountns) binds them over the XiVO paths.

- Root's `.bashrc` and `.profile` are Debian's (base-files' dot.bashrc and dot.profile): bash
  sources `~/.bashrc` for every command sshd runs, and this machine's own may start anything (a
  pyenv init costs each SSH command 0.1 s of CPU), which no XiVO does.
- `/etc/passwd` and `/etc/shadow` are this machine's plus `ADMIN`, an account that is not root and
  is not in sudoers: an admin's own account, through which the doctor's `ssh.sudo` meets a `sudo`
  that asks for a password. Its shadow entry is `*` (no password, not locked: sshd, without PAM,
  refuses a locked `!` account even with a key, as it refuses postgres).
"""

from __future__ import annotations

import pwd
from collections.abc import Callable
from pathlib import Path

ADMIN = "xivo-admin"
ADMIN_HOME = "/tmp"  # sshd changes to it; nothing is written there


def _debian_dotfile(name: str) -> str:
    shipped = Path("/usr/share/base-files") / ("dot." + name.lstrip("."))
    if shipped.is_file():
        return shipped.read_text()
    return f"# ~/{name}: Debian's default (base-files) sets nothing more for root\n"


def _admin_uid(own_passwd: Path) -> int:
    """ADMIN's uid in the node's passwd (kept from the first `lab up`), else one this machine does not use."""
    for line in own_passwd.read_text().splitlines() if own_passwd.is_file() else ():
        if line.startswith(f"{ADMIN}:"):
            return int(line.split(":")[2])
    used = {entry.pw_uid for entry in pwd.getpwall()}
    return next(uid for uid in range(64990, 60000, -1) if uid not in used)


def write(root: Path, put: Callable[[str, str, int], None]) -> None:
    """Root's start files, and this machine's accounts plus ADMIN, in the node's root
    (`put(relative path, text, mode)`)."""
    for name in (".bashrc", ".profile"):
        put(f"root/{name}", _debian_dotfile(name), 0o644)
    uid = _admin_uid(root / "etc/passwd")
    passwd = Path("/etc/passwd").read_text().rstrip("\n") + "\n"
    shadow = Path("/etc/shadow").read_text().rstrip("\n") + "\n"
    put("etc/passwd", passwd + f"{ADMIN}:x:{uid}:65534:XiVO admin (xivo-doctor lab):{ADMIN_HOME}:/bin/bash\n", 0o644)
    put("etc/shadow", shadow + f"{ADMIN}:*:19000:0:99999:7:::\n", 0o640)
