"""Which Consul a XiVO ships, and what that Consul version does differently (lab only).

Place in the lab: `consul.agent` reads the node's `usr/share/xivo/XIVO-VERSION` and picks its row
here; `consul.api`, `consul.acl` and `consul.serf` then behave as that Consul version.

The table is **inferred from dates** (research R1 §4a): XiVO's consul packaging repository
(`wazo-pbx/wazo-consul-config`, `debian/changelog` at 3ff019b) has no tags, and the `xivo`
metapackage depends on an unversioned `consul` (`wazo-platform/wazo-platform:debian/control`
@xivo-15.19…16.15). Each XiVO release is matched with the last consul package dated before it:

  XiVO 15.19          consul 0.5.2-1~xivo24 (2015-12-02; 0.6.0~xivo1 only on 2015-12-16)
  XiVO 15.20          consul 0.6.0~xivo8    (2015-12-22; 0.6.1~xivo1 only on 2016-01-12)
  XiVO 16.01 – 16.03  consul 0.6.3~xivo1    (2016-01-25)
  XiVO 16.04 – 16.12  consul 0.6.4~xivo1/2  (2016-03-22, 2016-08-09; 16.12 is borderline: 0.7.0~xivo2 is
                                             dated 2016-09-19, the 16.12 release day)
  XiVO 16.13 – 16.14  consul 0.7.0~xivo2    (2016-09-19)
  XiVO 16.15          consul 0.7.0~xivo4    (2016-11-10; 0.7.1~xivo1 only on 2016-11-18): adds
                      `consul-customize-anonymous-token` as `ExecStartPost` (wazo-consul-config fe727aa)

What differs between those Consul versions, for what the lab serves (R1 §4c, hashicorp/consul CHANGELOG):
- 0.6.0 "Service ACLs now apply to service discovery" (GH-1024): catalog/health reads are filtered
  by the token's service read rights; on 0.5.2 everyone sees every service;
- 0.6.0 "Added new `X-Consul-Token` HTTP header option" (GH-1318): on 0.5.2 only `?token=` is read;
- 0.6.4 "Added a default set of `Accept` headers for HTTP checks" (GH-1819);
- none of them enforces ACLs on `/v1/agent/*` (that came with 0.8's `acl_enforce_version_8`).
Revisions are the release tags' commits (Homebrew formulae for v0.5.2/v0.6.0/v0.6.3/v0.7.0; an
`agent/self` dump for v0.6.4). Protocol ranges: Consul 0.5.x speaks 1–2, 0.6.x and 0.7.x 1–3 (default 2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class ConsulVersion:
    version: str                 # "0.7.0": agent/self Config.Version
    revision: str                # the release tag's commit: agent/self Config.Revision
    package: str                 # XiVO's Debian package version (R1 §4a)
    protocol_max: int            # serf tag vsn_max (vsn 2, vsn_min 1 on all of them)
    # consul.service has ExecStartPost=-/usr/bin/consul-customize-anonymous-token
    customize_anonymous_token: bool = False

    @property
    def number(self) -> tuple[int, ...]:
        return tuple(int(part) for part in self.version.split("."))

    @property
    def filters_discovery(self) -> bool:
        """Service ACLs apply to catalog/health reads (Consul >= 0.6.0)."""
        return self.number >= (0, 6, 0)

    @property
    def reads_token_header(self) -> bool:
        """`X-Consul-Token` is read (Consul >= 0.6.0); before, only `?token=`."""
        return self.number >= (0, 6, 0)

    @property
    def sends_accept_header(self) -> bool:
        """HTTP checks send `Accept: text/plain, text/*, */*` (Consul >= 0.6.4)."""
        return self.number >= (0, 6, 4)

    @property
    def build(self) -> str:
        """The serf `build` tag: `<version>:<revision truncated to 8>` (consul agent's setupServer)."""
        return f"{self.version}:{self.revision[:8]}"


CONSUL_0_5_2 = ConsulVersion("0.5.2", "9a9cc9341bb487651a0399e3fc5e1e8a42e62dd9", "0.5.2-1~xivo24", 2)
CONSUL_0_6_0 = ConsulVersion("0.6.0", "46499d6e7237ca8547c15ce44e9b93bea48a455b", "0.6.0~xivo8", 3)
CONSUL_0_6_3 = ConsulVersion("0.6.3", "c933efde50d25395c7b5a42167578fda603d43d8", "0.6.3~xivo1", 3)
CONSUL_0_6_4 = ConsulVersion("0.6.4", "26a0ef8c41aa2252ab4cf0844fc6470c8e1d8256", "0.6.4~xivo2", 3)
CONSUL_0_7_0 = ConsulVersion("0.7.0", "a189091a3530051285c12c726ca28ea55e015336", "0.7.0~xivo2", 3)
CONSUL_0_7_0_XIVO4 = ConsulVersion("0.7.0", "a189091a3530051285c12c726ca28ea55e015336", "0.7.0~xivo4", 3,
                                   customize_anonymous_token=True)

# (first XiVO version of the range, its consul), in order: a version uses the last row not after it.
TABLE: tuple[tuple[tuple[int, int], ConsulVersion], ...] = (
    ((15, 19), CONSUL_0_5_2),
    ((15, 20), CONSUL_0_6_0),
    ((16, 1), CONSUL_0_6_3),
    ((16, 4), CONSUL_0_6_4),
    ((16, 13), CONSUL_0_7_0),
    ((16, 15), CONSUL_0_7_0_XIVO4),
)
LAST_XIVO = (16, 15)
# What a node with a missing or unknown version file runs: the lab's default release (nodes.DEFAULT_VERSION),
# as the other stand-ins do (fidelity limit: a real consul has its version built in).
DEFAULT_XIVO = "16.13"
_XIVO_VERSION = re.compile(r"^(\d{2})\.(\d{2})(?:\.\d{1,2})?$")


def for_xivo(xivo_version: str) -> ConsulVersion:
    """The consul of a XiVO version such as "16.13" or "16.08.2".

    ValueError if it is not a XiVO version the lab runs (15.19 to 16.15).
    """
    match = _XIVO_VERSION.match(xivo_version.strip())
    wanted = (int(match[1]), int(match[2])) if match else None
    if wanted is None or not TABLE[0][0] <= wanted <= LAST_XIVO:
        raise ValueError(f"not a XiVO version the lab runs (15.19 to 16.15): {xivo_version!r}")
    chosen = TABLE[0][1]
    for first, consul in TABLE:
        if wanted >= first:
            chosen = consul
    return chosen
