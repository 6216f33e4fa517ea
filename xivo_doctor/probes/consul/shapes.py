"""The shapes of Consul's answers that the checks read, validated before any check sees them.

Place in the pipeline: acquisition (called by probes/consul.py on every decoded answer). Checks
read these answers without try/except, so whatever a check indexes, compares or looks up must be
of the type Consul documents (LAB-NOTES §C.2): a stand-in, a proxy's error page decoded as JSON or
another version's answer is refused here, as a `ShapeError` saying where and what, which the probe
words as a `ProbeError` naming the source. Unknown extra keys are allowed (Consul adds some in
every version); only the keys the checks read are checked.
"""

from __future__ import annotations

from typing import Any


class ShapeError(ValueError):
    """`where` (a JSON path such as `[0].Tags`) is not what Consul answers there."""

    def __init__(self, where: str, found: Any, expected: str) -> None:
        self.where, self.expected = where or "the answer", expected
        super().__init__(f"{self.where} is {_kind(found)}, not {expected}")


def _key(key: str) -> str:
    """A key of the answer as a path step: quoted when it is not a plain name, so a key holding a
    newline or a dot cannot break the one-line message or pass for a path."""
    return key if key.isidentifier() or key.replace("-", "_").replace(":", "_").isidentifier() else repr(key)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ShapeError(where, value, "a string")
    return value


def _integer(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ShapeError(where, value, "an integer")
    return value


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ShapeError(where, value, "an object")
    return value


def _array(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ShapeError(where, value, "a list")
    return value


def _optional(obj: dict[str, Any], key: str, where: str, check) -> None:
    if obj.get(key) is not None:
        check(obj[key], f"{where}.{key}")


def _strings(value: Any, where: str) -> None:
    for i, item in enumerate(_array(value, where)):
        _string(item, f"{where}[{i}]")


def _string_map(value: Any, where: str) -> None:
    for key, item in _object(value, where).items():
        _string(item, f"{where}.{_key(key)}")


def leader(value: Any) -> str:
    """`/v1/status/leader`: "addr:8300" or "" (no leader)."""
    return _string(value, "")


def datacenters(value: Any) -> list[str]:
    """`/v1/catalog/datacenters`: a list of names."""
    _strings(value, "")
    return value


def agent_self(value: Any) -> dict[str, Any]:
    """`/v1/agent/self`: {Config: {Datacenter, NodeName, ...}, ...}."""
    config = _object(_object(value, "").get("Config"), "Config")
    _string(config.get("Datacenter"), "Config.Datacenter")
    _string(config.get("NodeName"), "Config.NodeName")
    return value


def wan_member(value: Any, where: str) -> None:
    member = _object(value, where)
    _string(member.get("Name"), f"{where}.Name")
    _string(member.get("Addr"), f"{where}.Addr")
    _integer(member.get("Status"), f"{where}.Status")
    _optional(member, "Tags", where, _string_map)


def wan_members(value: Any) -> list[dict[str, Any]]:
    """`/v1/agent/members?wan=1`: [{Name, Addr, Port, Tags {dc, ...}, Status}] (null on a client agent)."""
    if value is None:
        return []
    for i, member in enumerate(_array(value, "")):
        wan_member(member, f"[{i}]")
    return value


def service(value: Any, where: str) -> None:
    """A service registration: {ID, Service, Tags (null when none), Address, Port}."""
    entry = _object(value, where)
    for key in ("ID", "Service", "Address"):
        _string(entry.get(key), f"{where}.{key}")
    _integer(entry.get("Port"), f"{where}.Port")
    _optional(entry, "Tags", where, _strings)


def agent_services(value: Any) -> dict[str, dict[str, Any]]:
    """`/v1/agent/services`: {service id: registration}."""
    for key, entry in _object(value, "").items():
        service(entry, _key(key))
    return value


def agent_checks(value: Any) -> dict[str, dict[str, Any]]:
    """`/v1/agent/checks`: {check id: {CheckID, Status, Output, ServiceID}}."""
    for key, entry in _object(value, "").items():
        where = _key(key)
        check = _object(entry, where)
        _string(check.get("Status"), f"{where}.Status")
        _optional(check, "Output", where, _string)
    return value


def health_service(value: Any) -> list[dict[str, Any]]:
    """`/v1/health/service/<name>`: [{Node, Service, Checks}] (null read as none)."""
    if value is None:
        return []
    for i, entry in enumerate(_array(value, "")):
        service(_object(entry, f"[{i}]").get("Service"), f"[{i}].Service")
    return value


def catalog_service(value: Any) -> list[dict[str, Any]]:
    """`/v1/catalog/service/<name>`: [{ServiceID, ServiceName, ServiceAddress, ServicePort, ServiceTags}]."""
    if value is None:
        return []
    for i, entry in enumerate(_array(value, "")):
        item = _object(entry, f"[{i}]")
        for key in ("ServiceID", "ServiceAddress"):
            _string(item.get(key), f"[{i}].{key}")
        _integer(item.get("ServicePort"), f"[{i}].ServicePort")
        _optional(item, "ServiceTags", f"[{i}]", _strings)
    return value
