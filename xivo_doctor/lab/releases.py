"""The lab's own table of what each XiVO release (15.19 to 16.15) does differently.

Place in the lab: with `releases_lookup` (xivo-dird, xivo-auth and confd's directory view, split off
to keep each module readable), the one place that knows versions. `nodes` writes each node's files as that
release leaves them, `postgres` its tables, `labtopology` declares it, `faults` says which faults
make sense on it, and the stand-ins (`standins.ctid`, `standins.webservices`) behave as that
release's daemons once they have read the node's `usr/share/xivo/XIVO-VERSION`. It imports nothing
(the lab imports nothing of the doctor: the doctor keeps its own table, `xivo_doctor.xivo.releases`).

Every fact carries its source: the research notes R1 (xivo-ctid, Consul, the UUID), R2
(directories, web services) and R3 (federation, WAN, the version), which read the upstream
repositories at each `xivo-<version>` tag; and for the web interface's login page,
`wazo-platform/xivo-web-interface` read at the tags here.
"""

from __future__ import annotations

import re
from typing import Any

# The releases the lab runs: every XiVO from 15.19 (the first with Contact and Presence Sharing,
# contact_and_presence_sharing.rst@xivo-15.19, R3 §1a) to 16.15. 16.08.2 is the one point release
# whose version file keeps its third number (R3 §4: 16.04+ write `VERSION` in full; 16.01.1 and
# 16.03.1 write 16.01 and 16.03).
RELEASES = ("15.19", "15.20", "16.01", "16.02", "16.03", "16.04", "16.05", "16.06", "16.07", "16.08", "16.08.2",
            "16.09", "16.10", "16.11", "16.12", "16.13", "16.14", "16.15")
# The lab's default: the last XiVO with the json.php phonebook sharing, so every check applies.
DEFAULT = "16.13"
_VERSION = re.compile(r"^(\d{2})\.(\d{2})(?:\.(\d{1,2}))?$")

Version = tuple[int, ...]


def key(version: str) -> Version:
    """(16, 13) for "16.13", (16, 8, 2) for "16.08.2"; ValueError when it is not a XiVO version."""
    match = _VERSION.match(version.strip())
    if match is None:
        raise ValueError(f"not a XiVO version: {version!r}")
    return tuple(int(part) for part in match.groups() if part is not None)


def supported(version: str) -> bool:
    return version.strip() in RELEASES


def parse_versions(text: str | list[str] | tuple[str, ...], count: int) -> list[str]:
    """`--version V` (every node) or `--version V1,V2,...` (one per node): the version of each node.

    ValueError with a one-line message for an unknown version or a list of the wrong length."""
    items = [v.strip() for v in (text.split(",") if isinstance(text, str) else text)]
    unknown = [v for v in items if not supported(v)]
    if not items or unknown:
        shown = ", ".join(repr(v) for v in unknown) or "nothing"
        raise ValueError(f"--version: {shown} is not a XiVO version the lab runs; one of "
                         f"{RELEASES[0]} to {RELEASES[-1]} ({', '.join(RELEASES)})")
    if len(items) == 1:
        return items * count
    if len(items) != count:
        raise ValueError(f"--version lists {len(items)} versions for {count} nodes; give one version for "
                         f"every node or exactly one per node")
    return items


def previous(version: str) -> str | None:
    """The release before `version` in RELEASES, None for the first."""
    index = RELEASES.index(version.strip()) if supported(version) else -1
    return RELEASES[index - 1] if index > 0 else None


# --- the XIVO_UUID (R1 §2) ------------------------------------------------------------------------

def uuid_files(version: str) -> bool:
    """xivo-configure-uuid writes /etc/profile.d/xivo_uuid.sh, /etc/default/xivo and
    /etc/systemd/system.conf from 16.02 (bin/xivo-configure-uuid first in wazo-platform/xivo-manage-db
    @xivo-16.02, unchanged to 16.15; R1 §2)."""
    return key(version) >= (16, 2)


def uuid_profile(uuid: str) -> str:
    """/etc/profile.d/xivo_uuid.sh, overwritten with exactly this (xivo-configure-uuid, R1 §2)."""
    return f"export XIVO_UUID={uuid}\n"


def uuid_default_line(uuid: str) -> str:
    """The line xivo-configure-uuid appends to /etc/default/xivo (`_add_sysv_compat`, R1 §2)."""
    return f"export XIVO_UUID={uuid}\n"


# Debian jessie's /etc/systemd/system.conf, the part that matters: `#DefaultEnvironment=` commented.
SYSTEM_CONF_DEBIAN = "[Manager]\n#DefaultEnvironment=\n"


def uuid_system_conf(uuid: str) -> str:
    """/etc/systemd/system.conf after `_set_system_conf`: the commented `DefaultEnvironment=` line
    replaced by `DefaultEnvironment="XIVO_UUID=<uuid>"` (R1 §2)."""
    return f'[Manager]\nDefaultEnvironment="XIVO_UUID={uuid}"\n'


