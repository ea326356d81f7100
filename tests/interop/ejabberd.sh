# shellcheck shell=bash
# ejabberd (Debian 12's 23.01) as an XMPP peer of the gateway, for t_ejabberd.sh and t_load.sh:
# ejab.test on 127.0.0.7 (c2s 5222, s2s 5269, STARTTLS + dialback, self-signed certificate),
# user ella@ejab.test. Source after lib.sh and after it_setup (it needs $IT_TMP); then
# `trap ej_exit EXIT` adds ejabberd's log to the tails shown on failure.
#
# The Erlang node runs in the foreground as root, started with /usr/bin/erl directly (not
# ejabberdctl, which su's to the ejabberd user and leaves su as the process we would know),
# so the PID it_start records is beam.smp itself. No epmd at all: `-start_epmd false
# -erl_epmd_port PORT` (what ejabberdctl does when ERL_DIST_PORT is set) makes the node
# listen for distribution on a fixed port, and the control node (`ejabberd_ctl`, used for
# `register`) connects to that port with `-dist_listen false`.
# XS_IT_EJABBERD_LOGLEVEL (default debug: every XML element on every stream) sets ejabberd's
# loglevel; its log is $IT_TMP/ejabberd/ejabberd.log.

EJ_ADDR=127.0.0.7
EJ_DOMAIN=ejab.test
EJ_USER=ella
EJ_DIST_PORT=4370
EJ_NODE=ejab$$@localhost
EJ_COOKIE=xsgwit$$$RANDOM
EJ_DIR=$IT_TMP/ejabberd
EJ_ERL=/usr/bin/erl
EJ_LIBS=/usr/lib/x86_64-linux-gnu

# ej_installed: the Erlang runtime and ejabberd's code are there (deps.sh installs them).
ej_installed() { [ -x "$EJ_ERL" ] && ls -d "$EJ_LIBS"/ejabberd-*/ebin >/dev/null 2>&1; }

# On a failure, also show ejabberd's s2s traffic and stderr (lib.sh's tail knows Prosody, not
# ejabberd); the full debug log stays in the kept temp directory.
ej_exit() {
    local rc=$? s unreported=0
    for s in "${IT_SCENARIOS[@]}"; do
        [ -n "${IT_REPORTED[$s]:-}" ] || unreported=1
    done
    if [ "$IT_FAILED" = 1 ] || [ $unreported = 1 ]; then
        if [ -s "$EJ_DIR/ejabberd.log" ]; then
            echo "---- s2s lines of $EJ_DIR/ejabberd.log (tail)"
            grep -E 's2s|dialback|XML on stream = <<"<(db:|result|verify|stream:error)' \
                "$EJ_DIR/ejabberd.log" | grep -v 'Running hook' | cut -c1-400 |
                tail -n "${IT_TAIL:-40}"
        fi
        if [ -s "$IT_TMP/ejabberd.err" ]; then
            echo "---- tail of $IT_TMP/ejabberd.err"
            tail -n 10 "$IT_TMP/ejabberd.err"
        fi
    fi
    (exit "$rc")
    it_cleanup
}


# ej_dns_start: the group's own dnsmasq (lib.sh's it_dns_start has a fixed record list and
# no hook for more). Only the names these groups use: the gateway for sip.test, ejab.test, and
# xmpp.test (Prosody).
ej_dns_start() {
    it_start dnsmasq /usr/sbin/dnsmasq --keep-in-foreground --no-resolv --no-hosts \
        --log-queries --log-facility=- --listen-address=127.0.0.53 --port=53 \
        --pid-file="$IT_TMP/dnsmasq.pid" --user=root --group=root \
        --local=/test/ --local-ttl=60 \
        --host-record=gw.sip.test,127.0.0.3 \
        --host-record=sip.test,127.0.0.4 \
        --host-record=$EJ_DOMAIN,$EJ_ADDR \
        --host-record=xmpp.test,127.0.0.2 \
        --srv-host=_xmpp-server._tcp.xmpp.test,xmpp.test,5269,0,5 \
        --srv-host=_xmpp-server._tcp.sip.test,gw.sip.test,5269,0,5 \
        --srv-host=_xmpp-server._tcp.$EJ_DOMAIN,$EJ_DOMAIN,5269,0,5 \
        --srv-host=_sip._udp.sip.test,sip.test,5060,0,5 \
        --srv-host=_sip._tcp.sip.test,sip.test,5060,0,5
    it_wait_dns $EJ_DOMAIN $EJ_ADDR 5 &&
        it_dns_query _xmpp-server._tcp.$EJ_DOMAIN SRV | grep -q "^SRV 0 5 5269 $EJ_DOMAIN "
}

