#!/usr/bin/env bash
# Installs what the interop tests run (Debian 12 packages) when it is missing.
set -eu
pkgs=(prosody kamailio sip-tester dnsmasq-base python3-slixmpp iproute2 openssl lua-unbound)
pkgs+=(ejabberd)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
        missing+=("$p")
done
if [ ${#missing[@]} = 0 ]; then
    echo "interop dependencies present"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "deps.sh: missing ${missing[*]}; run as root to install them" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"
# The packages' own services are not wanted: the tests start private instances.
for svc in prosody kamailio; do
    if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
        systemctl stop "$svc" || true
    fi
done
