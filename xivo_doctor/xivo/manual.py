"""The manual's commands as each XiVO release's page gives them, filled with the topology's values.

Place in the pipeline: XiVO facts for the fixes; no I/O. The Contact and Presence Sharing page
(wazo-platform/wazo-doc:source/scalability_and_distributed_systems/contact_and_presence_sharing.rst)
changes with the release, and a fix must be the one of the release the XiVO runs
(docs/xivo-behaviour.md "consul-wan", "ctid-advertise"):

- "Configure Consul": `xivo-backup-consul-kv` before the wipe and `xivo-restore-consul-kv` after
  consul starts, up to @xivo-16.06 (removed by c654abae, so absent from 16.07): the wipe deletes
  the KV store, which holds xivo-dird's personal contacts and favourites;
- "Remove All Consul Data": raft/ serf/ services/ tmp/ up to @xivo-15.20, checks/ added from
  @xivo-16.01 (3c24a550);
- `service consul start` up to @xivo-16.14, `systemctl start consul` at @xivo-16.15 (8dc88704);
- xivo-ctid's interconnection.yml: `advertise_address: <IP>` and `check_url` at @xivo-15.19-15.20
  (xivo-lib-python's Registerer there uses the address literally, no `auto`); `auto` and
  `advertise_address_interface: eth0` from @xivo-16.01.

The manual does not stop consul before the wipe (`xivo-service stop` leaves it running, until 17.15
added `systemctl stop consul`): the fixes stop it, with `service`, which wheezy's sysv consul
(15.19) and jessie's systemd unit (15.20+) both understand.
"""

from __future__ import annotations

from xivo_doctor.xivo.releases import release

KV_BACKUP = "xivo-backup-consul-kv -o /tmp/backup-consul-kv.json"
KV_RESTORE = "xivo-restore-consul-kv -i /tmp/backup-consul-kv.json"
CONSUL_STOP = "service consul stop  # xivo-service stop leaves consul running"
CONSUL_CONFIGTEST = "consul configtest --config-dir /etc/consul/xivo/"
_WIPED = ("raft", "serf", "services", "tmp")


def _at_least(version: str | None, wanted: tuple[int, int]) -> bool:
    """True from release `wanted` on; an unknown version counts as the newest (16.15)."""
    rel = release(version)
    return rel is None or rel.version >= wanted


def keeps_kv_backup(version: str | None) -> bool:
    """The page backs the KV store up around the wipe up to 16.06."""
    return not _at_least(version, (16, 7))


def consul_wipe(version: str | None) -> str:
    """The manual's "Remove All Consul Data" of that release, as one command."""
    dirs = _WIPED + (("checks",) if _at_least(version, (16, 1)) else ())
    return "rm -rf " + " ".join(f"/var/lib/consul/{d}/" for d in dirs)


def consul_start(version: str | None) -> str:
    """The page's command; `service`, which every release understands, when the release is unknown."""
    rel = release(version)
    return "systemctl start consul" if rel is not None and rel.version >= (16, 15) else "service consul start"


def set_hostname(version: str | None, name: str) -> str:
    """15.19 runs Debian wheezy (sysvinit: no hostnamectl); 15.20 and later jessie (systemd), per
    the 15.20 upgrade notes (wazo-platform/wazo-doc:source/upgrade/upgrade.rst@xivo-16.15)."""
    if _at_least(version, (15, 20)):
        return f"hostnamectl set-hostname {name}"
    return f"echo {name} > /etc/hostname && hostname {name}"


def interconnection_json(address: str) -> str:
    """/etc/consul/xivo/interconnection.json without the sample's comment: from 16.02 the page's
    sample carries `#` (16.02) or `//` (16.03+), and Consul <= 0.7 reads its configuration as strict
    JSON, so the copied sample stops consul from starting."""
    return ("cat > /etc/consul/xivo/interconnection.json <<'EOF'\n"
            f'{{"client_addr": "0.0.0.0", "bind_addr": "0.0.0.0", "advertise_addr": "{address}"}}\nEOF')


def consul_reset(version: str | None, *, configure: list[str] | None = None,
                 join: str | None = None) -> list[str]:
    """The page's "Configure Consul" from the backup to the join: stop, wipe, `configure` (commands
    that write the configuration), configtest, start, restore, start XiVO, `consul join -wan`."""
    backup = keeps_kv_backup(version)
    return [
        *([KV_BACKUP + "  # the wipe deletes the KV store: dird's personal contacts and favourites"]
          if backup else []),
        "xivo-service stop",
        CONSUL_STOP,
        consul_wipe(version),
        *(configure or []),
        CONSUL_CONFIGTEST,
        consul_start(version),
        *([KV_RESTORE] if backup else []),
        "xivo-service start",
        # the wipe forgot the WAN pool (serf/): one join is enough, the page says
        *([f"consul join -wan {join}"] if join else []),
    ]


def ctid_interconnection_yml(address: str, version: str | None) -> str:
    """The page's /etc/xivo-ctid/conf.d/interconnection.yml for that release."""
    rel = release(version)
    if rel is not None and not rel.advertise_auto:  # the page at xivo-15.19 and xivo-15.20
        discovery = (f"  advertise_address: {address}\n"
                     f"  check_url: http://{address}:9495/0.1/infos\n")
    else:
        discovery = ("  advertise_address: auto\n"
                     f"  advertise_address_interface: eth0  # the interface bearing {address}\n")
    return ("cat > /etc/xivo-ctid/conf.d/interconnection.yml <<'EOF'\n"
            "rest_api:\n  http:\n    listen: 0.0.0.0\nservice_discovery:\n" + discovery + "EOF")
