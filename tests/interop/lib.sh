# shellcheck shell=bash
# Shared helpers for the interop scenarios (tests/interop/t_*.sh). Source it, then call
# it_setup GROUP SCENARIO... once; everything a test starts runs inside the network
# namespace it_setup creates, is remembered by PID and stopped by it_cleanup on EXIT.
#
# Addresses inside the namespace (all loopback):
#   127.0.0.53  dnsmasq          127.0.0.2  Prosody (xmpp.test)   127.0.0.3  xsgw (sip.test)
#   127.0.0.4   SIP UAS / Kamailio            127.0.0.5  SIP UAC (bob)   127.0.0.6  bob's UA

IT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$IT_DIR/../.." && pwd)
XSGW=${XSGW:-$REPO/build/xsgw}
PY=/usr/bin/python3
IT_PASSWORD=secret

IT_FAILED=0
IT_NS=
IT_TMP=
IT_GROUP=
IT_SCENARIOS=()
declare -A IT_PID=()
declare -A IT_REPORTED=()
IT_ON_EXIT=()  # commands it_cleanup evaluates, e.g. to restore a sysctl

it_log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

it_pass() {
    IT_REPORTED[$1]=1
    echo "PASS $1"
}
it_fail() {
    IT_REPORTED[$1]=1
    IT_FAILED=1
    echo "FAIL $1: $2"
}
it_skip() {
    IT_REPORTED[$1]=1
    echo "SKIP $1: $2"
}

# Every scenario the group announced must end up with exactly one verdict, even when the
# script dies half-way: the missing ones are reported as failed in it_cleanup.
it_setup() {
    IT_GROUP=$1
    shift
    IT_SCENARIOS=("$@")
    local why=
    if [ "$(id -u)" != 0 ]; then
        why="not root (network namespaces need CAP_SYS_ADMIN)"
    elif ! command -v ip >/dev/null; then
        why="iproute2 (ip) is not installed"
    fi
    if [ -z "$why" ]; then
        IT_NS="xsgw-$IT_GROUP-$$"
        if ! ip netns add "$IT_NS" 2>/dev/null; then
            why="ip netns add $IT_NS failed"
            IT_NS=
        fi
    fi
    if [ -n "$why" ]; then
        local s
        for s in "${IT_SCENARIOS[@]}"; do it_skip "$s" "$why"; done
        exit 0
    fi
    trap it_cleanup EXIT
    trap 'exit 130' INT TERM
    IT_TMP=$(mktemp -d "/tmp/xsgw-it-$IT_GROUP.XXXXXX")
    ip -n "$IT_NS" link set lo up
    mkdir -p "/etc/netns/$IT_NS"
    echo "nameserver 127.0.0.53" >"/etc/netns/$IT_NS/resolv.conf"
    it_log "group $IT_GROUP: namespace $IT_NS, files in $IT_TMP"
}

it_tail_logs() {
    local f
    for f in "$IT_TMP"/xsgw.err "$IT_TMP"/prosody.log "$IT_TMP"/kamailio.err; do
        [ -s "$f" ] || continue
        echo "---- tail of $f"
        tail -n "${IT_TAIL:-40}" "$f"
    done
}

it_cleanup() {
    local rc=$? s
    trap - EXIT
    for s in "${IT_SCENARIOS[@]}"; do
        [ -n "${IT_REPORTED[$s]:-}" ] ||
            it_fail "$s" "not reached (the script stopped early, exit $rc)"
    done
    it_stop_all
    it_sanitizer_verdict
    local cmd
    for cmd in "${IT_ON_EXIT[@]}"; do eval "$cmd"; done
    if [ -n "$IT_NS" ]; then
        ip netns del "$IT_NS" 2>/dev/null || it_log "ip netns del $IT_NS failed"
        rm -rf "/etc/netns/$IT_NS"
    fi
    if [ "$IT_FAILED" = 1 ]; then
        it_tail_logs
        echo "---- all files kept in $IT_TMP"
    elif [ -z "${XS_IT_KEEP:-}" ] && [ -n "$IT_TMP" ]; then
        rm -rf "$IT_TMP"
    fi
    exit "$IT_FAILED"
}