# --- xivo-ctid (R1 §2, §3; R3 §4) ----------------------------------------------------------------

def ctid_uuid_from_database(version: str) -> bool:
    """15.19-16.01: `info_dao.get().uuid` at start (xivo_cti/cti_config.py@xivo-15.19..16.01);
    16.02+: the XIVO_UUID environment variable, `undefined environment variable XIVO_UUID` and exit
    when unset (xivo_cti/main.py@xivo-16.02; lib-python get_xivo_uuid from 16.06; R1 §2)."""
    return key(version) < (16, 2)


def ctid_http_check(version: str) -> bool:
    """15.19-15.20: xivo-lib-python's NotifyingRegisterer registers an HTTP check built from
    `check_url`, `check_url_interval`, `check_url_timeout`, no self-check, a failure retried every
    20 s by ctiserver.py; 16.01+: ServiceCatalogRegistration with a TTL check and ctid's self-check
    (consul_helpers.py@xivo-15.19 / @xivo-16.01, xivo_cti/ctiserver.py@xivo-15.19; R1 §3)."""
    return key(version) < (16, 1)


HTTP_CHECK_RETRY = 20  # ctiserver._service_discovery_register: `delay = 20` (15.19-15.20, R1 §3)


def ctid_tags(version: str, uuid: str, extra: list[str] | None = None) -> list[str]:
    """`extra_tags + [name, uuid]` at 15.19-16.01, `[uuid, name] + extra_tags` from 16.02
    (consul_helpers.py@xivo-16.01 / @xivo-16.02; R1 §3)."""
    extra = [str(tag) for tag in extra or []]
    return [*extra, "xivo-ctid", uuid] if key(version) < (16, 2) else [uuid, "xivo-ctid", *extra]


def ctid_advertise_auto(version: str) -> str:
    """How `advertise_address: auto` is understood (R1 §3):
    "literal" 15.19-15.20 (no `auto`: the text is registered as is),
    "interface" 16.01-16.05 (the configured interface only; a missing one fails at start),
    "fallback" 16.06+ (the interface, then eth*, then lo, then 127.0.0.1; lib-python 69d2bac)."""
    v = key(version)
    return "literal" if v < (16, 1) else "interface" if v < (16, 6) else "fallback"


def ctid_deregisters_check(version: str) -> bool:
    """16.01+: `agent.check.deregister(service:<id>)` before the service (consul_helpers.py@xivo-16.01);
    15.19-15.20 deregister the service only (@xivo-15.19)."""
    return key(version) >= (16, 1)


def ctid_logger(version: str) -> str:
    """The logger of the registration messages: `xivo-ctid` (15.19-15.20), `service_discovery` (16.01+), R1 §3."""
    return "xivo-ctid" if key(version) < (16, 1) else "service_discovery"


def cti_protocol_version(version: str) -> str:
    """`CTI_PROTOCOL_VERSION` of xivo_cti/__init__.py (R3 §4): 1.2 = 15.19-15.20, 2.0 = 16.01-16.03,
    2.1 = 16.04-16.08.2, 2.2 = 16.09-16.15."""
    v = key(version)
    return "1.2" if v < (16, 1) else "2.0" if v < (16, 4) else "2.1" if v < (16, 9) else "2.2"


def infos_shows_protocol(version: str) -> bool:
    """`GET /0.1/infos` is `{"uuid"}` up to 16.10, `{"uuid", "cti_protocol_version"}` from 16.11
    (xivo_cti/http_app.py, ctid c6ca5a9e; R3 §4)."""
    return key(version) >= (16, 11)


def _discovery_15() -> dict[str, Any]:
    """`service_discovery` of 15.19-15.20, the same in the shipped config.yml and in the code's
    defaults: the three `check_url*` keys, no TTL (xivo-ctid:etc/xivo-ctid/config.yml@xivo-15.20; R1 §3)."""
    return {"advertise_address": "localhost", "advertise_port": 9495, "check_url": "http://localhost:9495/0.1/infos",
            "check_url_interval": "300s", "check_url_timeout": "10s", "extra_tags": []}


def ctid_config_yml(version: str) -> dict[str, Any]:
    """etc/xivo-ctid/config.yml as shipped at that tag, the keys that matter here
    (xivo-ctid:etc/xivo-ctid/config.yml@each tag; R1 §3)."""
    if key(version) < (16, 1):
        discovery: dict[str, Any] = _discovery_15()
    else:
        discovery = {"advertise_address": "localhost", "advertise_address_interface": "eth0", "advertise_port": 9495,
                     "ttl_interval": 30, "refresh_interval": 27, "retry_interval": 2, "extra_tags": []}
    return {
        "rest_api": {"http": {"listen": "127.0.0.1", "port": 9495}, "cors": {"enabled": True}},
        "service_discovery": discovery,
        "bus": {"username": "guest", "password": "guest", "host": "localhost", "port": 5672, "exchange_name": "xivo"},
    }


