"""Where a rendered document goes: a file, replaced atomically, or standard output (`-`).

Place in the pipeline: the last step of presentation, shared by the JSON, JUnit and HTML
writers. A monitoring system or a browser reading the file never sees half a document: it is
written beside its destination, then renamed over it. Parent directories are created. A
destination that is not a plain file (/dev/null, a FIFO an agent reads) is written into, never
renamed over; a symbolic link's target is the destination, the link stays.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path


def write_output(dest: str | os.PathLike[str], text: str, *, mode: int = 0o644) -> None:
    if str(dest) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    path = destination(dest)
    if in_place(path):
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def destination(dest: str | os.PathLike[str]) -> Path:
    """The file to write: `dest`, or what it links to (a rename over the link would replace the link)."""
    path = Path(dest)
    return path.resolve() if path.is_symlink() else path


def in_place(path: Path) -> bool:
    """True for an existing destination that is no regular file nor folder: a device such as /dev/null
    or a FIFO. A rename over it would put a plain file in its place (for /dev/null, the machine's)."""
    return path.exists() and not path.is_file() and not path.is_dir()
