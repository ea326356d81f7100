#!/bin/sh
# Starts xsgw with the policy at $XSGW_POLICY (default /etc/xsgw/policy.lua).
# When no policy is there, the shipped default is copied into place first.
# exec makes xsgw PID 1's replacement, so SIGHUP (reload) and SIGTERM (drain
# and stop) from `docker kill -s HUP` / `docker stop` reach it directly.
#
# Arguments that start with '-' are passed on to xsgw (e.g. --log-level
# debug); any other command runs instead of the gateway (e.g. sh).
set -eu

XSGW_BIN="${XSGW_BIN:-xsgw}"
XSGW_LUA_DIR="${XSGW_LUA_DIR:-/usr/share/xsgw/lua}"
XSGW_DEFAULT_POLICY="${XSGW_DEFAULT_POLICY:-/etc/xsgw/policies/default.lua}"
policy="${XSGW_POLICY:-/etc/xsgw/policy.lua}"

if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then
    exec "$@"
fi

if [ ! -e "$policy" ]; then
    if [ ! -r "$XSGW_DEFAULT_POLICY" ]; then
        echo "xsgw-entrypoint: no policy at $policy and no default at $XSGW_DEFAULT_POLICY" >&2
        exit 1
    fi
    if cp "$XSGW_DEFAULT_POLICY" "$policy" 2>/dev/null; then
        echo "xsgw-entrypoint: no policy at $policy; installed the default" >&2
    else
        echo "xsgw-entrypoint: cannot write $policy; running the default in place" >&2
        policy="$XSGW_DEFAULT_POLICY"
    fi
fi

# The subscription store (presence.db) lives in the state directory: mount a
# volume there to keep subscriptions across container restarts.
state="${XSGW_STATE_DIR:-/var/lib/xsgw}"
mkdir -p "$state" 2>/dev/null || true
exec "$XSGW_BIN" --policy "$policy" --lua-dir "$XSGW_LUA_DIR" --state-dir "$state" "$@"
