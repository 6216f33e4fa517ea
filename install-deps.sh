#!/usr/bin/env bash
# Installs what xivo-doctor and its lab need on a fresh Debian machine; with --tests, what its
# tests need too. Idempotent: packages already present are not fetched again. Needs root (or sudo)
# for apt-get.
#   ./install-deps.sh            the doctor and its lab (enough for `xivo-doctor demo`)
#   ./install-deps.sh --tests    also a headless browser (tests/test_browser.py) and Nagios Core
#                                (tests/test_nagios_core.py)
set -euo pipefail
cd "$(dirname "$0")"

tests=no
for arg in "$@"; do
  case "$arg" in
    --tests) tests=yes ;;
    *) echo "usage: $0 [--tests]" >&2; exit 2 ;;
  esac
done

# rabbitmq-server and serf run the lab's real RabbitMQ nodes and WAN gossip; postgresql its
# `asterisk` databases (LAB-NOTES §A, §B, §D). With `lab up --netns` each node is a host of its own:
# iproute2 makes its network namespace and the lab's bridge, iptables its firewall, openssh-server
# its SSH server (openssh-client logs in), util-linux's nsenter/unshare its namespaces; sudo is
# what an account that is not root goes through on a XiVO (the doctor's `ssh.sudo`, `sudo -n`).
debs=(rabbitmq-server serf postgresql iproute2 iptables openssh-server openssh-client util-linux sudo)
# The HTML report is tested in Debian's Chromium (headless), and its screenshot needs a font
# with the report's symbols (chromium depends on no font package; without one: boxes).
# `xivo-doctor nagios` is proven under Debian's real Nagios Core, which the test runs itself with
# its own config and files (the package's `nagios4` service, if apt starts it, is never used).
if [ "$tests" = yes ]; then
  debs+=(chromium fonts-dejavu-core nagios4-core)
fi
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
