#!/usr/bin/env bash
# Runs a command in a private network namespace with only loopback up, so a
# multi-process test can never send traffic anywhere else. As root it uses a
# plain network namespace; as another user, a user namespace that maps the
# user to root inside it. Exit 77 (ctest's skip code) when neither works.
set -u
inner='ip link set lo up 2>/dev/null || { echo "SKIP: cannot bring up loopback"; exit 77; }; exec "$@"'
if [ "$(id -u)" = 0 ]; then
    exec unshare --net -- bash -c "$inner" bash "$@"
fi
if unshare --net --map-root-user -- true 2>/dev/null; then
    exec unshare --net --map-root-user -- bash -c "$inner" bash "$@"
fi
echo "SKIP: no network namespace available (needs root or unprivileged user namespaces)"
exit 77