def ctid_code_defaults(version: str) -> dict[str, Any]:
    """The defaults in ctid's code (xivo_cti/cti_config.py), deep-merged under the files (lib-python
    ChainMap): at 15.19-15.20 they hold the three `check_url*` keys; 16.02+ add `enabled: True`;
    the code's `refresh_interval` is 25 (the shipped config.yml says 27). R1 §3."""
    if key(version) < (16, 1):
        discovery: dict[str, Any] = _discovery_15()
    else:
        discovery = {"advertise_address": "localhost", "advertise_address_interface": "eth0", "advertise_port": 9495,
                     "ttl_interval": 30, "refresh_interval": 25, "retry_interval": 2, "extra_tags": []}
        if key(version) >= (16, 2):
            discovery["enabled"] = True
    return {
        "rest_api": {"http": {"listen": "127.0.0.1", "port": 9495}},
        "service_discovery": discovery,
        "consul": {"scheme": "https", "host": "localhost", "port": 8500, "verify": "/usr/share/xivo-certs/server.crt"},
    }


def ctid_interconnection(version: str, address: str) -> dict[str, Any]:
    """The manual's etc/xivo-ctid/conf.d/interconnection.yml at that tag
    (wazo-doc:source/scalability_and_distributed_systems/contact_and_presence_sharing.rst; R1 §3):
    15.19-15.20 the node's own IP literally plus `check_url`; 16.01+ `auto` on eth0. The REST API
    listens on 0.0.0.0 at every tag."""
    if key(version) < (16, 1):
        discovery = {"advertise_address": address, "check_url": f"http://{address}:9495/0.1/infos"}
    else:
        discovery = {"advertise_address": "auto", "advertise_address_interface": "eth0"}
    return {"rest_api": {"http": {"listen": "0.0.0.0"}}, "service_discovery": discovery}


# --- phonebook sharing and the web interface (R2 §5, R3 §4) ---------------------------------------

def jsonphp_phonebook(version: str) -> bool:
    """json.php's phonebook web service exists 15.19-16.13; removed at 16.14 (xivo-web-interface
    4ceececc1; R2 §5), so 404 from 16.14."""
    return key(version) <= (16, 13)


def phonebook_sharing(version: str) -> bool:
    """Phonebook Sharing as the manual describes it: the page phonebook_sharing.rst exists from
    wazo-doc@xivo-16.03 and json.php serves the phonebook up to 16.13 (R2 §5), so 16.03-16.13."""
    return (16, 3) <= key(version) <= (16, 13)


def webservice_acl_checked(version: str) -> bool:
    """15.19-15.20: json.php `restricted` also checks the matched user's ACL (the PHP-serialized
    `accesswebservice.obj['acl']` tree) for service/ipbx/pbx_services/phonebook, else 403; removed in
    16.01 (xivo-web-interface d2321b4ab "web services: remove check of acl"; R2 §5)."""
    return key(version) <= (15, 20)


def accesswebservice_has_obj(version: str) -> bool:
    """`accesswebservice.obj text NOT NULL` (the PHP-serialized object) up to 15.20; 16.01 drops it
    (xivo-manage-db alembic 379ed6d9a62) and adds `acl varchar[]` (67ba595); xivo-dao
    alchemy/accesswebservice.py@xivo-15.19 / @xivo-16.01."""
    return key(version) <= (15, 20)


def confd_localhost_any_port(version: str) -> bool:
    """xivo-confd lets 127.0.0.1 in without credentials on any port up to 16.04, on its HTTP port (9487)
    only from 16.05 (wazo-confd `76ad97b56`, docs/xivo-behaviour.md "directory-source")."""
    return key(version) < (16, 5)


def ctidirectories_by_id(version: str) -> bool:
    """`ctidirectories.directory_id` (FK) from 16.13; up to 16.12 `ctidirectories.uri`, joined on the
    URI string (xivo-manage-db 15b236bd8060, xivo-dao 9bb84328; R2 §2)."""
    return key(version) >= (16, 13)


# The footer of every page of xivo-web-interface, the login page included (src/tpl/www/bloc/foot.php,
# src/object/objectconf/define.inc, src/i18n/en_US/tpl/www/bloc/foot.i18n; identical 15.19-16.15
# but for the copyright part, dropped at 16.14): `XIVO_SOFT_LABEL - <info_version> <version> "<codename>"`.
SOFT_LABEL = "XIVO"  # define('XIVO_SOFT_LABEL','XIVO')
SOFT_CODENAME = "Five"  # define('XIVO_SOFT_CODENAME','Five')
INFO_VERSION = "Version:"  # en_US foot.i18n: `; info_version` / `Version:`
UNKNOWN_VERSION = "Unknown"  # define.inc: $xivo_version = 'Unknown' unless the file exists


def footer_has_copyright(version: str) -> bool:
    """The footer's `| © 2006-<year> Avencall` part: in foot.php up to xivo-16.13, gone at xivo-16.14."""
    return key(version) <= (16, 13)
