#!/usr/bin/env bash
# Installs what the interop tests run (Debian 12 packages) when it is missing.
set -eu
pkgs=(prosody kamailio sip-tester dnsmasq-base python3-slixmpp iproute2 openssl lua-unbound)
pkgs+=(ejabberd)
# Kamailio as a presence server (t_presence.sh): presence, presence_xml, db_sqlite, sqlite3.
pkgs+=(kamailio-presence-modules kamailio-sqlite-modules sqlite3)
# baresip as a second, real SIP presence UA (t_presence.sh): its presence and ctrl_tcp modules.
pkgs+=(baresip-core)
# Two gateway instances sharing their subscriptions (t_instances.sh): Redis;
# the admin listener's scrape and status page (t_admin.sh): the Prometheus
# text parser and a headless browser.
pkgs+=(redis-server redis-tools python3-prometheus-client chromium)
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
# The packages' own services are not wanted: the tests start private instances.
# policy-rc.d exiting 101 keeps invoke-rc.d from starting them on install, with or
# without systemd (a container has none to stop them afterwards).
own_policy_rc=
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\n# tests/interop/deps.sh: no daemon starts while it installs.\nexit 101\n' \
        >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    own_policy_rc=1
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"
if [ -n "$own_policy_rc" ]; then
    rm -f /usr/sbin/policy-rc.d
    trap - EXIT
fi
for svc in prosody ejabberd kamailio; do
    if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
        systemctl stop "$svc" || true
    fi
done
