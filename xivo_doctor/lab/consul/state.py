"""The Consul stand-in's local services and checks, persisted under `data_dir` as consul does.

Place in the pipeline: lab only (docs/lab.md, "consul"). The HTTP handler (`consul.api`; `/v1/agent/*`
in `consul.agent_endpoint`) registers, deregisters and updates TTL checks through `State`; each
change is written to `<data_dir>/services/<id>.json` / `<data_dir>/checks/<id>.json`, so the manual's
`rm -rf /var/lib/consul/{services,checks}/` really forgets them at the next start (XIVO-FACTS §4).
State lives in memory while the stand-in runs, as in consul (a wipe under a running consul only
shows after a restart). TTL checks are evaluated lazily: a check not updated within its TTL reads
`critical` with output `TTL expired` (xivo-ctid 16.01+ uses `Check.ttl('30s')`, XIVO-FACTS §3). HTTP
checks (xivo-ctid 15.19/15.20 registers one, R1 §3) are run by `consul.checks`, which reports through
`update_check`; they start `critical`, also after a restart (consul's loadChecks). Script/TCP/Docker
checks keep the status they were registered with. Each service keeps the ACL token it was
registered with (consul persists it next to the service): `consul.local_agent` decides with it whether
the service reaches the catalog.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

STATUSES = ("passing", "warning", "critical")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class BadRequest(ValueError):
    """A registration consul answers with 400 (message as consul's)."""


def parse_duration(text: Any) -> float:
    """A Go duration ("30s", "1m30s", "500ms") in seconds, as consul decodes `TTL`."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return float(text) / 1e9  # a bare JSON number is nanoseconds in Go
    value = str(text).strip()
    if not value or _DURATION.sub("", value):
        raise BadRequest(f"Request decode failed: time: invalid duration {value!r}")
    return sum(float(n) * _UNIT[u] for n, u in _DURATION.findall(value))


def field(body: dict[str, Any], name: str, default: Any = None) -> Any:
    """Consul decodes request bodies case-insensitively (python-consul2 sends `name`, `ttl`, ...)."""
    for key, value in body.items():
        if key.lower() == name.lower():
            return value
    return default


def _filename(identifier: str) -> str:
    return quote(identifier, safe="") + ".json"


class State:
    """Services and checks of one agent, with the index that X-Consul-Index reports."""

    def __init__(self, data_dir: Path, node_name: str, server_port: int, log: logging.Logger,
                 clock: Callable[[], float] = time.time) -> None:
        self.dir = data_dir
        self.node = node_name
        self.log = log
        self.clock = clock
        self.lock = threading.RLock()
        self.index = 1
        # A server agent always has the `consul` service (the manual's agent-services sample shows it).
        self._services: dict[str, dict[str, Any]] = {"consul": {
            "ID": "consul", "Service": "consul", "Tags": [], "Address": "", "Port": server_port,
            "EnableTagOverride": False, "CreateIndex": 1, "ModifyIndex": 1}}
        self._tokens: dict[str, str] = {}  # service id -> the ACL token it was registered with ("" = none)
        # id -> {"Check": {...}, "TTL": s|None, "Expires": t|None[, "HTTP": url, "Interval": s, "Timeout": s]}
        self._checks: dict[str, dict[str, Any]] = {}
        self._load()

    # -- persistence -------------------------------------------------------------------------
    def _load(self) -> None:
        for kind, target, key in (("services", self._services, "Service"), ("checks", self._checks, None)):
            folder = self.dir / kind
            for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
                try:
                    record = json.loads(path.read_text())
                    item = record[key] if key else record
                    target[item["ID"] if key else item["Check"]["CheckID"]] = item
                    self.index = max(self.index, int((item if key else item["Check"])["ModifyIndex"]))
                    if key:
                        self._tokens[item["ID"]] = str(record.get("Token") or "")
                    elif item.get("HTTP"):  # consul's loadChecks: a restored check starts critical
                        item["Check"].update(Status="critical", Output="")
                except (OSError, ValueError, KeyError, TypeError) as exc:
                    self.log.warning(f"agent: Failed decoding {kind} file {path}: {exc}")
        found = len(self._services) - 1, len(self._checks)
        self.log.info(f"agent: restored {found[0]} service(s) and {found[1]} check(s) from {self.dir}")

    def _write(self, kind: str, identifier: str, record: dict[str, Any] | None) -> None:
        folder = self.dir / kind
        path = folder / _filename(identifier)
        if record is None:
            path.unlink(missing_ok=True)
            return
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=2))
        os.replace(tmp, path)

    def _bump(self) -> int:
        self.index += 1
        return self.index

    def bump(self) -> int:
        """A new raft index (the ACL table shares it, as in consul)."""
        with self.lock:
            return self._bump()

    # -- reads -------------------------------------------------------------------------------
    def services(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(self._services)

    def checks(self) -> dict[str, dict[str, Any]]:
        """Checks in agent/checks shape, TTLs evaluated now (a missed TTL turns critical)."""
        with self.lock:
            now = self.clock()
            for record in self._checks.values():
                check = record["Check"]
                if record.get("TTL") and record["Expires"] < now and check["Status"] != "critical":
                    check.update(Status="critical", Output="TTL expired", ModifyIndex=self._bump())
                    self.log.warning(f"agent: Check '{check['CheckID']}' missed TTL, is now critical")
                    self._write("checks", check["CheckID"], record)
            return {cid: copy.deepcopy(r["Check"]) for cid, r in self._checks.items()}

    def service_token(self, service_id: str) -> str:
        with self.lock:
            return self._tokens.get(service_id, "")

    def http_checks(self) -> dict[str, tuple[int, str, float, float]]:
        """HTTP checks: id -> (CreateIndex, url, interval s, timeout s), for `consul.checks`."""
        with self.lock:
            return {cid: (r["Check"]["CreateIndex"], r["HTTP"], r["Interval"], r["Timeout"])
                    for cid, r in self._checks.items() if r.get("HTTP")}

    # -- writes ------------------------------------------------------------------------------
    def register(self, body: dict[str, Any], token: str = "") -> str:
        """PUT /v1/agent/service/register: the service and its checks (`service:<id>[:n]`), with its token."""
        name = field(body, "Name")
        if not name or not isinstance(name, str):
            raise BadRequest("Missing service name")
        port = field(body, "Port", 0)
        if not isinstance(port, int) or isinstance(port, bool):
            raise BadRequest(f"Request decode failed: Port: expected a number, got {port!r}")
        service_id = str(field(body, "ID") or name)
        if service_id == "consul":
            raise BadRequest("Registering the consul service is not allowed")
        tags = field(body, "Tags") or []
        definitions = [field(body, "Check")] if field(body, "Check") else list(field(body, "Checks") or [])
        checks = []
        for n, definition in enumerate(definitions, 1):
            if not isinstance(definition, dict):
                raise BadRequest("Request decode failed: Check must be an object")
            ttl = field(definition, "TTL")
            interval = field(definition, "Interval")
            # CheckType.Valid(): TTL, or Script/HTTP/TCP/Docker *with* an Interval
            if not ttl and not (interval and any(field(definition, k)
                                                 for k in ("Script", "HTTP", "TCP", "DockerContainerID"))):
                raise BadRequest("Must provide TTL or Script/DockerContainerID/HTTP/TCP and Interval!")
            http = None
            if not ttl and field(definition, "HTTP"):
                timeout = field(definition, "Timeout")
                http = {"HTTP": str(field(definition, "HTTP")), "Interval": parse_duration(interval),
                        "Timeout": parse_duration(timeout) if timeout else 10.0}  # consul: 10 s by default
            default_id = f"service:{service_id}" + (f":{n}" if len(definitions) > 1 else "")
            status = field(definition, "Status") or "critical"  # consul: new checks start critical
            if status not in STATUSES:
                raise BadRequest(f"Invalid check status: {status!r}")
            checks.append((definition, str(field(definition, "CheckID") or default_id),
                           parse_duration(ttl) if ttl else None, status, http))
        with self.lock:
            self.deregister(service_id, quiet=True)
            index = self._bump()
            service = {"ID": service_id, "Service": name, "Tags": [str(t) for t in tags],
                       "Address": str(field(body, "Address") or ""), "Port": port,
                       "EnableTagOverride": bool(field(body, "EnableTagOverride", False)),
                       "CreateIndex": index, "ModifyIndex": index}
            self._services[service_id] = service
            self._tokens[service_id] = token
            self._write("services", service_id, {"Token": token, "Service": service})
            for definition, check_id, ttl, status, http in checks:
                check = {"Node": self.node, "CheckID": check_id,
                         "Name": field(definition, "Name") or f"Service '{name}' check",
                         "Status": status, "Notes": str(field(definition, "Notes") or ""), "Output": "",
                         "ServiceID": service_id, "ServiceName": name, "CreateIndex": index, "ModifyIndex": index}
                record = {"Check": check, "TTL": ttl, "Expires": self.clock() + ttl if ttl else None, **(http or {})}
                self._checks[check_id] = record
                self._write("checks", check_id, record)
        return service_id

    def deregister(self, service_id: str, quiet: bool = False) -> bool:
        """Remove a service and its checks; False if it was not registered (consul 0.7 answers 200)."""
        if service_id == "consul":
            raise BadRequest("Deregistering the consul service is not allowed")
        with self.lock:
            if self._services.pop(service_id, None) is None:
                if not quiet:
                    self.log.warning(f"agent: Failed to deregister service {service_id!r}: service not registered")
                return False
            self._tokens.pop(service_id, None)
            self._write("services", service_id, None)
            for check_id in [c for c, r in self._checks.items() if r["Check"]["ServiceID"] == service_id]:
                del self._checks[check_id]
                self._write("checks", check_id, None)
            self._bump()
        if not quiet:
            self.log.info(f"agent: Deregistered service '{service_id}'")
        return True

    def deregister_check(self, check_id: str) -> bool:
        """agent/check/deregister/<id>: False if there was no such check (consul 0.7 answers 200 anyway)."""
        with self.lock:
            if self._checks.pop(check_id, None) is None:
                return False
            self._write("checks", check_id, None)
            self._bump()
        self.log.info(f"agent: Deregistered check '{check_id}'")
        return True

    def update_ttl(self, check_id: str, status: str, output: str) -> None:
        """check/pass|warn|fail: KeyError if the check has no TTL (consul: 500, see consul.agent_endpoint)."""
        with self.lock:
            record = self._checks.get(check_id)
            if record is None or not record.get("TTL"):
                raise KeyError(check_id)
            record["Expires"] = self.clock() + record["TTL"]
            check = record["Check"]
            if (check["Status"], check["Output"]) != (status, output):
                check.update(Status=status, Output=output, ModifyIndex=self._bump())
            self._write("checks", check_id, record)

    def update_check(self, check_id: str, create_index: int, status: str, output: str) -> bool:
        """A check run's result (`consul.checks`); False if that check was removed or registered anew since."""
        with self.lock:
            record = self._checks.get(check_id)
            if record is None or record["Check"]["CreateIndex"] != create_index:
                return False
            check = record["Check"]
            if (check["Status"], check["Output"]) != (status, output):
                check.update(Status=status, Output=output, ModifyIndex=self._bump())
                self._write("checks", check_id, record)
            return True
