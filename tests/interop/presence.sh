# shellcheck shell=bash
# Helpers for the presence scenarios (t_presence.sh): Kamailio as the presence server of
# sip.test, scripted SIP UAs (sip_ua.py) and XMPP clients (presence_client.py). Source after
# lib.sh and it_setup.
#
# Both kinds of client run in the background for the whole group and take commands from a
# file the test appends to ($IT_TMP/NAME.cmd); each prints JSON lines to $IT_TMP/NAME.out,
# which pr_summary turns into the exact lines the scenarios compare.

# pr_kamailio_start: a fresh SQLite database from Debian's own schema, the config rendered
# with its path, Kamailio on 127.0.0.4:5060.
pr_kamailio_start() {
    local db=$IT_TMP/kamailio-presence.sqlite schema=/usr/share/kamailio/db_sqlite
    rm -f "$db"
    cat "$schema/standard-create.sql" "$schema/presence-create.sql" | sqlite3 "$db" ||
        return 1
    sed "s|@DB@|$db|g" "$IT_DIR/conf/kamailio-presence.cfg.in" >"$IT_TMP/kamailio-presence.cfg"
    it_start kamailio kamailio -f "$IT_TMP/kamailio-presence.cfg" -DD -E -m 256 -M 16 \
        -P "$IT_TMP/kamailio.pid" -Y "$IT_TMP"
    it_wait_tcp 127.0.0.4 5060 10
}

# pr_have_presence_server: Kamailio's presence, presence_xml and db_sqlite modules and the
# sqlite3 shell are installed (deps.sh).
pr_have_presence_server() {
    local m=/usr/lib/x86_64-linux-gnu/kamailio/modules
    [ -f "$m/presence.so" ] && [ -f "$m/presence_xml.so" ] && [ -f "$m/db_sqlite.so" ] &&
        command -v sqlite3 >/dev/null
}

# pr_ua NAME USER ADDR:PORT [ARGS...]: sip_ua.py as USER@sip.test, proxy Kamailio.
pr_ua() {
    local name=$1 user=$2 bind=$3
    shift 3
    : >"$IT_TMP/$name.cmd"
    it_start "$name" "$PY" "$IT_DIR/sip_ua.py" --user "$user" --bind "$bind" \
        --cmd "$IT_TMP/$name.cmd" --timeout "${PR_CLIENT_TIMEOUT:-280}" "$@"
    it_wait_grep "$IT_TMP/$name.out" '"ev": "ready"' 10
}

# pr_xmpp NAME JID [ARGS...]: presence_client.py as JID (c2s at Prosody unless --server).
pr_xmpp() {
    local name=$1 jid=$2
    shift 2
    : >"$IT_TMP/$name.cmd"
    it_start "$name" "$PY" "$IT_DIR/presence_client.py" --jid "$jid" --password "$IT_PASSWORD" \
        --cmd "$IT_TMP/$name.cmd" --timeout "${PR_CLIENT_TIMEOUT:-280}" "$@"
    it_wait_grep "$IT_TMP/$name.out" '"ev": "(online|failed)"' 20 &&
        grep -q '"ev": "online"' "$IT_TMP/$name.out"
}

# pr_do NAME COMMAND...: one command line to client NAME (words shell-quoted for it).
pr_do() {
    local name=$1
    shift
    printf '%q ' "$@" >>"$IT_TMP/$name.cmd"
    echo >>"$IT_TMP/$name.cmd"
}

# pr_summary NAME KIND [SINCE-LINE]: client NAME's KIND events (notify, presence, roster,
# response, subscription), one line each, in the exact form the scenarios compare; only
# lines after SINCE-LINE of NAME.out (pr_mark).
pr_summary() {
    tail -n +"$((${3:-0} + 1))" "$IT_TMP/$1.out" 2>/dev/null |
        "$PY" "$IT_DIR/presence_check.py" "$2"
}

# pr_mark NAME: the current line count of NAME.out, to look only at what comes after it.
pr_mark() { wc -l <"$IT_TMP/$1.out" 2>/dev/null || echo 0; }

