"""Each lab node's own files at the XiVO paths: a mount namespace per node, for every process and shell on it.

Place in the lab: with `--netns`, `lifecycle.up` calls `create` once a node's root is written and
before any of its processes starts; `state.enter(node)` then enters it beside the node's network,
and `down` calls `destroy`. Inside, `/etc/xivo-ctid`, `/etc/consul`, `/var/lib/consul`,
`/usr/share/xivo`, `/etc/profile.d`, `/etc/passwd`, `/etc/hosts`, `/var/log`, root's `.bashrc`, ...
are the node's root (DIR/nodes/<name>/root), bind-mounted, so
`cat /etc/xivo-ctid/conf.d/interconnection.yml` in `lab exec` or over SSH reads that node's file,
and `/usr/local/sbin` (first on root's PATH, sshd's and Debian's) holds the node's `bin/` (its
rabbitmqctl, consul, service, psql... `lab.bindir`).

How: each entry of the root's `etc`, `var/lib`, `usr/share` and `usr/bin` is bind-mounted over the
same path; a path the machine lacks gets its mount point from an overlay of the parent whose upper
layer (DIR/nodes/<name>/mnt) only ever holds those empty mount points. Bind mounts are live views, so
what the lab, a fault or an admin writes in the root is what the node sees at once (an overlay whose
upper layer is written from outside would not show new files). The namespace (and a hostname
namespace: `hostname` says the node's) outlives its processes through binds on
`/run/xivo-doctor-lab/<id>/<n>.mnt` and `<n>.uts`, as `ip netns` keeps network namespaces.
"""

from __future__ import annotations

import contextlib
import shlex
import shutil
import subprocess
from pathlib import Path

from xivo_doctor.lab.errors import LabError

RUN_DIR = Path("/run/xivo-doctor-lab")
PARENTS = ("etc", "var/lib", "usr/share", "usr/bin")  # whose entries the node's root provides one by one
WHOLE = {"var/log": "var/log"}  # root path -> XiVO path, bound whole
# Root's shell start files, bound one by one where this machine has them: not the whole /root, where
# this machine may keep the very Python the lab's stand-ins run on (pyenv)
HOME_FILES = ("root/.bashrc", "root/.profile")


def ns_dir(net_id: str) -> Path:
    return RUN_DIR / net_id


def ns_file(net_id: str, index: int) -> Path:
    return ns_dir(net_id) / f"{index}.mnt"


def uts_file(net_id: str, index: int) -> Path:
    """The node's hostname namespace: `hostname` on the node says its own (its /etc/hostname)."""
    return ns_dir(net_id) / f"{index}.uts"


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if done.returncode:
        raise LabError(f"{what} failed: {(done.stderr or done.stdout).strip()}")


def _mounted(path: Path) -> bool:
    return subprocess.run(["findmnt", "-rn", str(path)], capture_output=True).returncode == 0


def _private_dir(net_id: str) -> None:
    """The folder of the namespace files: a private mount, as /run/netns is (else the bind is refused)."""
    folder = ns_dir(net_id)
    folder.mkdir(parents=True, exist_ok=True)
    if not _mounted(folder):
        _run(["mount", "--bind", str(folder), str(folder)], f"mount --bind {folder}")
        _run(["mount", "--make-private", str(folder)], f"mount --make-private {folder}")


def script(root: Path, scratch: Path, bin_dir: Path) -> str:
    """The mounts, as one shell script run inside the new namespace."""
    lines = ["set -e"]
    for parent in PARENTS:
        source = root / parent
        if not source.is_dir():
            continue
        entries = sorted(source.iterdir())
        missing = [e for e in entries if not (Path("/") / parent / e.name).exists()
                   and not (Path("/") / parent / e.name).is_symlink()]
        if missing:
            upper, work = scratch / "upper" / parent, scratch / "work" / parent
            for entry in missing:  # empty mount points, made before the overlay is mounted
                point = upper / entry.name
                if entry.is_dir():
                    point.mkdir(parents=True, exist_ok=True)
                else:
                    point.parent.mkdir(parents=True, exist_ok=True)
                    point.touch()
            work.mkdir(parents=True, exist_ok=True)
            lines.append(f"mount -t overlay xivo-doctor-lab -o lowerdir=/{parent},upperdir={upper},workdir={work}"
                         f" /{parent}")
        for entry in entries:
            lines.append(f"mount --bind {shlex.quote(str(entry))} {shlex.quote('/' + parent + '/' + entry.name)}")
    for relative, target in WHOLE.items():
        if (root / relative).is_dir():
            lines.append(f"mount --bind {shlex.quote(str(root / relative))} /{target}")
    for relative in HOME_FILES:
        if (root / relative).is_file() and Path("/", relative).is_file():
            lines.append(f"mount --bind {shlex.quote(str(root / relative))} /{relative}")
    lines.append(f"mount --bind {shlex.quote(str(bin_dir))} /usr/local/sbin")
    return "\n".join(lines) + "\n"


def create(net_id: str, index: int, root: Path, scratch: Path, bin_dir: Path) -> None:
    """Node `index`'s mount namespace, unless it exists."""
    _private_dir(net_id)
    target, uts = ns_file(net_id, index), uts_file(net_id, index)
    if target.exists() and _mounted(target):
        return
    for stale in (target, uts):  # a namespace half made (lab up killed): made again
        if _mounted(stale):
            subprocess.run(["umount", str(stale)], capture_output=True, timeout=30)
    shutil.rmtree(scratch, ignore_errors=True)
    bin_dir.mkdir(parents=True, exist_ok=True)
    target.touch()
    uts.touch()
    hostname = (root / "etc/hostname").read_text().strip()
    _run(["unshare", f"--mount={target}", f"--uts={uts}", "--propagation", "private", "--", "sh", "-c",
          f"hostname {shlex.quote(hostname)}\n" + script(root, scratch, bin_dir)],
         f"the mount namespace of node {index}")


def destroy(net_id: str) -> list[str]:
    """Unmount every namespace file of the lab, then their folder; what was removed."""
    folder = ns_dir(net_id)
    removed = []
    for target in sorted([*folder.glob("*.mnt"), *folder.glob("*.uts")]) if folder.is_dir() else []:
        with contextlib.suppress(OSError):
            subprocess.run(["umount", str(target)], capture_output=True, timeout=30)
            target.unlink()
            removed.append(str(target))
    if folder.is_dir():
        subprocess.run(["umount", str(folder)], capture_output=True, timeout=30)
        with contextlib.suppress(OSError):
            folder.rmdir()
            removed.append(str(folder))
    with contextlib.suppress(OSError):
        RUN_DIR.rmdir()  # when no other lab uses it
    return removed