# nsx COMMAND...: run in the namespace, in the foreground.
nsx() { ip netns exec "$IT_NS" "$@"; }

# it_start NAME COMMAND...: run in the namespace in the background, stdout and stderr to
# $IT_TMP/NAME.out / NAME.err. `ip netns exec` execs the command, so $! is its PID.
it_start() {
    local name=$1
    shift
    ip netns exec "$IT_NS" "$@" >"$IT_TMP/$name.out" 2>"$IT_TMP/$name.err" &
    IT_PID[$name]=$!
}

# it_sanitizer_verdict: with a gateway built with ASan/UBSan (scripts/test.sh runs some groups
# against it), a report in its log is a failure of the group even when every scenario passed:
# "<group>.sanitizer". Leaks are reported when xsgw exits, so this runs after it_stop_all.
it_sanitizer_verdict() {
    local f hit
    for f in "$IT_TMP"/xsgw*.err; do
        [ -f "$f" ] || continue
        hit=$(grep -m 1 -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$f")
        if [ -n "$hit" ]; then
            it_fail "$IT_GROUP.sanitizer" "$(basename "$f"): $hit"
            return
        fi
    done
}

# it_stop_all: TERM to every process this group started, all at once, then up to 5 s in all
# for them to go before KILL; then KILL whatever still runs inside the namespace (Kamailio's
# forked workers, a client's children): only this group's processes live there. Serially,
# 5 s per process could outlast run.sh's kill-after and leave the namespace behind.
it_stop_all() {
    local name pid pids=() i left
    for name in "${!IT_PID[@]}"; do pids+=("${IT_PID[$name]}"); done
    IT_PID=()
    [ ${#pids[@]} -gt 0 ] && kill -TERM "${pids[@]}" 2>/dev/null
    for ((i = 0; i < 50; i++)); do
        left=0
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && left=1; done
        [ $left = 0 ] && break
        sleep 0.1
    done
    [ ${#pids[@]} -gt 0 ] && kill -KILL "${pids[@]}" 2>/dev/null
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
    if [ -n "$IT_NS" ]; then
        pids=()
        while read -r pid; do pids+=("$pid"); done < <(ip netns pids "$IT_NS" 2>/dev/null)
        [ ${#pids[@]} -gt 0 ] && kill -KILL "${pids[@]}" 2>/dev/null
    fi
    return 0
}

it_running() { [ -n "${IT_PID[$1]:-}" ] && kill -0 "${IT_PID[$1]}" 2>/dev/null; }

# it_stop NAME [SIGNAL]: stop one process this test started, by PID; SIGKILL after 5 s.
it_stop() {
    local name=$1 sig=${2:-TERM} pid=${IT_PID[$1]:-} i
    [ -n "$pid" ] || return 0
    unset "IT_PID[$name]"
    kill "-$sig" "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

# it_wait_exit NAME SECONDS: wait for a background process to finish on its own; returns its
# exit status, or 124 (and stops it) when it did not finish in time.
it_wait_exit() {
    local name=$1 limit=$2 pid=${IT_PID[$1]:-} i rc
    [ -n "$pid" ] || return 0
    for ((i = 0; i < limit * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        it_stop "$name"
        return 124
    fi
    wait "$pid"
    rc=$?
    unset "IT_PID[$name]"
    return "$rc"
}

# it_wait_grep FILE PATTERN SECONDS [MIN-COUNT]: wait until FILE has MIN-COUNT (default 1)
# lines matching the extended regex PATTERN.
it_wait_grep() {
    local file=$1 pat=$2 limit=$3 want=${4:-1} i n
    for ((i = 0; i < limit * 10; i++)); do
        n=$(grep -cE -- "$pat" "$file" 2>/dev/null)
        [ "${n:-0}" -ge "$want" ] && return 0
        sleep 0.1
    done
    return 1
}

# it_wait_listen ADDR PORT SECONDS: wait until a socket in the namespace is bound to
# ADDR:PORT, UDP or listening TCP. Unlike it_wait_tcp it does not connect, so it suits a
# listener that takes one connection only, and UDP receivers like sipp.
it_wait_listen() {
    local addr=$1 port=$2 limit=$3 i
    for ((i = 0; i < limit * 10; i++)); do
        [ -n "$(nsx ss -Hlntu src "$addr:$port" 2>/dev/null)" ] && return 0
        sleep 0.1
    done
    it_log "nothing bound to $addr:$port after $limit s"
    return 1
}

# it_wait_tcp ADDR PORT SECONDS: wait until something accepts TCP on ADDR:PORT.
it_wait_tcp() {
    local addr=$1 port=$2 limit=$3 i
    for ((i = 0; i < limit * 10; i++)); do
        nsx timeout 1 bash -c "exec 3<>/dev/tcp/$addr/$port" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# ---- DNS -------------------------------------------------------------------------------

# it_dns_start: dnsmasq on 127.0.0.53 answering only for *.test from
# its own records (NXDOMAIN for everything else under test., nothing forwarded anywhere).
# other.test resolves (to Prosody) but is no partner of the gateway; nowhere.test has nothing.
# Broken DNS for partners (t_errors.sh): nx.test has no records at all (NXDOMAIN);
# queries for timeout.test go to 127.0.0.54, where nothing answers (the resolver times out,
# the same h_errno as SERVFAIL); srvgone.test's SRV target has no address; dot.test's SRV
# target is "." (RFC 2782: the service is decidedly not available).
it_dns_start() {
    it_start dnsmasq /usr/sbin/dnsmasq --keep-in-foreground --no-resolv --no-hosts \
        --log-queries --log-facility=- --listen-address=127.0.0.53 --port=53 \
        --pid-file="$IT_TMP/dnsmasq.pid" --user=root --group=root \
        --local=/test/ --local-ttl=60 \
        --host-record=xmpp.test,127.0.0.2 \
        --host-record=gw.sip.test,127.0.0.3 \
        --host-record=sip.test,127.0.0.4 \
        --host-record=other.test,127.0.0.2 \
        --srv-host=_xmpp-server._tcp.other.test,other.test,5269,0,5 \
        --srv-host=_xmpp-server._tcp.sip.test,gw.sip.test,5269,0,5 \
        --srv-host=_xmpp-server._tcp.xmpp.test,xmpp.test,5269,0,5 \
        --srv-host=_sip._udp.sip.test,sip.test,5060,0,5 \
        --srv-host=_sip._tcp.sip.test,sip.test,5060,0,5 \
        --server=/timeout.test/127.0.0.54 \
        --srv-host=_xmpp-server._tcp.srvgone.test,gone.srvgone.test,5269,0,5 \
        --srv-host=_xmpp-server._tcp.dot.test
    it_wait_dns xmpp.test 127.0.0.2 5
}

# it_dns_query NAME [TYPE]: print the answers the namespace's resolver gives (A or SRV).
it_dns_query() {
    nsx "$PY" - "$1" "${2:-A}" <<'EOF'
import socket, struct, sys, random
name, qtype = sys.argv[1], {"A": 1, "SRV": 33}[sys.argv[2]]
ns = [l.split()[1] for l in open("/etc/resolv.conf") if l.startswith("nameserver")][0]
qid = random.randrange(65536)
q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
q += struct.pack(">HH", qtype, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.sendto(q, (ns, 53))
r = s.recv(4096)
rcode = r[3] & 15
an = struct.unpack(">H", r[6:8])[0]
def skip_name(b, i):
    while True:
        l = b[i]
        if l == 0: return i + 1
        if l >= 192: return i + 2
        i += l + 1
def read_name(b, i):
    out = []
    while True:
        l = b[i]
        if l == 0: break
        if l >= 192:
            i = ((l & 63) << 8) | b[i + 1]
            continue
        out.append(b[i + 1:i + 1 + l].decode()); i += l + 1
    return ".".join(out)
i = skip_name(r, 12) + 4
print("rcode=%d" % rcode)
for _ in range(an):
    i = skip_name(r, i)
    t, _c, ttl, ln = struct.unpack(">HHIH", r[i:i + 10]); i += 10
    d = r[i:i + ln]
    if t == 1: print("A %s ttl=%d" % (socket.inet_ntoa(d), ttl))
    if t == 33:
        pr, w, port = struct.unpack(">HHH", d[:6])
        print("SRV %d %d %d %s ttl=%d" % (pr, w, port, read_name(r, i + 6), ttl))
    i += ln
EOF
}

it_wait_dns() {
    local name=$1 want=$2 limit=$3 i
    for ((i = 0; i < limit * 10; i++)); do
        it_dns_query "$name" A 2>/dev/null | grep -q "^A $want " && return 0
        sleep 0.1
    done
    return 1
}

# ---- Prosody ---------------------------------------------------------------------------

# it_prosody_start: xmpp.test on 127.0.0.2 (c2s 5222, s2s 5269) with users alice and carol.
it_prosody_start() {
    local d=$IT_TMP/prosody
    mkdir -p "$d/data"
    if [ ! -s "$d/xmpp.test.crt" ]; then
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=xmpp.test" \
            -addext "subjectAltName=DNS:xmpp.test" \
            -keyout "$d/xmpp.test.key" -out "$d/xmpp.test.crt" 2>/dev/null || return 1
    fi
    sed "s|@DIR@|$d|g" "$IT_DIR/conf/prosody.cfg.lua.in" >"$d/prosody.cfg.lua"
    local u
    for u in alice carol; do
        nsx prosodyctl --config "$d/prosody.cfg.lua" register "$u" xmpp.test "$IT_PASSWORD" \
            >>"$IT_TMP/prosodyctl.log" 2>&1 || return 1
    done
    # The log file name the tail on failure looks for.
    ln -sf "$d/prosody.log" "$IT_TMP/prosody.log"
    it_start prosody prosody --config "$d/prosody.cfg.lua" -F
    it_wait_tcp 127.0.0.2 5222 15 && it_wait_tcp 127.0.0.2 5269 5
}

# it_xmpp NAME ARGS...: run xmpp_client.py as alice in the background (output NAME.out).
it_xmpp() {
    local name=$1
    shift
    it_start "$name" "$PY" "$IT_DIR/xmpp_client.py" --jid alice@xmpp.test \
        --password "$IT_PASSWORD" "$@"
}

# it_xmpp_online NAME: wait until the client NAME has logged in.
it_xmpp_online() { it_wait_grep "$IT_TMP/$1.out" '"ev": "online"' "${2:-15}"; }

# it_xmpp_sip_from NAME: the SIP From URI that RFC 7247 gives client NAME's full JID
# (section 6.4/6.5: the resource travels as the gr parameter), from its "online" line.
it_xmpp_sip_from() {
    sed -n 's/.*"ev": "online", "jid": "\([^"/]*\)\/\([^"]*\)".*/sip:\1;gr=\2/p' \
        "$IT_TMP/$1.out" 2>/dev/null | head -n 1
}

# it_xmpp_messages NAME: the received stanzas of client NAME, one JSON object a line.
it_xmpp_messages() { grep '"ev": "message"' "$IT_TMP/$1.out" 2>/dev/null; }

# ---- the gateway -----------------------------------------------------------------------

# it_policy OUT TEMPLATE NEXT-HOP [PARTNER-LINE]: render a policy template.
it_policy() {
    local out=$1 tpl=$2 hop=$3
    local partner=${4-'partner "xmpp.test" { tls = "required", dialback = true }'}
    sed -e "s|@SIP_NEXT_HOP@|$hop|" -e "s|@PARTNER@|$partner|" "$IT_DIR/conf/$tpl" >"$out"
}

it_have_gateway() { [ -x "$XSGW" ]; }

# it_gateway_start POLICY: start xsgw and wait for ev=gateway.ready.
it_gateway_start() {
    it_start xsgw "$XSGW" --policy "$1" --lua-dir "$REPO/lua" --state-dir "$IT_TMP/state" \
        --log-level debug
    it_wait_grep "$IT_TMP/xsgw.err" 'ev=gateway\.ready' 15
}

# it_gateway_reload: SIGHUP, then print the ev=policy.reload line it produced (fail if none).
it_gateway_reload() {
    local before
    before=$(grep -c 'ev=policy\.reload' "$IT_TMP/xsgw.err" 2>/dev/null)
    it_running xsgw || return 1
    kill -HUP "${IT_PID[xsgw]}"
    it_wait_grep "$IT_TMP/xsgw.err" 'ev=policy\.reload' 10 $((${before:-0} + 1)) || return 1
    grep 'ev=policy\.reload' "$IT_TMP/xsgw.err" | sed -n "$((${before:-0} + 1))p"
}

# ---- sipp ------------------------------------------------------------------------------

# it_sipp_uas NAME ADDR PORT STATUS REASON MAX-CALLS [SIPP-ARGS...]: background sipp UAS;
# every MESSAGE it gets is logged in NAME.msg. It exits after MAX-CALLS calls or 120 s.
it_sipp_uas() {
    local name=$1 addr=$2 port=$3 status=$4 reason=$5 max=$6
    shift 6
    sed -e "s/@STATUS@/$status/" -e "s/@REASON@/$reason/" -e "s/@HOLD@/${IT_UAS_HOLD:-2000}/" \
        "$IT_DIR/sipp/uas.xml" >"$IT_TMP/$name.xml"
    it_start "$name" sipp -sf "$IT_TMP/$name.xml" -i "$addr" -p "$port" -m "$max" \
        -timeout 120s -nostdin -trace_msg -message_file "$IT_TMP/$name.msg" \
        -max_recv_loops 10000 "$@"
    it_wait_listen "$addr" "$port" 10
}

# it_sipp_uac NAME TARGET FROM TO BODY COUNT [SIPP-ARGS...]: foreground sipp UAC from
# 127.0.0.5 sending COUNT MESSAGEs; with COUNT > 1 each body ends in " <call number>".
# Responses are logged in NAME.msg. Bounded by COUNT, the rate and -timeout. Returns sipp's
# status: 0 when every MESSAGE got a final response, non-zero when one did not (or 124 when
# the whole run timed out).
it_sipp_uac() {
    local name=$1 target=$2 from=$3 to=$4 body=$5 count=$6 seq=
    shift 6
    [ "$count" -gt 1 ] && seq=' [call_number]'
    sed -e "s/@WAIT@/${IT_UAC_WAIT:-8000}/" -e "s/@SEQ@/$seq/" "$IT_DIR/sipp/uac.xml" \
        >"$IT_TMP/$name.xml"
    nsx timeout "${IT_UAC_TIMEOUT:-60}" sipp -sf "$IT_TMP/$name.xml" "$target" -i 127.0.0.5 \
        -key from "$from" -key to "$to" -key body "$body" -m "$count" -timeout 50s -nostdin \
        -trace_msg -message_file "$IT_TMP/$name.msg" "$@" >"$IT_TMP/$name.out" 2>&1
}

# it_sip_final_codes NAME: the final status codes received by UAC NAME, one per MESSAGE.
it_sip_final_codes() {
    "$PY" "$IT_DIR/sip_trace.py" --dir recv --responses --unique "$IT_TMP/$1.msg" 2>/dev/null |
        "$PY" -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m["status"] >= 200:
        print(m["status"])'
}

# it_sip_requests NAME: unique MESSAGE requests received by sipp NAME, as JSON lines.
it_sip_requests() {
    "$PY" "$IT_DIR/sip_trace.py" --dir recv --requests --unique "$IT_TMP/$1.msg" 2>/dev/null
}

# ---- Kamailio --------------------------------------------------------------------------

# it_kamailio_start: Kamailio for sip.test on 127.0.0.4:5060, 512 MB shm (INTEROP-NOTES).
it_kamailio_start() {
    it_start kamailio kamailio -f "$IT_DIR/conf/kamailio.cfg" -DD -E -m 512 -M 16 \
        -P "$IT_TMP/kamailio.pid" -Y "$IT_TMP"
    it_wait_tcp 127.0.0.4 5060 10
}

# it_sipp_register USER CONTACT: REGISTER USER@sip.test at Kamailio; 0 when it got 200.
it_sipp_register() {
    nsx timeout 15 sipp -sf "$IT_DIR/sipp/register.xml" 127.0.0.4:5060 -i 127.0.0.6 -p 5091 \
        -m 1 -key user "$1" -key contact "$2" -timeout 10s -nostdin \
        >"$IT_TMP/register-$1.out" 2>&1
}

# ---- summaries the scenarios compare against -------------------------------------------

# it_xmpp_summary NAME: one line per stanza client NAME received:
#   bare-from TAB type TAB error-condition TAB body
it_xmpp_summary() {
    it_xmpp_messages "$1" | "$PY" -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    print("\t".join([m["from"].split("/")[0], m["type"], m["error"] or "-", m["body"] or ""]))'
}

# it_sip_summary NAME: one line per unique MESSAGE sipp NAME received:
#   request-uri TAB from-uri TAB to-uri TAB content-type (lower case, no spaces) TAB body
# The From keeps its GRUU (the XMPP sender's resource, RFC 7572 section 4): compare it with
# it_xmpp_sip_from.
it_sip_summary() {
    it_sip_requests "$1" | "$PY" -c '
import json, re, sys
def uri(v):
    v = v.strip()
    if "<" in v:
        v = v[v.index("<") + 1:v.index(">")] if ">" in v else v
    else:
        v = v.split(";")[0]
    return v
for line in sys.stdin:
    m = json.loads(line)
    h = m["headers"]
    ct = h.get("content-type", h.get("c", "")).replace(" ", "").lower()
    print("\t".join([m["uri"], uri(h.get("from", h.get("f", ""))),
                     uri(h.get("to", h.get("t", ""))), ct, m["body"]]))'
}

# it_fail_rest WHY: every scenario of the group not decided yet fails with WHY; then exit.
it_fail_rest() {
    local s
    for s in "${IT_SCENARIOS[@]}"; do
        [ -n "${IT_REPORTED[$s]:-}" ] || it_fail "$s" "$1"
    done
    exit 1
}

# it_world NEXT-HOP [PARTNERS]: DNS, Prosody and the gateway (policy in $IT_TMP/policy.lua
# with the xmpp.test partner, or the PARTNERS declarations on one line). Fails the whole
# group when any of them does not come up.
it_world() {
    it_have_gateway || it_fail_rest "no gateway binary at $XSGW (build it or set XSGW)"
    it_dns_start || it_fail_rest "dnsmasq did not answer on 127.0.0.53"
    it_prosody_start || it_fail_rest "Prosody did not start (prosody.log, prosodyctl.log)"
    it_policy "$IT_TMP/policy.lua" policy.lua.in "$1" ${2+"$2"}
    it_gateway_start "$IT_TMP/policy.lua" ||
        it_fail_rest "the gateway did not log ev=gateway.ready within 15 s"
}

# it_alice_listen NAME EXPECT TIMEOUT: alice online in the background, waiting for EXPECT
# stanzas; returns once she is online.
it_alice_listen() {
    it_xmpp "$1" --expect "$2" --timeout "$3"
    it_xmpp_online "$1" 15
}
