"""directory-lookup's fix: what makes xivo-dird search as its tables say.

Place in the pipeline: the checks; a private part of checks/directory_lookup.py (a `_*.py` file is
not a check). When the tables are right (directory-source and phonebook-restricted pass) and dird
still finds nothing, dird runs with an older configuration (it reads it at start: the manual's
"Restart xivo-dird"; it also keeps the peer's UUID it first read until it restarts, research §3.2),
is stopped, cannot reach its xivo-auth, or a source fails at run time, which its log says.
"""

from __future__ import annotations

from xivo_doctor.check import FixContext, FixSteps
from xivo_doctor.foundation.results import FixOut

RESTART = "service xivo-dird restart"
LOG = "grep -E 'Cannot fetch|An error occured in search|does not exist|Cannot find lookup|request error' " \
      "/var/log/xivo-dird.log | tail -n 20"


def lookup_fix(ctx: FixContext) -> FixOut:
    xivo, peer = ctx.xivo, ctx.peer
    assert xivo is not None and peer is not None
    steps = FixSteps()
    for p in ctx.evidence.get("problems", []):
        kind = p.get("kind")
        if kind == "refused":
            steps.add(f"start xivo-dird on {xivo.name} (Services → IPBX, or the command) and see that it stays up",
                      [f"{RESTART}  # on {xivo.name}", f"tail -n 20 /var/log/xivo-dird.log  # on {xivo.name}"])
        elif kind == "auth":
            steps.add(f"on {xivo.name}, get xivo-auth answering on localhost:9497 again, then restart xivo-dird",
                      [f"service xivo-auth restart  # on {xivo.name}", f"{RESTART}  # on {xivo.name}"])
        elif kind == "auth-consul":
            steps.add(f"start Consul on {xivo.name}: xivo-auth keeps its tokens there",
                      [f"service consul start  # on {xivo.name}"])
        elif kind == "auth-token":
            steps.add(f"xivo-auth of {xivo.name} fails to make tokens: its log says why; restart it",
                      [f"tail -n 20 /var/log/xivo-auth.log  # on {xivo.name}",
                       f"service xivo-auth restart  # on {xivo.name}"])
        elif kind in ("profile", "stale", "not-found", "phonebook"):
            what = {"profile": f"the profile {p.get('profile')!r} its tables make",
                    "stale": f"{peer.name}'s UUID as it is now",
                    "phonebook": f"{peer.name}'s phonebook source as the tables define it"}.get(
                kind, f"{peer.name}'s directory as the tables define it")
            steps.add(f"restart xivo-dird on {xivo.name}: it reads its directories only at start, so it gets "
                      f"{what}; if a new run still finds nothing, the lines of its log name the source's error",
                      [f"{RESTART}  # on {xivo.name}", f"{LOG}  # on {xivo.name}"])
        else:
            steps.add(f"xivo-dird of {xivo.name} answered HTTP {p.get('status')}: its log says why",
                      [f"{LOG}  # on {xivo.name}"])
    return steps.out("contact_and_presence_sharing.rst#restart-xivo-dird")
