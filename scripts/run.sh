#!/usr/bin/env bash
# Builds xsgw and runs it in the foreground with the shipped default policy
# (policies/default.lua: sip.test on 127.0.0.1:5060, XMPP s2s on
# 127.0.0.1:5269). Extra arguments go to xsgw, e.g. --log-level debug or
# --policy my-policy.lua. Ctrl-C stops it; `kill -HUP <pid>` reloads the policy.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/deps.sh" build
cmake -S "$top" -B "$top/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DXS_DEV_PATHS=ON >/dev/null
cmake --build "$top/build" -j"$(nproc)" --target xsgw
mkdir -p "$top/build/state"
exec "$top/build/xsgw" --policy "$top/policies/default.lua" --lua-dir "$top/lua" --state-dir "$top/build/state" "$@"