# pr_wait NAME KIND COUNT SECONDS [SINCE-LINE]: wait until pr_summary has COUNT lines.
pr_wait() {
    local i n
    for ((i = 0; i < $4 * 5; i++)); do
        n=$(pr_summary "$1" "$2" "${5:-0}" | wc -l)
        [ "$n" -ge "$3" ] && return 0
        sleep 0.2
    done
    return 1
}

# pr_wait_for NAME KIND LINE SECONDS [SINCE-LINE]: wait until pr_summary has exactly LINE.
pr_wait_for() {
    local i
    for ((i = 0; i < $4 * 5; i++)); do
        pr_summary "$1" "$2" "${5:-0}" | grep -qxF -- "$3" && return 0
        sleep 0.2
    done
    return 1
}

# pr_have_baresip: baresip and its presence and ctrl_tcp modules (deps.sh: baresip-core).
pr_have_baresip() {
    command -v baresip >/dev/null && [ -f /usr/lib/baresip/modules/presence.so ] &&
        [ -f /usr/lib/baresip/modules/ctrl_tcp.so ]
}

# pr_baresip USER ADDR PORT CONTACT-URI...: baresip as USER@sip.test on ADDR:PORT,
# registering and PUBLISHing (every 60 s) through Kamailio, SUBSCRIBEd to the presence of each
# CONTACT-URI (presence=p2p), its control socket on ADDR:4444. Waits for its REGISTER's 200.
pr_baresip() {
    local user=$1 addr=$2 port=$3 d=$IT_TMP/baresip c
    shift 3
    mkdir -p "$d"
    sed -e "s|@ADDR@|$addr|g" -e "s|@PORT@|$port|g" "$IT_DIR/conf/baresip.config.in" \
        >"$d/config"
    echo "<sip:$user@sip.test>;outbound=\"sip:127.0.0.4:5060\";regint=600;pubint=60" \
        >"$d/accounts"
    : >"$d/contacts"
    for c in "$@"; do echo "<$c>;presence=p2p" >>"$d/contacts"; done
    # -n: the namespace has no default route, from which baresip would pick its address.
    it_start baresip baresip -4 -n "$addr" -f "$d" -v -s
    it_wait_grep "$IT_TMP/baresip.out" 'got event [0-9]+ \(REGISTER_OK\)' 15
}

# pr_baresip_ctl COMMAND [PARAMS]: one ctrl_tcp command to the group's baresip.
pr_baresip_ctl() { nsx "$PY" "$IT_DIR/baresip_ctl.py" 127.0.0.6:4444 "$@"; }

# pr_baresip_wait URI STATUS SECONDS: until baresip's contact URI shows STATUS.
pr_baresip_wait() {
    local i
    for ((i = 0; i < $3 * 2; i++)); do
        pr_baresip_ctl contacts 2>/dev/null | grep -qxF -- "$1${tab:-	}$2" && return 0
        sleep 0.5
    done
    return 1
}

# pr_baresip_notify_cseq_faults: from baresip's SIP trace (-s), the NOTIFYs it received whose
# CSeq did not grow within their dialog (a retransmission, the same Via branch, is not one),
# as "call-id cseq-after-cseq" lines. baresip itself only refuses a lower CSeq, not an equal
# one, so the test checks the order here (RFC 3261 12.2.2).
pr_baresip_notify_cseq_faults() {
    "$PY" - "$IT_TMP/baresip.out" <<'PYEOF'
import re, sys
text = open(sys.argv[1], "rb").read().decode("utf-8", "replace")
last, seen = {}, set()
for block in re.split(r"\n(?=NOTIFY sip:)", text)[1:]:
    head = block.split("\n\n", 1)[0].split("\r\n\r\n", 1)[0]
    call = re.search(r"(?im)^(?:call-id|i):\s*(\S+)", head)
    cseq = re.search(r"(?im)^cseq:\s*(\d+)\s+NOTIFY", head)
    branch = re.search(r"(?im)^(?:via|v):[^\n]*branch=([^;\s]+)", head)
    if not (call and cseq and branch):
        continue
    key = (call.group(1), branch.group(1))
    if key in seen:
        continue
    seen.add(key)
    n = int(cseq.group(1))
    if call.group(1) in last and n <= last[call.group(1)]:
        print(f"{call.group(1)} {n}-after-{last[call.group(1)]}")
    last[call.group(1)] = max(n, last.get(call.group(1), 0))
PYEOF
}
