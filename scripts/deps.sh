#!/usr/bin/env bash
# Installs what is missing from Debian's packages: `deps.sh build` for the
# gateway itself, `deps.sh test` for the whole test suite as well.
# Without root nothing is installed: missing build packages are an error,
# missing test packages only a warning (the unit and Lua tests need nothing
# more than the build, and scripts/test.sh counts the rest as skipped).
set -euo pipefail

build_pkgs=(build-essential cmake pkg-config libuv1-dev libmbedtls-dev libexpat1-dev
            libosip2-dev liblua5.4-dev lua5.4 libc-ares-dev libsqlite3-dev
            libhiredis-dev libhttp-parser-dev)
test_pkgs=(clang libclang-rt-dev iproute2 dnsmasq-base prosody lua-unbound ejabberd kamailio kamailio-tls-modules sip-tester
           python3 python3-slixmpp openssl procps redis-server redis-tools
           python3-prometheus-client chromium yamllint)

want=("${build_pkgs[@]}")
[ "${1:-build}" = test ] && want+=("${test_pkgs[@]}")

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=() missing_build=()
for p in "${want[@]}"; do
    installed "$p" && continue
    missing+=("$p")
    [[ " ${build_pkgs[*]} " == *" $p "* ]] && missing_build+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "deps: missing packages: ${missing[*]}" >&2
    echo "deps: run as root (or install them with: sudo apt-get install ${missing[*]})" >&2
    [ ${#missing_build[@]} -eq 0 ] || exit 1
    echo "deps: the build dependencies are present; tests that need the rest are skipped" >&2
    exit 0
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# The tests start their own Prosody, ejabberd and Kamailio, so the packaged
# daemons must not start on install. invoke-rc.d asks policy-rc.d first; exit
# 101 ("action forbidden") stops them with or without systemd (in a container
# there is none to stop them afterwards). An existing policy-rc.d is kept.
policy_rc=/usr/sbin/policy-rc.d
own_policy_rc=
if [ ! -e "$policy_rc" ]; then
    printf '#!/bin/sh\n# scripts/deps.sh: no daemon starts while it installs packages.\nexit 101\n' \
        >"$policy_rc"
    chmod 0755 "$policy_rc"
    own_policy_rc=1
    trap 'rm -f "$policy_rc"' EXIT
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
[ -n "$own_policy_rc" ] && rm -f "$policy_rc" && trap - EXIT
# Where systemd runs, a daemon started before (an earlier install) is stopped too.
for svc in prosody ejabberd kamailio redis-server; do
    if command -v systemctl >/dev/null && systemctl is-active -q "$svc" 2>/dev/null; then
        systemctl stop "$svc" || true
        systemctl disable -q "$svc" 2>/dev/null || true
    fi
done
