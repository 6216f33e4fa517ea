"""What xivo-dird reads at start, and whether the running one read what is there now.

Place in the lab: part of the xivo-dird stand-in (`standins.dird` reads its configuration here, once,
at start: dird reads it only then, the manual's "restart xivo-dird" step) and of `lab heal`. Once
read, the stand-in records a digest of that configuration in `/run/xivo-dird.loaded`; `heal` computes
the digest the node's tables and files give now (what a restart would read, with xivo-confgend's
generation and nothing written) and restarts dird only where the two differ. Beyond its configuration
a running dird keeps only each peer's UUID (xivo_user_plugin `_get_uuid`, cached for the life of the
process): `heal` restarts every dird when a UUID changed.
"""

from __future__ import annotations

import hashlib
import json
import sys
from typing import Any

import yaml

from xivo_doctor.lab import releases, releases_lookup
from xivo_doctor.lab.standins import dird_config
from xivo_doctor.lab.standins.base import Node, deep_merge

GENERATED = {f"050-xivo-{name}": name for name in dird_config.FILES}  # conf.d's three `!exec` files
LOADED = "/run/xivo-dird.loaded"


def shipped_config(release: str) -> dict[str, Any]:
    """etc/xivo-dird/config.yml as shipped at that tag, the keys the stand-in reads
    (wazo-platform/wazo-dird:etc/xivo-dird/config.yml@xivo-15.19..@xivo-16.15)."""
    backends = ["personal", "xivo", *(["phonebook"] if releases_lookup.dird_phonebook_backend(release) else []),
                "csv", "csv_ws", "ldap", *(["dird_phonebook"] if releases.key(release) >= (16, 13) else [])]
    auth: dict[str, Any] = {"host": "localhost", "port": 9497}
    if releases_lookup.dird_verifies_auth_certificate(release):
        auth["verify_certificate"] = "/usr/share/xivo-certs/server.crt"
    columns = [("Name", "name", "name"), ("Number", "phone", "number"), ("Mobile", "phone_mobile", "callable"),
               ("Favorite", "favorite", "favorite"), ("Personal", "personal", "personal")]
    return {
        "rest_api": {"https": {"listen": "0.0.0.0", "port": 9489, "certificate": "/usr/share/xivo-certs/server.crt",
                               "private_key": "/usr/share/xivo-certs/server.key"}},
        "auth": auth,
        "enabled_plugins": {"backends": backends},
        "views": {"displays": {"default_display": [{"title": t, "field": f, "type": k} for t, f, k in columns]},
                  "profile_to_display": {"default": "default_display"},
                  "profile_to_display_phone": {"default_phone": "default"}},
        "services": {"lookup": {"default_phone": {"sources": releases_lookup.dird_default_phone_sources(release),
                                                  "timeout": 0.5}},
                     "favorites": {"default": {"sources": ["personal"]}}},
    }


def load_config(node: Node, release: str, generated: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """xivo-lib-python's read_config_file_hierarchy: conf.d/*.yml sorted, the first one winning key by key,
    over config.yml; an unreadable file is skipped with `Could not read config file` on stderr
    (wazo-platform/xivo-lib-python:xivo/config_helper.py, xivo/chain_map.py@xivo-15.19)."""
    main = node.read_yaml("/etc/xivo-dird/config.yml") if node.path("/etc/xivo-dird/config.yml").exists() \
        else shipped_config(release)
    folder = node.path("/etc/xivo-dird/conf.d")
    names = sorted({*GENERATED, *(p.name for p in folder.glob("*.yml") if not p.name.startswith("."))})
    config = main
    for name in reversed(names):
        if name in GENERATED:
            extra = generated.get(GENERATED[name]) or {}
        else:
            try:
                extra = yaml.safe_load((folder / name).read_text()) or {}
            except (OSError, yaml.YAMLError) as e:
                print(f"Could not read config file {name}: {e}", file=sys.stderr)
                continue
        config = deep_merge(config, extra) if isinstance(extra, dict) else config
    # the `personal` source of dird's sources.d (source_config_dir, xivo_dird/config.py@xivo-15.19) [INFERRED]
    config.setdefault("sources", {}).setdefault("personal", {"type": "personal", "name": "personal"})
    return config


def digest(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def record(node: Node, config: dict[str, Any]) -> None:
    """Said by the stand-in once its configuration is read (a root without /run gets one: nothing but
    heal reads it, and a heal without it restarts dird)."""
    path = node.path(LOADED)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(digest(config) + "\n")


def loaded_now(node: Node, query: dird_config.Query) -> bool:
    """Whether the running dird read what a restart would read now; False when it recorded nothing or
    a generation fails (confgend would then serve its cache: a restart settles it)."""
    try:
        recorded = node.path(LOADED).read_text().strip()
    except OSError:
        return False
    release = node.release()
    try:
        generated = {name: generate(query, release) for name, generate in dird_config.GENERATORS.items()}
    except Exception:
        return False
    return recorded == digest(load_config(node, release, generated))