# The environment ejabberdctl would export, pointing into the temp dir (for `env`).
EJ_ENV=(env HOME="$EJ_DIR" ERL_LIBS="$EJ_LIBS" ERL_INETRC="$EJ_DIR/inetrc"
    ERL_CRASH_DUMP="$EJ_DIR/erl_crash.dump" ERL_CRASH_DUMP_BYTES=0
    EJABBERD_CONFIG_PATH="$EJ_DIR/ejabberd.yml" EJABBERD_LOG_PATH="$EJ_DIR/ejabberd.log")

# ej_ctl COMMAND...: what `ejabberdctl COMMAND...` does, against our node, bounded to 30 s.
ej_ctl() {
    nsx timeout 30 "${EJ_ENV[@]}" "$EJ_ERL" -sname "ejabctl$$-$RANDOM@localhost" \
        -setcookie "$EJ_COOKIE" -hidden -noinput -start_epmd false \
        -erl_epmd_port "$EJ_DIST_PORT" -dist_listen false \
        -s ejabberd_ctl -extra "$EJ_NODE" "$@"
}

# ej_start: certificate, config, spool, the node; waits for c2s and s2s and for
# `ejabberdctl status` to answer, then registers the test user.
ej_start() {
    mkdir -p "$EJ_DIR/spool"
    if [ -n "${EJ_CERT:-}" ]; then
        # A certificate from the test CA (t_trust.sh): EJ_CERT (chain) and EJ_KEY.
        cat "$EJ_CERT" "$EJ_KEY" >"$EJ_DIR/$EJ_DOMAIN.pem"
    else
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$EJ_DOMAIN" \
            -addext "subjectAltName=DNS:$EJ_DOMAIN" \
            -keyout "$EJ_DIR/key.pem" -out "$EJ_DIR/crt.pem" 2>/dev/null || return 1
        cat "$EJ_DIR/crt.pem" "$EJ_DIR/key.pem" >"$EJ_DIR/$EJ_DOMAIN.pem"
    fi
    sed -e "s|@DIR@|$EJ_DIR|g" -e "s|@ADDR@|$EJ_ADDR|g" \
        -e "s|@CA@|${EJ_CA:-/etc/ssl/certs/ca-certificates.crt}|g" \
        -e "s|@LOGLEVEL@|${XS_IT_EJABBERD_LOGLEVEL:-debug}|" \
        "$IT_DIR/conf/ejabberd.yml.in" >"$EJ_DIR/ejabberd.yml"
    # Erlang's resolver: /etc/hosts for the node names, the namespace's dnsmasq for s2s.
    printf '%s\n' '{lookup, ["file", "native"]}.' '{file, resolv, "/etc/resolv.conf"}.' \
        >"$EJ_DIR/inetrc"
    it_start ejabberd "${EJ_ENV[@]}" "$EJ_ERL" -sname "$EJ_NODE" -setcookie "$EJ_COOKIE" \
        -noinput -start_epmd false -erl_epmd_port "$EJ_DIST_PORT" \
        -kernel inet_dist_use_interface '{127,0,0,1}' \
        -mnesia dir "\"$EJ_DIR/spool\"" -s ejabberd
    it_wait_tcp $EJ_ADDR 5222 40 && it_wait_tcp $EJ_ADDR 5269 10 || return 1
    local i
    for ((i = 0; i < 10; i++)); do
        ej_ctl status >>"$IT_TMP/ejabberdctl.log" 2>&1 && break
        sleep 1
    done
    ej_ctl register "$EJ_USER" "$EJ_DOMAIN" "$IT_PASSWORD" >>"$IT_TMP/ejabberdctl.log" 2>&1
}

# ej_xmpp NAME ARGS...: xmpp_client.py as ella@ejab.test, c2s at ejabberd.
ej_xmpp() {
    local name=$1
    shift
    it_start "$name" "$PY" "$IT_DIR/xmpp_client.py" --jid "$EJ_USER@$EJ_DOMAIN" \
        --password "$IT_PASSWORD" --server $EJ_ADDR "$@"
}

# ej_ns_erlang: Erlang/epmd processes alive in the namespace, "PID COMM" a line.
ej_ns_erlang() {
    local pid comm
    for pid in $(ip netns pids "$IT_NS" 2>/dev/null); do
        comm=$(cat "/proc/$pid/comm" 2>/dev/null) || continue
        case $comm in
            beam* | epmd | erl_child_setup | inet_gethost | erlexec | heart | memsup | cpu_sup)
                echo "$pid $comm"
                ;;
        esac
    done
}
