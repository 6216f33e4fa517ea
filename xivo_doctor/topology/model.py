"""The topology as the rest of the doctor sees it: validated, typed, immutable.

Place in the pipeline: `topology.loader` reads and validates the YAML file into these classes;
probes read the access settings; checks read names, addresses and expected pairs; renderers
show `Topology.describe()` (secrets hidden).

Secrets are `Secret` objects: their `str()` and `repr()` are masked, so a secret reaches a
network call only through an explicit `.reveal()`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class Secret:
    """A password, token or DSN whose text must never reach an output."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return "********"

    __repr__ = __str__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True)
class ConsulAccess:
    """Consul's HTTP API (HTTPS on 8500 on XiVO, XIVO-FACTS §1/§4) and its WAN ports."""

    scheme: str = "https"
    port: int = 8500
    verify: bool | str = False  # False, True, or a CA file path
    token: Secret | None = None  # the master token (/var/lib/consul/master_token on the XiVO)
    rpc_port: int = 8300
    serf_wan_port: int = 8302


@dataclass(frozen=True)
class RabbitMQManagement:
    """RabbitMQ's management HTTP API: optional, XiVO does not enable it (XIVO-FACTS §5)."""

    scheme: str = "http"
    port: int = 15672
    user: str | None = None  # defaults to the AMQP user
    password: Secret | None = None  # defaults to the AMQP password


@dataclass(frozen=True)
class RabbitMQAccess:
    port: int = 5672
    user: str = "xivo"
    password: Secret | None = None
    vhost: str = "/"
    management: RabbitMQManagement | None = None


@dataclass(frozen=True)
class CtidAccess:
    port: int = 9495  # plain HTTP, no auth (XIVO-FACTS §3)


@dataclass(frozen=True)
class ConfdAccess:
    port: int = 9486  # HTTPS (XIVO-FACTS §1)
    username: str | None = None
    password: Secret | None = None
    verify: bool | str = False


@dataclass(frozen=True)
class AuthAccess:
    """xivo-auth (HTTPS 9497) and the web services user whose token the doctor asks xivo-dird with
    (XIVO-FACTS §7; the backend per release: docs/xivo-behaviour.md "directory-lookup")."""

    port: int = 9497
    username: str | None = None  # an accesswebservice login (Configuration → Management → Web Services Access)
    password: Secret | None = None
    verify: bool | str = False


@dataclass(frozen=True)
class DirdAccess:
    """xivo-dird's REST API (HTTPS 9489, XIVO-FACTS §7)."""

    port: int = 9489
    verify: bool | str = False


@dataclass(frozen=True)
class WebServicesAccess:
    """nginx in front of the PHP web services (json.php phonebook, XiVO <= 16.13)."""

    http_port: int = 80
    https_port: int = 443
    verify: bool | str = False
    phonebook_sharing: bool = True  # false when the interconnection does not share phonebooks


@dataclass(frozen=True)
class OnBoxAccess:
    """Access the doctor has when it runs on that XiVO (or in the lab)."""

    root: Path = Path("/")  # filesystem root: /etc/..., /var/lib/consul/... under it
    database: Secret | None = None  # DSN of the `asterisk` database (may hold a password)
    rabbitmqctl: tuple[str, ...] | None = None  # argv prefix that runs rabbitmqctl for this XiVO
    source_address: str | None = None  # the address requests "from this XiVO" are sent from
    consul: tuple[str, ...] | None = None  # argv prefix that runs `consul` for this XiVO (support bundle)


@dataclass(frozen=True)
class SshAccess:
    """How the doctor logs into a XiVO: the system's OpenSSH client (probes/transport/ssh.py), so the
    admin's ~/.ssh/config, agent and jump hosts apply; host keys are checked."""

    host: str | None = None  # default: the XiVO's address
    port: int | None = None  # default: ssh's own (its config, else 22)
    user: str = "root"
    identity_file: Path | None = None
    known_hosts_file: Path | None = None
    sudo: bool = False  # a user that is not root: commands run through `sudo -n`
    accept_new_host_key: bool = False  # StrictHostKeyChecking=accept-new instead of yes


@dataclass(frozen=True)
class Xivo:
    name: str
    address: str
    version: str | None = None  # expected version, e.g. "16.13"
    consul: ConsulAccess = field(default_factory=ConsulAccess)
    rabbitmq: RabbitMQAccess = field(default_factory=RabbitMQAccess)
    ctid: CtidAccess = field(default_factory=CtidAccess)
    confd: ConfdAccess = field(default_factory=ConfdAccess)
    webservices: WebServicesAccess = field(default_factory=WebServicesAccess)
    auth: AuthAccess = field(default_factory=AuthAccess)
    dird: DirdAccess = field(default_factory=DirdAccess)
    on_box: OnBoxAccess | None = None
    ssh: SshAccess | None = None

    def __str__(self) -> str:
        return self.name

    @property
    def over_ssh(self) -> bool:
        """The doctor reaches this XiVO over SSH: files, database and commands are read there, and
        requests made from the XiVO go through that connection (`ssh` given, no `on_box`)."""
        return self.ssh is not None and self.on_box is None


@dataclass(frozen=True)
class Pair:
    """An ordered pair `xivo->peer`: `xivo`'s configuration points at `peer`.

    For federation, `xivo` is the downstream and `peer` the upstream: messages flow peer -> xivo.
    """

    xivo: Xivo
    peer: Xivo

    @property
    def id(self) -> str:
        return f"{self.xivo.name}->{self.peer.name}"

    @property
    def downstream(self) -> Xivo:
        return self.xivo

    @property
    def upstream(self) -> Xivo:
        return self.peer

    def __str__(self) -> str:
        return self.id


@dataclass(frozen=True)
class Topology:
    name: str
    source: Path
    xivos: tuple[Xivo, ...]
    pairs: tuple[Pair, ...]
    federation: str = "full-mesh"  # or "links" when the file lists them
    probe_timeout: float = 3.0  # seconds, per network operation (the run's deadline is -t)
    # line of each declared XiVO in the file, for messages that point back at it
    lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)
    # values `${VAR}` expanded to (except names and addresses): masked in every output
    env_values: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def xivo(self, name: str) -> Xivo:
        for x in self.xivos:
            if x.name == name:
                return x
        raise KeyError(name)

    def secrets(self) -> tuple[str, ...]:
        """Every secret value the topology holds, for redaction."""
        found: list[str] = []
        for x in self.xivos:
            for obj in (x.consul, x.rabbitmq, x.rabbitmq.management, x.confd, x.auth, x.on_box):
                if obj is None:
                    continue
                for value in vars(obj).values():
                    if isinstance(value, Secret) and value.reveal():
                        found.append(value.reveal())
        return tuple(dict.fromkeys(found))

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary for reports: names, addresses, versions; no secret."""
        return {
            "name": self.name,
            "file": str(self.source),
            "federation": self.federation,
            "probe_timeout": self.probe_timeout,
            "xivos": [{"name": x.name, "address": x.address, "version": x.version, "settings": _settings(x)}
                      for x in self.xivos],
            "pairs": [p.id for p in self.pairs],
        }


def _settings(xivo: Xivo) -> dict[str, Any]:
    """The XiVO's access settings as loaded, for a support engineer reading a report: every key,
    a secret shown only as the mask (the value never leaves the model)."""
    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, Secret):
            return str(value) if value else None
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        return value

    return {section: plain(getattr(xivo, section))
            for section in ("consul", "rabbitmq", "ctid", "confd", "webservices", "auth", "dird", "on_box", "ssh")}
