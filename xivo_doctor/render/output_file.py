"""Where a rendered document goes: a file, replaced atomically, or standard output (`-`).

Place in the pipeline: the last step of presentation, shared by the JSON, JUnit and HTML
writers. A monitoring system or a browser reading the file never sees half a document: it is
written beside its destination, then renamed over it. Parent directories are created.
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
    path = Path(dest)
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
