"""Acquisition: everything that reads a data source (network, database, files, commands).

Probes raise `ProbeError`/`ProbeTimeout` when they cannot read; they never judge. `Probes` is
the per-run entry point that checks receive as the `probes` fixture: one deadline, one cache.
"""

from xivo_doctor.probes.session import Probes

__all__ = ["Probes"]
