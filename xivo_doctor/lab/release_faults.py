"""Faults that live where the daemons of a release judge differently from the manual's wording.

Place in the lab: makers for `faults.CATALOGUE` (which refuses them where they make no sense),
kept apart from the catalogue so that each module stays one concern. Each is made the way it
happens to an admin (docs/xivo-behaviour.md):

- a `xivo` directory URI typed with a trailing slash: xivo-confgend splits the URI at ':' and
  reads `9486/` as the port, fails the whole `dird/sources.yml` and serves its cached copy
  (xivo-confgend `_format_confd_config`, every tag), so xivo-dird keeps its previous sources;
- XiVO 16.15 with the consul package 0.7.0~xivo3, whose consul-customize-anonymous-token was broken
  (the rules `service:xivo-:read`, not HCL; fixed in ~xivo4, wazo-pbx/wazo-consul-config 5ae736b
  then fe727aa): the anonymous token never gets its read rule, and 16.15's xivo-ctid, which looks
  its peers up without a token through the health endpoint, finds nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import requests

from xivo_doctor.lab import releases
from xivo_doctor.lab.nodes import LabNode, write_file
from xivo_doctor.lab.state import LabError, LabState

Say = Callable[[str], None]
Sql = Callable[[LabState, LabNode, str], None]
Restart = Callable[[LabState, LabNode, str, Say], None]

# the script of consul 0.7.0~xivo3 (wazo-consul-config bin/consul-customize-anonymous-token@5ae736b)
BROKEN_CUSTOMIZE_SCRIPT = (
    "#!/bin/sh\n"
    "# consul 0.7.0~xivo3: the rules are not HCL and the body is word-split (fixed in ~xivo4)\n"
    "body='{\"ID\": \"anonymous\", \"Rules\": \"service:xivo-:read\"}'\n"
    "token=$(cat /var/lib/consul/master_token)\n"
    'curl -k -s -o /dev/null "https://localhost:8500/v1/acl/update" -d ${body} -H "X-Consul-Token: ${token}"\n'
)


def directory_uri_trailing_slash(state: LabState, node: LabNode, peer: LabNode, say: Say, sql: Sql) -> None:
    """The directory of the peer re-typed in Configuration → Management → Directories as
    `https://<peer>:9486/`; up to 16.12 its definition names it by that same URI."""
    where = f"uri = 'https://{peer.address}:9486'"
    statements = [f"UPDATE directories SET uri = uri || '/' WHERE dirtype = 'xivo' AND {where}"]
    if not releases.ctidirectories_by_id(node.version):
        statements.insert(0, f"UPDATE ctidirectories SET uri = uri || '/' WHERE {where}")
    sql(state, node, "; ".join(statements))


def anonymous_token_not_customised(state: LabState, node: LabNode, peer: LabNode, say: Say,
                                   restart: Restart) -> None:
    """16.15 on consul 0.7.0~xivo3: the broken script in place, the anonymous token without rules as
    a fresh install leaves it, consul restarted (the script then fails, silently as in its unit)."""
    write_file(state.root(node) / "usr/bin/consul-customize-anonymous-token", BROKEN_CUSTOMIZE_SCRIPT, 0o755)
    reset = requests.put(
        f"https://{node.address}:8500/v1/acl/update", json={"ID": "anonymous", "Name": "Anonymous Token",
                                                            "Type": "client", "Rules": ""},
        headers={"X-Consul-Token": node.master_token}, verify=False, timeout=10)
    if reset.status_code != 200:
        raise LabError(f"{node.name}: resetting the anonymous token failed: {reset.status_code} {reset.text}")
    restart(state, node, "consul", say)


def only_16_15(node: LabNode, peer: LabNode) -> str | None:
    if releases.key(node.version) >= (16, 15):
        return None
    return (f"{node.name} runs XiVO {node.version}: consul-customize-anonymous-token ships with 16.15's consul "
            "package; before, no release lets the anonymous token read services")
