"""What the benchmark compares xivo-doctor with, and the topologies it runs on.

Place: benchmark helpers (bench/run_bench.py), outside the package and the test suite.
- `write_script`: the manual's troubleshooting commands (XIVO-FACTS §8) as a shell script run one
  after another against a lab: `rabbitmqctl eval 'rabbit_federation_status:status().'` per XiVO
  (the lab's wrapper), Consul's WAN members and agent services per XiVO (curl on its HTTPS API,
  the node's master token, as `consul members -wan` / `consul-cli agent services` ask it), a curl
  per ctid `/0.1/infos` and per phonebook URL the XiVOs' directories hold.
- `blackholed_topology`: the lab's topology with one XiVO moved to an address where nothing answers.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import yaml

from xivo_doctor.topology import load_topology


def check_ids(doctor: list[str]) -> list[str]:
    """Check ids in run order, from `xivo-doctor checks`."""
    out = subprocess.run([*doctor, "checks"], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines()[1:] if line.strip()]


def phonebook_urls(doctor_json: list[str]) -> list[str]:
    """The phonebook URLs the lab's directories hold, from one doctor run's evidence (JSON on stdout)."""
    out = subprocess.run(doctor_json, capture_output=True, text=True).stdout
    urls = []
    for result in json.loads(out)["results"]:
        if result["check"] == "phonebook-restricted":
            for books in (result["evidence"].get("phonebooks") or {}).values():
                urls += [book["url"] for book in books if book.get("url")]
    return sorted(set(urls))


def write_script(lab_dir: Path, doctor_json: list[str]) -> Path:
    topology = load_topology(lab_dir / "topology.yml")
    lines = ["#!/bin/sh", "# The manual's troubleshooting commands (XIVO-FACTS §8), one after another.", "set -u"]
    for xivo in topology.xivos:
        ctl = " ".join(shlex.quote(a) for a in xivo.on_box.rabbitmqctl)
        token = lab_dir / "nodes" / xivo.name / "root/var/lib/consul/master_token"
        api = f"https://{xivo.address}:{xivo.consul.port}/v1/agent"
        lines += [
            f"{ctl} eval 'rabbit_federation_status:status().'",
            f"token=$(cat {shlex.quote(str(token))})",
            f'curl -sSk -m 10 -H "X-Consul-Token: $token" "{api}/members?wan=1"',
            f'curl -sSk -m 10 -H "X-Consul-Token: $token" "{api}/services"',
        ]
    for xivo in topology.xivos:
        lines.append(f"curl -sS -m 10 http://{xivo.address}:{xivo.ctid.port}/0.1/infos")
    for url in phonebook_urls(doctor_json):
        lines.append(f"curl -sSkL -m 10 {shlex.quote(url)}")
    script = lab_dir / "manual-troubleshooting.sh"
    script.write_text("\n".join(lines) + "\n")
    return script


def blackholed_topology(lab_dir: Path, name: str, address: str) -> tuple[Path, list[int], float]:
    """The lab's topology with XiVO `name` at `address`, reached from afar (no on-box access):
    (its path, the ports the doctor will aim at it, the probe timeout)."""
    data = yaml.safe_load((lab_dir / "topology.yml").read_text())
    for xivo in data["xivos"]:
        if xivo["name"] == name:
            xivo["address"] = address
            xivo.pop("on_box", None)
    path = lab_dir / "topology-blackholed.yml"  # beside the original: its relative secret paths still hold
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    topology = load_topology(path)
    xivo = next(x for x in topology.xivos if x.name == name)
    ports = {xivo.consul.port, xivo.consul.rpc_port, xivo.consul.serf_wan_port, xivo.rabbitmq.port, xivo.ctid.port,
             xivo.confd.port, xivo.webservices.http_port, xivo.webservices.https_port}
    return path, sorted(ports), topology.probe_timeout
