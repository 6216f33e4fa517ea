"""What the daemons of each XiVO release do, as the checks must judge it (docs/xivo-behaviour.md).

Place in the pipeline: XiVO facts shared by checks and probes; no I/O. Every field names a
behaviour read in the daemon's code at the release tags; docs/xivo-behaviour.md cites the
repository, path and tag of each. A check asks `release(version)` for the XiVO at hand (its
observed version, else the one the topology declares) and judges as that release's daemons do.
"""

from __future__ import annotations

from dataclasses import dataclass

from xivo_doctor.xivo.versions import parse

# Consul package per XiVO release, from the dates of wazo-pbx/wazo-consul-config's changelog (the
# packaging has no tags: inferred, docs/xivo-behaviour.md "Consul").
_CONSUL = (((15, 19), "0.5.2"), ((15, 20), "0.6.0"), ((16, 1), "0.6.3"), ((16, 4), "0.6.4"), ((16, 13), "0.7.0"))


@dataclass(frozen=True)
class Release:
    version: tuple[int, ...]
    consul: str  # the Consul version it ships
    # How a peer's xivo-ctid looks this XiVO's xivo-ctid up, through its own Consul with ?dc=: the
    # catalog (every registration, healthy or not) on 15.19-16.14, the health endpoint with
    # passing=True from 16.15 (xivo-lib-python ServiceFinder). Never with a token.
    ctid_lookup: str  # "catalog" | "health-passing"
    # Consul >= 0.6.0 filters discovery by the request token's service read rights.
    consul_filters_discovery: bool
    # XiVO 16.15's consul package lets the anonymous token read xivo-* services at every start.
    anonymous_reads_xivo: bool
    ctid_check: str  # "http" (check_url, 15.19-15.20) | "ttl" (16.01+)
    ctid_uuid_from: str  # "database" (infos.uuid, 15.19-16.01) | "environment" (XIVO_UUID, 16.02+)
    uuid_files: bool  # xivo-configure-uuid writes the XIVO_UUID files (16.02+)
    advertise_auto: bool  # service_discovery.advertise_address: auto understood (16.01+)
    auto_fallback: bool  # auto falls back to eth*, lo, 127.0.0.1 (16.06+); before, a missing interface stops ctid
    json_php_phonebook: bool  # xivo-web-interface's json.php phonebook (15.19-16.13)
    # The manual has the Phonebook Sharing page (16.03-16.13 for the json.php mechanism): first added by
    # wazo-platform/wazo-doc 95d73d76 (first tag xivo-16.03), still there but stale from 16.14.
    phonebook_sharing_page: bool
    # json.php `restricted` also checks the matched web services user's ACL (its PHP-serialized `obj`)
    # for service/ipbx/pbx_services/phonebook, else 403: wazo-platform/xivo-web-interface
    # src/object/accesswebservice.inc@xivo-15.19 (`_chk_acl`), removed by d2321b4a (first tag xivo-16.01).
    webservice_acl: bool
    # dird's lookup waits this long for its sources (services.yml `timeout`), None: no timeout (waits
    # every source, each bounded by its 4 s client timeout): wazo-platform/xivo-confgend
    # xivo_confgen/dird.py@xivo-15.19 (no timeout) vs @xivo-15.20 (`_default_timeout = 2.9`, 099d954).
    lookup_timeout_s: float | None
    # xivo-confd's /1.1/users?view=directory carries each user's `uuid` (wazo-platform/wazo-confd
    # xivo_confd/plugins/user/resource.py, 5662ff7c, first tag xivo-16.02).
    confd_directory_uuid: bool
    # xivo-dird's `xivo` backend reads `entry['uuid']` for every user (KeyError without it): wazo-platform/
    # wazo-dird xivo_dird/plugins/xivo_user_plugin.py `user_uuid=entry['uuid']`, 7d09022b, first tag xivo-16.02.
    dird_needs_user_uuid: bool
    # The xivo-auth backend a web services user (accesswebservice login/passwd) gets a token from:
    # `xivo_ws` up to 15.20 (fixed ACL confd.#: wazo-platform/wazo-auth xivo_auth/plugins/backends/
    # xivo_ws.py@xivo-15.19), `xivo_service` over accesswebservice and its `acl` column from 16.01
    # (xivo_service.py@xivo-16.01, b3959a85; xivo-manage-db 267d8bd31d11).
    auth_backend: str
    # xivo-dird checks `dird.directories.lookup.{profile}.read` on the token from 16.03 (wazo-platform/
    # wazo-dird xivo_dird/plugins/default_json_view.py@xivo-16.03, 57c026fc); before, any valid token.
    dird_lookup_acl: bool
    # xivo-dird's `phonebook` backend (json.php): up to 16.13, removed at 16.14 (wazo-dird setup.py
    # and etc/xivo-dird/config.yml@xivo-16.14; xivo-confgend plugins/dird_sources.py@xivo-16.14, 4067084).
    dird_phonebook_backend: bool

    @property
    def name(self) -> str:
        return ".".join(f"{p:02d}" if i else str(p) for i, p in enumerate(self.version[:2]))


def release(version: str | None) -> Release | None:
    """The behaviour of `version`'s daemons; None when the version is unknown."""
    if not version:
        return None
    v = parse(version)[:2]
    consul = next((c for since, c in reversed(_CONSUL) if v >= since), _CONSUL[0][1])
    return Release(
        version=v,
        consul=consul,
        ctid_lookup="health-passing" if v >= (16, 15) else "catalog",
        consul_filters_discovery=_at_least(consul, (0, 6)),
        anonymous_reads_xivo=v >= (16, 15),
        ctid_check="ttl" if v >= (16, 1) else "http",
        ctid_uuid_from="environment" if v >= (16, 2) else "database",
        uuid_files=v >= (16, 2),
        advertise_auto=v >= (16, 1),
        auto_fallback=v >= (16, 6),
        json_php_phonebook=v <= (16, 13),
        phonebook_sharing_page=(16, 3) <= v <= (16, 13),
        webservice_acl=v <= (15, 20),
        lookup_timeout_s=2.9 if v >= (15, 20) else None,
        confd_directory_uuid=v >= (16, 2),
        dird_needs_user_uuid=v >= (16, 2),
        auth_backend="xivo_service" if v >= (16, 1) else "xivo_ws",
        dird_lookup_acl=v >= (16, 3),
        dird_phonebook_backend=v <= (16, 13),
    )


def _at_least(version: str, wanted: tuple[int, ...]) -> bool:
    return tuple(int(p) for p in version.split(".")[:2]) >= wanted
