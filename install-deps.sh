#!/usr/bin/env bash
# Installs what xivo-doctor, its lab and its tests need on a fresh Debian machine. Idempotent:
# packages already present are not fetched again. Needs root (or sudo) for apt-get.
set -euo pipefail
cd "$(dirname "$0")"

# rabbitmq-server and serf run the lab's real RabbitMQ nodes and WAN gossip; postgresql its
# `asterisk` databases (LAB-NOTES §A, §B, §D).
debs=(rabbitmq-server serf postgresql)
missing=()
for pkg in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python3 -m pip install -q --disable-pip-version-check -e '.[test]'
# pyenv installs console scripts behind shims that only appear after a rehash.
if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
