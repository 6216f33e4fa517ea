"""Redaction: the one place secrets (and, on request, addresses) are taken out of every output.

Place in the pipeline: between evaluation and presentation. `Run` passes every classified `Result`
through `Redactor.result` before it stores it or tells a listener, and `Redactor.report` over the
finished report, so no renderer (terminal, JSON, JUnit, HTML, bundle, Nagios) ever holds a secret.
Anything read later for an output (a bundle's log lines and command outputs) goes through `text`.

What is masked, whatever its source:
- every secret value of the topology (passwords, tokens, the database DSN) and every `${VAR}`
  value the topology file expanded, also in their URL-encoded spelling;
- credentials inside URIs (`amqp://xivo:SECRET@host` -> `amqp://xivo:********@host`): an inspected
  system may hold a password the topology never knew (a wrong one in a federation upstream);
- values of `Authorization`/`X-Consul-Token` headers and of `password=`/`token=`-like parameters in
  text; string values under keys named like a secret in evidence (`password`, `token`, ...).
Placeholders the fixes print (`<password of the xivo user on xivo-2>`, `$(cat .../master_token)`)
are not secrets and stay readable.

With `addresses=True`, IP addresses and host names become stable pseudonyms: the XiVOs' addresses
`10.0.0.<n>` (n = their rank in the topology), other IPs `10.0.1.<n>` (IPv6: `fd00::<n>`,
`fd00::1:<n>`), host names `host-<n>.example`.
The addresses whose meaning is the finding (127.0.0.1, 0.0.0.0, ::1, localhost) are kept.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from xivo_doctor.foundation.netaddr import is_ip_address
from xivo_doctor.foundation.results import FixOut, Report, Result, thaw

MASK = "********"
SHORT = 8  # secrets shorter than this are masked as whole words only

# scheme://user:password@ -- the password is anything up to '@' without blanks or '/';
# `<...>` and `$...` are the fixes' placeholders, not secrets.
_URI_CREDENTIALS = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@<>\"']*:)(?P<secret>[^\s/@<>$\"'][^\s/@\"']*)@")
# Authorization: Basic x / Digest username="..", response=".." -- everything to the end of the line.
_AUTH_HEADER = re.compile(
    r"(?P<head>\b(?:proxy-)?authorization\b[\"']?\s*[:=]\s*[\"']?)"
    r"(?P<secret>(?:basic|digest|bearer|negotiate)\s[^\r\n]*|[^\s<$\"'][^\r\n\"']*)", re.IGNORECASE)
# token=..., X-Consul-Token: ..., "password": "..." in free text (a log line, a command's output).
_SECRET_PARAM = re.compile(
    r"(?P<head>\b(?:x-consul-token|(?:acl_)?(?:master_)?token|password|passwd|pass|secret|api[_-]?key)"
    r"\b[\"']?\s*[:=]\s*[\"']?)(?P<secret>[^\s<$\"',;&}\]][^\s\"',;&}\]]*)",
    re.IGNORECASE)
# After `token:` with a space and no quote, a short lower-case word is the next word of a sentence
# ("queries without a token: let the anonymous token read"), not a credential: masking it would
# change what the admin reads. A value with a digit, a capital, a symbol or length does not pass,
# nor does anything after `password:` (XiVO's own default password is the word "xivo").
_PROSE_WORD = re.compile(r"[a-z]{1,12}")


def _param(match: re.Match[str]) -> str:
    head, secret = match.group("head"), match.group("secret")
    prose = (re.search(r"token\b\s*:\s+$", head, re.IGNORECASE) is not None
             and _PROSE_WORD.fullmatch(secret) is not None)
    return match.group(0) if prose else head + MASK


# Evidence keys whose string value is a secret by its name.
_SECRET_KEY = re.compile(r"(^|_)(password|passwd|token|secret|credentials?)$", re.IGNORECASE)

_IPV4 = re.compile(r"(?<![\w.])(?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}(?!\w|\.\d)")
# Erlang spells an IPv4 address {127,10,0,2} (rabbitmqctl output, RabbitMQ logs).
_ERLANG_IPV4 = re.compile(r"\{(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3})\}")
# Candidates only: `ipaddress` decides (a time like 10:11:12 is not an address).
_IPV6 = re.compile(r"(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")
# Three labels at least: two-label dotted words are mostly identifiers (infos.uuid, json.php);
# the XiVOs' own host names come from the topology and the evidence, whatever their length.
_FQDN = re.compile(r"(?<![\w.@/-])(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){2,}[A-Za-z]{2,24}(?![\w-])")
# Evidence keys that name a host (Consul datacenters and node names are XiVO host names).
_HOST_KEY = re.compile(r"^(datacenters?|dc|node|node_name|hostname|host|datacenters_of_xivos)$", re.IGNORECASE)
_KEPT = {"127.0.0.1", "0.0.0.0", "::1", "::", "localhost"}
# Dotted words that are not host names: file names and the doc references the reports cite.
_NOT_HOSTS = re.compile(r"\.(rst|py|yml|yaml|json|conf|config|log|crt|key|pem|sh|html|txt|gz|service|d|erl|sql)$",
                        re.IGNORECASE)


class Redactor:
    """Masks secrets in text and data; optionally gives addresses stable pseudonyms."""

    def __init__(self, secrets: Iterable[str] = (), *, addresses: bool = False,
                 known_addresses: Iterable[str] = (), names: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        self._secrets: re.Pattern[str] | None = None
        self.learn(secrets)
        self.addresses = addresses
        self._ips: dict[str, str] = {}
        self._hosts: dict[str, str] = {}
        self._others = 0  # addresses met that are not a XiVO's
        # The topology's own labels (XiVO names): item ids and fixes name them; never pseudonyms.
        self._names = {n.lower() for n in names if n}
        for rank, address in enumerate(known_addresses, start=1):
            self._pseudonym(address, rank)

    # -- text --------------------------------------------------------------------------------
    def learn(self, secrets: Iterable[str]) -> None:
        """Mask these too from now on: secrets the run read on a XiVO (a Consul master token read
        over SSH), which the topology never held."""
        values = {s for s in secrets if s and s != MASK}
        values |= {quote(s, safe="") for s in values}
        if values <= self._values:
            return
        self._values |= values
        # Longest first: a secret containing another is masked whole. A short one (a password
        # `xivo` is common) only as a whole word: inside `xivo-1` it is a name, not the password.
        ordered = sorted(self._values, key=len, reverse=True)
        alternatives = [re.escape(v) if len(v) >= SHORT else rf"(?<![\w-]){re.escape(v)}(?![\w-])" for v in ordered]
        self._secrets = re.compile("|".join(alternatives))

    def text(self, value: str) -> str:
        if self._secrets is not None:
            value = self._secrets.sub(MASK, value)
        value = _URI_CREDENTIALS.sub(lambda m: m.group("head") + MASK + "@", value)
        value = _AUTH_HEADER.sub(lambda m: m.group("head") + MASK, value)
        value = _SECRET_PARAM.sub(_param, value)
        if self.addresses:
            value = self._addresses(value)
        return value

    def credentials(self, value: str) -> str:
        """Known secrets and URI credentials only: for text that names keys, not values (a
        topology error says `consul.token: expected a string`; the `token:` rule of `text` would
        take `expected` for the token)."""
        if self._secrets is not None:
            value = self._secrets.sub(MASK, value)
        return _URI_CREDENTIALS.sub(lambda m: m.group("head") + MASK + "@", value)

    def value(self, value: Any, key: str = "") -> Any:
        """Deep copy of JSON-like data with every string (keys too) redacted."""
        if isinstance(value, Mapping):
            return {self.text(str(k)): self.value(v, str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v, key) for v in value]
        if isinstance(value, str):
            if value and _SECRET_KEY.search(key):
                return MASK
            return self.text(value)
        return value

    # -- results -----------------------------------------------------------------------------
    def redact_result(self, result: Result) -> Result:
        fix = result.fix
        if fix is not None:
            fix = FixOut(summary=self.text(fix.summary), commands=tuple(self.text(c) for c in fix.commands),
                         doc=fix.doc)
        return dataclasses.replace(
            result,
            target=self.text(result.target),
            title=self.text(result.title),
            message=self.text(result.message),
            evidence=self.value(thaw(result.evidence)),
            fix=fix,
            why=self.text(result.why),
            blocked_by=tuple(self.text(b) for b in result.blocked_by),
            metrics=tuple(dataclasses.replace(m, label=self.text(m.label), words=self.text(m.words))
                          for m in result.metrics),
            link_views={self.text(peer): dataclasses.replace(view, note=None if view.note is None else
                                                             self.text(view.note))
                        for peer, view in result.link_views.items()},
            facts={self.text(x): {k: self.text(str(v)) for k, v in f.items()} for x, f in result.facts.items()},
            reach=tuple(dataclasses.replace(r, origin=self.text(r.origin), service=self.text(r.service),
                                            state=self.text(r.state)) for r in result.reach),
        )

    def report(self, report: Report) -> Report:
        """The report with every result and the topology description redacted.

        Host names learnt anywhere in the evidence (a Consul datacenter is a XiVO's host name) are
        collected first, so they are replaced in every text, whichever result mentions them first.
        """
        if self.addresses:
            for result in report.results:
                self._learn_hosts(thaw(result.evidence))
        return dataclasses.replace(report, results=tuple(self.redact_result(r) for r in report.results),
                                   topology=self.value(thaw(report.topology)), vantage=self.text(report.vantage))

    # -- addresses ---------------------------------------------------------------------------
    def _pseudonym(self, address: str, rank: int | None = None) -> str:
        if address.lower() in _KEPT:
            return address
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            key = address.lower().rstrip(".")
            if key not in self._hosts:
                self._hosts[key] = f"host-{len(self._hosts) + 1}.example"
            return self._hosts[key]
        key = str(ip)
        if key not in self._ips:
            if rank is None:
                self._others += 1
            n = rank if rank is not None else self._others
            if ip.version == 6:
                self._ips[key] = f"fd00::{n:x}" if rank is not None else f"fd00::1:{n:x}"
            else:
                self._ips[key] = f"10.0.0.{n}" if rank is not None else f"10.0.1.{n}"
        return self._ips[key]

    def _erlang_address(self, match: re.Match[str]) -> str:
        dotted = ".".join(match.groups())
        if not is_ip_address(dotted):
            return match.group()
        return "{" + self._pseudonym(dotted).replace(".", ",") + "}"

    def _learn_hosts(self, data: Any, key: str = "") -> None:
        """Host names are the string values under host-like keys, at any depth below them."""
        if isinstance(data, Mapping):
            for k, v in data.items():
                self._learn_hosts(v, key if _HOST_KEY.match(key) else str(k))
        elif isinstance(data, list):
            for v in data:
                self._learn_hosts(v, key)
        elif isinstance(data, str) and _HOST_KEY.match(key):
            self._learn_host(data)

    def _learn_host(self, name: str) -> None:
        name = name.strip()
        if name and " " not in name and not _IPV4.fullmatch(name) and name.lower() not in _KEPT | self._names:
            self._pseudonym(name)

    def _addresses(self, value: str) -> str:
        value = _IPV4.sub(lambda m: self._pseudonym(m.group()), value)
        value = _ERLANG_IPV4.sub(self._erlang_address, value)
        value = _IPV6.sub(lambda m: self._pseudonym(m.group()) if is_ip_address(m.group()) else m.group(), value)
        value = _FQDN.sub(lambda m: m.group() if _NOT_HOSTS.search(m.group()) or m.group().lower() in self._names
                          else self._pseudonym(m.group()), value)
        if self._hosts:
            known = sorted((h for h in self._hosts if "." not in h), key=len, reverse=True)
            if known:
                # Also after a dot: a Consul member is named `<node>.<datacenter>`.
                short = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, known)) + r")(?![\w-])", re.IGNORECASE)
                value = short.sub(lambda m: self._hosts[m.group().lower()], value)
        return value


__all__ = ["MASK", "Redactor"]
