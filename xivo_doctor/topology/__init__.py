"""The topology: which XiVOs form the interconnection, how to reach them, which pairs to expect.

Place in the pipeline: the CLI calls `find_topology` then `load_topology`, which reads the YAML
file (`loader`), validates it (`schema`) and returns the immutable model (`model`). Any bad input
raises `TopologyError`; the CLI turns it into one line and exit 3.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..foundation.errors import TopologyError
from .loader import read_tree
from .model import (
    AuthAccess,
    ConfdAccess,
    ConsulAccess,
    CtidAccess,
    DirdAccess,
    OnBoxAccess,
    Pair,
    RabbitMQAccess,
    RabbitMQManagement,
    Secret,
    Topology,
    WebServicesAccess,
    Xivo,
)
from .schema import build_topology

__all__ = [
    "AuthAccess", "ConfdAccess", "ConsulAccess", "CtidAccess", "DirdAccess", "OnBoxAccess", "Pair", "RabbitMQAccess",
    "RabbitMQManagement", "Secret", "Topology", "WebServicesAccess", "Xivo",
    "find_topology", "lab_topology_path", "load_topology",
]


def load_topology(path: str | os.PathLike[str]) -> Topology:
    """Read, validate and return the topology in `path`; raises only `TopologyError`."""
    file = os.fspath(path)
    source = Path(file)
    try:
        tree = read_tree(source, file)
        return build_topology(tree, file, source.resolve())
    except RecursionError:
        # Deep nesting the loader's own guard did not catch; never a traceback.
        raise TopologyError("the YAML is nested too deeply; a topology file is a few levels deep",
                            file=file) from None


def lab_topology_path() -> Path:
    """Where `xivo-doctor lab up` writes the running lab's topology."""
    return Path(os.environ.get("XIVO_DOCTOR_LAB_DIR", "/var/tmp/xivo-doctor-lab")) / "topology.yml"


def find_topology(explicit: str | None) -> Path:
    """`explicit` as given (load_topology reports it if missing); else the first default that exists."""
    if explicit is not None:
        return Path(explicit)
    candidates = [Path("xivo-doctor.yml"), Path("/etc/xivo-doctor/topology.yml"), lab_topology_path()]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise TopologyError(
        f"no topology file found (looked in ./xivo-doctor.yml, /etc/xivo-doctor/topology.yml, "
        f"{candidates[2]}); write one (README: Topology file), pass -T FILE, "
        "or start the lab with `xivo-doctor lab up`")
